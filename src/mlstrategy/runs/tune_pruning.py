"""Pruning a tune's trials on the dev cost of each epoch (Optuna's median pruner by default).

optuna-integration's ``PyTorchLightningPruningCallback`` imports and runs with Lightning 2.6,
but it does not fit here for two reasons. It reports the monitored value as it is, and Optuna's
pruners read intermediate values in the study's direction: a study that maximizes ``dev/f1``
would see the trials with the lowest dev *cost* as the worst and prune its best ones. And it
takes a live ``optuna.Trial``, while every trial's trainer is built by LightningCLI from the
recipe (``run_recipe``), which can only pass values a config can hold. So this callback is
named on the command line (``--trainer.callbacks+=...``) with a key, finds its trial in
:data:`_LIVE` (this process's running trials), and reports the dev cost with the study's sign.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback

_LIVE: dict[str, optuna.Trial] = {}  # the trials this process is running, by key
PRUNED_AT_ATTR = "pruned_at_epoch"
MONITOR = "cost/dev"


def register(trial: optuna.Trial) -> str:
    """Make ``trial`` reachable by a :class:`DevCostPruning` built from a config; its key."""
    key = f"trial-{trial.number}"
    _LIVE[key] = trial
    return key


def unregister(key: str) -> None:
    """Forget a finished trial."""
    _LIVE.pop(key, None)


def pruning_override(key: str) -> str:
    """The override that adds the callback for the trial ``key`` to a trial's trainer.

    Example:
        >>> pruning_override("trial-3")  # doctest: +ELLIPSIS
        '--trainer.callbacks+={"class_path": "mlstrategy.runs.tune_pruning.DevCostPruning", ...}'
    """
    return (
        '--trainer.callbacks+={"class_path": "mlstrategy.runs.tune_pruning.DevCostPruning", '
        f'"init_args": {{"trial": "{key}"}}}}'
    )


class DevCostPruning(Callback):
    """Report the dev cost after every epoch to the tune's trial; stop the fit when the pruner
    says so (:class:`optuna.TrialPruned`, which the tune records as a pruned trial).

    Args:
        trial: The key of a trial this process is running (see :func:`register`). Outside a
            tune (a trial's ``config.yaml`` refit with ``mlstrategy fit``) there is none and the
            callback does nothing.
    """

    def __init__(self, trial: str = "") -> None:
        super().__init__()
        self.trial = trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        live = _LIVE.get(self.trial)
        if live is None or trainer.sanity_checking:
            return
        cost = trainer.callback_metrics.get(MONITOR)
        if cost is None:
            return
        epoch = int(trainer.current_epoch)
        # Pruners compare intermediate values in the study's direction: a maximized objective
        # sees minus the cost, so the lowest cost always looks best.
        sign = -1.0 if live.study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        live.report(sign * float(cost), step=epoch)
        if live.should_prune():
            live.set_user_attr(PRUNED_AT_ATTR, epoch)
            raise optuna.TrialPruned(
                f"pruned after epoch {epoch}: dev cost {float(cost):.4g} is worse than the "
                "median of earlier trials at this epoch"
            )

    def state_dict(self) -> dict[str, Any]:
        return {}
