"""Evaluation: metrics per split, the bias / variance / mismatch diagnosis, model selection,
and the run report."""

from mlstrategy.evaluation.diagnosis import Diagnosis, diagnose, diagnose_splits
from mlstrategy.evaluation.metrics import (
    classification_metrics,
    per_class_metrics,
    score_predictions,
)
from mlstrategy.evaluation.selection import Constraint, parse_constraint, select
from mlstrategy.evaluation.settings import EvaluationSettings

__all__ = [
    "Constraint",
    "Diagnosis",
    "EvaluationSettings",
    "classification_metrics",
    "diagnose",
    "diagnose_splits",
    "parse_constraint",
    "per_class_metrics",
    "score_predictions",
    "select",
]
