"""Classification metrics from torchmetrics, one collection per split.

Two collections, both fed predicted labels and true labels batch by batch:

- :func:`classification_metrics`: the scalars logged per split (accuracy, precision, recall,
  F1; for multi-class also their micro, macro and weighted averages).
- :func:`per_class_metrics`: precision, recall and F1 of every class, and the confusion
  matrix, for the report.
- :func:`confusion_counts`: false positives and negatives of every class (one-vs-rest) and
  their rates, from the confusion matrix: ``fp``, ``fn``, ``fp_rate = FP / (FP + TN)`` (the
  share of the class's negatives called positive) and ``fn_rate = FN / (FN + TP)`` (the share
  of its positives missed). A binary split also has them as scalars, for the positive class.

:class:`ClassificationScores` holds both and the split's mean cost, fed batch by batch;
:func:`score_predictions` applies both to one set of predictions, the way a split is scored.
Averaging follows scikit-learn's ``precision_recall_fscore_support`` (the reference they are
tested against): a class with no true and no predicted example is left out of the macro
average, and a ratio with a zero denominator is 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from mlstrategy.metrics.names import AVERAGES, CONFUSION_NAMES, PER_CLASS_NAMES


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}; a classifier needs at least 2.")


def classification_metrics(num_classes: int, prefix: str = "") -> MetricCollection:
    """Accuracy, precision, recall and F1 for predicted class labels.

    Binary problems score the positive class (label 1), as scikit-learn's
    ``average="binary"``. Multi-class problems report plain accuracy, precision, recall and F1
    as the macro average (each class counts the same), and each of the three also as
    ``{name}_micro``, ``{name}_macro`` and ``{name}_weighted`` (weighted by support).

    Args:
        num_classes: 2 for binary, more for multi-class.
        prefix: Prepended to every key, e.g. ``"dev/"``.

    Example:
        >>> import torch
        >>> m = classification_metrics(2)
        >>> out = m(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1]))
        >>> {k: round(v.item(), 3) for k, v in out.items()}
        {'accuracy': 0.75, 'f1': 0.8, 'precision': 0.667, 'recall': 1.0}
        >>> sorted(classification_metrics(3).keys())[:4]
        ['accuracy', 'f1', 'f1_macro', 'f1_micro']
    """
    _check_num_classes(num_classes)
    metrics: dict[str, Metric | MetricCollection]
    if num_classes == 2:
        metrics = {
            "accuracy": BinaryAccuracy(),
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "f1": BinaryF1Score(),
        }
    else:
        k = num_classes
        metrics = {"accuracy": MulticlassAccuracy(k, average="micro")}
        kinds = (
            ("precision", MulticlassPrecision),
            ("recall", MulticlassRecall),
            ("f1", MulticlassF1Score),
        )
        for name, cls in kinds:
            metrics[name] = cls(k, average="macro")
            for average in AVERAGES:
                metrics[f"{name}_{average}"] = cls(k, average=average)
    return MetricCollection(metrics, prefix=prefix)


def per_class_metrics(num_classes: int) -> MetricCollection:
    """Precision, recall and F1 of every class (vectors of length ``num_classes``) and the
    confusion matrix (``[true, predicted]`` counts), as scikit-learn's ``confusion_matrix``.

    Binary problems are scored as two classes here, so the report shows both.

    Args:
        num_classes: Number of classes (2 for binary).

    Example:
        >>> import torch
        >>> out = per_class_metrics(3)(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, 2]))
        >>> out["recall"].tolist()
        [1.0, 0.5, 0.0]
        >>> out["confusion_matrix"].tolist()
        [[1, 0, 0], [0, 1, 1], [0, 1, 0]]
    """
    _check_num_classes(num_classes)
    k = num_classes
    metrics: dict[str, Metric | MetricCollection] = {
        "precision": MulticlassPrecision(k, average=None),
        "recall": MulticlassRecall(k, average=None),
        "f1": MulticlassF1Score(k, average=None),
        "confusion_matrix": MulticlassConfusionMatrix(k),
    }
    return MetricCollection(metrics)


def confusion_counts(cm: Tensor) -> dict[str, Tensor]:
    """One-vs-rest ``fp``, ``fn``, ``fp_rate`` and ``fn_rate`` of every class, from a confusion
    matrix of ``[true, predicted]`` counts (a rate with no example to count over is 0).

    Example:
        >>> import torch
        >>> out = confusion_counts(torch.tensor([[5, 1], [2, 2]]))
        >>> out["fp"].tolist(), out["fn"].tolist()
        ([2, 1], [1, 2])
        >>> [[round(r, 4) for r in out[k].tolist()] for k in ("fp_rate", "fn_rate")]
        [[0.5, 0.1667], [0.1667, 0.5]]
    """
    cm = cm.long()
    hits = cm.diagonal()
    support = cm.sum(dim=1)  # true examples of each class
    fp = cm.sum(dim=0) - hits
    fn = support - hits
    negatives = cm.sum() - support
    return {
        "fp": fp,
        "fn": fn,
        "fp_rate": fp.double() / negatives.clamp(min=1),
        "fn_rate": fn.double() / support.clamp(min=1),
    }


def binary_confusion_scalars(cm: Tensor) -> dict[str, float]:
    """``fp``, ``fn``, ``fp_rate`` and ``fn_rate`` of the positive class (label 1) of a binary
    confusion matrix, as numbers; ``{}`` for a multi-class one (those are per class only)."""
    if len(cm) != 2:
        return {}
    counts = confusion_counts(cm)
    return {name: float(counts[name][1]) for name in CONFUSION_NAMES}


def per_class_table(
    values: dict[str, torch.Tensor], class_names: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """``{class name: {"precision", "recall", "f1", "support", "fp", "fn", "fp_rate",
    "fn_rate"}}`` from :func:`per_class_metrics` output; support is the number of true examples
    of the class (a confusion-matrix row sum), the rest as :func:`confusion_counts`.

    Args:
        values: The computed output of :func:`per_class_metrics`.
        class_names: One name per class; default ``"0"``, ``"1"``, ...

    Example:
        >>> import torch
        >>> out = per_class_metrics(2)(torch.tensor([1, 1, 0]), torch.tensor([1, 0, 0]))
        >>> per_class_table(out, ["cat", "dog"])["dog"]  # doctest: +NORMALIZE_WHITESPACE
        {'precision': 0.5, 'recall': 1.0, 'f1': 0.6667, 'support': 1, 'fp': 1, 'fn': 0,
         'fp_rate': 0.5, 'fn_rate': 0.0}
    """
    cm = values["confusion_matrix"]
    names = class_names or [str(k) for k in range(len(cm))]
    if len(names) != len(cm):
        raise ValueError(f"{len(names)} class names for {len(cm)} classes: {names}.")
    support = cm.sum(dim=1)
    counts = confusion_counts(cm)
    return {
        name: {
            **{m: round(float(values[m][k]), 4) for m in PER_CLASS_NAMES},
            "support": int(support[k]),
            "fp": int(counts["fp"][k]),
            "fn": int(counts["fn"][k]),
            "fp_rate": float(counts["fp_rate"][k]),
            "fn_rate": float(counts["fn_rate"][k]),
        }
        for k, name in enumerate(names)
    }


def score_predictions(
    preds: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """Score one set of predicted labels the way every split is scored.

    Args:
        preds: Predicted class labels, shape ``(m,)``.
        target: True class labels, shape ``(m,)``.
        num_classes: Number of classes.
        class_names: One name per class, for the per-class table.

    Returns:
        The scalars of :func:`classification_metrics` plus ``error`` (``1 - accuracy``),
        for a binary problem ``fp``, ``fn``, ``fp_rate`` and ``fn_rate`` of class 1,
        ``per_class`` (see :func:`per_class_table`) and ``confusion_matrix`` (nested lists).

    Example:
        >>> import torch
        >>> s = score_predictions(torch.tensor([1, 0, 0]), torch.tensor([1, 1, 0]), 2)
        >>> round(s["error"], 4), s["confusion_matrix"]
        (0.3333, [[1, 0], [1, 1]])
    """
    scalars = {k: float(v) for k, v in classification_metrics(num_classes)(preds, target).items()}
    scalars["error"] = 1.0 - scalars["accuracy"]
    detail = per_class_metrics(num_classes)(preds, target)
    scalars.update(binary_confusion_scalars(detail["confusion_matrix"]))
    return {
        **scalars,
        "per_class": per_class_table(detail, class_names),
        "confusion_matrix": detail["confusion_matrix"].tolist(),
    }


class ClassificationScores(nn.Module):
    """The running scores of one split of a classifier, fed batch by batch.

    The states are summed over batches (and devices), so :meth:`compute` scores the whole
    split at once, never as a mean of per-batch scores. The cost is the mean of the batches'
    mean costs weighted by their sizes: the cost of the whole split.

    Args:
        num_classes: Number of classes (2 for binary).

    Example:
        >>> import torch
        >>> scores = ClassificationScores(2)
        >>> scores.update(torch.tensor(0.5), torch.tensor([1, 0]), torch.tensor([1, 1]))
        >>> scores.update(torch.tensor(0.2), torch.tensor([0, 0]), torch.tensor([0, 0]))
        >>> scalars, details = scores.compute()
        >>> round(float(scalars["error"]), 4), round(float(scalars["loss"]), 4)
        (0.25, 0.35)
        >>> details["confusion_matrix"].tolist()
        [[2, 0], [1, 1]]
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.scalars = classification_metrics(num_classes)
        self.per_class = per_class_metrics(num_classes)
        self.cost = MeanMetric()

    def update(self, cost: Tensor, preds: Tensor, target: Tensor) -> None:
        """Add one batch: its mean cost, its predicted labels and its true labels."""
        self.cost.update(cost, len(target))
        self.scalars.update(preds, target)
        self.per_class.update(preds, target)

    def compute(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(scalars, per_class)``: the scalars of :func:`classification_metrics` with
        ``loss``, ``error`` (``1 - accuracy``) and, for a binary problem, ``fp``, ``fn``,
        ``fp_rate`` and ``fn_rate`` of class 1; and the output of :func:`per_class_metrics`
        on the CPU (see :func:`per_class_table`)."""
        values: dict[str, Tensor] = dict(self.scalars.compute())
        values["loss"] = self.cost.compute()
        values["error"] = 1 - values["accuracy"]
        details = {k: v.detach().cpu() for k, v in self.per_class.compute().items()}
        for name, value in binary_confusion_scalars(details["confusion_matrix"]).items():
            values[name] = torch.tensor(value)
        return values, details

    def reset(self) -> None:
        """Forget every batch, for the next split."""
        self.scalars.reset()
        self.per_class.reset()
        self.cost.reset()
