"""Classification metrics from torchmetrics, one collection per split."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

METRIC_NAMES = ("accuracy", "precision", "recall", "f1")


def classification_metrics(num_classes: int, prefix: str = "") -> MetricCollection:
    """Accuracy, precision, recall and F1 for predicted class labels.

    Binary problems score the positive class (label 1). Multi-class problems use the macro
    average (each class counts the same) for precision, recall and F1, and plain accuracy.

    Args:
        num_classes: 2 for binary, more for multi-class.
        prefix: Prepended to every key, e.g. ``"dev/"``.

    Example:
        >>> import torch
        >>> m = classification_metrics(2)
        >>> {k: round(v.item(), 3) for k, v in m(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1])).items()}
        {'accuracy': 0.75, 'precision': 0.667, 'recall': 1.0, 'f1': 0.8}
    """
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}; a classifier needs at least 2.")
    if num_classes == 2:
        metrics = {
            "accuracy": BinaryAccuracy(),
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "f1": BinaryF1Score(),
        }
    else:
        k = num_classes
        metrics = {
            "accuracy": MulticlassAccuracy(k, average="micro"),
            "precision": MulticlassPrecision(k, average="macro"),
            "recall": MulticlassRecall(k, average="macro"),
            "f1": MulticlassF1Score(k, average="macro"),
        }
    return MetricCollection(metrics, prefix=prefix)  # type: ignore[arg-type]
