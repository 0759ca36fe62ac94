"""Callbacks: early stopping with restore-best (and, later, fine-tuning schedules and guards)."""

from mlstrategy.callbacks.early_stopping import EarlyStopping
from mlstrategy.callbacks.finetuning import GradualUnfreezing

__all__ = ["EarlyStopping", "GradualUnfreezing"]
