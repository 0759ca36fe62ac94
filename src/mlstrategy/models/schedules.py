"""Learning-rate decay (Improving Deep Neural Networks, week 2), stepped once per epoch."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch.optim.lr_scheduler import LambdaLR

LRDecayName = Literal["none", "inverse_time", "exponential", "inverse_sqrt", "step"]
LR_DECAYS: tuple[str, ...] = ("none", "inverse_time", "exponential", "inverse_sqrt", "step")

# The course's example values, used when a recipe names a schedule but no decay_rate.
DEFAULT_DECAY_RATE = {"inverse_time": 1.0, "exponential": 0.95, "inverse_sqrt": 1.0, "step": 1.0}


def decay_factor(
    schedule: str, epoch: int, decay_rate: float | None = None, decay_interval: int = 1
) -> float:
    """``alpha / alpha0`` during epoch ``epoch`` (0 = the first epoch, which uses ``alpha0``).

    - ``none``: ``1``;
    - ``inverse_time``: ``1 / (1 + decay_rate * epoch)``;
    - ``exponential``: ``decay_rate ** epoch`` (the course's ``0.95^epoch_num``);
    - ``inverse_sqrt``: ``k / sqrt(epoch + 1)`` with ``k = decay_rate`` (``+ 1`` because the
      course counts epochs from 1 and ``1/sqrt(0)`` has no value);
    - ``step``: ``1 / (1 + decay_rate * floor(epoch / decay_interval))``, the course's
      fixed-interval schedule (``schedule_lr_decay`` with ``time_interval``): the rate stays
      flat for ``decay_interval`` epochs, then drops.

    Args:
        schedule: One of :data:`LR_DECAYS`.
        epoch: Completed epochs (Lightning's ``current_epoch``), >= 0.
        decay_rate: The schedule's constant; ``None`` takes :data:`DEFAULT_DECAY_RATE`.
        decay_interval: Epochs per step of the ``step`` schedule, >= 1.

    Example:
        >>> decay_factor("inverse_time", 3, decay_rate=1.0)
        0.25
        >>> decay_factor("step", 5, decay_rate=1.0, decay_interval=2)
        0.3333333333333333
    """
    check_lr_decay(schedule, decay_rate, decay_interval)
    if schedule == "none":
        return 1.0
    rate = DEFAULT_DECAY_RATE[schedule] if decay_rate is None else decay_rate
    if schedule == "inverse_time":
        return 1.0 / (1.0 + rate * epoch)
    if schedule == "exponential":
        return rate**epoch
    if schedule == "inverse_sqrt":
        return rate / math.sqrt(epoch + 1)
    return 1.0 / (1.0 + rate * (epoch // decay_interval))


def check_lr_decay(schedule: str, decay_rate: float | None, decay_interval: int) -> None:
    """Raise ``ValueError`` for an unknown schedule or a constant it cannot use."""
    if schedule not in LR_DECAYS:
        raise ValueError(f"lr_decay={schedule!r} is not one of {list(LR_DECAYS)}.")
    if decay_interval < 1:
        raise ValueError(f"decay_interval={decay_interval} must be >= 1 (epochs per step).")
    if decay_rate is None:
        return
    if schedule == "none":
        raise ValueError(
            f"decay_rate={decay_rate} has no effect with lr_decay='none'; choose a schedule: "
            f"{list(LR_DECAYS[1:])}."
        )
    if schedule == "exponential" and not 0 < decay_rate <= 1:
        raise ValueError(
            f"decay_rate={decay_rate} must be in (0, 1] for lr_decay='exponential' "
            "(alpha = decay_rate^epoch * alpha0; the course uses 0.95)."
        )
    if schedule == "inverse_sqrt" and not decay_rate > 0:
        raise ValueError(
            f"decay_rate={decay_rate} (the course's k) must be > 0 for 'inverse_sqrt'."
        )
    if schedule in ("inverse_time", "step") and decay_rate < 0:
        raise ValueError(f"decay_rate={decay_rate} must be >= 0 for lr_decay={schedule!r}.")


class LearningRateDecay:
    """``epoch -> alpha / alpha0`` for :class:`~torch.optim.lr_scheduler.LambdaLR`.

    A small object rather than a lambda so the scheduler's state (plain numbers) goes into
    checkpoints and loads with ``weights_only=True``.

    Args:
        schedule: One of :data:`LR_DECAYS`.
        decay_rate: The schedule's constant (see :func:`decay_factor`).
        decay_interval: Epochs per step of the ``step`` schedule.
    """

    def __init__(
        self, schedule: str, decay_rate: float | None = None, decay_interval: int = 1
    ) -> None:
        check_lr_decay(schedule, decay_rate, decay_interval)
        self.schedule = schedule
        self.decay_rate = decay_rate
        self.decay_interval = decay_interval

    def __call__(self, epoch: int) -> float:
        return decay_factor(self.schedule, epoch, self.decay_rate, self.decay_interval)


def build_lr_decay(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    decay_rate: float | None = None,
    decay_interval: int = 1,
) -> LambdaLR | None:
    """A per-epoch scheduler for ``schedule``, or ``None`` for ``none``.

    Step it once per epoch (Lightning: ``{"scheduler": ..., "interval": "epoch"}``).
    """
    if schedule == "none":
        check_lr_decay(schedule, decay_rate, decay_interval)
        return None
    return LambdaLR(optimizer, LearningRateDecay(schedule, decay_rate, decay_interval))
