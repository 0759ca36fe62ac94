"""Example weights, class costs and groups from an ArrayFile CSV, through the scorer and the
CLI: ``{split}/weighted_error`` and ``{split}/error_group_mean`` in ``metrics.json``, checked
against NumPy on the run's own predictions; ``compare --optimize dev/weighted_error``; and the
bad inputs, each one paragraph and exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import yaml
from lightning.pytorch.callbacks import Callback
from sklearn.metrics import zero_one_loss

from mlstrategy.cli import main
from mlstrategy.data import ArrayDataModule, ArrayFile
from mlstrategy.data.datamodule import source_columns
from mlstrategy.evaluation.scoring import SplitScorer, evaluate_splits
from mlstrategy.models import LogisticRegression

COUNTRIES = np.array(["fr", "in", "us"])
GROUPED = {"weight": "w", "group": "country"}


def write_csv(path: Path, m: int = 240, weight: str | None = None) -> Path:
    """Two features, a binary label, an example weight (5x on the positives) and a country."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(m, 2))
    y = (x[:, 0] + 0.7 * rng.normal(size=m) > 0).astype(int)
    w = np.where(y == 1, 5.0, 1.0) * rng.uniform(0.5, 1.5, m)
    country = COUNTRIES[rng.integers(0, 3, m)]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["a", "b", "w", "country", "label"])
        for i in range(m):
            cell = weight if weight is not None and i == 7 else f"{w[i]:.4f}"
            out.writerow([f"{x[i, 0]:.4f}", f"{x[i, 1]:.4f}", cell, country[i], y[i]])
    return path


def source(path: Path, **columns: str) -> dict:
    args = {"path": str(path), "target": "label", **columns}
    return {"class_path": "mlstrategy.data.ArrayFile", "init_args": args}


def write_recipe(tmp: Path, data_source: dict, evaluation: dict | None = None) -> Path:
    recipe = {
        "model": {
            "class_path": "mlstrategy.models.LogisticRegression",
            "init_args": {"optimizer": "gd", "learning_rate": 0.5},
        },
        "data": {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {"source": data_source, "batch_size": None},
        },
        "trainer": {"max_epochs": 3, "enable_progress_bar": False, "enable_model_summary": False},
        "evaluation": {"latency_repeats": 2, **(evaluation or {})},
    }
    path = tmp / "slices.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_weight_and_group_columns_are_read_and_never_features(tmp_path):
    path = write_csv(tmp_path / "d.csv")
    arrays = ArrayFile(str(path), target="label", weight="w", group="country").load(0)
    assert arrays.x.shape == (240, 2)  # a and b only
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert arrays.weights is not None and arrays.groups is not None
    np.testing.assert_allclose(arrays.weights, [float(r["w"]) for r in rows])
    assert arrays.group_names == ["fr", "in", "us"]
    assert [arrays.group_names[g] for g in arrays.groups] == [r["country"] for r in rows]
    # What `mlstrategy predict` checks a new CSV against: the features alone.
    module = ArrayFile(str(path), target="label", weight="w", group="country")
    assert source_columns(module) == (["a", "b"], "label")
    data = ArrayDataModule(module, seed=3)
    data.prepare()
    for split, index in data.split_indices.items():
        np.testing.assert_allclose(data.example_columns[split]["weight"], arrays.weights[index])
        np.testing.assert_array_equal(data.example_columns[split]["group"], arrays.groups[index])


class WithCallbacks(LogisticRegression):
    """A model with its own callbacks: ``trainer.test`` then replaces ``trainer.callbacks``."""

    def configure_callbacks(self) -> list[Callback]:
        return [Callback()]


def test_npz_weight_and_group_arrays_and_bad_cells_are_named(tmp_path):
    x, y = np.arange(12.0).reshape(6, 2), np.array([0, 1] * 3)
    w, g = np.array([1.0, 2, 3, 4, 5, 6]), np.array(["a", "b", "a", "b", "c", "c"])
    np.savez(tmp_path / "d.npz", X=x, y=y, w=w, g=g)
    arrays = ArrayFile(str(tmp_path / "d.npz"), weight="w", group="g").load(0)
    assert arrays.weights is not None and arrays.weights.tolist() == w.tolist()
    assert arrays.groups is not None and arrays.groups.tolist() == [0, 1, 0, 1, 2, 2]
    np.savez(tmp_path / "short.npz", X=x, y=y, w=w[:5])
    with pytest.raises(ValueError, match="6 examples but 5 'w' values"):
        ArrayFile(str(tmp_path / "short.npz"), weight="w").load(0)
    with pytest.raises(ValueError, match="the label column 'y' is also the weight or group"):
        ArrayFile(str(tmp_path / "d.npz"), weight="y").load(0)
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("a,w,g,y\n1,1,fr,0\n2,x,fr,1\n3,1,,0\n")
    with pytest.raises(ValueError, match="holds a cell that is not a number"):
        ArrayFile(str(csv_path), weight="w", features=["a"]).load(0)
    csv_path.write_text("a,w,g,y\n1,1,fr,0\n2,1,fr,1\n3,1,,0\n")
    with pytest.raises(ValueError, match="the group column 'g' is empty for example 2"):
        ArrayFile(str(csv_path), weight="w", group="g").load(0)


@pytest.mark.slow
@pytest.mark.parametrize("model_class", [LogisticRegression, WithCallbacks])
def test_class_costs_weighted_error_matches_numpy_on_the_scored_predictions(tmp_path, model_class):
    path = write_csv(tmp_path / "d.csv")
    data = ArrayDataModule(ArrayFile(str(path), "label", weight="w", group="country"))
    model = model_class(input_shape=(2,), optimizer="gd", learning_rate=0.5)
    trainer = L.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    costs = {"true": [1.0, 10.0]}  # a missed positive costs ten false alarms
    splits = evaluate_splits(trainer, model, data, ckpt_path=None, class_costs=costs)
    model.eval()
    c = np.array([[0.0, 1.0], [10.0, 0.0]])
    arrays = data.source.load(0)
    for split, (x, y) in data.prepare().items():
        yhat = model.predict_labels(model(x)).numpy()
        y, rows = y.numpy(), data.split_indices[split]
        w, g = arrays.weights[rows], arrays.groups[rows]
        assert splits[split]["weighted_error"] == pytest.approx((w * c[y, yhat]).sum() / w.sum())
        rates = [zero_one_loss(y[g == k], yhat[g == k]) for k in range(3)]
        assert splits[split]["error_group_mean"] == pytest.approx(np.mean(rates))
    assert not [c for c in trainer.callbacks if isinstance(c, SplitScorer)]  # none left over
    with pytest.raises(ValueError, match="gives 3 costs per axis, but the data has 2 classes"):
        evaluate_splits(trainer, model, data, ckpt_path=None, class_costs={"true": [1, 2, 3]})


@pytest.mark.slow
def test_run_writes_weighted_and_group_metrics_and_compare_optimizes_them(in_tmp, capsys):
    path = write_csv(in_tmp / "d.csv")
    recipe = write_recipe(
        in_tmp,
        source(path, weight="w", group="country"),
        {"optimize": "dev/weighted_error", "error_metric": "weighted_error"},
    )
    assert main(["run", str(recipe)]) == 0
    run = next((in_tmp / "logs" / "slices").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["params"] == 3  # two features and a bias: w and country are not features
    # The run's own predictions (its best checkpoint) on every row of the file.
    assert main(["predict", str(run), str(path), "--output", "p.csv"]) == 0
    with open("p.csv", newline="") as f:
        yhat = np.array([int(r["predicted"]) for r in csv.DictReader(f)])
    arrays = ArrayFile(str(path), "label", weight="w", group="country").load(0)
    data = ArrayDataModule(ArrayFile(str(path), "label", **GROUPED))  # the recipe's split
    data.prepare()
    for split, rows in data.split_indices.items():
        row = metrics["splits"][split]
        y, w, g = arrays.y[rows], arrays.weights[rows], arrays.groups[rows]
        assert row["weighted_error"] == pytest.approx(zero_one_loss(y, yhat[rows], sample_weight=w))
        rates = {n: zero_one_loss(y[g == k], yhat[rows][g == k]) for k, n in enumerate(COUNTRIES)}
        assert {n: r["error"] for n, r in row["groups"].items()} == pytest.approx(rates)
        assert row["error_group_mean"] == pytest.approx(np.mean(list(rates.values())))
    diagnosis = json.loads((run / "diagnosis.json").read_text())
    assert diagnosis["metric"] == "weighted_error"
    assert diagnosis["train_error"] == pytest.approx(metrics["splits"]["train"]["weighted_error"])
    report = (run / "report.md").read_text()
    assert "## Weighted error and slices" in report and "| error_group_mean |" in report
    capsys.readouterr()
    assert main(["diagnose", str(run)]) == 0  # the recipe's error_metric, read back
    assert "WEIGHTED_ERROR" in capsys.readouterr().out
    assert main(["compare", "logs", "--optimize", "dev/weighted_error"]) == 0
    out = capsys.readouterr().out
    assert "dev/weighted_error" in out and "min" in out
    assert f"{metrics['splits']['dev']['weighted_error']:.4f}" in out
    assert main(["compare", "logs", "--optimize", "dev/error_group_mean"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "columns, evaluation, weight_cell, says",
    [
        ({"weight": "wt", "group": "country"}, None, None, "has no column(s) ['wt']"),
        ({"weight": "w", "group": "region"}, None, None, "has no column(s) ['region']"),
        (GROUPED, None, "-2", "has the weight -2.0; weights must be finite and >= 0"),
        (GROUPED, {"class_costs": [[0, 1, 2], [1, 0, 2]]}, None, "is not a square cost matrix"),
        (GROUPED, {"class_costs": {"true": [1, -5]}}, None, "holds the cost -5.0"),
    ],
)
def test_bad_columns_and_costs_exit_2_with_one_paragraph(
    in_tmp, capsys, columns, evaluation, weight_cell, says
):
    path = write_csv(in_tmp / "d.csv", weight=weight_cell)
    recipe = write_recipe(in_tmp, source(path, **columns), evaluation)
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert says in " ".join(err.split())
    assert "Traceback" not in err
    assert not list((in_tmp / "logs").glob("*/*/metrics.json"))


@pytest.mark.slow
def test_recipe_class_costs_reach_the_runs_weighted_error(in_tmp):
    path = write_csv(in_tmp / "d.csv")
    free = {"class_costs": {"true": [0.0, 0.0]}}  # every mistake free: weighted_error is 0
    recipe = write_recipe(in_tmp, source(path, **GROUPED), free)
    assert main(["run", str(recipe), "--trainer.max_epochs=1"]) == 0
    run = next((in_tmp / "logs" / "slices").iterdir())
    splits = json.loads((run / "metrics.json").read_text())["splits"]
    assert all(row["error"] > 0 for row in splits.values())
    assert all(row["weighted_error"] == 0 for row in splits.values())
