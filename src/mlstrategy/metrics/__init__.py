"""Metrics: torchmetrics collections per split, and masks for missing labels (lowest layer)."""

from mlstrategy.metrics.classification import (
    classification_metrics,
    per_class_metrics,
    score_predictions,
)

__all__ = ["classification_metrics", "per_class_metrics", "score_predictions"]
