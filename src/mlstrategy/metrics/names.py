"""The names of the scores, without importing torch (the read-only verbs print them)."""

from __future__ import annotations

from typing import Literal

METRIC_NAMES = ("accuracy", "precision", "recall", "f1")
AVERAGES: tuple[Literal["micro", "macro", "weighted"], ...] = ("micro", "macro", "weighted")
PER_CLASS_NAMES = ("precision", "recall", "f1")
# Satisficing counts and rates from the confusion matrix: per split for a binary problem (the
# positive class, label 1), per class one-vs-rest in every per_class row. All are minimized.
CONFUSION_NAMES = ("fp", "fn", "fp_rate", "fn_rate")
# A regressor's scores per split (metrics.regression), and which of them is an error in the
# target's units that the diagnosis can subtract (R^2 is a ratio, not an error).
REGRESSION_NAMES = ("mse", "rmse", "mae", "r2")
REGRESSION_ERRORS = ("rmse", "mse", "mae")
# A classifier's weighted error (evaluation.class_costs and the data's example weights) and the
# unweighted mean of its per-group error rates (the data's group column); both minimized.
WEIGHTED_NAMES = ("weighted_error", "error_group_mean")
