"""report.md, diagnosis.json, the figures and what goes to TensorBoard; the docstring examples."""

from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest

from mlstrategy.evaluation.diagnosis import diagnose_splits
from mlstrategy.evaluation.selection import parse_constraint
from mlstrategy.reporting.run_report import render_report, write_run_report

MODULES = [
    "mlstrategy.evaluation.diagnosis",
    "mlstrategy.evaluation.distributions",
    "mlstrategy.evaluation.error_analysis",
    "mlstrategy.evaluation.latency",
    "mlstrategy.evaluation.learning_curve",
    "mlstrategy.evaluation.multitask",
    "mlstrategy.evaluation.scoring",
    "mlstrategy.metrics.classification",
    "mlstrategy.reporting.error_analysis",
    "mlstrategy.reporting.markdown",
    "mlstrategy.reporting.plots",
    "mlstrategy.reporting.run_report",
    "mlstrategy.reporting.tables",
    "mlstrategy.reporting.tasks",
    "mlstrategy.run_folder",
    "mlstrategy.evaluation.selection",
    "mlstrategy.evaluation.settings",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def _row(error: float, n: int = 50) -> dict:
    return {
        "n": n,
        "error": error,
        "accuracy": 1 - error,
        "precision": 0.8,
        "recall": 0.7,
        "f1": 0.75,
        "loss": 0.4,
        "per_class": {
            "cat": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 30},
            "dog": {"precision": 0.7, "recall": 0.6, "f1": 0.65, "support": 20},
        },
        "confusion_matrix": [[24, 6], [8, 12]],
    }


METRICS = {
    "recipe": "recipes/pets.yaml",
    "params": 1234,
    "latency_ms": 0.5,
    "latency_device": "cpu",
    "latency_repeats": 50,
    "epochs": 3,
    "fit_seconds": 1.5,
    "splits": {"train": _row(0.02), "train_dev": _row(0.03), "dev": _row(0.28), "test": _row(0.3)},
    "cost_curve": [
        {"epoch": 0.0, "cost/train": 0.7, "cost/dev": 0.7},
        {"epoch": 1.0, "cost/train": 0.5, "cost/dev": 0.6},
        {"epoch": 2.0, "cost/train": 0.3, "cost/dev": 0.65},
    ],
}

ANALYSIS = {
    "most_confused": [{"true": "dog", "predicted": "cat", "count": 8, "share": 0.5714}],
    "highest_loss": [{"index": 7, "true": "dog", "predicted": "cat", "p_true": 0.01, "loss": 4.6}],
    "same_distribution": {
        "dev_labels": [0.6, 0.4],
        "test_labels": [0.3, 0.7],
        "labels_p": 0.001,
        "worst_feature": 0,
        "worst_feature_z": 1.0,
        "features_p": 0.9,
        "differ": True,
        "message": "Dev and test look like different distributions: label proportions differ.",
    },
}


def test_report_names_the_largest_gap_its_remedies_and_the_rules():
    d = diagnose_splits(METRICS["splits"], human_error=0.01)
    md = render_report(
        METRICS,
        d,
        ANALYSIS,
        constraints=[parse_constraint("latency_ms<=0.1"), parse_constraint("test/recall>=0.5")],
        optimize="dev/f1",
        images={"confusion_matrix": "confusion_matrix.png", "cost_curve": "cost_curve.png"},
    )
    assert md.startswith("# Run report: pets\n")
    assert "| data mismatch | 25.00% | dev 28.00% - train-dev 3.00% | **largest** |" in md
    assert "**The largest gap is data mismatch (25.00 points).**" in md
    assert "- Carry out error analysis" in md
    # The orthogonalization table marks the goal to work on.
    assert "| 3. fit a dev set from another distribution | data mismatch | 25.00% |" in md
    assert "`latency_ms<=0.1`: 0.5, **FAILED**" in md
    assert "`test/recall>=0.5`: 0.7, met" in md
    assert "![confusion matrices](confusion_matrix.png)" in md
    assert "## Cost per epoch\n\n![train and dev cost per epoch](cost_curve.png)" in md
    assert "Learning curve" not in md  # the learning curve is error against m, not per epoch
    assert "| dog | cat | 8 | 57.1% |" in md
    assert "| 7 | dog | cat | 0.010 | 4.600 |" in md
    assert "**Warning:** Dev and test look like different distributions" in md
    assert "| test | 0.3 | 0.7 |" in md


def test_write_run_report_writes_files_and_tensorboard(tmp_path, tensorboard_run):
    d = diagnose_splits(METRICS["splits"], human_error=0.01)
    analysis = {**ANALYSIS, "highest_loss_x": np.random.default_rng(0).random((1, 1, 8, 8))}
    logger, read = tensorboard_run
    written = write_run_report(
        tmp_path, METRICS, d, settings={"human_error": 0.01}, analysis=analysis, logger=logger
    )
    assert set(written) == {
        "confusion_matrix",
        "cost_curve",
        "dev_examples",
        "diagnosis",
        "report",
    }
    for key in ("confusion_matrix", "cost_curve", "dev_examples"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", key
    saved = json.loads((tmp_path / "diagnosis.json").read_text())
    assert saved["largest"] == "data_mismatch"
    assert saved["avoidable_bias"] == pytest.approx(0.01)
    assert saved["settings"] == {"human_error": 0.01}
    assert saved["most_confused"][0]["count"] == 8
    assert "highest_loss_x" not in saved  # raw examples go to the figure only
    report = (tmp_path / "report.md").read_text()
    assert "![highest-loss dev examples](dev_highest_loss.png)" in report
    logged = read()  # what was flushed to the event file
    assert logged["scalars"]["diagnosis/data_mismatch"] == pytest.approx(0.25)
    assert logged["texts"]["report"] == report
    assert set(logged["images"]) == {"confusion_matrix", "cost_curve", "dev_examples"}
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind
