"""What every sheet calls an example (the rows the data module's split used, never traced
again), and how a sheet written again keeps what a person filled in."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from mlstrategy.data import ArrayDataModule, ArrayFile, BreastCancer, Moons
from mlstrategy.data.sources import Arrays, ArraySource
from mlstrategy.data.splits import stratified_split
from mlstrategy.runs.trained_run import input_identities, keep_filled


def _iris_csv(path: Path, blank_lines: bool = False) -> Path:
    data = load_iris()
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "c", "d", "species"])
        for x, y in zip(data.data.tolist(), data.target, strict=True):
            if blank_lines and y == 1 and x[0] > 6.5:
                f.write("\n")  # a blank line: the file's line numbers run ahead of its rows
            writer.writerow([*x, data.target_names[y]])
    return path


def test_split_indices_are_the_rows_each_split_holds(tmp_path):
    data = ArrayDataModule(Moons(n_samples=300), train_dev_fraction=0.1, seed=3)
    splits = data.prepare()
    x, y = Moons(n_samples=300).load(3).x, Moons(n_samples=300).load(3).y
    reference = stratified_split(
        y, dev_fraction=0.2, test_fraction=0.2, train_dev_fraction=0.1, seed=3
    )
    assert list(data.split_indices) == ["train", "train_dev", "dev", "test"]
    for split, (xs, _) in splits.items():
        np.testing.assert_array_equal(data.split_indices[split], reference[split])
        np.testing.assert_array_equal(x[data.split_indices[split]], xs.numpy())
    assert not data.source_test_split


def test_a_csv_example_is_named_by_its_line_in_the_file(tmp_path):
    path = _iris_csv(tmp_path / "iris.csv", blank_lines=True)
    data = ArrayDataModule(ArrayFile(str(path), target="species"))
    names = input_identities(data, "dev")
    x_dev = data.prepare()["dev"][0].numpy()
    lines = path.read_text().splitlines()
    assert len(names) == len(x_dev)
    for name, x in zip(names, x_dev, strict=True):
        file, line = name.rsplit(" line ", 1)
        assert file == "iris.csv"
        cells = lines[int(line) - 1].split(",")  # line 1 is the header
        np.testing.assert_allclose([float(c) for c in cells[:4]], x)


def test_npz_rows_sources_rows_and_a_sources_own_test_split(tmp_path):
    data = load_iris()
    np.savez(tmp_path / "iris.npz", X=data.data, y=data.target)
    npz = ArrayDataModule(ArrayFile(str(tmp_path / "iris.npz")))
    rows = [int(n.rsplit(" row ", 1)[1]) for n in input_identities(npz, "train")]
    assert input_identities(npz, "train")[0].startswith("iris.npz row ")
    np.testing.assert_allclose(data.data[rows], npz.prepare()["train"][0].numpy())

    class WithTest(ArraySource):
        def load(self, seed: int) -> Arrays:
            return Arrays(
                data.data[:100], data.target[:100] % 2, [], data.data[100:], data.target[100:] % 2
            )

    own = ArrayDataModule(WithTest())
    test = input_identities(own, "test")
    assert own.source_test_split
    assert test == [f"WithTest() test row {r}" for r in range(50)]  # rows of its x_test
    assert input_identities(own, "dev")[0].startswith("WithTest() row ")
    assert input_identities(ArrayDataModule(BreastCancer()), "dev")[0].startswith(
        "BreastCancer() row "
    )


def _sheet(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_filled_cells_follow_their_example_into_the_new_sheet(tmp_path):
    old = _sheet(
        tmp_path / "errors.csv",
        [
            {"index": 3, "input": "x.csv line 5", "tags": "blurry"},
            {"index": 7, "input": "x.csv line 9", "tags": ""},
            {"index": 1, "input": "x.csv line 2", "tags": "dark;small"},
        ],
    )
    new: list[dict[str, object]] = [
        {"index": 1, "input": "x.csv line 2"},  # a new order (say, losses rounded otherwise)
        {"index": 3, "input": "x.csv line 5"},
        {"index": 7, "input": "x.csv line 9"},
    ]
    assert keep_filled(old, new, "tags", ["task", "index"], "mlstrategy errors RUN") == 2
    assert [r["tags"] for r in new] == ["dark;small", "blurry", ""]
    fresh: list[dict[str, object]] = [{"index": 1}]
    assert keep_filled(tmp_path / "absent.csv", fresh, "tags", ["index"], "x") == 0
    assert fresh[0]["tags"] == ""


def test_a_filled_cell_with_nowhere_to_go_is_refused_not_erased(tmp_path):
    old = _sheet(
        tmp_path / "suspect_labels.csv",
        [{"split": "dev", "index": 4, "input": "x.csv line 6", "verdict": "wrong"}],
    )
    other = [{"split": "dev", "index": 4, "input": "x.csv line 60"}]  # the data changed
    with pytest.raises(ValueError, match="1 filled 'verdict' cell") as err:
        keep_filled(old, other, "verdict", ["split", "index"], "mlstrategy suspects RUN")
    assert "split dev index 4" in str(err.value) and f"Copy or rename {old}" in str(err.value)
    gone: list[dict[str, object]] = [{"split": "train", "index": 4, "input": "x.csv line 6"}]
    with pytest.raises(ValueError, match="mlstrategy suspects RUN"):
        keep_filled(old, gone, "verdict", ["split", "index"], "mlstrategy suspects RUN")
    broken = tmp_path / "broken.csv"
    broken.write_text("index,tags\n1,a,b\n")
    with pytest.raises(ValueError, match="is there but cannot be read"):
        keep_filled(broken, [{"index": 1}], "tags", ["index"], "x")
