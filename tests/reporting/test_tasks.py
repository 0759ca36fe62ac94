"""The per-task tables and report sections of a multi-task run."""

from __future__ import annotations

import json

from mlstrategy.evaluation.multitask import NO_LABELS, diagnose_tasks
from mlstrategy.reporting.tasks import (
    render_task_report,
    task_comparison_table,
    task_table,
    write_task_report,
)


def _row(error: float, n: int = 100, **extra) -> dict:
    acc = 1 - error
    return {"kind": "binary", "n": n, "error": error, "accuracy": acc, "precision": acc,
            "recall": acc, "f1": acc, "loss": error * 2, **extra}  # fmt: skip


def _splits() -> dict:
    return {
        "train": {"n": 300, "tasks": {"car": _row(0.02), "sign": _row(0.10), "gone": _row(0.1)}},
        "dev": {
            "n": 100,
            "tasks": {"car": _row(0.12), "sign": _row(0.11), "gone": {"n": 0, "no_labels": True}},
        },
        "test": {"n": 100, "tasks": {"car": _row(0.13), "sign": _row(0.12)}},
    }


def test_tables_and_report_show_every_task_and_no_labels():
    from rich.console import Console

    splits = _splits()
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


def test_write_task_report_appends_sections_and_diagnoses(tmp_path):
    (tmp_path / "report.md").write_text("# Run report: x\n")
    (tmp_path / "diagnosis.json").write_text(json.dumps({"largest": "variance"}))
    splits = _splits()
    write_task_report(tmp_path, {"splits": splits}, diagnose_tasks(splits, 0.01))
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Run report: x\n\n## Per-task scores")
    payload = json.loads((tmp_path / "diagnosis.json").read_text())
    assert payload["largest"] == "variance"
    assert payload["tasks"]["car"]["largest"] == "variance"
    assert payload["tasks"]["gone"] == {"skipped": f"{NO_LABELS} in dev: cannot diagnose"}


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
