"""The comparison table fits the terminal: at 60 and 80 columns the status column is whole
and the right border drawn, the further metric columns left out (and named) when even the
narrowest layout is too wide; at 120 columns every column shows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from conftest import write_fake_run
from mlstrategy.cli import main
from mlstrategy.reporting.tables import compare_table
from mlstrategy.run_folder import find_runs
from mlstrategy.runs.compare import compare_runs, recorded_rules

# The transfer study's rules: four candidates and four further columns besides params.
TRANSFER_SETTINGS = {
    "optimize": "dev/f1",
    "columns": ["test/f1", "test/error", "fit_seconds", "trainable_params"],
}
DEV_F1 = {"1_scratch": 0.9612, "2_freeze": 0.9034, "3_finetune": 0.9871, "4_gradual": 0.9823}


def write_transfer_study(root: Path) -> Path:
    """Run folders shaped like ``mlstrategy run recipes/transfer/``'s, with 7-digit sizes."""
    study = root / "logs" / "transfer"
    for i, (name, f1) in enumerate(DEV_F1.items()):
        errors = {"train": 0.01, "dev": 0.0312 + i / 100, "test": 0.0345}
        f1s = {"dev": f1, "test": f1 - 0.0123}
        run = write_fake_run(
            study / name / "1", errors, f1=f1s, params=1_234_567, settings=TRANSFER_SETTINGS
        )
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["fit_seconds"] = 123.456 + i
        metrics["trainable_params"] = 2565 if name == "2_freeze" else 1_234_567
        (run / "metrics.json").write_text(json.dumps(metrics))
    return study


def rendered(study: Path, width: int) -> list[str]:
    runs = find_runs([str(study)])
    comparison = compare_runs(runs, recorded_rules(runs))
    table = compare_table(comparison.selection, columns=[*comparison.columns, "params"])
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def status_of(lines: list[str], run: str) -> str:
    """The status cell of ``run``'s row (its name may fold after its first 8 characters)."""
    row = next(line for line in lines if line.startswith(f"│ {run[:8]}"))
    assert row.endswith("│"), row  # the right border is drawn
    return row.split("│")[-2].strip()


@pytest.mark.parametrize(
    ("width", "left_out"),
    [
        (60, "fit_seconds, trainable_params, params"),
        (80, "params"),
        (120, None),
    ],
)
def test_the_status_column_is_whole_at_every_width(tmp_path, width, left_out):
    lines = rendered(write_transfer_study(tmp_path), width)
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    header = next(line for line in lines if "status" in line)
    assert header.endswith("┃") and header.split("┃")[-2].strip() == "status", header
    assert status_of(lines, "3_finetune") == "winner"
    assert [status_of(lines, run) for run in ("4_gradual", "1_scratch", "2_freeze")] == ["ok"] * 3
    text = "\n".join(lines)
    assert "0.9871" in text and "0.9034" in text  # the optimizing metric is never dropped
    if left_out is None:
        assert "not shown" not in text and "trainable_params" in text and "1234567" in text
    else:
        assert f"not shown at {width} columns: {left_out}" in " ".join(text.split())
        assert "1234567 │ 1234567" not in text  # params is gone, not cut


def test_one_table_prints_whole_on_a_wide_console_after_a_narrow_one(tmp_path):
    """Dropping columns works on a copy: the table itself keeps all its columns."""
    runs = find_runs([str(write_transfer_study(tmp_path))])
    comparison = compare_runs(runs, recorded_rules(runs))
    table = compare_table(comparison.selection, columns=[*comparison.columns, "params"])
    for width in (60, 120):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(table)
    wide = console.file.getvalue()  # type: ignore[attr-defined]
    assert "trainable_params" in wide and "not shown" not in wide
    assert len(table.columns) == 9


def test_a_constraint_column_stays_when_further_columns_go(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    study = write_transfer_study(tmp_path)
    argv = ["compare", str(study), "--optimize", "dev/f1", "--satisfy", "fit_seconds<=125"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 60 for line in lines), out
    assert "125.5" in out and "fails" in out  # fit_seconds is a constraint here: shown
    assert status_of(lines, "1_scratch") == "winner"
    assert "winner: 1_scratch (dev/f1 = 0.9612" in " ".join(out.split())
