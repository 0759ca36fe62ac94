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


# Logistic regression on breast cancer, one epoch: the smallest complete recipe.
TINY_RECIPE = {
    "model": {
        "class_path": "mlstrategy.models.LogisticRegression",
        "init_args": {"optimizer": "gd", "learning_rate": 0.5},
    },
    "data": {
        "class_path": "mlstrategy.data.ArrayDataModule",
        "init_args": {"source": {"class_path": "mlstrategy.data.BreastCancer"}, "batch_size": None},
    },
    "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False},
}


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


def write_fake_run(
    run_dir: Path,
    errors: dict[str, float],
    *,
    f1: dict[str, float] | None = None,
    latency_ms: float = 1.0,
    params: int = 100,
    settings: dict | None = None,
) -> Path:
    """A hand-made finished run folder: ``metrics.json`` (and ``diagnosis.json`` with the
    recipe's evaluation ``settings`` when given), as ``mlstrategy run`` would leave it."""
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    splits = {
        split: {
            "error": err,
            "accuracy": 1 - err,
            "precision": 1 - err,
            "recall": 1 - err,
            "f1": (f1 or {}).get(split, 1 - err),
            "loss": err * 2,
            "n": 100,
            "per_class": {"neg": {"recall": 1 - err, "support": 50}},
        }
        for split, err in errors.items()
    }
    metrics = {
        "recipe": f"{run_dir.parent.name}.yaml",
        "params": params,
        "latency_ms": latency_ms,
        "splits": splits,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if settings is not None:
        (run_dir / "diagnosis.json").write_text(json.dumps({"settings": settings}))
    return run_dir


@pytest.fixture
def fake_run():
    """The :func:`write_fake_run` factory."""
    return write_fake_run


@pytest.fixture
def tensorboard_run(tmp_path):
    """A real TensorBoardLogger, and a reader of what reached its event file:
    ``{"scalars": {tag: last value}, "texts": {tag: text}, "images": [tags]}``."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(str(tmp_path / "tensorboard"), name="", version="")

    def read() -> dict:
        # No flush here: what the code under test did not flush is not read.
        events = EventAccumulator(logger.log_dir, size_guidance={"tensors": 0, "images": 0})
        events.Reload()
        tags = events.Tags()
        texts = {
            tag.removesuffix("/text_summary"): events.Tensors(tag)[-1]
            .tensor_proto.string_val[0]
            .decode()
            for tag in tags["tensors"]
        }
        scalars = {tag: events.Scalars(tag)[-1].value for tag in tags["scalars"]}
        return {"scalars": scalars, "texts": texts, "images": list(tags["images"])}

    return logger, read


# Per-task score rows of a multi-task run, for the scoring and reporting tests.
def task_row(error: float, n: int = 100, **extra) -> dict:
    acc = 1 - error
    return {"kind": "binary", "n": n, "error": error, "accuracy": acc, "precision": acc,
            "recall": acc, "f1": acc, "loss": error * 2, **extra}  # fmt: skip


def task_splits() -> dict:
    return {
        "train": {
            "n": 300,
            "tasks": {"car": task_row(0.02), "sign": task_row(0.10), "gone": task_row(0.1)},
        },
        "dev": {
            "n": 100,
            "tasks": {
                "car": task_row(0.12),
                "sign": task_row(0.11),
                "gone": {"n": 0, "no_labels": True},
            },
        },
        "test": {"n": 100, "tasks": {"car": task_row(0.13), "sign": task_row(0.12)}},
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with the most slow tests first, so that two xdist workers (``make test``: one file
    at a time, in this order) start the long files early and finish on the short ones, instead
    of one worker running a file of long DDP launches alone at the end."""
    slow: dict[Path, int] = {}
    for item in items:
        if item.get_closest_marker("slow"):
            slow[item.path] = slow.get(item.path, 0) + 1
    first_seen = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (-slow.get(item.path, 0), first_seen[item.path]))
