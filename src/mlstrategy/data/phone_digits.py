"""scikit-learn's digits as a phone camera would see them: the target of the data-mismatch study.

The course's setup (Structuring ML Projects, week 2): plenty of data from one distribution (clean
scans, the *source*), little from the one the system must work on (phone pictures, the
*target*). :class:`PhoneDigits` makes both from the 1,797 8x8 digits, offline and seeded: two
disjoint halves, so a clean training digit never reappears, corrupted, in the target's dev or
test split.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mlstrategy.data.sources import Arrays, ArraySource

Half = Literal["all", "first", "second"]


def digit_half(y: np.ndarray, half: Half) -> np.ndarray:
    """Indices of one of two disjoint halves of ``y``, stratified: ``first`` takes the first
    half of each class's examples in file order (rounded down), ``second`` the rest.

    Example:
        >>> digit_half(np.array([0, 0, 1, 1, 0, 1, 1]), "first").tolist()
        [0, 2, 3]
    """
    if half == "all":
        return np.arange(len(y))
    rank = np.zeros(len(y), dtype=np.int64)
    counts = np.bincount(y)
    for k in range(len(counts)):
        members = np.flatnonzero(y == k)
        rank[members] = np.arange(len(members))
    first = rank < counts[y] // 2
    return np.flatnonzero(first if half == "first" else ~first)


def phone_look(
    images: np.ndarray,
    seed: int,
    shift: float,
    blur: float,
    contrast: float,
    brightness: float,
    noise: float,
) -> np.ndarray:
    """Corrupt images in [0, 1] of shape ``(m, H, W)``: each is translated by a uniform
    sub-pixel offset in ``[-shift, shift]`` per axis (bilinear), blurred by a Gaussian of
    ``blur`` pixels, scaled by ``contrast`` and lifted by ``brightness`` (a dim picture on a
    grey background), then given Gaussian noise of standard deviation ``noise``, and clipped to
    [0, 1]. Deterministic in ``seed``."""
    from scipy.ndimage import gaussian_filter
    from scipy.ndimage import shift as translate

    rng = np.random.default_rng(seed)
    out = np.empty_like(images, dtype=np.float64)
    for i, image in enumerate(images.astype(np.float64)):
        if shift > 0:
            image = translate(image, rng.uniform(-shift, shift, 2), order=1, mode="constant")
        out[i] = gaussian_filter(image, blur) if blur > 0 else image
    out = out * contrast + brightness + rng.normal(0.0, noise, out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class PhoneDigits(ArraySource):
    """The 8x8 digits scaled to [0, 1], clean (the source) or as a phone would see them (the
    target): shifted, blurred, dimmer and noisy.

    The defaults are the phone's look in ``recipes/mismatch/``: a network trained on clean
    digits errs on a third of these, while a person still reads nearly all of them.

    Args:
        half: ``all`` 1,797 digits, or one of two disjoint stratified halves (``first`` 896,
            ``second`` 901): give the clean source one and the phone target the other.
        clean: No corruption at all (the source); the other arguments are then ignored.
        shift: Largest translation, in pixels, per axis (uniform, sub-pixel).
        blur: Standard deviation of the Gaussian blur, in pixels; 0 = none.
        contrast: Factor on the ink, in (0, 1]: below 1 is dimmer.
        brightness: Added to every pixel: a grey background instead of white paper's 0.
        noise: Standard deviation of the Gaussian pixel noise (pixels are in [0, 1]).
        flatten: 64 features per example; false gives images ``(1, 8, 8)``.

    Example:
        >>> clean = PhoneDigits(half="first", clean=True).load(0)
        >>> phone = PhoneDigits(half="second").load(0)
        >>> corner = (slice(None), 0, 0, 0)  # top-left pixel: white paper, or grey
        >>> paper, grey = float(clean.x[corner].max()), float(phone.x[corner].mean())
        >>> len(clean.y) + len(phone.y), paper, grey > 0.05
        (1797, 0.0, True)
    """

    def __init__(
        self,
        half: Half = "all",
        clean: bool = False,
        shift: float = 0.5,
        blur: float = 0.6,
        contrast: float = 0.6,
        brightness: float = 0.0625,
        noise: float = 0.0625,
        flatten: bool = False,
    ) -> None:
        checks = {
            "shift": (shift, shift >= 0, ">= 0"),
            "blur": (blur, blur >= 0, ">= 0"),
            "contrast": (contrast, 0 < contrast <= 1, "in (0, 1]"),
            "brightness": (brightness, 0 <= brightness < 1, "in [0, 1)"),
            "noise": (noise, noise >= 0, ">= 0"),
        }
        for name, (value, ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f"PhoneDigits: {name}={value} must be {allowed}.")
        self.half = half
        self.clean = clean
        self.shift, self.blur, self.contrast = shift, blur, contrast
        self.brightness, self.noise = brightness, noise
        self.flatten = flatten

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import load_digits

        data = load_digits()
        rows = digit_half(data.target, self.half)
        images = data.images[rows].astype(np.float32) / 16.0
        if not self.clean:
            images = phone_look(
                images, seed, self.shift, self.blur, self.contrast, self.brightness, self.noise
            )
        x = images.reshape(len(images), -1) if self.flatten else images[:, None]
        return Arrays(
            x=np.ascontiguousarray(x, dtype=np.float32),
            y=data.target[rows].astype(np.int64),
            class_names=[str(d) for d in range(10)],
        )
