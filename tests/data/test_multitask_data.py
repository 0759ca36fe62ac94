"""Multi-task data: a CSV with several label columns (empty = missing) and the data module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlstrategy.data import LabelsFile, MultiTaskDataModule, StreetScenes

CSV = """\
x1,x2,car,weather,distance,colour
0.5,1.0,1,2,3.5,red
1.5,2.0,,0,,blue
2.5,3.0,0,,-1.25,
3.5,4.0,1,1,0.0,red
"""


def _csv(tmp_path, text: str = CSV) -> str:
    path = tmp_path / "scenes.csv"
    path.write_text(text)
    return str(path)


def test_csv_label_columns_with_empty_cells_as_missing(tmp_path):
    src = LabelsFile(_csv(tmp_path), labels=["car", "weather", "distance", "colour"])
    arrays = src.load(seed=0)
    np.testing.assert_array_equal(arrays.x, [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0]])
    y = arrays.y
    assert y[:, 0].tolist() == [1, -1, 0, 1]  # class labels: missing is -1
    assert y[:, 1].tolist() == [2, 0, -1, 1]
    assert y[0, 2] == 3.5 and math.isnan(y[1, 2]) and y[2, 2] == -1.25  # real: missing NaN
    assert y[:, 3].tolist() == [1, 0, -1, 1]  # text classes, sorted: blue=0, red=1
    assert arrays.class_names == {
        "car": ["0", "1"],
        "weather": ["0", "1", "2"],
        "colour": ["blue", "red"],
    }


def test_csv_features_default_to_the_other_columns_or_are_chosen(tmp_path):
    path = _csv(tmp_path)
    assert LabelsFile(path, labels=["car"], features=["x2"]).load(0).x[:, 0].tolist() == [
        1,
        2,
        3,
        4,
    ]
    with pytest.raises(ValueError, match=r"column 'colour': 'red' is not a number"):
        # colour is then a feature, and its text is not a number.
        LabelsFile(path, labels=["car", "weather", "distance"]).load(0)


@pytest.mark.parametrize(
    ("labels", "features", "text", "match"),
    [
        (["bus"], None, CSV, r"no column\(s\) \['bus'\]; its columns are \['x1', 'x2', 'car'"),
        (["car"], ["car"], CSV, r"\['car'\] are listed as both labels and features"),
        (["car"], ["x1"], "x1,car\n,1\n", r"line 2, feature column 'x1': '' is not a number"),
        (["car"], None, "x1,car\n1,1,3\n", r"line 2 has 3 cells, the header has 2"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, labels, features, text, match):
    with pytest.raises(ValueError, match=match):
        LabelsFile(_csv(tmp_path, text), labels=labels, features=features).load(0)


def test_no_label_columns():
    with pytest.raises(ValueError, match=r"labels=\[\] names no label column"):
        LabelsFile("x.csv", labels=[])


def test_data_module_splits_sizes_and_batches():
    dm = MultiTaskDataModule(StreetScenes(n_samples=100), batch_size=16, seed=0)
    splits = dm.prepare()
    assert [len(y) for _, y in splits.values()] == [60, 20, 20]
    assert dm.split_names == ["train", "dev", "test"]
    assert dm.input_shape == (3, 24, 24)
    assert dm.num_classes == dict.fromkeys(["pedestrian", "car", "stop_sign", "traffic_light"], 2)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 24, 24) and y.shape == (16, 4) and y.dtype == torch.float32
    # Normalization statistics from the train split only.
    norm = dm.input_normalizer()
    assert norm is not None
    torch.testing.assert_close(norm.mean, splits["train"][0].mean(0))


def test_train_size_keeps_dev_and_test_unchanged():
    full = MultiTaskDataModule(StreetScenes(n_samples=100), seed=0).prepare()
    small = MultiTaskDataModule(StreetScenes(n_samples=100), train_size=25, seed=0).prepare()
    assert len(small["train"][1]) == 25
    for split in ("dev", "test"):
        torch.testing.assert_close(small[split][0], full[split][0])
    # The kept examples are a subset of the full train split.
    full_rows = {tuple(r.tolist()) for r in full["train"][0].flatten(1)[:, :8]}
    assert all(tuple(r.tolist()) in full_rows for r in small["train"][0].flatten(1)[:, :8])
    with pytest.raises(ValueError, match=r"train_size=61 but the train split has only 60"):
        MultiTaskDataModule(StreetScenes(n_samples=100), train_size=61).prepare()
    with pytest.raises(ValueError, match=r"train_size=0 must be >= 1"):
        MultiTaskDataModule(StreetScenes(n_samples=100), train_size=0)


def test_csv_data_module_gives_the_model_each_columns_classes(tmp_path):
    rows = ["a,b,car,weather,distance"]
    rng = np.random.default_rng(0)
    for i in range(40):
        car = "" if i % 5 == 0 else str(i % 2)
        rows.append(f"{rng.normal():.3f},{rng.normal():.3f},{car},{i % 3},{rng.normal():.2f}")
    path = _csv(tmp_path, "\n".join(rows) + "\n")
    dm = MultiTaskDataModule(LabelsFile(path, labels=["car", "weather", "distance"]))
    assert dm.num_classes == {"car": 2, "weather": 3, "distance": 0}
    assert dm.label_classes["weather"] == ["0", "1", "2"]
    y = torch.cat([y for _, y in dm.prepare().values()])
    assert int((y[:, 0] == -1).sum()) == 8


def test_csv_blank_lines_are_skipped_and_line_numbers_stay_the_files(tmp_path):
    text = "\n" + CSV.replace("\n1.5,", "\n\n1.5,") + "\n\n"
    labels = ["car", "weather", "distance", "colour"]
    arrays = LabelsFile(_csv(tmp_path, text), labels=labels).load(0)
    assert arrays.x.tolist() == [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0]]
    assert arrays.y[:, 0].tolist() == [1, -1, 0, 1]
    bad = "x1,car\n1,1\n\n\n,0\n"
    with pytest.raises(ValueError, match=r"line 5, feature column 'x1': '' is not a number"):
        LabelsFile(_csv(tmp_path, bad), labels=["car"]).load(0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("x1,car,\n1,1,\n2,0,\n", r"line 1: column 3 has no name: trailing commas\?",
                     id="trailing_commas"),
        pytest.param("x1,car\n", r"has a header row \(2 columns\) but no data rows",
                     id="header_only"),
        pytest.param("x1,car,bus\n1,1,\n2,0,\n", r"label column 'bus' is empty in all 2 rows",
                     id="label_column_all_empty"),
        pytest.param("x1;car;bus\n1;1;0\n", r"The header looks separated by ';'",
                     id="semicolons"),
    ],
)  # fmt: skip
def test_odd_label_files_are_refused_with_the_place_and_the_fix(tmp_path, text, match):
    with pytest.raises(ValueError, match=match) as err:
        LabelsFile(_csv(tmp_path, text), labels=["car", "bus"]).load(0)
    assert "scenes.csv" in str(err.value)


def test_label_file_that_is_a_folder_or_not_a_csv(tmp_path):
    with pytest.raises(ValueError, match=r"is a folder, not a file"):
        LabelsFile(str(tmp_path), labels=["car"]).load(0)
    (tmp_path / "d.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"has suffix '.npz'; LabelsFile reads .csv"):
        LabelsFile(str(tmp_path / "d.npz"), labels=["car"]).load(0)
