"""Evaluation: scores per split, the bias / variance / mismatch diagnosis, model selection and
error analysis."""

from mlstrategy.evaluation.diagnosis import Diagnosis, diagnose, diagnose_splits
from mlstrategy.evaluation.selection import Constraint, parse_constraint, select
from mlstrategy.evaluation.settings import EvaluationSettings

__all__ = [
    "Constraint",
    "Diagnosis",
    "EvaluationSettings",
    "diagnose",
    "diagnose_splits",
    "parse_constraint",
    "select",
]
