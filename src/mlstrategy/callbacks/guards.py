"""Guards for long runs: stop on a non-finite cost, resume with the same randomness."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite cost or gradient."""


_CAUSES = (
    "Likely causes: a learning rate too high (try 10x smaller), inputs not normalized "
    "(set data normalize: true), or log(0) in a hand-written cost. Nothing from this step was "
    "saved; the run folder keeps the last good checkpoint."
)


class NonFiniteGuard(Callback):
    """Stop training within one step of a NaN / Inf cost or gradient norm, before the update.

    The cost is checked before ``backward`` and the gradient norm before the optimizer step, so
    a non-finite gradient never reaches the weights; a checkpoint whose weights overflowed anyway
    (a finite gradient times a huge learning rate) is refused before it is written.

    Raises:
        NonFiniteError: naming the epoch, the step and the likely causes.
    """

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteError(
                f"The training cost became {loss.item()} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}. {_CAUSES}"
            )

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads)
        if not torch.isfinite(norm):
            raise NonFiniteError(
                f"The gradient norm became {norm.item()} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}. {_CAUSES}"
            )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # A finite gradient times a huge learning rate can still overflow the weights; such
        # weights must never become best.ckpt or last.ckpt.
        bad = [
            k
            for k, v in checkpoint["state_dict"].items()
            if v.is_floating_point() and not torch.isfinite(v).all()
        ]
        if bad:
            raise NonFiniteError(
                f"The weights {bad[:3]} became non-finite by epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}; the checkpoint was not written. {_CAUSES}"
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
