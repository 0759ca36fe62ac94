"""Artificial data synthesis: make training examples look like the target distribution.

The course's remedy for data mismatch (Structuring ML Projects, week 2): having found by error
analysis how the dev data differs (car noise, blur, dim pictures), synthesize training data with
that difference, e.g. clean speech plus car noise. Its warning: synthesize from a tiny pool (one
hour of car noise for 10,000 hours of speech) and the network may overfit the pool, though to a
person the data sounds fine. So every transform here that draws from a fixed pool says how big
the pool is, and :func:`pool_report` warns when it is small against the number of training
examples it is applied to.

The transforms take a batch of raw inputs ``(m, C, H, W)`` (before normalization) on its device,
like augmentation, and draw per example. The data module fits them on the target's examples that
are outside dev and test (never on dev or test), so their statistics are the target's. Any
``torch.nn.Module`` may join them in a recipe's ``synthesis:`` list (e.g.
``torchvision.transforms.v2.GaussianBlur``); like augmentation it is called once per example,
so each gets its own draw (see :class:`~mlstrategy.data.augment.PerExample`). Only these
transforms know a pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mlstrategy.data.augment import PerExample

# Warn when a pool holds fewer distinct inputs than this fraction of the examples it is applied
# to, i.e. when each input is reused more than 10 times an epoch. A rule of thumb: the course's
# example (1 hour of noise for 10,000 hours of speech) reuses each input 10,000 times.
SMALL_POOL_FRACTION = 0.1


class Synthesis(nn.Module):
    """Base class: a synthesis transform fit on the target's (training-side) examples.

    Attributes:
        pool_size: Distinct synthesis inputs it draws from once fit (None: no fixed pool).
        pool_name: What one input of the pool is, for the report.
    """

    pool_name = "input"
    draws_per_example = True  # given the whole batch (see mlstrategy.data.augment.per_example)

    def __init__(self) -> None:
        super().__init__()
        self.pool_size: int | None = None

    def fit(self, target_x: torch.Tensor, seed: int) -> None:
        """Take the target's statistics from ``target_x`` (raw inputs, ``(m, ...)``)."""

    def describe(self) -> dict[str, Any]:
        """What the report says about this transform: its name, pool and statistics."""
        return {"transform": type(self).__name__, "pool": self.pool_size, "unit": self.pool_name}


def _images(x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``(m, C, H, W)``, or ``(m, 1, 1, n)`` for flat features."""
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        return x[:, None]
    return x.reshape(len(x), 1, 1, -1)


class TargetContrast(Synthesis):
    """Brightness and contrast (per channel: a colour shift) drawn from the target's images.

    Fit: each of ``pool`` target images (seeded; null = all) gives its per-channel mean and
    standard deviation. Applied: each example is standardized per channel and given the mean
    and standard deviation of a randomly drawn pool image, ``x' = (x - mu_x) / sigma_x *
    sigma_t + mu_t``, so a clean scan takes a phone picture's dim ink on a grey background.

    Args:
        pool: Target images whose statistics are drawn from; null = every one available.
    """

    pool_name = "target image statistics"

    def __init__(self, pool: int | None = None) -> None:
        super().__init__()
        if pool is not None and pool < 1:
            raise ValueError(f"TargetContrast: pool={pool} must be >= 1, or null for all.")
        self.pool = pool
        self.register_buffer("means", torch.zeros(0), persistent=False)
        self.register_buffer("stds", torch.zeros(0), persistent=False)

    def fit(self, target_x: torch.Tensor, seed: int) -> None:
        images = _images(target_x.float())
        rows = _draw_rows(len(images), self.pool, seed)
        flat = images[rows].flatten(2)
        self.means = flat.mean(dim=2)
        self.stds = flat.std(dim=2, correction=0)
        self.pool_size = len(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_size is None:
            raise RuntimeError("TargetContrast is not fit: the data module fits it on the target.")
        images = _images(x)
        flat = images.flatten(2)
        mu, sigma = flat.mean(dim=2, keepdim=True), flat.std(dim=2, correction=0, keepdim=True)
        pick = torch.randint(self.pool_size, (len(x),), device=x.device)
        means = self.means.to(x.device)[pick].unsqueeze(2)
        stds = self.stds.to(x.device)[pick].unsqueeze(2)
        out = (flat - mu) / sigma.clamp_min(1e-6) * stds + means
        return out.reshape(x.shape)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.pool_size:
            out["target_mean"] = round(float(self.means.mean()), 4)
            out["target_std"] = round(float(self.stds.mean()), 4)
        return out


class TargetNoise(Synthesis):
    """Additive noise clips at the target's noise level: the course's "car noise" pool.

    Fit: the target's noise standard deviation is estimated (unless ``std`` is given) by the
    median absolute deviation of the finest diagonal wavelet coefficients, ``sigma =
    median(|HH|) / 0.6745`` with ``HH = (a - b - c + d) / 2`` on 2x2 blocks (Donoho and
    Johnstone 1994; robust to the image content of smooth, i.e. blurred, pictures), and
    ``clips`` Gaussian noise fields of one example's shape are drawn once (seeded): the pool.
    Applied: each example gets a randomly drawn clip, and is clipped to the target's range.

    Args:
        clips: Distinct noise clips in the pool. Few clips for many examples is the course's
            one hour of car noise for 10,000 hours of speech: the report warns.
        std: The noise's standard deviation; null = estimated from the target.
    """

    pool_name = "noise clips"

    def __init__(self, clips: int = 1000, std: float | None = None) -> None:
        super().__init__()
        if clips < 1:
            raise ValueError(f"TargetNoise: clips={clips} must be >= 1.")
        if std is not None and std < 0:
            raise ValueError(f"TargetNoise: std={std} must be >= 0, or null to estimate it.")
        self.clips = clips
        self.std = std
        self.register_buffer("bank", torch.zeros(0), persistent=False)
        self.sigma = 0.0
        self.low, self.high = -math.inf, math.inf

    def fit(self, target_x: torch.Tensor, seed: int) -> None:
        x = target_x.float()
        self.sigma = float(self.std) if self.std is not None else estimate_noise_std(x)
        generator = torch.Generator().manual_seed(seed)
        self.bank = torch.randn((self.clips, *x.shape[1:]), generator=generator) * self.sigma
        self.low, self.high = float(x.min()), float(x.max())
        self.pool_size = self.clips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_size is None:
            raise RuntimeError("TargetNoise is not fit: the data module fits it on the target.")
        bank = self.bank.to(x.device)
        pick = torch.randint(self.pool_size, (len(x),), device=x.device)
        return (x + bank[pick]).clamp(self.low, self.high)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "noise_std": round(self.sigma, 4)}


def estimate_noise_std(x: torch.Tensor) -> float:
    """The standard deviation of additive Gaussian noise in images ``x``, from the median
    absolute deviation of the diagonal Haar detail coefficients (Donoho's estimator).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> smooth = torch.linspace(0, 1, 16).expand(200, 1, 16, 16)
        >>> noisy = smooth + 0.1 * torch.randn(200, 1, 16, 16, generator=g)
        >>> round(estimate_noise_std(noisy), 2)
        0.1
    """
    images = _images(x.float())
    h, w = images.shape[2] // 2 * 2, images.shape[3] // 2 * 2
    if h == 0 or w == 0:
        return float(images.std())  # flat features have no neighbours to tell noise apart
    b = images[:, :, :h, :w]
    hh = b[:, :, 0::2, 0::2] - b[:, :, 0::2, 1::2] - b[:, :, 1::2, 0::2] + b[:, :, 1::2, 1::2]
    return float((hh / 2).abs().median()) / 0.6745


class Shift(Synthesis):
    """A uniform sub-pixel translation in ``[-pixels, pixels]`` per axis and example (bilinear,
    zeros outside), e.g. a phone held a little off centre. No pool: every draw is new.

    Args:
        pixels: Largest translation, in pixels.
    """

    def __init__(self, pixels: float = 0.5) -> None:
        super().__init__()
        if pixels < 0:
            raise ValueError(f"Shift: pixels={pixels} must be >= 0.")
        self.pixels = pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = _images(x)
        m, _, h, w = images.shape
        offset = (torch.rand(m, 2, device=x.device) * 2 - 1) * self.pixels
        theta = torch.zeros(m, 2, 3, device=x.device, dtype=images.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        # affine_grid works in [-1, 1]: one pixel is 2 / size; shifting the sampling grid by
        # -d moves the content by +d.
        theta[:, 0, 2] = -offset[:, 0] * 2 / w
        theta[:, 1, 2] = -offset[:, 1] * 2 / h
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", align_corners=False)
        return out.reshape(x.shape)


def _draw_rows(n: int, pool: int | None, seed: int) -> torch.Tensor:
    if pool is None or pool >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:pool]


def pool_report(transforms: Sequence[nn.Module], synthesized: int) -> dict[str, Any]:
    """How many distinct synthesis inputs each transform drew from, against the number of
    training examples it is applied to, and a warning for each pool that is small.

    Args:
        transforms: The synthesis transforms, fit.
        synthesized: Training examples synthesized per epoch (the source's, in the mix).

    Returns:
        ``{"synthesized", "transforms": [describe() + "reuse"], "warnings": [...]}``.

    Example:
        >>> noise = TargetNoise(clips=5)
        >>> noise.fit(torch.rand(20, 1, 8, 8), seed=0)
        >>> pool_report([noise], synthesized=1000)["warnings"][0][:44]
        'TargetNoise draws from 5 distinct noise clip'
    """
    rows, warnings = [], []
    for t in (t.transform if isinstance(t, PerExample) else t for t in transforms):
        found: dict[str, Any] = (
            t.describe() if isinstance(t, Synthesis) else {"transform": type(t).__name__}
        )
        found.setdefault("pool", None)
        pool = found["pool"]
        if pool:
            found["reuse"] = round(synthesized / pool, 2)
            if pool < SMALL_POOL_FRACTION * synthesized:
                warnings.append(
                    f"{found['transform']} draws from {pool:,} distinct {found['unit']} for "
                    f"{synthesized:,} synthesized training examples, so each is reused about "
                    f"{synthesized / pool:.0f} times an epoch. The course's warning: one hour of "
                    "car noise for 10,000 hours of speech sounds fine to a person, but the "
                    "network can overfit the pool and learn that noise, not the target. Give it "
                    f"at least {math.ceil(SMALL_POOL_FRACTION * synthesized):,} distinct inputs "
                    "(more clips, more target statistics)."
                )
        rows.append(found)
    return {"synthesized": synthesized, "transforms": rows, "warnings": warnings}
