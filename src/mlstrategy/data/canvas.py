"""A generated task for end-to-end vs pipeline studies: a digit somewhere on a cluttered canvas.

Each example is a ``canvas_size x canvas_size`` image holding one of scikit-learn's 8x8 digits
at a random position, among fragments of other digits (clutter) and Gaussian pixel noise. Two
ways to read the label make sense: an end-to-end net maps the canvas straight to the digit;
a pipeline localizes the digit, crops it, and classifies the crop with a classifier trained
on clean digits. The generator therefore keeps the intermediate labels a pipeline trains on:
the digit's position and the clean 8x8 digit.

Digits are split into a train pool and a test pool first, so no test canvas shows a digit (or
a clutter fragment) that a training canvas or the clean-digit classifier has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlstrategy.data.sources import Arrays, ArraySource

DIGIT_SIZE = 8  # scikit-learn's digits are 8x8, values 0..16
_MAX_INK = 16.0


@dataclass
class Canvases:
    """Canvases with every label a pipeline can train on.

    Attributes:
        canvas: Images, shape ``(m, 1, canvas_size, canvas_size)``, float32, values in 0..16.
        label: The digit's class, shape ``(m,)``, int64.
        position: ``(row, col)`` of the digit's top-left pixel, shape ``(m, 2)``, int64:
            ``canvas[i, 0, r:r+8, c:c+8]`` is where digit ``i`` was drawn.
        digit: The clean 8x8 digit drawn on each canvas (no clutter, no noise), shape
            ``(m, 1, 8, 8)``, float32.
    """

    canvas: np.ndarray
    label: np.ndarray
    position: np.ndarray
    digit: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index: np.ndarray | slice) -> Canvases:
        """The examples at ``index`` (a slice or an index array)."""
        return Canvases(
            self.canvas[index], self.label[index], self.position[index], self.digit[index]
        )


def draw_canvases(
    digits: np.ndarray,
    labels: np.ndarray,
    n: int,
    rng: np.random.Generator,
    canvas_size: int = 24,
    clutter: int = 8,
    fragment_size: int = 4,
    noise: float = 2.0,
) -> Canvases:
    """Draw ``n`` canvases from a pool of 8x8 digits.

    Each canvas takes a random digit of the pool at a uniformly random position, then
    ``clutter`` fragments (random ``fragment_size`` squares cut from other random digits of the
    pool) at random places that do not overlap the digit's 8x8 box, so the box holds the digit
    and nothing else but noise. Where fragments overlap each other the brighter pixel wins.
    Finally Gaussian noise of standard deviation ``noise`` is added everywhere and the canvas is
    clipped to the digits' range 0..16.

    Args:
        digits: The pool, shape ``(k, 8, 8)``, values 0..16.
        labels: The pool's classes, shape ``(k,)``.
        n: Number of canvases.
        rng: The random generator (seeded by the caller).
        canvas_size: Height and width of a canvas (>= 9 so the digit can move).
        clutter: Fragments per canvas (>= 0).
        fragment_size: Side of a square fragment, 1..8.
        noise: Standard deviation of the pixel noise (>= 0), in the digits' units (0..16).

    Returns:
        The canvases with their labels, positions and clean digits.
    """
    _check_canvas_args(canvas_size, clutter, fragment_size, noise)
    if n < 1:
        raise ValueError(f"n={n} must be >= 1 (the number of canvases to draw).")
    free = canvas_size - DIGIT_SIZE + 1  # positions per axis
    pick = rng.integers(len(digits), size=n)
    position = rng.integers(free, size=(n, 2))
    canvas = np.zeros((n, canvas_size, canvas_size), dtype=np.float32)
    if clutter:
        fragments, where = _fragments(digits, position, n, clutter, fragment_size, canvas_size, rng)
        # Pixel coordinates of every fragment pixel; maximum.at handles overlapping fragments.
        offsets = np.arange(fragment_size)
        rows = where[:, :, 0, None, None] + offsets[:, None]
        cols = where[:, :, 1, None, None] + offsets[None, :]
        np.maximum.at(canvas, (np.arange(n)[:, None, None, None], rows, cols), fragments)
    rows = position[:, 0, None, None] + np.arange(DIGIT_SIZE)[:, None]
    cols = position[:, 1, None, None] + np.arange(DIGIT_SIZE)[None, :]
    canvas[np.arange(n)[:, None, None], rows, cols] = digits[pick]
    if noise > 0:
        canvas += rng.normal(scale=noise, size=canvas.shape).astype(np.float32)
        np.clip(canvas, 0.0, _MAX_INK, out=canvas)
    return Canvases(
        canvas=canvas[:, None],
        label=labels[pick].astype(np.int64),
        position=position.astype(np.int64),
        digit=digits[pick][:, None].astype(np.float32),
    )


def _fragments(
    digits: np.ndarray,
    position: np.ndarray,
    n: int,
    clutter: int,
    fragment_size: int,
    canvas_size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``clutter`` fragments per canvas, ``(n, clutter, f, f)``, and their top-left corners
    ``(n, clutter, 2)``, none overlapping the digit's box at ``position``."""
    span = canvas_size - fragment_size + 1
    where = np.empty((n, clutter, 2), dtype=np.int64)
    todo: np.ndarray = np.ones((n, clutter), dtype=bool)
    while todo.any():
        # Rejection sampling: redraw the corners whose fragment would touch the digit's box.
        where[todo] = rng.integers(span, size=(int(todo.sum()), 2))
        box = position[:, None, :]
        apart = (where + fragment_size <= box) | (box + DIGIT_SIZE <= where)
        todo = ~np.any(apart, axis=-1)
    source = rng.integers(len(digits), size=(n, clutter))
    corner = rng.integers(DIGIT_SIZE - fragment_size + 1, size=(n, clutter, 2))
    offsets = np.arange(fragment_size)
    rows = corner[..., 0, None, None] + offsets[:, None]
    cols = corner[..., 1, None, None] + offsets[None, :]
    return digits[source[..., None, None], rows, cols], where


def _check_canvas_args(canvas_size: int, clutter: int, fragment_size: int, noise: float) -> None:
    if canvas_size < DIGIT_SIZE + 1:
        raise ValueError(
            f"canvas_size={canvas_size} must be >= {DIGIT_SIZE + 1} so the 8x8 digit can be "
            "placed at more than one position; e.g. 24 or 32."
        )
    if clutter < 0:
        raise ValueError(f"clutter={clutter} must be >= 0 (fragments of other digits per canvas).")
    if not 1 <= fragment_size <= DIGIT_SIZE:
        raise ValueError(
            f"fragment_size={fragment_size} must be in 1..{DIGIT_SIZE} (the side of the square "
            "cut from another digit)."
        )
    # A digit in the middle leaves ceil((canvas_size - 8) / 2) pixels on its roomier side.
    room = (canvas_size - DIGIT_SIZE + 1) // 2
    if clutter and room < fragment_size:
        raise ValueError(
            f"canvas_size={canvas_size} leaves no room beside a digit in the middle for a "
            f"fragment of fragment_size={fragment_size}; use canvas_size >= "
            f"{DIGIT_SIZE + 2 * fragment_size - 1}, a smaller fragment_size, or clutter=0."
        )
    if not noise >= 0:
        raise ValueError(f"noise={noise} must be >= 0 (standard deviation of the pixel noise).")


class DigitCanvas(ArraySource):
    """scikit-learn digits at random positions on cluttered canvases (seeded, offline).

    As an :class:`~mlstrategy.data.sources.ArraySource` it gives the canvases, shape
    ``(1, canvas_size, canvas_size)``, and the digits' classes, with its own test split drawn
    from held-out digits (so ``ArrayDataModule`` carves dev from the training canvases). A
    pipeline reads the intermediate labels (positions, clean digits) from :meth:`generate`.

    Args:
        canvas_size: Height and width of a canvas in pixels (>= 9; the digit is 8x8).
        n_train: Training canvases (dev is carved from these by the data module).
        n_test: Test canvases, drawn from the held-out digits only.
        clutter: Fragments of other digits scattered around the digit on each canvas.
        fragment_size: Side of each square fragment, 1..8 pixels.
        noise: Standard deviation of the Gaussian pixel noise, in the digits' units (0..16).
        test_digits: Fraction of scikit-learn's 1,797 digits held out for the test canvases,
            in (0, 1); split stratified by class.

    Example:
        >>> task = DigitCanvas(canvas_size=16, n_train=5, n_test=3, clutter=2)
        >>> train, test = task.generate(seed=0)
        >>> train.canvas.shape, test.position.shape
        ((5, 1, 16, 16), (3, 2))
    """

    def __init__(
        self,
        canvas_size: int = 24,
        n_train: int = 8000,
        n_test: int = 2000,
        clutter: int = 8,
        fragment_size: int = 4,
        noise: float = 2.0,
        test_digits: float = 0.3,
    ) -> None:
        _check_canvas_args(canvas_size, clutter, fragment_size, noise)
        for name, value in (("n_train", n_train), ("n_test", n_test)):
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1 (a number of canvases).")
        if not 0 < test_digits < 1:
            raise ValueError(
                f"test_digits={test_digits} must be in (0, 1): the fraction of the digits held "
                "out for the test canvases, e.g. 0.3."
            )
        self.canvas_size = canvas_size
        self.n_train = n_train
        self.n_test = n_test
        self.clutter = clutter
        self.fragment_size = fragment_size
        self.noise = noise
        self.test_digits = test_digits

    @property
    def num_positions(self) -> int:
        """Number of places the digit can be, ``(canvas_size - 7) ** 2``."""
        return (self.canvas_size - DIGIT_SIZE + 1) ** 2

    def generate(self, seed: int) -> tuple[Canvases, Canvases]:
        """The training and test canvases, with positions and clean digits; same seed, same data.

        Args:
            seed: Seed of the digit split, the positions, the clutter and the noise.

        Returns:
            ``(train, test)``; the test canvases use only held-out digits.
        """
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        data = load_digits()
        images = data.images.astype(np.float32)
        train_idx, test_idx = train_test_split(
            np.arange(len(images)),
            test_size=self.test_digits,
            stratify=data.target,
            random_state=seed,
        )
        # One generator per split: the test canvases do not change when n_train does.
        rngs = [np.random.default_rng([seed, k]) for k in (0, 1)]
        knobs: dict[str, Any] = {
            "canvas_size": self.canvas_size,
            "clutter": self.clutter,
            "fragment_size": self.fragment_size,
            "noise": self.noise,
        }
        train = draw_canvases(
            images[train_idx], data.target[train_idx], self.n_train, rngs[0], **knobs
        )
        test = draw_canvases(images[test_idx], data.target[test_idx], self.n_test, rngs[1], **knobs)
        return train, test

    def load(self, seed: int) -> Arrays:
        train, test = self.generate(seed)
        return Arrays(
            x=train.canvas,
            y=train.label,
            class_names=[str(d) for d in range(10)],
            x_test=test.canvas,
            y_test=test.label,
        )
