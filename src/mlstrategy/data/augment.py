"""Batched augmentation with a random draw per example, on the device the batch is on.

torchvision's v2 transforms draw their random parameters once per call, so given a whole batch
every example of it moves the same way. The in-memory data modules therefore apply each
``augment`` transform through :func:`per_example`:

- :class:`RandomCropPerExample` and :class:`HorizontalFlipPerExample` draw one crop offset and
  one flip per example with whole-batch tensor operations (two gathers, one ``where``): no
  Python loop over examples and no DataLoader workers, the fast path. They work on any dtype,
  so ``uint8`` images stay ``uint8`` until the model normalizes them.
- Any other module (``torchvision.transforms.v2.RandomAffine``, ``RandomErasing``, ...) is
  wrapped in :class:`PerExample`, which calls it once per example: its own draw each, at the
  cost of a Python loop on the device (one call per example instead of one per batch). Measured
  on a busy 2-core CPU, a batch of 64 MNIST-1D sequences: ``v2.RandomCrop`` per example 21 ms,
  against 0.25 ms for :class:`RandomCropPerExample` doing the same shift and 0.17 ms for one
  ``v2.RandomCrop`` draw for the batch; ``v2.GaussianBlur`` on 64 8x8 images, 53 ms against
  1.3 ms. Fine for small batches; prefer the vectorized modules where one fits
  (:class:`GaussianBlurPerExample` is ``v2.GaussianBlur`` with a sigma per example).
- :class:`WholeBatch` keeps one call per batch: one draw for the whole batch (the fastest), or
  a module that draws per example itself (e.g. ``kornia.augmentation``).

A module may also declare ``draws_per_example = True`` (the synthesis transforms do) to be
given the whole batch. Image folders need none of this: their workers decode and augment one
image at a time, so each image gets its own draw already.

::

    augment:
      - class_path: mlstrategy.data.RandomCropPerExample
        init_args: {padding: 4}
      - class_path: mlstrategy.data.HorizontalFlipPerExample
      - class_path: torchvision.transforms.v2.RandomErasing   # applied per example
        init_args: {p: 0.25}
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

    draws_per_example = True

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

    draws_per_example = True

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


class GaussianBlurPerExample(nn.Module):
    """Blur each image with a Gaussian whose sigma is drawn per example, uniform in ``sigma``:
    torchvision's ``v2.GaussianBlur`` (same kernel, reflect padding) with whole-batch tensor
    operations instead of one call per example.

    The 2-D kernel is separable (an outer product of two 1-D Gaussians), so the batch is
    blurred by two grouped convolutions, one group per example and channel.

    Args:
        kernel_size: Odd width of the square kernel, in pixels.
        sigma: ``(min, max)`` of the uniform draw, or one number for a fixed sigma (> 0).

    Example:
        >>> from torchvision.transforms.v2 import functional as F
        >>> x = torch.rand(2, 1, 6, 6)
        >>> out = GaussianBlurPerExample(3, sigma=0.7)(x)
        >>> torch.allclose(out, F.gaussian_blur(x, [3, 3], [0.7, 0.7]), atol=1e-6)
        True
    """

    draws_per_example = True

    def __init__(self, kernel_size: int = 3, sigma: float | tuple[float, float] = (0.1, 2.0)):
        super().__init__()
        low, high = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be an odd number of pixels >= 1.")
        if not 0 < low <= high:
            raise ValueError(f"sigma={sigma} must be > 0, or (min, max) with 0 < min <= max.")
        self.kernel_size, self.sigma = int(kernel_size), (float(low), float(high))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(
                f"GaussianBlurPerExample takes images (m, C, H, W), not shape {tuple(x.shape)}."
            )
        if len(x) == 0:
            return x
        m, c, h, w = x.shape
        image = x if x.is_floating_point() else x.float()
        sigma = torch.empty(m, 1, device=x.device, dtype=image.dtype).uniform_(*self.sigma)
        k = self.kernel_size
        lim = (k - 1) / (2.0 * 2.0**0.5)  # torchvision's grid for the 1-D kernel
        grid = torch.linspace(-lim, lim, k, device=x.device, dtype=image.dtype)
        kernel = torch.softmax(-((grid / sigma) ** 2), dim=1).repeat_interleave(c, dim=0)
        pad = k // 2
        out = nn.functional.pad(image, [pad, pad, pad, pad], mode="reflect")
        out = out.reshape(1, m * c, h + 2 * pad, w + 2 * pad)
        out = nn.functional.conv2d(out, kernel.view(m * c, 1, 1, k), groups=m * c)
        out = nn.functional.conv2d(out, kernel.view(m * c, 1, k, 1), groups=m * c)
        out = out.reshape(m, c, h, w)
        return out if x.is_floating_point() else out.round_().to(x.dtype)


class PerExample(nn.Module):
    """Apply ``transform`` to each example of a batch on its own, so each gets its own draw.

    The transform is called on a batch of one, ``x[i : i + 1]``, so it sees the same layout
    as a whole batch (images ``(1, C, H, W)``, sequences ``(1, C, L)``), and the results are
    concatenated in order. Cost: one call per example, a Python loop on the batch's device,
    instead of one call per batch; for a GPU with large batches prefer the vectorized
    :class:`RandomCropPerExample` and :class:`HorizontalFlipPerExample`.

    Args:
        transform: Any module that maps a batch to a batch of the same size, e.g.
            ``torchvision.transforms.v2.RandomAffine(degrees=10)``.

    Example:
        >>> from torchvision.transforms import v2
        >>> _ = torch.manual_seed(2)
        >>> x = torch.arange(8.0).expand(3, 1, 8)  # 3 equal sequences
        >>> out = PerExample(v2.RandomCrop((1, 8), padding=[2, 0], padding_mode="edge"))(x)
        >>> out[:, 0, 3].tolist()  # each shifted by its own draw
        [4.0, 3.0, 2.0]
    """

    draws_per_example = True

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) <= 1:
            return self.transform(x)
        return torch.cat([self.transform(x[i : i + 1]) for i in range(len(x))])


class WholeBatch(nn.Module):
    """Apply ``transform`` to the whole batch in one call (no :class:`PerExample` wrapping).

    For a torchvision v2 transform this is one random draw for the whole batch: every example
    moves alike, the fastest and the weakest augmentation. For a module that draws per example
    itself (``kornia.augmentation``) it is the right way to list it.

    Args:
        transform: The module to call on each training batch.
    """

    draws_per_example = True

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x)


def per_example(transforms: list[nn.Module]) -> list[nn.Module]:
    """``transforms`` with each module that does not draw per example itself (no
    ``draws_per_example = True``) wrapped in :class:`PerExample`.

    Example:
        >>> from torchvision.transforms import v2
        >>> found = per_example([HorizontalFlipPerExample(), v2.RandomErasing()])
        >>> [type(t).__name__ for t in found]
        ['HorizontalFlipPerExample', 'PerExample']
    """
    return [t if getattr(t, "draws_per_example", False) else PerExample(t) for t in transforms]
