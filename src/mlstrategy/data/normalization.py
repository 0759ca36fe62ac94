"""Input normalization (course, week 1 of "Improving deep neural networks")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """Subtract the mean and divide by the standard deviation, per input feature or per channel.

    ``mu = 1/m sum x``, ``sigma^2 = 1/m sum (x - mu)^2``, fit on the train split only and then
    applied unchanged to every split. The statistics are buffers, so they travel in the model's
    checkpoint and ``predict`` normalizes raw inputs the same way.

    Per feature, each input (each pixel of an image) has its own ``mu`` and ``sigma``. Per
    channel (``fit(x, per_channel=True)``), the sums also run over the positions: one pair per
    colour channel, held expanded to the input's shape. Images want that: a random crop moves
    content onto border pixels whose per-pixel ``sigma`` is near 0, which per-pixel
    standardization would blow up.

    ``uint8`` inputs are images in ``0..255`` and are read as ``x / 255`` (torchvision's
    ``ToDtype(torch.float32, scale=True)``), in :meth:`fit` and in :meth:`forward` alike, so
    image data can stay ``uint8`` (a quarter of the memory) until it reaches the model, and
    statistics of pretrained backbones (ImageNet's, for images in ``[0, 1]``) apply unchanged.

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
    def fit(self, x: torch.Tensor, per_channel: bool = False) -> None:
        """Set the statistics from ``x`` (shape ``(m, *input_shape)``).

        Args:
            x: The train split's inputs (``uint8`` images are read as ``x / 255``).
            per_channel: One mean and std per channel (dim 1 of ``x``), over the examples and
                every position, instead of one per input feature.

        The sums are taken in float64, a chunk of examples at a time, so 50,000 ``uint8``
        images need no float copy of the whole split.
        """
        if per_channel and x.ndim < 3:
            raise ValueError(
                f"per-channel normalization needs inputs (m, channels, ...); these have shape "
                f"{tuple(x.shape)}. Use per-feature normalization for flat features."
            )
        if len(x) == 0:
            raise ValueError("Cannot fit the normalization on 0 examples.")
        dims = [0, *range(2, x.ndim)] if per_channel else [0]
        count = len(x) * (math.prod(x.shape[2:]) if per_channel else 1)
        chunks = x.split(_CHUNK)
        total = sum(_as_float(c).double().sum(dim=dims, keepdim=True) for c in chunks)
        mean = torch.as_tensor(total) / count
        # Two passes (the mean, then squared deviations from it): no cancellation when the
        # features' mean is large against their spread.
        square = sum(
            ((_as_float(c).double() - mean) ** 2).sum(dim=dims, keepdim=True) for c in chunks
        )
        std = (torch.as_tensor(square) / count).sqrt()
        # A constant feature (e.g. a border pixel that is always 0) carries no signal; dividing
        # by 1 keeps it at 0 instead of producing NaN.
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        self.mean.copy_(mean[0].expand_as(self.mean))
        self.std.copy_(std[0].expand_as(self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (_as_float(x, self.mean.dtype) - self.mean) / self.std


_CHUNK = 8192  # examples per chunk when fitting


def _as_float(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``uint8`` images as ``x / 255`` in ``[0, 1]``; other inputs unchanged."""
    if x.dtype == torch.uint8:
        return x.to(dtype) / 255
    return x
