"""The per-task tables and report sections of a multi-task run."""

from __future__ import annotations

import json

import pytest

from conftest import task_row, task_splits
from mlstrategy.evaluation.diagnosis import diagnose_splits
from mlstrategy.evaluation.multitask import NO_LABELS, diagnose_tasks
from mlstrategy.reporting.run_report import write_run_report
from mlstrategy.reporting.tasks import render_task_report, task_comparison_table, task_table
from mlstrategy.run_folder import DIAGNOSIS_FILE, REPORT_FILE


def test_tables_and_report_show_every_task_and_no_labels():
    from rich.console import Console

    splits = task_splits()
    diagnoses = diagnose_tasks(splits, human_error=0.01)
    console = Console(width=200, record=True)
    console.print(task_table(splits, diagnoses))
    text = console.export_text()
    assert "car" in text and "variance 10.0%" in text and NO_LABELS in text
    assert task_table(splits, diagnoses).row_count == 3
    md = render_task_report(splits, diagnoses)
    assert "| car | dev | 100 | 12.00% | 0.8800 |" in md
    assert "| gone | dev | 0 | *no labels* |" in md
    assert "| sign | 9.00% | 1.00% | - | 1.00% | **avoidable bias** |" in md


def test_run_report_of_a_multitask_run_ends_with_its_tasks_and_diagnoses(tmp_path, tensorboard_run):
    splits = task_splits()
    summary = {"train": task_row(0.06, 300), "dev": task_row(0.115), "test": task_row(0.125)}
    for split, row in summary.items():  # the summary scores average the tasks
        splits[split] |= {k: v for k, v in row.items() if k != "kind"}
    diagnoses = diagnose_tasks(splits, 0.01)
    logger, read = tensorboard_run
    write_run_report(
        tmp_path,
        {"recipe": "x.yaml", "splits": splits},
        diagnose_splits(splits, 0.01),
        task_diagnoses=diagnoses,
        logger=logger,
    )
    report = (tmp_path / REPORT_FILE).read_text()
    assert report.startswith("# Run report: x\n")
    section = render_task_report(splits, diagnoses)
    # The run's sections, a blank line, then the per-task sections at the end.
    assert report.endswith("\n\n" + section)
    assert report.index("## What to do, in order") < report.index("## Per-task scores")
    assert report.count("## Per-task scores") == 1
    payload = json.loads((tmp_path / DIAGNOSIS_FILE).read_text())
    assert payload["largest"] == "variance"
    assert payload["tasks"]["car"]["largest"] == "variance"
    assert payload["tasks"]["gone"] == {"skipped": f"{NO_LABELS} in dev: cannot diagnose"}
    logged = read()
    assert logged["scalars"]["diagnosis/car/variance"] == pytest.approx(0.10)
    assert "diagnosis/gone/variance" not in logged["scalars"]
    assert logged["texts"]["report/tasks"] == section
    assert logged["texts"]["report"] + "\n" + section == report


def test_run_report_without_tasks_has_no_task_sections(tmp_path):
    splits = {s: task_row(e) | {"kind": "binary"} for s, e in (("train", 0.1), ("dev", 0.2))}
    write_run_report(tmp_path, {"splits": splits}, diagnose_splits(splits, 0.01))
    assert "Per-task" not in (tmp_path / REPORT_FILE).read_text()
    assert "tasks" not in json.loads((tmp_path / DIAGNOSIS_FILE).read_text())


def test_comparison_table_orders_runs_by_train_size():
    def run(n_train: int, f1: float) -> dict:
        tasks = {"car": {"kind": "binary", "n": 9, "f1": f1}}
        return {
            "params": 1000,
            "fit_seconds": 2.0,
            "splits": {"train": {"n": n_train}, "test": {"f1": f1, "tasks": tasks}},
        }

    table = task_comparison_table({"big": run(2000, 0.9), "small": run(200, 0.7), "x": {}})
    assert [c.header for c in table.columns] == ["", "small", "big"]
    assert list(table.columns[0].cells) == ["train n", "car", "mean F1", "params", "fit s"]
    assert list(table.columns[1].cells) == ["200", "0.700", "0.700", "1,000", "2.0"]
    assert list(table.columns[2].cells)[1] == "0.900"


def _regression_splits() -> dict:
    size = {"kind": "regression", "head": "size", "loss_weight": 1.0}
    rows = {"train": (0.25, 0.4), "dev": (0.5, 0.6), "test": (0.75, 0.7)}
    return {
        split: {
            "error": None,
            "accuracy": None,
            "precision": None,
            "recall": None,
            "f1": None,
            "loss": mse,
            "n": 20,
            "tasks": {"size": {**size, "n": 20, "mse": mse, "mae": mae, "loss": mse}},
        }
        for split, (mse, mae) in rows.items()
    }


def test_a_run_of_regression_tasks_reports_mse_and_a_skipped_diagnosis(tmp_path, tensorboard_run):
    from rich.console import Console

    from mlstrategy.evaluation.diagnosis import diagnose_run

    splits = _regression_splits()
    diagnosis = diagnose_run(splits, human_error=0.01)
    assert isinstance(diagnosis, str)
    logger, read = tensorboard_run
    write_run_report(
        tmp_path,
        {"recipe": "sizes.yaml", "splits": splits},
        diagnosis,
        analysis={
            "tasks": {},
            "same_distribution": {
                "differ": False,
                "message": "Fine.",
                "tasks": {},
                "features_p": 1.0,
            },
        },
        task_diagnoses=diagnose_tasks(splits),
        logger=logger,
    )
    report = (tmp_path / REPORT_FILE).read_text()
    assert "| dev | 20 | - | - | - | - | - | 0.5000 |" in report  # no NaN error rate
    assert "nan" not in report.lower()
    assert f"## Diagnosis\n\nSkipped: {diagnosis}.\n" in report
    assert "## What to do, in order" not in report  # no gap, no knob to turn
    assert "| size | dev | 20 | mse 0.5000 | mae 0.6000 |" in report
    assert "No task is a classification" in report
    payload = json.loads((tmp_path / DIAGNOSIS_FILE).read_text())
    assert payload["skipped"] == diagnosis and "largest" not in payload
    assert payload["tasks"]["size"] == {"skipped": "regression: no error rate (see mse)"}
    assert not [t for t in read()["scalars"] if t.startswith("diagnosis/")]
    console = Console(width=200, record=True)
    console.print(task_table(splits, diagnose_tasks(splits)))
    (row,) = [line for line in console.export_text().splitlines() if "size (mse)" in line]
    assert [c.strip() for c in row.split("│")[1:5]] == ["size (mse)", "0.25", "0.5", "0.75"]


def test_the_error_analysis_of_each_task_goes_to_the_report_and_its_diagnosis_entry(tmp_path):
    splits = task_splits()
    worst = [{"index": 7, "true": "present", "predicted": "absent", "p_true": 0.05, "loss": 3.0}]
    confused = [{"true": "present", "predicted": "absent", "count": 4, "share": 0.8}]
    analysis = {
        "tasks": {"car": {"most_confused": confused, "highest_loss": worst}},
        "same_distribution": {
            "differ": True,
            "message": "Dev and test look like different distributions.",
            "features_p": 0.5,
            "worst_feature": 0,
            "worst_feature_z": 0.1,
            "tasks": {
                "car": {"dev_labels": [0.7, 0.3], "test_labels": [0.4, 0.6], "labels_p": 0.001}
            },
        },
    }
    diagnoses = diagnose_tasks(splits, 0.01)
    write_run_report(
        tmp_path,
        {"recipe": "x.yaml", "splits": splits},
        "no error rate",
        analysis=analysis,
        task_diagnoses=diagnoses,
    )
    report = (tmp_path / REPORT_FILE).read_text()
    section = report[report.index("## Error analysis per task") :]
    assert "### car" in section and "### sign" not in section
    assert "| present | absent | 4 | 80.0% |" in section
    assert "| 7 | present | absent | 0.050 | 3.000 |" in section
    assert "**Warning:** Dev and test look like different distributions." in report
    assert "| car | 0: 0.7, 1: 0.3 | 0: 0.4, 1: 0.6 | 0.001 |" in report
    payload = json.loads((tmp_path / DIAGNOSIS_FILE).read_text())
    car = payload["tasks"]["car"]
    assert car["largest"] == "variance"  # the diagnosis and the analysis of one task together
    assert car["highest_loss"] == worst and car["most_confused"] == confused
    assert "highest_loss" not in payload["tasks"]["sign"]
    assert payload["same_distribution"]["tasks"]["car"]["labels_p"] == 0.001
