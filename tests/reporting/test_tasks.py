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
