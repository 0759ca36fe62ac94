"""Weight initialization by the course's names (Improving Deep Neural Networks, week 1)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

InitName = Literal["he", "xavier", "small_random", "zeros"]
INITS: tuple[str, ...] = ("he", "xavier", "small_random", "zeros")

# Layers whose weight is the course's W[l]: what initialization draws and L2 penalizes.
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def check_init(init: str) -> None:
    """Raise ``ValueError`` unless ``init`` is one of :data:`INITS`."""
    if init not in INITS:
        raise ValueError(
            f"init={init!r} is not one of {list(INITS)} ('he' for relu nets, 'xavier' for tanh)."
        )


def init_std(init: str, fan_in: int) -> float:
    """Standard deviation of ``W[l]`` for a layer with ``fan_in = n[l-1]`` inputs.

    - ``he``: ``sqrt(2 / n[l-1])`` (He et al. 2015, for relu);
    - ``xavier``: ``sqrt(1 / n[l-1])`` (the course's form of Xavier, for tanh);
    - ``small_random``: ``0.01`` (the course's first nets: ``np.random.randn(..) * 0.01``);
    - ``zeros``: ``0``: every unit of a layer computes the same function and gets the same
      gradient, so they stay identical (the symmetry-breaking lesson).

    Example:
        >>> round(init_std("he", 50), 4)
        0.2
    """
    check_init(init)
    if fan_in < 1:
        raise ValueError(f"fan_in={fan_in} must be >= 1.")
    return {
        "he": math.sqrt(2 / fan_in),
        "xavier": math.sqrt(1 / fan_in),
        "small_random": 0.01,
        "zeros": 0.0,
    }[init]


@torch.no_grad()
def initialize(module: nn.Module, init: InitName = "he") -> None:
    """Initialize every linear and convolution layer of ``module`` in place.

    ``W[l] = randn(n[l], n[l-1]) * init_std(init, n[l-1])`` and ``b[l] = 0``, as in the course.
    For a convolution ``n[l-1]`` is the fan-in of one output unit: ``in_channels *
    kernel size``. Batch-norm layers start at ``gamma = 1``, ``beta = 0`` (the identity).

    Args:
        module: The network (or a single layer).
        init: ``he``, ``xavier``, ``small_random`` or ``zeros``.
    """
    check_init(init)
    for layer in module.modules():
        if isinstance(layer, WEIGHT_LAYERS):
            # weight[0] is one output unit's weights, so its size is the fan-in n[l-1].
            std = init_std(init, layer.weight[0].numel())
            if std:
                layer.weight.normal_(0.0, std)
            else:
                layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            layer.reset_parameters()
