"""Optimizers by the course's names, with the course's default hyperparameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch

OptimizerName = Literal["gd", "momentum", "rmsprop", "adam", "adamw"]
OPTIMIZERS: tuple[str, ...] = ("gd", "momentum", "rmsprop", "adam", "adamw")


class _NoCaptureCheckOnCPU:
    """Skip torch's per-step CUDA-graph capture check while the parameters are on the CPU.

    Adam, AdamW and RMSprop run that check at the start of every ``step``: it asks whether
    an accelerator is available, and under Lightning (which sets
    ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking does not poison fork) a CUDA build of
    torch answers by loading NVML again on every call until CUDA is initialized, which on a
    machine without a GPU never happens: about 0.25 ms a step here, a tenth of a digits-MLP
    step. A step on CPU parameters cannot be part of a CUDA graph, so there is nothing to
    check; on any other device torch's check runs as before.
    """

    param_groups: list[dict[str, Any]]

    def _accelerator_graph_capture_health_check(self) -> None:
        groups = self.param_groups
        if groups and groups[0]["params"] and groups[0]["params"][0].device.type == "cpu":
            return
        super()._accelerator_graph_capture_health_check()  # type: ignore[misc]


class Adam(_NoCaptureCheckOnCPU, torch.optim.Adam):
    """``torch.optim.Adam`` without the per-step capture check on CPU parameters."""


class AdamW(_NoCaptureCheckOnCPU, torch.optim.AdamW):
    """``torch.optim.AdamW`` without the per-step capture check on CPU parameters."""


class RMSprop(_NoCaptureCheckOnCPU, torch.optim.RMSprop):
    """``torch.optim.RMSprop`` without the per-step capture check on CPU parameters."""


class Momentum(torch.optim.SGD):
    """Gradient descent with momentum exactly as in the course: ``v`` starts at 0.

    ``v = beta v + (1 - beta) dW; W = W - alpha v``. This is torch's SGD with
    ``momentum = dampening = beta``, except for the first step: torch sets ``v = dW`` on its
    first step (so that step is ``1 / (1 - beta)`` = 10x larger with ``beta = 0.9``), while
    the course starts from ``v = 0`` (a first step of ``alpha (1 - beta) dW``; the course does
    not bother with bias correction for momentum). The buffers are created as zeros for every
    parameter, including those of groups added later (gradual unfreezing).

    Args:
        params: Parameters or parameter groups.
        lr: ``alpha``.
        beta: Momentum decay, in [0, 1).
        fused: torch's fused kernel (see :func:`build_optimizer`); None = torch's default.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = Momentum([w], lr=1.0, beta=0.9)
        >>> w.grad = torch.tensor([1.0])
        >>> opt.step()
        >>> round(w.item(), 4)  # 1 - 1.0 * (0.9 * 0 + 0.1 * 1)
        0.9
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float,
        beta: float = 0.9,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, lr=lr, momentum=beta, dampening=beta, fused=fused)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict],
    learning_rate: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Build an optimizer from the course's vocabulary.

    - ``gd``: plain gradient descent ``W -= alpha dW``. With the data module's ``batch_size``
      it is batch (null), mini-batch (e.g. 64) or stochastic (1) gradient descent.
    - ``momentum``: ``v = beta1 v + (1 - beta1) dW; W -= alpha v`` with ``v = 0`` at the start,
      as in the course (:class:`Momentum`; torch's SGD would start ``v`` at the first ``dW``).
    - ``rmsprop``: ``s = beta2 s + (1 - beta2) dW^2; W -= alpha dW / (sqrt(s) + epsilon)``.
    - ``adam``: momentum and RMSprop with bias correction (``torch.optim.Adam``).
    - ``adamw``: Adam with decoupled weight decay (``weight_decay``), not the course's L2.

    ``gd``, ``momentum``, ``adam`` and ``adamw`` use torch's fused kernels (``fused=True``) when
    every parameter is a floating-point tensor on the CPU or a CUDA device: one call updates
    all parameters (on the digits MLP, Adam's step takes about half the time of torch's default
    per-tensor loop), and the non-finite guard can skip a bad step inside that call
    (``found_inf``). The updates equal torch's per-tensor loop's to float rounding.
    ``rmsprop``, ``adam`` and ``adamw`` are torch's classes (subclasses of them) that skip
    torch's per-step CUDA-graph check while the parameters are on the CPU (where it cost a
    tenth of a small net's step; see :class:`_NoCaptureCheckOnCPU`).

    Args:
        name: One of ``gd``, ``momentum``, ``rmsprop``, ``adam``, ``adamw``.
        params: Parameters or parameter groups.
        learning_rate: ``alpha``, > 0.
        beta1: Momentum / Adam's first-moment decay, in [0, 1).
        beta2: RMSprop / Adam's second-moment decay, in [0, 1).
        epsilon: Added to the denominator for numerical stability, > 0.
        weight_decay: Decoupled weight decay for ``adamw`` only, >= 0.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> type(build_optimizer("adam", [w], learning_rate=0.01)).__name__
        'Adam'
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r} is not one of {list(OPTIMIZERS)}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate} must be > 0 (typical: 1e-4 to 1).")
    for arg, value in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= value < 1:
            raise ValueError(f"{arg}={value} must be in [0, 1) (course default 0.9 / 0.999).")
    if not epsilon > 0:
        raise ValueError(f"epsilon={epsilon} must be > 0 (course default 1e-8).")
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay} must be >= 0.")
    if weight_decay and name != "adamw":
        raise ValueError(
            f"weight_decay={weight_decay} applies to optimizer 'adamw' only; for the course's L2 "
            "regularization use l2_lambda (where the model offers it)."
        )
    groups: list[Any] = list(params)  # read twice: for the fused check, then by torch
    if name == "rmsprop":  # torch has no fused RMSprop
        return RMSprop(groups, lr=learning_rate, alpha=beta2, eps=epsilon)
    fused = _fused_supported(groups)
    if name == "gd":
        return torch.optim.SGD(groups, lr=learning_rate, fused=fused)
    if name == "momentum":
        return Momentum(groups, lr=learning_rate, beta=beta1, fused=fused)
    betas = (beta1, beta2)
    if name == "adam":
        return Adam(groups, lr=learning_rate, betas=betas, eps=epsilon, fused=fused)
    return AdamW(
        groups, lr=learning_rate, betas=betas, eps=epsilon, weight_decay=weight_decay, fused=fused
    )


# Where torch's fused optimizer kernels are used (they exist for more; these are the tested ones).
_FUSED_DEVICES = ("cpu", "cuda")


def _fused_supported(groups: list[Any]) -> bool | None:
    """True when every parameter is a floating-point tensor on the CPU or a CUDA device (then
    torch's fused kernel updates them all in one call), None (torch's default) otherwise."""
    tensors = [p for item in groups for p in (item["params"] if isinstance(item, dict) else [item])]
    ok = bool(tensors) and all(
        t.is_floating_point() and t.device.type in _FUSED_DEVICES for t in tensors
    )
    return True if ok else None


# Which of the course's hyperparameters each optimizer uses (build_optimizer's arguments).
USED_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "gd": (),
    "momentum": ("beta1",),
    "rmsprop": ("beta2", "epsilon"),
    "adam": ("beta1", "beta2", "epsilon"),
    "adamw": ("beta1", "beta2", "epsilon", "weight_decay"),
}


def set_hyperparameters(
    optimizer: torch.optim.Optimizer, name: str, values: dict[str, float]
) -> list[str]:
    """Write the course's hyperparameters into every parameter group of ``optimizer``, an
    optimizer :func:`build_optimizer` made for ``name`` (the inverse of its mapping).

    A resumed run's saved optimizer state carries the old values in its parameter groups
    (``torch.optim.Optimizer.load_state_dict`` restores them); this writes the new ones over
    them and keeps the state (moments, momentum buffers, Adam's step count).

    Args:
        optimizer: The optimizer, its state already loaded.
        name: Its course name (``gd``, ``momentum``, ``rmsprop``, ``adam``, ``adamw``).
        values: Some of ``beta1``, ``beta2``, ``epsilon``, ``weight_decay`` (the learning rate
            and its decay: :func:`~mlstrategy.models.schedules.retarget_learning_rate`).

    Returns:
        The names in ``values`` that ``name`` does not use (nothing to write).

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> opt = build_optimizer("adam", [w], learning_rate=0.01)
        >>> set_hyperparameters(opt, "adam", {"beta2": 0.99, "weight_decay": 0.0})
        ['weight_decay']
        >>> opt.param_groups[0]["betas"]
        (0.9, 0.99)
    """
    used = USED_HYPERPARAMETERS[name]
    for group in optimizer.param_groups:
        if name == "momentum" and "beta1" in values:
            group["momentum"] = group["dampening"] = values["beta1"]  # as Momentum builds it
        if name == "rmsprop" and "beta2" in values:
            group["alpha"] = values["beta2"]
        if name in ("adam", "adamw"):
            beta1, beta2 = group["betas"]
            group["betas"] = (values.get("beta1", beta1), values.get("beta2", beta2))
        if "epsilon" in values and "epsilon" in used:
            group["eps"] = values["epsilon"]
        if "weight_decay" in values and "weight_decay" in used:
            group["weight_decay"] = values["weight_decay"]
    return [key for key in values if key not in used]
