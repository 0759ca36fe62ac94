"""The names of the scores, without importing torch (the read-only verbs print them)."""

from __future__ import annotations

from typing import Literal

METRIC_NAMES = ("accuracy", "precision", "recall", "f1")
AVERAGES: tuple[Literal["micro", "macro", "weighted"], ...] = ("micro", "macro", "weighted")
PER_CLASS_NAMES = ("precision", "recall", "f1")
