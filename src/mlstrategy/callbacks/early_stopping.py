"""Early stopping on dev cost that hands back the weights of the best epoch."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping as _LightningEarlyStopping
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor


class EarlyStopping(_LightningEarlyStopping):
    """Stop when the dev cost stops improving, then restore the weights of its best epoch.

    The course's early stopping: watch ``cost/dev`` fall and rise again, and keep the network
    from the bottom of the curve. Lightning's ``EarlyStopping`` only stops (the weights stay
    those of the last, ``patience`` epochs worse, epoch); this subclass keeps an in-memory copy
    of the module's state (weights, batch-norm statistics, input normalization) each time the
    monitored value improves, and loads it back when training ends, whether it stopped early
    or ran out of epochs. ``best_weights_epoch`` says which epoch that was.

    The copy lives in memory only: resuming an interrupted run restores the best weights seen
    since the resume (use the ``best`` checkpoint for the best over the whole run).

    Args:
        monitor: Logged value to watch.
        patience: Checks without improvement before stopping.
        min_delta: Smallest change that counts as an improvement.
        mode: ``min`` (a cost) or ``max`` (an accuracy).
        restore_best_weights: Load the best epoch's state when training ends.
        verbose: Log each improvement and the stop.
        check_finite: Stop when the monitored value becomes NaN or infinite.
        **kwargs: Other arguments of :class:`lightning.pytorch.callbacks.EarlyStopping`.

    Example:
        >>> EarlyStopping(patience=5).monitor
        'cost/dev'
    """

    def __init__(
        self,
        monitor: str = "cost/dev",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: Literal["min", "max"] = "min",
        restore_best_weights: bool = True,
        verbose: bool = False,
        check_finite: bool = True,
        **kwargs: Any,
    ) -> None:
        if patience < 0:
            raise ValueError(f"patience={patience} must be >= 0 (checks without improvement).")
        if min_delta < 0:
            raise ValueError(f"min_delta={min_delta} must be >= 0.")
        super().__init__(
            monitor=monitor,
            patience=patience,
            min_delta=min_delta,
            mode=mode,
            verbose=verbose,
            check_finite=check_finite,
            **kwargs,
        )
        self.restore_best_weights = restore_best_weights
        self.best_weights: dict[str, Tensor] | None = None
        self.best_weights_epoch: int | None = None
        self._scored: Tensor | None = None  # the best_score the copy was taken at

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A restored callback state (resume) has a best_score but no weights for it.
        self._scored = self.best_score
        self.best_weights, self.best_weights_epoch = None, None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._keep_if_improved(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._keep_if_improved(trainer, pl_module)

    def _keep_if_improved(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning replaces best_score by a new tensor exactly when the value improves.
        if self.best_score is self._scored:
            return
        self._scored = self.best_score
        if self.restore_best_weights:
            self.best_weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            self.best_weights_epoch = trainer.current_epoch

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.restore_best_weights:
            return
        if self.best_weights is None:
            rank_zero_warn(
                f"EarlyStopping: {self.monitor!r} never improved during this fit, so there are no "
                "best weights to restore; the model keeps its last weights."
            )
            return
        pl_module.load_state_dict(self.best_weights)
