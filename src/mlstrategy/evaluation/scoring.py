"""Score a trained model on every split, in eval mode, over whole splits.

Single-task classifiers get per-split error, accuracy, precision, recall, F1 (multi-class:
micro, macro and weighted too), loss, per-class scores and the confusion matrix. Multi-task
models are scored per task, each on the examples whose label for it is present, so a missing
label is neither right nor wrong; each split's row keeps the usual keys, averaged over the
classification tasks (each task counts the same; ``loss`` is the weighted multi-task cost),
and adds ``"tasks": {task: row}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import lightning as L
import numpy as np
import torch

from mlstrategy.metrics.classification import per_class_table, score_predictions
from mlstrategy.metrics.names import METRIC_NAMES


def evaluate_splits(
    trainer: L.Trainer, model: L.LightningModule, datamodule: Any, ckpt_path: str | None
) -> dict[str, dict[str, Any]]:
    """Score ``model`` on every split of ``datamodule``, in eval mode, over whole splits.

    The test split goes first, through ``trainer.test(ckpt_path=...)``, which loads the
    checkpoint's weights; train, train-dev and dev are then scored with those same weights.
    Train error is therefore measured like the others (dropout off, final weights), never as a
    running average of training batches.

    Returns:
        ``{split: {"error", "accuracy", "precision", "recall", "f1", "loss", "n", ...,
        "per_class", "confusion_matrix"}}``.
    """
    splits = list(datamodule.split_names)
    order = ["test", *[s for s in splits if s != "test"]]
    class_names = list(getattr(datamodule, "class_names", None) or []) or None
    results: dict[str, dict[str, Any]] = {}
    for i, split in enumerate(order):
        model.eval_split = split
        loader = datamodule.eval_dataloader(split)
        out = trainer.test(
            model, dataloaders=loader, ckpt_path=ckpt_path if i == 0 else None, verbose=False
        )
        prefix = f"{split}/"
        row: dict[str, Any] = {
            k[len(prefix) :]: float(v) for k, v in out[0].items() if k.startswith(prefix)
        }
        # In-memory batches hold the split as `x`; a DataLoader (image folders) its dataset.
        row["n"] = len(loader.x) if hasattr(loader, "x") else len(loader.dataset)
        details = getattr(model, "eval_details", None)
        if details:
            row["per_class"] = per_class_table(details, class_names)
            row["confusion_matrix"] = details["confusion_matrix"].tolist()
        results[split] = row
    model.eval_split = "test"
    return {s: results[s] for s in splits}


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts.

    Example:
        >>> count_parameters(torch.nn.Linear(30, 1))
        {'params': 31, 'trainable_params': 31}
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": total, "trainable_params": trainable}


AVERAGED = ("error", *METRIC_NAMES)


def is_multitask(model: Any) -> bool:
    """True for a model whose evaluation is per task (a ``MultiTaskNet``)."""
    return hasattr(model, "tasks") and hasattr(model, "eval_tasks")


def score_task(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    kind: str = "binary",
    num_classes: int = 2,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """Score one task on its present labels only.

    Args:
        pred: Predictions for every example: class labels, or values for ``regression``.
        target: Labels for every example; ``-1`` (class labels) or ``NaN`` marks a missing one.
        kind: ``binary``, ``multilabel`` (one column of it), ``multiclass`` or ``regression``.
        num_classes: Classes of the task (2 for ``binary`` and ``multilabel``).
        class_names: One name per class, for the per-class scores.

    Returns:
        ``{"n": present labels, ...}`` with, for class labels, the scores of
        :func:`~mlstrategy.metrics.classification.score_predictions` (accuracy, precision, recall,
        F1, error, per-class scores, confusion matrix) and, for ``regression``, ``mse`` and
        ``mae``. With no present label: ``{"n": 0, "no_labels": True}``.

    Example:
        >>> s = score_task(torch.tensor([1, 0, 1, 1]), torch.tensor([1, -1, 0, -1]))
        >>> s["n"], s["precision"], s["recall"]
        (2, 0.5, 1.0)
        >>> score_task(torch.tensor([1]), torch.tensor([-1]))
        {'n': 0, 'no_labels': True}
    """
    p = torch.as_tensor(pred)
    t = torch.as_tensor(target)
    present = torch.isfinite(t) if kind == "regression" else torch.isfinite(t) & (t >= 0)
    n = int(present.sum())
    if n == 0:
        return {"n": 0, "no_labels": True}
    p, t = p[present], t[present]
    if kind == "regression":
        err = p.double() - t.double()
        return {"n": n, "mse": float((err**2).mean()), "mae": float(err.abs().mean())}
    return {"n": n, **score_predictions(p.long(), t.long(), num_classes, class_names)}


def summarize_tasks(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """A split's summary row from its task rows: the classification tasks' mean error,
    accuracy, precision, recall and F1 (each task that has labels counts the same) and the
    multi-task cost ``sum_t w_t J_t`` as ``loss``.

    Example:
        >>> rows = {"a": {"kind": "binary", "n": 5, "error": 0.2, "accuracy": 0.8,
        ...               "precision": 1.0, "recall": 0.5, "f1": 0.6, "loss": 0.4},
        ...         "b": {"kind": "binary", "n": 0, "no_labels": True}}
        >>> summarize_tasks(rows)["f1"], summarize_tasks(rows)["loss"]
        (0.6, 0.4)
    """
    scored = [r for r in tasks.values() if not r.get("no_labels") and r["kind"] != "regression"]
    row: dict[str, float] = {
        k: float(np.mean([r[k] for r in scored])) if scored else math.nan for k in AVERAGED
    }
    row["loss"] = float(
        sum(r.get("loss_weight", 1.0) * r["loss"] for r in tasks.values() if "loss" in r)
    )
    return row


def evaluate_tasks(
    trainer: L.Trainer, model: L.LightningModule, datamodule: Any, ckpt_path: str | None
) -> dict[str, dict[str, Any]]:
    """Score a multi-task model on every split, in eval mode, over whole splits, per task.

    As :func:`~mlstrategy.evaluation.report.evaluate_splits`: the test split first, through
    ``trainer.test(ckpt_path=...)`` which loads the checkpoint's weights, then the other splits
    with those weights. Per-task scalars go to the loggers as ``{split}/{task}/{metric}``.

    Returns:
        ``{split: {summary of :func:`summarize_tasks`, "n": examples, "tasks": {task: row}}}``.
    """
    splits = list(datamodule.split_names)
    order = ["test", *[s for s in splits if s != "test"]]
    weights = {
        name: float(head.loss_weight)
        for name, head in cast(dict, getattr(model, "heads", {})).items()
    }
    results: dict[str, dict[str, Any]] = {}
    for i, split in enumerate(order):
        cast(Any, model).eval_split = split
        loader = datamodule.eval_dataloader(split)
        trainer.test(
            model, dataloaders=loader, ckpt_path=ckpt_path if i == 0 else None, verbose=False
        )
        rows: dict[str, dict[str, Any]] = cast(Any, model).eval_tasks
        tasks = {name: dict(row) for name, row in rows.items()}
        for row in tasks.values():
            row["loss_weight"] = weights.get(row.get("head", ""), 1.0)
        results[split] = {**summarize_tasks(tasks), "n": len(loader.x), "tasks": tasks}
    cast(Any, model).eval_split = "test"
    return {s: results[s] for s in splits}
