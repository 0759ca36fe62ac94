"""Shared fixtures: tiny seeded recipes, a temporary working directory for run folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning  # noqa: F401  (imported before any test's capsys, so its log handlers bind to the session's streams)
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory so run folders land in ``tmp_path/logs``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_recipe(path: Path, model: dict, data: dict, trainer: dict | None = None) -> Path:
    """Write a recipe with quiet, small trainer settings unless ``trainer`` overrides them."""
    trainer_cfg = {"max_epochs": 3, "enable_progress_bar": False, "enable_model_summary": False}
    trainer_cfg.update(trainer or {})
    path.write_text(yaml.safe_dump({"model": model, "data": data, "trainer": trainer_cfg}))
    return path


@pytest.fixture
def tiny_recipe(in_tmp: Path) -> Path:
    """Logistic regression on breast cancer, 3 epochs: a complete run in about a second."""
    return write_recipe(
        in_tmp / "tiny.yaml",
        model={
            "class_path": "mlstrategy.models.LogisticRegression",
            "init_args": {"optimizer": "gd", "learning_rate": 0.5},
        },
        data={
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.BreastCancer"},
                "batch_size": None,
            },
        },
    )


def run_cli_subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed console script the way a user would (fresh interpreter)."""
    exe = Path(sys.executable).with_name("mlstrategy")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
