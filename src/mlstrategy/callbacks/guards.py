"""Guards for long runs: stop on a non-finite cost, resume with the same randomness."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mlstrategy.callbacks.lean import LeanCallback

# What NonFiniteGuard._plan keeps per optimizer: (optimizer, its group sizes, its parameters,
# whether it skips a step on found_inf, their (device, dtype) when all share one).
_Plan = tuple[
    torch.optim.Optimizer,
    list[int],
    list[torch.Tensor],
    bool,
    tuple[torch.device, torch.dtype] | None,
]


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite cost, gradient, weight or monitored score."""


_CAUSES = (
    "Likely causes: a learning rate too high (try 10x smaller), inputs not normalized "
    "(set data normalize: true), or log(0) in a hand-written cost."
)


class NonFiniteGuard(LeanCallback):
    """Skip the update of a step whose cost or gradient is NaN or infinite, on the device, and
    stop at the next check (every validation, epoch end, checkpoint and the end of the fit),
    naming that step; never let a checkpoint be written whose weights or monitored score are
    not finite.

    No step waits for the host. Before each optimizer step one kernel
    (``torch._amp_foreach_non_finite_check_and_unscale_``, GradScaler's check, at scale 1)
    looks at every gradient and the step's cost and writes 0 or 1 into a device-side flag.
    The update is then skipped on the device: a fused optimizer (``fused=True`` Adam, AdamW
    or SGD) receives the flag as its ``found_inf`` and leaves weights, moments and step count
    untouched, exactly as under GradScaler; any other optimizer gets the step's gradients
    zeroed (plain gradient descent then does not move; momentum, RMSprop and Adam take one
    finite step from their running averages). Either way the weights never take a
    non-finite update. Under float16 mixed precision (``precision: 16-mixed``) GradScaler
    already skips a step whose gradients overflow and lowers its scale, which is routine; the
    guard then checks the cost, and at each check the scale: gradients that stay non-finite
    make GradScaler skip step after step and halve its scale each time, so a scale below
    ``2**-24`` (40 halvings from the default, where a gradient would need to exceed about
    1e12 to overflow) stops the run instead of letting it stall. The flags are read at the
    next natural synchronization: validation end (before any checkpoint callback saves the
    epoch, as Lightning runs those last), epoch end, a checkpoint being saved, the end of the
    fit.

    A finite gradient times a huge learning rate can still blow the weights up: then the dev
    cost comes out NaN or infinite, and the guard stops at the end of that validation. A
    checkpoint whose weights or monitored value are non-finite is refused before it is
    written, whatever saves it. So every checkpoint left behind is a good one; the error names
    the last of them, or says there is none and what to change.

    Attributes:
        saved_epoch: The epoch of the last checkpoint this fit wrote (None before the first).

    Raises:
        NonFiniteError: naming the epoch, the step, the last good checkpoint (or none) and the
            likely causes.
    """

    def __init__(self) -> None:
        super().__init__()  # hooks it does not use are skipped by Lightning (LeanCallback)
        self.saved_epoch: int | None = None
        self._flags = torch.zeros(0)  # 1.0 where a step was non-finite, on the device
        self._views: list[torch.Tensor] = []  # one 0-dim view of each element of _flags
        self._calls = 0  # optimizer steps seen since the last check
        self._where: list[int] = []  # the step (counted from _base) of each flag
        self._base = (0, 0)  # (epoch, global step) when the first step since a check came
        self._costs: list[torch.Tensor | None] = []  # each step's cost (on the device, unread)
        self._pending: list[torch.Tensor] = []  # the open step's costs (accumulation)
        self._one = torch.ones(())  # the check's scale, kept on the flags' device
        self._scaler: Any = None  # a GradScaler owns overflow (float16 mixed precision)
        self._planned: _Plan | None = None
        self._handing: L.LightningModule | None = None  # the module handing over its losses

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._calls, self._where, self._costs, self._pending = 0, [], [], []
        self._flags, self._views = torch.zeros(0), []
        self._planned = None
        self._scaler = getattr(trainer.precision_plugin, "scaler", None)
        # A module with a ``guard_losses`` attribute (the toolkit's) appends each loss to it
        # from its own on_before_backward, which Lightning calls anyway; this callback's hook
        # is then off Lightning's dispatch, a few microseconds a step. Any other module's
        # losses come through that hook.
        if hasattr(pl_module, "guard_losses"):
            setattr(pl_module, "guard_losses", self._pending)  # noqa: B010  (typed as a Module)
            self._handing = pl_module
            setattr(self, "on_before_backward", None)  # noqa: B010  (a method otherwise)
        else:
            self.__dict__.pop("on_before_backward", None)

    def _take_back(self) -> None:
        """The module stops handing its losses over (a later fit may have no guard)."""
        if self._handing is not None:
            setattr(self._handing, "guard_losses", None)  # noqa: B010
            self._handing = None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._take_back()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._take_back()

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        self._pending.append(loss.detach())

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # Every step costs this hook's Python (tens of microseconds on a small net): no
        # trainer property is read here but on the first step after a check (see _step), and
        # the usual case (one cost, every gradient of one device and dtype) takes one branch.
        pending = self._pending  # the module may hold it too: emptied in place
        costs = pending[:]
        pending.clear()
        step = self._step(trainer)
        if self._scaler is not None:
            # Under float16's GradScaler an overflowing gradient is routine: the scaler skips
            # that step and lowers its scale. Only a non-finite cost (the scaled loss is
            # finite unless the loss is not) is the guard's, and the scaler skips its step too.
            grads: list[torch.Tensor] = []
            skips, kind = False, None
        else:
            params, skips, kind = self._plan(optimizer)
            grads = [g for p in params if (g := p.grad) is not None]
        cost: torch.Tensor | None
        if len(costs) == 1 and grads and kind is not None and _is_kind(costs[0], kind):
            # The usual case: one cost, every gradient and the cost of one device and dtype.
            cost = costs[0]
            device, checked, one_kind = kind[0], [*grads, cost], True
        else:
            costs = [c for c in costs if c.is_floating_point()]
            cost = costs[-1] if costs else None
            checked = grads + costs
            if not checked:
                return
            device = checked[0].device
            if kind is None or not grads:
                kind = (device, checked[0].dtype)
            one_kind = kind[0] == device and all(_is_kind(c, kind) for c in costs)
        found = self._next_flag(device)
        if one_kind:
            # GradScaler's check at scale 1: multiplies by 1.0 (no change), sets the flag to
            # 1.0 if any element is NaN or infinite; no host sync. One call.
            torch._amp_foreach_non_finite_check_and_unscale_(checked, found, self._one_on(device))
        else:
            self._check_by_kind(checked, found)
        self._record(optimizer, step, cost, skips, grads, found)

    def _record(
        self,
        optimizer: torch.optim.Optimizer,
        step: int,
        cost: torch.Tensor | None,
        skips: bool,
        grads: list[torch.Tensor],
        found: torch.Tensor,
    ) -> None:
        """Keep the step's flag and cost for the next check, and skip its update on the
        device where ``found`` is 1: through the fused kernel's ``found_inf``, or by zeroing
        the gradients for any other optimizer."""
        self._where.append(step)
        self._costs.append(cost)
        if skips:
            optimizer.found_inf = found  # type: ignore[attr-defined]  # the step is skipped
        elif grads:
            bad = found.bool()
            for grad in grads:
                grad.masked_fill_(bad, 0.0)

    def _one_on(self, device: torch.device) -> torch.Tensor:
        """The check's scale, 1.0, on ``device`` (made again only when the device changes)."""
        if self._one.device != device:
            self._one = torch.ones((), device=device)
        return self._one

    def _step(self, trainer: L.Trainer) -> int:
        """This optimizer step's number, counted from the first step since the last check
        (whose epoch and global step are read then: both stay put, or move by one a step,
        until the next check, which every epoch end and validation makes)."""
        if not self._calls:
            self._base = (trainer.current_epoch, trainer.global_step)
        self._calls += 1
        return self._calls - 1

    def _plan(
        self, optimizer: torch.optim.Optimizer
    ) -> tuple[list[torch.Tensor], bool, tuple[torch.device, torch.dtype] | None]:
        """The optimizer's parameters, whether its fused step skips on ``found_inf``, and the
        device and dtype they share (None if they do not); worked out again only when its
        parameter groups change (gradual unfreezing adds some)."""
        groups = optimizer.param_groups
        sizes = [len(g["params"]) for g in groups]
        planned = self._planned
        if planned is None or planned[0] is not optimizer or planned[1] != sizes:
            params = [p for g in groups for p in g["params"]]
            skips = all(g.get("fused") for g in groups) and _takes_found_inf(optimizer)
            kinds = {(p.device, p.dtype) for p in params}  # a gradient's are its parameter's
            kind = next(iter(kinds)) if len(kinds) == 1 else None
            planned = self._planned = (optimizer, sizes, params, skips, kind)
        return planned[2], planned[3], planned[4]

    def _check_by_kind(self, checked: list[torch.Tensor], found: torch.Tensor) -> None:
        """The check for tensors of several devices or dtypes: one call per kind (the check
        takes one kind), each flag copied into ``found`` on the device."""
        by_kind: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for t in checked:
            by_kind.setdefault((t.device, t.dtype), []).append(t)
        for (device, _), tensors in by_kind.items():
            flag = found if device == found.device else torch.zeros_like(found, device=device)
            torch._amp_foreach_non_finite_check_and_unscale_(tensors, flag, self._one.to(device))
            if flag is not found:  # keep a 1 another kind already set
                found.copy_(torch.maximum(found, flag.to(found.device, non_blocking=True)))

    def _next_flag(self, device: torch.device) -> torch.Tensor:
        """A zeroed element (a 0-dim view, as GradScaler's found_inf) of the flag buffer for
        this step; the buffer grows as needed, its views made once."""
        i = len(self._where)
        if i >= len(self._views) or self._flags.device != device:
            grown = torch.zeros(max(64, 2 * len(self._flags)), device=device)
            grown[: min(i, len(self._flags))] = self._flags[:i].to(device)
            self._flags, self._views = grown, list(grown.unbind())
        return self._views[i]

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule, saved: str = "") -> None:
        """Read the steps' flags since the last check (one host sync) and raise for the first
        non-finite one."""
        n, self._calls = len(self._where), 0
        if not n:
            return
        flags = self._flags[:n]
        if not bool(flags.any()):
            self._flags[:n].zero_()
            self._where, self._costs = [], []
            if self._scaler is not None:
                self._check_scale(trainer, pl_module, saved)
            return
        i = int(flags.argmax())
        epoch, step = self._base[0], self._base[1] + self._where[i]
        cost = self._costs[i]
        if cost is not None and not bool(torch.isfinite(cost).all()):
            what = f"The training cost became {float(cost)}"
        else:
            what = "A gradient became non-finite (NaN or inf)"
        self._where, self._costs = [], []
        skipped = f"; its update was skipped and training stopped at step {trainer.global_step}"
        raise NonFiniteError(
            f"{what} at epoch {epoch}, step {step}{saved or skipped}. {_CAUSES} "
            f"{last_good_checkpoint(trainer, pl_module, self.saved_epoch)}"
        )

    def _check_scale(self, trainer: L.Trainer, pl_module: L.LightningModule, saved: str) -> None:
        """Stop when GradScaler's scale has collapsed: its steps kept overflowing."""
        scale = self._scaler.get_scale()
        if scale < _MIN_SCALE:
            self._stop(
                trainer,
                pl_module,
                "The gradients stayed non-finite under float16 mixed precision: GradScaler "
                f"skipped step after step and its scale fell to {scale:.3g}",
                saved or "; those updates were skipped",
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs before every ModelCheckpoint's on_validation_end (Lightning orders those last).
        if trainer.sanity_checking:
            return
        self.check(trainer, pl_module, "; this epoch was not saved")
        bad = _non_finite_monitors(trainer)
        if bad:
            self._stop(trainer, pl_module, f"The monitored {bad}", "; this epoch was not saved")

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.check(trainer, pl_module, _REFUSED)
        bad = [
            k
            for k, v in checkpoint["state_dict"].items()
            if v.is_floating_point() and not torch.isfinite(v).all()
        ]
        if bad:
            self._stop(trainer, pl_module, f"The weights {bad[:3]} became non-finite", _REFUSED)
        monitors = _non_finite_monitors(trainer)
        if monitors:
            self._stop(trainer, pl_module, f"The monitored {monitors}", _REFUSED)
        self.saved_epoch = trainer.current_epoch

    def _stop(
        self, trainer: L.Trainer, pl_module: L.LightningModule, what: str, saved: str = ""
    ) -> None:
        raise NonFiniteError(
            f"{what} at epoch {trainer.current_epoch}, step {trainer.global_step}{saved}. "
            f"{_CAUSES} {last_good_checkpoint(trainer, pl_module, self.saved_epoch)}"
        )


def _is_kind(t: torch.Tensor, kind: tuple[torch.device, torch.dtype]) -> bool:
    """True when ``t`` is on ``kind``'s device with its dtype."""
    return t.dtype is kind[1] and t.device == kind[0]


def _takes_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """True for the optimizers whose fused kernels skip a step given ``found_inf``."""
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD))


_REFUSED = "; the checkpoint was not written"
# GradScaler's scale after 40 halvings from its default 2**16: a float16 gradient overflowing
# at this scale is over 65504 * 2**24, about 1e12, before scaling: non-finite in practice.
_MIN_SCALE = 2.0**-24


def _non_finite_monitors(trainer: L.Trainer) -> str:
    """``"cost/dev=nan"`` for each checkpoint's monitored value that is NaN or infinite."""
    metrics = trainer.callback_metrics
    bad = []
    for callback in trainer.checkpoint_callbacks:
        monitor = getattr(callback, "monitor", None)
        value = metrics.get(monitor) if monitor else None
        if value is not None and not torch.isfinite(torch.as_tensor(value)).all():
            bad.append(f"{monitor}={float(value)}")
    return ", ".join(dict.fromkeys(bad))


def last_good_checkpoint(
    trainer: L.Trainer, pl_module: L.LightningModule, epoch: int | None = None
) -> str:
    """What the run left to go back to: the last checkpoint written (at ``epoch``) and the best
    one, every one of them finite (the guard refuses the others); or that there is none, and
    what to try.

    Example:
        >>> last_good_checkpoint(L.Trainer(logger=False, enable_checkpointing=False),
        ...                      L.LightningModule())  # doctest: +ELLIPSIS
        'No checkpoint was written before it diverged: start again with a lower learning_rate...'
    """
    parts = []
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint):
            continue
        last, best = callback.last_model_path, callback.best_model_path
        if last and Path(last).is_file():
            when = f" (epoch {epoch})" if epoch is not None else ""
            parts.append(f"the last good checkpoint is {last}{when}")
        if best and best != last and Path(best).is_file():
            score = callback.best_model_score
            value = f" ({callback.monitor}={float(score):.4g})" if score is not None else ""
            parts.append(f"the best is {best}{value}")
    if parts:
        text = "; ".join(dict.fromkeys(parts))
        return text[0].upper() + text[1:] + "."
    lr = getattr(pl_module, "hparams", {}).get("learning_rate")
    lower = f" (e.g. --model.init_args.learning_rate={lr / 10:g})" if lr else ""
    return (
        "No checkpoint was written before it diverged: start again with a lower "
        f"learning_rate{lower}."
    )


class RNGState(LeanCallback):
    """Save the global random generators (torch, CUDA, NumPy, Python) in every checkpoint and
    restore them on resume, so dropout masks and augmentations after a resume are the ones an
    uninterrupted run would have drawn.

    Stored as tensors and plain integers so the checkpoint loads with ``weights_only=True``.
    It uses no hook, so Lightning calls none of them (:class:`LeanCallback`): no cost per step.
    """

    def state_dict(self) -> dict[str, Any]:
        _, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        version, py_state, py_gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
            "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        n = state_dict["numpy"]
        np.random.set_state(
            ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
        )
        p = state_dict["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
