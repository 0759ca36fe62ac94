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


def retarget_learning_rate(
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR | None,
    ratio: float,
    schedule: str,
    decay_rate: float | None,
    decay_interval: int,
    epoch: int,
) -> None:
    """From ``epoch`` on, train at a new ``alpha0`` and a new decay: a resumed run's new rate.

    Each parameter group's ``alpha0`` (its ``initial_lr``, or its rate when it never decayed)
    is multiplied by ``ratio`` (new / old ``learning_rate``), so groups at their own rates (a
    backbone at a fraction of the head's) keep their proportions, and its rate becomes
    ``alpha0 * decay_factor(schedule, epoch)``: the rate a run of the new settings has at
    ``epoch``. The scheduler (the new recipe's, its saved state already loaded: that state
    brings back the old schedule's constants and ``alpha0``) gets the new rule, the new
    ``alpha0`` and ``epoch`` as its position.

    Args:
        optimizer: The optimizer, its saved state loaded.
        scheduler: Its per-epoch decay, or ``None`` for ``lr_decay: none``.
        ratio: New ``learning_rate`` / old.
        schedule: The new ``lr_decay``.
        decay_rate: The new ``decay_rate``.
        decay_interval: The new ``decay_interval``.
        epoch: The epoch about to train (Lightning's ``current_epoch``).

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([w], lr=0.5)
        >>> decay = build_lr_decay(opt, "inverse_time", 1.0)
        >>> retarget_learning_rate(opt, decay, 0.2, "inverse_time", 1.0, 1, epoch=3)
        >>> opt.param_groups[0]["lr"]  # 0.1 / (1 + 1.0 * 3)
        0.025
    """
    check_lr_decay(schedule, decay_rate, decay_interval)
    factor = decay_factor(schedule, epoch, decay_rate, decay_interval)
    bases: list[float | torch.Tensor] = []
    for group in optimizer.param_groups:
        base = float(group.get("initial_lr", group["lr"])) * ratio
        if scheduler is not None or "initial_lr" in group:
            group["initial_lr"] = base
        group["lr"] = base * factor
        bases.append(base)
    if scheduler is None:
        return
    scheduler.base_lrs = bases
    scheduler.lr_lambdas = [LearningRateDecay(schedule, decay_rate, decay_interval) for _ in bases]
    scheduler.last_epoch = epoch
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # type: ignore[attr-defined]
