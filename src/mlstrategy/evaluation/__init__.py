"""Evaluation: metrics per split, run summaries (the diagnosis joins here)."""

from mlstrategy.evaluation.metrics import classification_metrics

__all__ = ["classification_metrics"]
