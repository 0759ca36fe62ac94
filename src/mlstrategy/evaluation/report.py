"""Evaluate a trained model on every split and write the run's ``metrics.json``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
from rich.table import Table

from mlstrategy.evaluation.metrics import METRIC_NAMES

SPLIT_COLUMNS = ("error", *METRIC_NAMES, "loss")


def evaluate_splits(
    trainer: L.Trainer, model: L.LightningModule, datamodule: Any, ckpt_path: str | None
) -> dict[str, dict[str, float]]:
    """Score ``model`` on every split of ``datamodule``, in eval mode, over whole splits.

    The test split goes first, through ``trainer.test(ckpt_path=...)``, which loads the
    checkpoint's weights; train, train-dev and dev are then scored with those same weights.
    Train error is therefore measured like the others (dropout off, final weights), never as a
    running average of training batches.

    Returns:
        ``{split: {"error", "accuracy", "precision", "recall", "f1", "loss", "n"}}``.
    """
    splits = list(datamodule.split_names)
    order = ["test", *[s for s in splits if s != "test"]]
    results: dict[str, dict[str, float]] = {}
    for i, split in enumerate(order):
        model.eval_split = split
        loader = datamodule.eval_dataloader(split)
        out = trainer.test(model, dataloaders=loader, ckpt_path=ckpt_path if i == 0 else None, verbose=False)
        prefix = f"{split}/"
        row = {k[len(prefix):]: float(v) for k, v in out[0].items() if k.startswith(prefix)}
        row["n"] = len(loader.x)
        results[split] = row
    model.eval_split = "test"
    return {s: results[s] for s in splits}


def count_parameters(model: L.LightningModule) -> dict[str, int]:
    """Total and trainable parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": total, "trainable_params": trainable}


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, flush it to disk, then rename.

    A reader (or a crash) sees either the previous file or the complete new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_table(metrics: dict[str, Any], title: str | None = None) -> Table:
    """A rich table: one row per split, error / accuracy / precision / recall / F1 / loss."""
    table = Table(title=title, title_justify="left")
    table.add_column("split")
    table.add_column("n", justify="right")
    for col in SPLIT_COLUMNS:
        table.add_column(col, justify="right")
    for split, row in metrics["splits"].items():
        table.add_row(split, str(row["n"]), *(f"{row[c]:.4f}" for c in SPLIT_COLUMNS))
    return table
