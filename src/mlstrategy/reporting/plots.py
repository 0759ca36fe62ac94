"""The report's figures: confusion matrices, the cost curve, the hardest dev examples, and the
learning curve.

The *cost curve* is train and dev cost per epoch of one training run; the *learning curve* is
training and dev error against the training-set size ``m`` over several runs (the
``learning-curve`` verb, *Machine Learning Yearning* ch. 28-32).

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``, rendered by Agg),
never through pyplot's global state, so they work headless and are not kept alive by pyplot.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mlstrategy.evaluation.learning_curve import CurvePoint
from mlstrategy.io import write_bytes_atomic


def confusion_matrix_figure(
    matrices: dict[str, Sequence[Sequence[int]]], class_names: Sequence[str]
) -> Figure:
    """One confusion matrix per split, side by side (rows: true class, columns: predicted).

    Args:
        matrices: ``{split: confusion matrix}`` (counts, ``[true][predicted]``).
        class_names: One name per class.

    Example:
        >>> fig = confusion_matrix_figure({"dev": [[5, 1], [0, 4]]}, ["no", "yes"])
        >>> len(fig.axes)
        1
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    k = len(class_names)
    size = min(2.0 + 0.45 * k, 7.0)
    fig = Figure(figsize=(size * len(matrices), size + 0.4), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (split, cm) in zip(axes, matrices.items(), strict=True):
        display = ConfusionMatrixDisplay(np.asarray(cm), display_labels=list(class_names))
        display.plot(ax=ax, colorbar=False, include_values=k <= 12, xticks_rotation="vertical")
        errors = int(np.asarray(cm).sum() - np.trace(np.asarray(cm)))
        ax.set_title(f"{split} ({errors} errors)")
    return fig


def cost_curve_figure(history: Sequence[dict[str, float]]) -> Figure:
    """Train and dev cost per epoch on one chart: the course's picture of bias and variance.

    Args:
        history: One dict per epoch with ``epoch``, ``cost/train`` and (when validated)
            ``cost/dev``, as kept by ``SupervisedModule.cost_curve``.

    Example:
        >>> h = [{"epoch": 0, "cost/train": 0.7, "cost/dev": 0.69},
        ...      {"epoch": 1, "cost/train": 0.5, "cost/dev": 0.55}]
        >>> [line.get_label() for line in cost_curve_figure(h).axes[0].get_lines()]
        ['train cost', 'dev cost', 'lowest dev cost (epoch 1)']
    """
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    for key, label in (("cost/train", "train cost"), ("cost/dev", "dev cost")):
        points = [(h["epoch"], h[key]) for h in history if key in h]
        if points:
            epochs, costs = zip(*points, strict=True)
            ax.plot(epochs, costs, label=label, marker="." if len(points) < 30 else None)
    dev = [(h["cost/dev"], h["epoch"]) for h in history if "cost/dev" in h]
    if dev:
        best = min(dev)[1]  # the epoch best.ckpt keeps (lowest dev cost)
        ax.axvline(best, color="gray", linestyle=":", label=f"lowest dev cost (epoch {best:g})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost J")
    ax.set_title("cost per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def learning_curve_figure(points: Sequence[CurvePoint], human_error: float | None = None) -> Figure:
    """Training and dev error against the number of training examples ``m`` (log scale).

    Args:
        points: The curve, smallest ``m`` first, from the ``learning-curve`` verb's runs.
        human_error: The desired (human-level) error, drawn as a dashed line; None: not drawn.

    Example:
        >>> pts = [CurvePoint(0.5, 50, 0.0, 0.3), CurvePoint(1.0, 100, 0.01, 0.2)]
        >>> [ln.get_label() for ln in learning_curve_figure(pts, 0.02).axes[0].get_lines()]
        ['training error', 'dev error', 'human-level error']
    """
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    m = [p.m for p in points]
    ax.plot(m, [p.train_error for p in points], marker="o", label="training error")
    ax.plot(m, [p.dev_error for p in points], marker="o", label="dev error")
    if human_error is not None:
        ax.axhline(human_error, color="gray", linestyle="--", label="human-level error")
    ax.set_xscale("log")
    ax.set_xlabel("training examples m")
    ax.set_ylabel("error")
    ax.set_title("learning curve")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def examples_figure(x: np.ndarray, captions: Sequence[str], columns: int = 5) -> Figure | None:
    """Examples drawn as images (``(C, H, W)``) or signals (``(C, L)``), one caption each.

    Args:
        x: Raw (unnormalized) examples, shape ``(n, C, H, W)`` or ``(n, C, L)``.
        captions: One caption per example.
        columns: Examples per row.

    Returns:
        The figure, or None when the examples are flat feature vectors (nothing to draw).

    Example:
        >>> fig = examples_figure(np.zeros((3, 1, 8, 8)), ["a", "b", "c"])
        >>> len(fig.axes)
        3
        >>> examples_figure(np.zeros((3, 30)), ["a", "b", "c"]) is None
        True
    """
    if x.ndim not in (3, 4) or len(x) == 0:
        return None
    rows = math.ceil(len(x) / columns)
    cols = min(columns, len(x))
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, example, caption in zip(axes, x, captions, strict=False):
        if x.ndim == 4:
            image: Any = example[0] if example.shape[0] == 1 else np.moveaxis(example, 0, -1)
            if image.ndim == 3:  # colour: scale to [0, 1] for imshow
                low, high = float(image.min()), float(image.max())
                image = (image - low) / (high - low) if high > low else image * 0
            ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            for channel in example:
                ax.plot(channel)
            ax.set_yticks([])
        ax.set_title(caption, fontsize=8)
    for ax in axes[len(x) :]:
        ax.set_axis_off()
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG (atomically: a reader never sees half a file) and return the path.

    Example:
        >>> import tempfile
        >>> fig = cost_curve_figure([{"epoch": 0, "cost/train": 1.0}])
        >>> save_figure(fig, Path(tempfile.mkdtemp()) / "curve.png").read_bytes()[:4]
        b'\\x89PNG'
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_bytes_atomic(path, buffer.getvalue())
    return path
