"""Regression through the console verbs: a tiny study of a line and a deep net on the noisy
curve (the line's diagnosis names avoidable bias, the deep net closes it, compare minimizes
RMSE), predict in the target's units, and the bad inputs that exit 2 with one paragraph."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlstrategy.cli import main
from mlstrategy.run_folder import (
    DIAGNOSIS_FILE,
    LIGHTNING_PREDICTIONS_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
)

CURVE = {
    "class_path": "mlstrategy.data.RegressionDataModule",
    "init_args": {
        "source": {
            "class_path": "mlstrategy.data.NoisyCurve",
            "init_args": {"n_samples": 400, "noise": 0.2},
        },
        "batch_size": None,
        "seed": 0,
    },
}
QUIET = {"enable_progress_bar": False, "enable_model_summary": False}


def _study(folder: Path) -> Path:
    folder.mkdir()
    base = {
        "data": CURVE,
        "trainer": QUIET,
        "evaluation": {"human_error": 0.2, "satisfy": ["latency_ms<=1000"]},
    }
    (folder / "_base.yaml").write_text(yaml.safe_dump(base))
    line = {
        "model": {
            "class_path": "mlstrategy.models.LinearRegression",
            "init_args": {"optimizer": "gd", "learning_rate": 0.5},
        },
        "trainer": {"max_epochs": 30},
    }
    deep = {
        "model": {
            "class_path": "mlstrategy.models.DeepRegressor",
            "init_args": {
                "layer_dims": [32, 32],
                "activation": "tanh",
                "init": "xavier",
                "learning_rate": 0.03,
            },
        },
        "trainer": {"max_epochs": 150},
    }
    (folder / "deep_curve.yaml").write_text(yaml.safe_dump(deep))
    (folder / "line_curve.yaml").write_text(yaml.safe_dump(line))
    return folder


@pytest.mark.slow
def test_the_line_has_avoidable_bias_and_the_deep_net_closes_it(in_tmp, capsys):
    assert main(["run", str(_study(in_tmp / "curve"))]) == 0
    out = capsys.readouterr().out
    assert "optimize dev/rmse (min)" in out  # the regressor's default, minimized
    runs = {
        p.parent.parent.name: p.parent for p in (in_tmp / "logs" / "curve").glob("*/*/metrics.json")
    }
    line = json.loads((runs["line_curve"] / DIAGNOSIS_FILE).read_text())
    deep = json.loads((runs["deep_curve"] / DIAGNOSIS_FILE).read_text())
    assert line["metric"] == "rmse" and line["largest"] == "avoidable_bias"
    assert line["avoidable_bias"] > 0.4  # a line leaves sin(3x) unexplained
    assert deep["avoidable_bias"] < 0.1 < line["avoidable_bias"] - deep["avoidable_bias"]
    assert "line_curve: The largest gap is avoidable bias" in out
    assert "winner: deep_curve" in out
    report = (runs["line_curve"] / REPORT_FILE).read_text()
    assert "predicted_vs_true.png" in report and "residuals.png" in report
    assert (runs["line_curve"] / "predicted_vs_true.png").stat().st_size > 1000
    # predict: numbers in y's units, equal to the scored test RMSE.
    assert main(["predict", str(runs["deep_curve"])]) == 0
    with (runs["deep_curve"] / PREDICTIONS_FILE).open() as f:
        rows = list(csv.DictReader(f))
    pred = np.array([float(r["predicted"]) for r in rows])
    true = np.array([float(r["true"]) for r in rows])
    metrics = json.loads((runs["deep_curve"] / METRICS_FILE).read_text())
    rmse = float(np.sqrt(np.mean((pred - true) ** 2)))
    assert rmse == pytest.approx(metrics["splits"]["test"]["rmse"], rel=1e-4)
    # LightningCLI's predict verb writes the same numbers.
    ckpt = runs["deep_curve"] / "checkpoints" / "best.ckpt"
    recipe = in_tmp / "curve" / "deep_curve.yaml"
    assert main(["predict", "--config", str(recipe), "--ckpt_path", str(ckpt)]) == 0
    with (runs["deep_curve"] / LIGHTNING_PREDICTIONS_FILE).open() as f:
        assert list(csv.DictReader(f)) == rows
    # The classifier's error sheet has nothing to sort here: exit 2, pointing at the residuals.
    assert main(["errors", str(runs["line_curve"])]) == 2
    assert "is a regression, whose errors are residuals" in capsys.readouterr().err
    assert main(["diagnose", str(runs["line_curve"])]) == 0
    verdict = f"The largest gap is avoidable bias ({line['avoidable_bias']:.4g} RMSE)."
    assert verdict in " ".join(capsys.readouterr().out.split())


def _bad_recipe(tmp: Path, target_cells: list[str], evaluation: dict | None = None) -> Path:
    lines = ["weight,target", *(f"{i},{c}" for i, c in enumerate(target_cells))]
    (tmp / "data.csv").write_text("\n".join(lines) + "\n")
    recipe = {
        "model": {"class_path": "mlstrategy.models.LinearRegression"},
        "data": {
            "class_path": "mlstrategy.data.RegressionDataModule",
            "init_args": {
                "source": {
                    "class_path": "mlstrategy.data.ArrayFile",
                    "init_args": {"path": "data.csv", "target": "target"},
                }
            },
        },
        "trainer": {"max_epochs": 1, **QUIET},
        **({"evaluation": evaluation} if evaluation else {}),
    }
    path = tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize(
    ("cells", "evaluation", "says"),
    [
        (["1", "2", "cheap"] + ["3"] * 7, None, "the target column 'target' holds 'cheap'"),
        (["1", "nan"] + ["3"] * 8, None, "1 target value(s) are NaN or infinite"),
        ([str(i) for i in range(10)], {"optimize": "dev/f1"}, "'dev/f1', a classification"),
    ],
    ids=["non_numeric_target", "nan_target", "classification_metric"],
)
def test_bad_regression_inputs_exit_2_with_one_paragraph(in_tmp, capsys, cells, evaluation, says):
    assert main(["run", str(_bad_recipe(in_tmp, cells, evaluation))]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not list((in_tmp / "logs").glob("*/*/metrics.json"))
