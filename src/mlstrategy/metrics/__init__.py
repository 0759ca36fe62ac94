"""Metrics: torchmetrics collections per split, and masks for missing labels (lowest layer)."""

from mlstrategy.metrics.classification import (
    ClassificationScores,
    classification_metrics,
    per_class_metrics,
    per_class_table,
    score_predictions,
)
from mlstrategy.metrics.masking import masked_mean, present_mask
from mlstrategy.metrics.tasks import TaskScores, score_task, summarize_tasks

__all__ = [
    "ClassificationScores",
    "TaskScores",
    "classification_metrics",
    "masked_mean",
    "per_class_metrics",
    "per_class_table",
    "present_mask",
    "score_predictions",
    "score_task",
    "summarize_tasks",
]
