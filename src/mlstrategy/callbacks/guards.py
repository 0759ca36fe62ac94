"""Guards for long runs: stop on a non-finite cost, resume with the same randomness."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite cost, gradient, weight or monitored score."""


_CAUSES = (
    "Likely causes: a learning rate too high (try 10x smaller), inputs not normalized "
    "(set data normalize: true), or log(0) in a hand-written cost."
)


class NonFiniteGuard(Callback):
    """Stop training within one step of a NaN / Inf cost or gradient norm, before the update,
    and never let a checkpoint be written whose weights or monitored score are not finite.

    The cost is checked before ``backward`` and the gradient norm before the optimizer step, so
    a non-finite gradient never reaches the weights. A finite gradient times a huge learning
    rate can still blow the weights up: then the dev cost comes out NaN or infinite, and the
    guard stops at the end of that validation, before any checkpoint callback saves the epoch
    (Lightning runs those last) and would keep it as ``best`` with a score of ``inf``. A
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
        self.saved_epoch: int | None = None

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if not torch.isfinite(loss.detach()).all():
            self._stop(trainer, pl_module, f"The training cost became {loss.item()}")

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads)
        if not torch.isfinite(norm):
            self._stop(trainer, pl_module, f"The gradient norm became {norm.item()}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs before every ModelCheckpoint's on_validation_end (Lightning orders those last).
        if trainer.sanity_checking:
            return
        bad = _non_finite_monitors(trainer)
        if bad:
            self._stop(trainer, pl_module, f"The monitored {bad}", "; this epoch was not saved")

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
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


_REFUSED = "; the checkpoint was not written"


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


class RNGState(Callback):
    """Save the global random generators (torch, CUDA, NumPy, Python) in every checkpoint and
    restore them on resume, so dropout masks and augmentations after a resume are the ones an
    uninterrupted run would have drawn.

    Stored as tensors and plain integers so the checkpoint loads with ``weights_only=True``.
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
