"""``mlstrategy predict RUN_DIR [INPUT]``: probabilities equal the course's softmax of the
trained weights on normalized inputs, columns are checked by name and order, and class names
round-trip for string labels."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from rich.console import Console
from sklearn.datasets import load_iris

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.runs.predict import predict_run
from mlstrategy.runs.run import run_recipe

# Each module trains one small run (a few seconds) that its tests share.
pytestmark = pytest.mark.slow

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> Path:
    """A finished softmax-regression run on iris with string labels, from a user's CSV."""
    root = tmp_path_factory.mktemp("iris")
    data = load_iris()
    names = data.target_names
    rows = [[*x, names[y]] for x, y in zip(data.data.tolist(), data.target, strict=True)]
    train = _write_csv(root / "iris.csv", [*COLUMNS, "species"], rows)
    recipe = write_recipe(
        root / "iris.yaml",
        model={
            "class_path": "mlstrategy.models.SoftmaxRegression",
            "init_args": {"optimizer": "adam", "learning_rate": 0.05},
        },
        data={
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {
                    "class_path": "mlstrategy.data.ArrayFile",
                    "init_args": {"path": str(train), "target": "species"},
                },
                "batch_size": 32,
            },
        },
        trainer={"max_epochs": 5},
    )
    quiet = Console(file=io.StringIO())
    return run_recipe([recipe], console=quiet, logs_dir=root / "logs").run_dir


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_probabilities_equal_a_manual_softmax_of_the_trained_weights(iris_run, tmp_path):
    x = load_iris().data[[0, 55, 120, 149]]
    new = _write_csv(
        tmp_path / "new.csv", ["id", *COLUMNS], [[f"f{i}", *r] for i, r in enumerate(x)]
    )
    out = predict_run(iris_run, str(new))
    assert out.path == iris_run / "predictions_new.csv"
    rows = _read(out.path)
    assert list(rows[0]) == ["id", "predicted", "p_setosa", "p_versicolor", "p_virginica"]
    assert [r["id"] for r in rows] == ["f0", "f1", "f2", "f3"]
    # The course's forward pass by hand, on the raw checkpoint tensors: standardize with the
    # train split's statistics, z = W x + b, softmax.
    state = torch.load(iris_run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    mean, std = state["input_norm.mean"].double().numpy(), state["input_norm.std"].double().numpy()
    w, b = state["net.1.weight"].double().numpy(), state["net.1.bias"].double().numpy()
    z = ((x - mean) / std) @ w.T + b
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    got = np.array(
        [[float(r[f"p_{c}"]) for c in ("setosa", "versicolor", "virginica")] for r in rows]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    names = np.array(["setosa", "versicolor", "virginica"])
    assert [r["predicted"] for r in rows] == names[expected.argmax(axis=1)].tolist()


def test_the_test_split_reproduces_the_runs_test_accuracy_with_class_names(iris_run):
    rows = _read(predict_run(iris_run).path)
    metrics = json.loads((iris_run / "metrics.json").read_text())
    assert len(rows) == metrics["splits"]["test"]["n"]
    assert {r["true"] for r in rows} == {"setosa", "versicolor", "virginica"}
    assert all(r["correct"] == str(r["true"] == r["predicted"]).lower() for r in rows)
    accuracy = np.mean([r["correct"] == "true" for r in rows])
    assert accuracy == pytest.approx(metrics["splits"]["test"]["accuracy"], abs=1e-6)


def test_labels_in_the_input_give_true_and_correct(iris_run, tmp_path):
    data = load_iris()
    rows = [
        [*x, data.target_names[y]] for x, y in zip(data.data[::10], data.target[::10], strict=True)
    ]
    rows[0][-1] = ""  # an unlabelled row among labelled ones
    given = _write_csv(
        tmp_path / "labelled.csv", ["note", *COLUMNS, "species"], [["n", *r] for r in rows]
    )
    out = _read(predict_run(iris_run, str(given), output=str(tmp_path / "p.csv")).path)
    assert (tmp_path / "p.csv").is_file() and len(out) == 15
    assert out[0]["true"] == "" and out[0]["correct"] == ""
    assert [r["true"] for r in out[1:]] == [data.target_names[y] for y in data.target[10::10]]


def test_a_missing_or_misplaced_column_is_refused_by_name(iris_run, tmp_path):
    x = load_iris().data[:3].tolist()
    missing = _write_csv(tmp_path / "m.csv", COLUMNS[:3], [r[:3] for r in x])
    with pytest.raises(ValueError, match=r"no column\(s\) \['petal_width'\]"):
        predict_run(iris_run, str(missing))
    order = [COLUMNS[1], COLUMNS[0], *COLUMNS[2:]]
    swapped = _write_csv(tmp_path / "s.csv", order, [[r[1], r[0], *r[2:]] for r in x])
    with pytest.raises(ValueError, match="column 'sepal_width' comes before 'sepal_length'"):
        predict_run(iris_run, str(swapped))
    unknown = _write_csv(tmp_path / "u.csv", [*COLUMNS, "species"], [[*x[0], "tulip"]])
    with pytest.raises(ValueError, match="'tulip' is not one of the classes"):
        predict_run(iris_run, str(unknown))


def test_the_columns_are_the_ones_saved_at_training_not_the_file_as_it_is_now(iris_run, tmp_path):
    state = torch.load(iris_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert state["ArrayDataModule"]["feature_names"] == COLUMNS
    assert state["ArrayDataModule"]["target"] == "species"
    x = load_iris().data[[0, 60, 120]].tolist()
    new = _write_csv(tmp_path / "new.csv", COLUMNS, x)
    before = _read(predict_run(iris_run, str(new)).path)
    train = Path(yaml.safe_load((iris_run / "config.yaml").read_text())["data"]["init_args"][
        "source"]["init_args"]["path"])  # fmt: skip
    kept = train.read_text()
    try:  # the training CSV exported again, its first two columns swapped
        with train.open(newline="") as f:
            rows = list(csv.reader(f))
        _write_csv(
            train, [rows[0][1], rows[0][0], *rows[0][2:]], [[r[1], r[0], *r[2:]] for r in rows[1:]]
        )
        assert _read(predict_run(iris_run, str(new)).path) == before
        swapped = _write_csv(tmp_path / "s.csv", [COLUMNS[1], COLUMNS[0], *COLUMNS[2:]], x)
        with pytest.raises(ValueError, match="'sepal_width' comes before 'sepal_length'"):
            predict_run(iris_run, str(swapped))
    finally:
        train.write_text(kept)


def test_an_old_checkpoint_is_checked_against_the_training_file_with_a_warning(iris_run):
    from mlstrategy.runs.predict import feature_columns
    from mlstrategy.runs.trained_run import load_run

    run = load_run(iris_run)
    assert feature_columns(run) == (COLUMNS, ["species"])
    run.data_state = {"seed": 0, "class_names": run.class_names}  # saved before the columns
    with pytest.warns(UserWarning, match="does not record the feature columns it was trained on"):
        assert feature_columns(run) == (COLUMNS, ["species"])


def test_lightnings_predict_verb_writes_the_same_layout(iris_run, capsys):
    ours = _read(predict_run(iris_run).path)
    best = iris_run / "checkpoints" / "best.ckpt"
    args = ["predict", f"--config={iris_run / 'config.yaml'}", f"--ckpt_path={best}"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        assert main([*args, "--trainer.enable_progress_bar=false"]) == 0
    assert not [w for w in caught if "infer the batch indices" in str(w.message)]
    theirs = _read(iris_run / "lightning_predictions.csv")
    assert list(theirs[0]) == list(ours[0])  # id, predicted, p_<class>..., true, correct
    assert [r["id"] for r in theirs] == [r["id"] for r in ours]
    for a, b in zip(theirs, ours, strict=True):
        assert (a["predicted"], a["true"], a["correct"]) == (
            b["predicted"],
            b["true"],
            b["correct"],
        )
        for c in ("setosa", "versicolor", "virginica"):
            assert float(a[f"p_{c}"]) == pytest.approx(float(b[f"p_{c}"]), abs=1e-6)
    assert not list(iris_run.glob(".*.tmp"))  # written atomically: no temporary file left


def test_an_npz_input_is_checked_for_shape(iris_run, tmp_path):
    x = load_iris().data[:5].astype(np.float32)
    np.savez(tmp_path / "ok.npz", X=x)
    rows = _read(predict_run(iris_run, str(tmp_path / "ok.npz")).path)
    assert len(rows) == 5 and rows[0]["predicted"] == "setosa"
    np.savez(tmp_path / "wide.npz", X=np.zeros((2, 5)))
    with pytest.raises(
        ValueError, match=r"shape \(5,\), but the model was trained on inputs of shape \(4,\)"
    ):
        predict_run(iris_run, str(tmp_path / "wide.npz"))


def test_the_verb_dispatches_on_a_path_and_bad_input_exits_2(iris_run, tmp_path, capsys):
    new = _write_csv(tmp_path / "one.csv", COLUMNS, [load_iris().data[0].tolist()])
    out = tmp_path / "one_out.csv"
    assert main(["predict", str(iris_run), str(new), "--output", str(out)]) == 0
    assert f"1 predictions written to {out}" in capsys.readouterr().out.replace("\n", "")
    assert main(["predict", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints").mkdir(parents=True)
    assert main(["predict", str(unfinished)]) == 2
    assert "has no metrics.json" in capsys.readouterr().err
    assert main(["predict", str(iris_run), str(tmp_path / "absent.csv")]) == 2


def test_output_an_existing_folder_gets_the_default_name_in_it(iris_run, tmp_path, capsys):
    new = _write_csv(tmp_path / "one.csv", COLUMNS, [load_iris().data[100].tolist()])
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["predict", str(iris_run), str(new), "--output", str(folder)]) == 0
    written = folder / "predictions_one.csv"
    assert f"1 predictions written to {written}" in capsys.readouterr().out.replace("\n", "")
    assert _read(written) == _read(predict_run(iris_run, str(new)).path)  # the run folder's
    assert _read(written)[0]["predicted"] == "virginica"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("nodir/p.csv", "the folder '{tmp}/nodir' does not exist. Give a CSV file in an "
         "existing folder (`mkdir -p {tmp}/nodir` creates it), or an existing folder, which "
         "gets predictions_one.csv."),
        ("nodir/", "the folder '{tmp}/nodir' does not exist."),
        ("one.csv/p.csv", "the folder '{tmp}/one.csv' is a file, not a folder."),
    ],
)  # fmt: skip
def test_output_in_a_folder_that_is_not_there_exits_2_and_writes_nothing(
    iris_run, tmp_path, capsys, output, message
):
    new = _write_csv(tmp_path / "one.csv", COLUMNS, [load_iris().data[0].tolist()])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["predict", str(iris_run), str(new), "--output", f"{tmp_path}/{output}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --output '{tmp_path}/{output}': ")
    assert message.format(tmp=tmp_path) in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_misspelt_input_names_the_input_not_a_recipe_key(iris_run, tmp_path, capsys):
    _write_csv(tmp_path / "new.csv", COLUMNS, [load_iris().data[0].tolist()])
    assert main(["predict", str(iris_run), str(tmp_path / "nwe.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: INPUT '{tmp_path}/nwe.csv' does not exist (did you mean '{tmp_path}/new.csv'?)."
    )
    assert "data.init_args" not in err


def test_a_multitask_run_gets_one_column_group_per_task(tmp_path):
    from mlstrategy.runs.error_sheet import write_error_sheet

    recipe = write_recipe(
        tmp_path / "scenes.yaml",
        model={
            "class_path": "mlstrategy.models.MultiTaskNet",
            "init_args": {
                "heads": {"pedestrian": {"kind": "binary"}, "car": {"kind": "binary"}},
                "layer_dims": [16],
            },
        },
        data={
            "class_path": "mlstrategy.data.MultiTaskDataModule",
            "init_args": {
                "source": {
                    "class_path": "mlstrategy.data.StreetScenes",
                    "init_args": {"n_samples": 300, "image_size": 16, "missing_fraction": 0.3},
                },
            },
        },
        trainer={"max_epochs": 2},
    )
    run_dir = run_recipe([recipe], console=Console(file=io.StringIO()), logs_dir=tmp_path).run_dir
    rows = _read(predict_run(run_dir).path)
    header = list(rows[0])
    for task in ("pedestrian", "car"):  # one group per task, side by side
        group = [f"{task}_{c}" for c in ("predicted", "p_absent", "p_present", "true", "correct")]
        start = header.index(group[0])
        assert header[start : start + 5] == group
    test = json.loads((run_dir / "metrics.json").read_text())["splits"]["test"]["tasks"]
    for task in ("pedestrian", "car"):
        labelled = [r for r in rows if r[f"{task}_true"]]  # missing labels stay empty
        assert len(labelled) == test[task]["n"]
        wrong = sum(r[f"{task}_correct"] == "false" for r in labelled)
        assert wrong / len(labelled) == pytest.approx(test[task]["error"], abs=1e-6)
    sheet = write_error_sheet(run_dir)
    dev = json.loads((run_dir / "metrics.json").read_text())["splits"]["dev"]["tasks"]
    for task in ("pedestrian", "car"):
        cm = np.array(dev[task]["confusion_matrix"])
        assert sum(r["task"] == task for r in sheet.rows) == cm.sum() - np.trace(cm)
