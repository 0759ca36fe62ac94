"""Callbacks: early stopping with restore-best and gradual unfreezing; the guards and the
predictions writer live in their own modules."""

from mlstrategy.callbacks.early_stopping import EarlyStopping
from mlstrategy.callbacks.finetuning import GradualUnfreezing

__all__ = ["EarlyStopping", "GradualUnfreezing"]
