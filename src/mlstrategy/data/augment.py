"""Batched augmentation with a random draw per example, on the device the batch is on.

torchvision's v2 transforms draw their random parameters once per call, so every example of a
batch moves the same way. These modules draw one crop offset and one flip per example, with
whole-batch tensor operations (two gathers, one ``where``): no Python loop over examples and
no DataLoader workers. They work on any dtype, so ``uint8`` images stay ``uint8`` until the
model normalizes them. Give them to :class:`~mlstrategy.data.ArrayDataModule`'s ``augment``,
which applies them to training batches only::

    augment:
      - class_path: mlstrategy.data.RandomCropPerExample
        init_args: {padding: 4}
      - class_path: mlstrategy.data.HorizontalFlipPerExample
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

PaddingMode = Literal["reflect", "edge", "constant"]


class RandomCropPerExample(nn.Module):
    """Pad each example by ``padding`` on every side of each spatial axis, then crop it back to
    its size at a random offset of its own: a random translation by up to ``padding``.

    Works on images ``(m, C, H, W)`` and sequences ``(m, C, L)``.

    Args:
        padding: Largest shift in each direction, in pixels (>= 0; 4 for 32x32 CIFAR images).
        padding_mode: What the border reads outside the image: ``reflect`` (mirrored around the
            edge pixel, as airbench pads CIFAR), ``edge`` (the edge pixel repeated) or
            ``constant`` (``fill``, as torchvision's ``RandomCrop`` does by default).
        fill: The value of ``constant`` padding, in the inputs' units (0 = black for images).

    Example:
        >>> _ = torch.manual_seed(2)
        >>> crop = RandomCropPerExample(padding=2, padding_mode="constant")
        >>> x = torch.arange(1, 6, dtype=torch.uint8).expand(3, 1, 5)  # 3 equal sequences
        >>> crop(x)[:, 0]  # each shifted by its own offset (-1, 0, +1), zeros coming in
        tensor([[2, 3, 4, 5, 0],
                [1, 2, 3, 4, 5],
                [0, 1, 2, 3, 4]], dtype=torch.uint8)
    """

    def __init__(
        self, padding: int = 4, padding_mode: PaddingMode = "reflect", fill: float = 0
    ) -> None:
        super().__init__()
        if int(padding) != padding or padding < 0:
            raise ValueError(f"padding={padding} must be a whole number of pixels >= 0.")
        if padding_mode not in ("reflect", "edge", "constant"):
            raise ValueError(
                f"padding_mode={padding_mode!r} is not one of ['reflect', 'edge', 'constant']."
            )
        self.padding = int(padding)
        self.padding_mode = padding_mode
        self.fill = fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 3:
            raise ValueError(
                f"RandomCropPerExample takes batches (m, channels, ...), not shape "
                f"{tuple(x.shape)}."
            )
        if self.padding == 0 or len(x) == 0:
            return x
        m, p = len(x), self.padding
        inside = torch.ones((), dtype=torch.bool, device=x.device)
        for axis in range(2, x.ndim):
            n = x.shape[axis]
            if self.padding_mode == "reflect" and p >= n:
                raise ValueError(
                    f"padding={p} with padding_mode='reflect' needs inputs wider than {p} "
                    f"pixels; axis {axis} has {n}. Use a smaller padding or 'edge'."
                )
            # Where each output position reads from: its own position shifted by this
            # example's offset in [-p, p].
            shift = torch.randint(-p, p + 1, (m, 1), device=x.device)
            source = torch.arange(n, device=x.device) + shift  # (m, n)
            view = [m] + [1] * (x.ndim - 1)  # (m, n) laid along this axis
            view[axis] = n
            if self.padding_mode == "constant":
                inside = inside & ((source >= 0) & (source < n)).view(view)
            source = _reflect(source, n) if self.padding_mode == "reflect" else source
            source = source.clamp(0, n - 1)
            x = x.gather(axis, source.view(view).expand(x.shape))
        if self.padding_mode == "constant":
            x = torch.where(inside, x, torch.tensor(self.fill, dtype=x.dtype, device=x.device))
        return x


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    """Indices outside ``0..n-1`` mirrored around the edge pixel (``-1 -> 1``, ``n -> n-2``)."""
    index = index.abs()
    return torch.where(index > n - 1, 2 * (n - 1) - index, index)


class HorizontalFlipPerExample(nn.Module):
    """Mirror each example left-right (its last axis) with probability ``p``, drawn per
    example.

    Args:
        p: Probability that an example is flipped, in [0, 1].

    Example:
        >>> _ = torch.manual_seed(1)
        >>> HorizontalFlipPerExample()(torch.tensor([[[1, 2, 3]], [[1, 2, 3]]]))
        tensor([[[1, 2, 3]],
        <BLANKLINE>
                [[3, 2, 1]]])
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"p={p} must be a probability in [0, 1].")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2:
            raise ValueError(
                f"HorizontalFlipPerExample takes batches (m, ...), not shape {tuple(x.shape)}."
            )
        flip = torch.rand(len(x), device=x.device) < self.p
        return torch.where(flip.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
