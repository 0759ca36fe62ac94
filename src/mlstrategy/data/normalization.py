"""Input normalization (course, week 1 of "Improving deep neural networks")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """Subtract the mean and divide by the standard deviation, per input feature.

    ``mu = 1/m sum x``, ``sigma^2 = 1/m sum (x - mu)^2``, fit on the train split only and then
    applied unchanged to every split. The statistics are buffers, so they travel in the model's
    checkpoint and ``predict`` normalizes raw inputs the same way.

    Args:
        input_shape: Shape of one example (without the batch dimension).

    Example:
        >>> norm = Standardize((2,))
        >>> norm.fit(torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
        >>> norm(torch.tensor([[2.0, 1.0]]))
        tensor([[1., 0.]])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(tuple(input_shape)))
        self.register_buffer("std", torch.ones(tuple(input_shape)))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the statistics from ``x`` (shape ``(m, *input_shape)``)."""
        mean = x.mean(dim=0)
        std = x.std(dim=0, correction=0)
        # A constant feature (e.g. a border pixel that is always 0) carries no signal; dividing
        # by 1 keeps it at 0 instead of producing NaN.
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
