"""Scores of one task of a multi-task model, on its present labels only, and a split's summary.

A task is one label column. Each is scored on the examples whose label for it is present (see
:mod:`mlstrategy.metrics.masking`), so a missing label is neither right nor wrong: class labels
get the scores of :mod:`mlstrategy.metrics.classification`, real values squared and absolute
error. :func:`summarize_tasks` turns the task rows of a split into the split's summary row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection, SumMetric
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError

from mlstrategy.metrics.classification import (
    classification_metrics,
    per_class_metrics,
    per_class_table,
    score_predictions,
)
from mlstrategy.metrics.masking import present_mask
from mlstrategy.metrics.names import METRIC_NAMES

AVERAGED = ("error", *METRIC_NAMES)


class TaskScores(nn.Module):
    """The running scores of one task over a split: only its present labels are fed in.

    Class labels: accuracy, precision, recall, F1 (:func:`~mlstrategy.metrics.classification.
    classification_metrics`), per-class scores and the confusion matrix; real values: squared
    and absolute error. Also the task's cost over its present labels (the training cost of
    that task, over the whole split) and their number.

    Args:
        kind: ``binary``, ``multilabel`` (one column of it), ``multiclass`` or ``regression``.
        num_classes: Classes of the task (2 for ``binary`` and ``multilabel``; unused for
            ``regression``).
        class_column: True when the column holds class labels (missing = ``-1``), False for
            real values (missing = ``NaN``).

    Example:
        >>> scores = TaskScores("binary", 2)
        >>> scores.update(torch.tensor([2.0, -1.0, 3.0]), torch.tensor([1.0, -1.0, 0.0]))
        >>> row = scores.compute()
        >>> row["n"], row["accuracy"], row["confusion_matrix"]
        (2, 0.5, [[0, 1], [0, 1]])
    """

    def __init__(self, kind: str, num_classes: int = 2, class_column: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self.class_column = class_column
        self.scores = (
            MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
            if kind == "regression"
            else classification_metrics(num_classes)
        )
        self.per_class = per_class_metrics(num_classes) if kind != "regression" else None
        self.cost = MeanMetric()
        self.count = SumMetric()

    def update(self, z: Tensor, target: Tensor) -> None:
        """Add a batch: the task's outputs ``z`` (logits, or values for ``regression``) and its
        labels, missing ones included; only the present labels are scored."""
        present = present_mask(target, self.class_column)
        n = int(present.sum())
        self.count.update(n)
        if n == 0:
            return
        z, t = z[present], target[present]
        # The cost of the task over its present labels, as in training.
        if self.kind == "regression":
            self.cost.update(F.mse_loss(z, t.to(z.dtype)), weight=n)
            self.scores.update(z.float(), t.float())
            return
        t = t.long()
        if self.kind == "multiclass":
            cost, pred = F.cross_entropy(z, t), z.argmax(dim=-1)
        else:
            cost, pred = F.binary_cross_entropy_with_logits(z, t.to(z.dtype)), (z > 0).long()
        self.cost.update(cost, weight=n)
        self.scores.update(pred, t)
        assert self.per_class is not None
        self.per_class.update(pred, t)

    def compute(self, class_names: list[str] | None = None) -> dict[str, Any]:
        """The task's row: ``n`` (present labels) and its scores, or ``no_labels``.

        Args:
            class_names: One name per class, for the per-class scores.
        """
        n = int(self.count.compute())
        row: dict[str, Any] = {"n": n}
        if n == 0:
            row["no_labels"] = True
            return row
        row.update({k: float(v) for k, v in self.scores.compute().items()})
        row["loss"] = float(self.cost.compute())
        if self.per_class is not None:
            row["error"] = 1.0 - row["accuracy"]
            details = {k: v.detach().cpu() for k, v in self.per_class.compute().items()}
            row["per_class"] = per_class_table(details, class_names)
            row["confusion_matrix"] = details["confusion_matrix"].tolist()
        return row

    def reset(self) -> None:
        """Forget every batch, for the next split."""
        for metric in (self.scores, self.per_class, self.cost, self.count):
            if metric is not None:
                metric.reset()


def score_task(
    pred: Tensor | np.ndarray,
    target: Tensor | np.ndarray,
    kind: str = "binary",
    num_classes: int = 2,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """Score one task on its present labels only, from all of its predictions at once.

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
    present = present_mask(t, class_column=kind != "regression")
    n = int(present.sum())
    if n == 0:
        return {"n": 0, "no_labels": True}
    p, t = p[present], t[present]
    if kind == "regression":
        err = p.double() - t.double()
        return {"n": n, "mse": float((err**2).mean()), "mae": float(err.abs().mean())}
    return {"n": n, **score_predictions(p.long(), t.long(), num_classes, class_names)}


def summarize_tasks(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """A split's summary row from its task rows: the classification tasks' mean error,
    accuracy, precision, recall and F1 (each task that has labels counts the same) and the
    multi-task cost ``sum_t w_t J_t`` as ``loss`` (``w_t`` from each row's ``loss_weight``,
    default 1).

    Where no classification task has labels in the split (every task is a regression, say),
    there is no error rate to average: those scores are None (``null`` in ``metrics.json``,
    ``-`` in the tables), never NaN; the regression tasks keep their ``mse`` in their rows.

    Example:
        >>> rows = {"a": {"kind": "binary", "n": 5, "error": 0.2, "accuracy": 0.8,
        ...               "precision": 1.0, "recall": 0.5, "f1": 0.6, "loss": 0.4},
        ...         "b": {"kind": "binary", "n": 0, "no_labels": True}}
        >>> summarize_tasks(rows)["f1"], summarize_tasks(rows)["loss"]
        (0.6, 0.4)
        >>> size = {"kind": "regression", "n": 5, "mse": 0.3, "mae": 0.4, "loss": 0.3}
        >>> summarize_tasks({"size": size})["error"], summarize_tasks({"size": size})["loss"]
        (None, 0.3)
    """
    scored = [r for r in tasks.values() if not r.get("no_labels") and r["kind"] != "regression"]
    row: dict[str, float | None] = {
        k: float(np.mean([r[k] for r in scored])) if scored else None for k in AVERAGED
    }
    row["loss"] = float(
        sum(r.get("loss_weight", 1.0) * r["loss"] for r in tasks.values() if "loss" in r)
    )
    return row
