"""Gradient checking (course 2, week 1): backprop's gradient against a two-sided difference.

For every parameter coordinate ``theta_i`` the check computes

    d_theta_approx[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)

with the regularized cost ``J`` (cross-entropy plus the L2 term, if the model has one) on one
fixed batch, and compares it with the gradient autograd gives, layer by layer:

    difference = ||d_theta - d_theta_approx|| / (||d_theta|| + ||d_theta_approx||)

The check runs on a float64 copy of the model (so ``eps = 1e-7`` is far above the rounding
error), with dropout off (the course: set ``keep_prob = 1`` while checking, since dropout
draws a new mask on every evaluation of ``J``) and batch norm in train mode (its batch
statistics are a deterministic function of the fixed batch). The course's bands read the
difference: below 1e-7 great, below 1e-5 worth a closer look, above 1e-3 wrong (a bug in a
backward pass); between 1e-5 and 1e-3 suspicious.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mlstrategy.runs.lightning_cli import build_run
from mlstrategy.runs.recipes import recipe_configs

EPSILON = 1e-7
# The course's bands: (upper bound of the difference, verdict), checked in order.
BANDS: tuple[tuple[float, str], ...] = (
    (1e-7, "great"),
    (1e-5, "look closer"),
    (1e-3, "suspicious"),
    (math.inf, "wrong"),
)


def band(difference: float) -> str:
    """The course's verdict on a relative difference.

    Example:
        >>> [band(d) for d in (1e-9, 1e-6, 1e-4, 1e-2, float("nan"))]
        ['great', 'look closer', 'suspicious', 'wrong', 'wrong']
    """
    for bound, verdict in BANDS:
        if difference < bound:
            return verdict
    return "wrong"  # nan (a non-finite cost) too


@dataclass
class LayerCheck:
    """The check of one layer (a module that owns parameters).

    Attributes:
        layer: The module's name in the model, e.g. ``net.features.1.0``.
        kind: Its class name, e.g. ``Linear``.
        size: Its parameter coordinates.
        checked: How many of them were checked (``size`` unless sampled).
        grad_norm: ``||d_theta||`` over the checked coordinates.
        approx_norm: ``||d_theta_approx||`` over them.
        difference: The relative difference (0 when both norms are 0).
    """

    layer: str
    kind: str
    size: int
    checked: int
    grad_norm: float
    approx_norm: float
    difference: float

    @property
    def verdict(self) -> str:
        """``great``, ``look closer``, ``suspicious`` or ``wrong``."""
        return band(self.difference)


def _regularized_cost(model: Any, x: Tensor, y: Tensor) -> Tensor:
    """``J`` on the batch: the model's cost plus its L2 term (with ``m`` = the batch size)."""
    cost = model.cost(model(x), y)
    if getattr(model, "l2_lambda", 0):
        cost = cost + model.l2_penalty(len(y))
    return cost  # type: ignore[no-any-return]


def _layers(model: nn.Module) -> list[tuple[str, nn.Module, list[Tensor]]]:
    """Each module that owns trainable parameters directly, with those parameters."""
    found = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if params:
            found.append((name or type(model).__name__, module, params))
    return found


def check_gradients(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epsilon: float = EPSILON,
    max_coords: int | None = None,
    seed: int = 0,
) -> list[LayerCheck]:
    """Compare backprop's gradient with the two-sided difference on one batch, per layer.

    The model is not changed: the check runs on a float64 copy in train mode with every
    dropout layer off.

    Args:
        model: A toolkit model: ``model(x)`` gives outputs and ``model.cost(outputs, y)`` the
            cost (with ``l2_lambda`` and ``l2_penalty`` for the L2 term, as in
            :class:`~mlstrategy.models.base.SupervisedModule`).
        x: The batch's inputs (normalized by the model itself).
        y: Its targets.
        epsilon: The step of the two-sided difference, > 0.
        max_coords: Check at most this many coordinates per layer, drawn with ``seed`` (None:
            every coordinate). Each costs two evaluations of ``J``.
        seed: Seed of that draw.

    Returns:
        One :class:`LayerCheck` per layer that owns trainable parameters, in model order.

    Raises:
        ValueError: a bad ``epsilon``/``max_coords``, a model without a cost or parameters.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon={epsilon} must be > 0 (the course uses 1e-7).")
    if max_coords is not None and max_coords < 1:
        raise ValueError(f"max_coords={max_coords} must be >= 1, or None for every coordinate.")
    if not callable(getattr(model, "cost", None)):
        raise ValueError(f"{type(model).__name__} has no cost(outputs, y) to check.")
    net = copy.deepcopy(model).double().train()
    for module in net.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()  # keep_prob = 1 while checking
    x = x.double() if x.is_floating_point() else x
    y = y.double() if y.is_floating_point() else y
    layers = _layers(net)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to check.")
    net.zero_grad()
    _regularized_cost(net, x, y).backward()
    generator = torch.Generator().manual_seed(seed)
    checks = []
    with torch.no_grad():
        for name, module, params in layers:
            flat = [p.view(-1) for p in params]
            grads = torch.cat(
                [(torch.zeros_like(p) if p.grad is None else p.grad).view(-1) for p in params]
            )
            sizes = [f.numel() for f in flat]
            coords = torch.arange(sum(sizes))
            if max_coords is not None and len(coords) > max_coords:
                coords = torch.randperm(len(coords), generator=generator)[:max_coords].sort()[0]
            approx = torch.empty(len(coords), dtype=torch.float64)
            starts = torch.tensor([0, *sizes]).cumsum(0)
            for k, i in enumerate(coords.tolist()):
                which = int(torch.searchsorted(starts, i, right=True)) - 1
                theta = flat[which]
                j = i - int(starts[which])
                saved = theta[j].item()
                theta[j] = saved + epsilon
                plus = float(_regularized_cost(net, x, y))
                theta[j] = saved - epsilon
                minus = float(_regularized_cost(net, x, y))
                theta[j] = saved
                approx[k] = (plus - minus) / (2 * epsilon)
            grad = grads.view(-1)[coords].double()
            checks.append(_layer_check(name, module, sum(sizes), grad, approx))
    return checks


def _layer_check(
    name: str, module: nn.Module, size: int, grad: Tensor, approx: Tensor
) -> LayerCheck:
    grad_norm = float(grad.norm())
    approx_norm = float(approx.norm())
    denominator = grad_norm + approx_norm
    difference = float((grad - approx).norm()) / denominator if denominator else 0.0
    if not math.isfinite(difference):
        difference = math.inf
    return LayerCheck(
        name, type(module).__name__, size, len(grad), grad_norm, approx_norm, difference
    )


def first_batch(datamodule: Any, size: int) -> tuple[Tensor, Tensor]:
    """The first ``size`` examples of the train split, in order (no shuffle, no augmentation)."""
    if size < 1:
        raise ValueError(f"batch size {size} must be >= 1 (the course checks on a few examples).")
    datamodule.setup("fit")
    loader = (
        datamodule.eval_dataloader("train")
        if hasattr(datamodule, "eval_dataloader")
        else datamodule.train_dataloader()
    )
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        if sum(len(b) for b in ys) >= size:
            break
    return torch.cat(xs)[:size].cpu(), torch.cat(ys)[:size].cpu()


@dataclass
class GradCheck:
    """A recipe's gradient check: the layers, the batch size and how it was sampled."""

    recipe: Path
    layers: list[LayerCheck]
    batch_size: int
    epsilon: float
    max_coords: int | None
    l2_lambda: float = 0.0

    @property
    def wrong(self) -> list[LayerCheck]:
        """The layers whose difference is above 1e-3."""
        return [c for c in self.layers if c.verdict == "wrong"]


def grad_check(
    recipe: Path,
    overrides: Sequence[str] = (),
    batch_size: int = 16,
    epsilon: float = EPSILON,
    max_coords: int | None = None,
    seed: int = 0,
) -> GradCheck:
    """Build ``recipe``'s model and data (as ``run`` does) and check its gradients on the first
    ``batch_size`` train examples; arguments as :func:`check_gradients`. Nothing is trained and
    no run folder is kept."""
    (configs,) = recipe_configs(recipe)
    with tempfile.TemporaryDirectory(prefix="mlstrategy-grad-check-") as logs:
        cli = build_run(configs, overrides, Path(logs))
        model, datamodule = cli.model, cli.datamodule
        x, y = first_batch(datamodule, batch_size)
        normalizer = getattr(datamodule, "input_normalizer", None)
        fitted = normalizer() if callable(normalizer) else None
        if fitted is not None and hasattr(model, "input_norm"):
            model.input_norm.load_state_dict(fitted.state_dict())  # as SupervisedModule.setup
        layers = check_gradients(model, x, y, epsilon, max_coords, seed)
    l2 = float(getattr(model, "l2_lambda", 0.0))
    return GradCheck(recipe, layers, len(y), epsilon, max_coords, l2)
