"""The report's figures: confusion matrices, the cost curve, the hardest dev examples, and the
learning curve.

The *cost curve* is train and dev cost per epoch of one training run, beside the training cost
of every step with its exponentially weighted average; the *learning curve* is
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
from matplotlib.layout_engine import ConstrainedLayoutEngine

from mlstrategy.evaluation.learning_curve import CurvePoint
from mlstrategy.io import write_bytes_atomic

_COUNTS_UP_TO = 10  # classes; more, and the cells show row shares by colour alone
_NAMES_UP_TO = 30  # classes; more, and every n-th class is named


def confusion_matrix_figure(
    matrices: dict[str, Sequence[Sequence[int]]], class_names: Sequence[str]
) -> Figure:
    """One confusion matrix per split (rows: true class, columns: predicted), sized to be
    read at TensorBoard's default image size: two panels a row, large type, the count in
    each cell and the class names on the axes.

    Up to 10 classes each cell holds its count, coloured by its share of the true class's
    examples (the row); with more, the colour alone shows the share (the diagonal is each
    class's recall), and beyond 30 classes every n-th class is named.

    Args:
        matrices: ``{split: confusion matrix}`` (counts, ``[true][predicted]``).
        class_names: One name per class.

    Example:
        >>> fig = confusion_matrix_figure({"dev": [[5, 1], [0, 4]]}, ["no", "yes"])
        >>> ax = fig.axes[0]
        >>> ax.get_title(), [t.get_text() for t in ax.texts]
        ('dev: 1 error in 10', ['5', '1', '0', '4'])
    """
    k = len(class_names)
    cols = 1 if len(matrices) == 1 else 2
    rows = math.ceil(len(matrices) / cols)
    panel = min(3.2 + 0.25 * max(k - 4, 0), 7.0)  # inches; 10 classes: 4.7
    # Constrained layout with thin pads: the pixels go to the cells and their type.
    tight = ConstrainedLayoutEngine(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.04)
    fig = Figure(figsize=(panel * cols + 0.3, panel * rows), layout=tight)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, (ax, (split, cm)) in enumerate(zip(axes, matrices.items(), strict=False)):
        _confusion_axes(ax, np.asarray(cm, dtype=np.int64), class_names, split)
        if i % cols == 0:
            ax.set_ylabel("true", fontsize=14)
        if i >= len(matrices) - cols:
            ax.set_xlabel("predicted", fontsize=14)
    for ax in axes[len(matrices) :]:
        ax.set_axis_off()
    return fig


def _confusion_axes(ax: Any, cm: np.ndarray, names: Sequence[str], split: str) -> None:
    """One split's matrix: cells coloured by their share of the row, counts written in."""
    k = len(names)
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    # Counts: the colour is the row's share on a 0-1 scale. Many classes: the scale spans the
    # shares there are, so small confusions still show.
    top = 1.0 if k <= _COUNTS_UP_TO else max(float(share.max()), 1e-9)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=top)
    if k <= _COUNTS_UP_TO:
        size = 20 if k <= 3 else 15 if k <= 6 else 11
        for (t, p), count in np.ndenumerate(cm):
            color = "white" if share[t, p] > 0.5 else "black"
            ax.text(p, t, str(count), ha="center", va="center", fontsize=size, color=color)
    step = 1 if k <= _NAMES_UP_TO else math.ceil(k / _NAMES_UP_TO)
    ticks = list(range(0, k, step))
    labels = [str(names[i]) for i in ticks]
    font = 14 if k <= 4 else 11 if k <= _COUNTS_UP_TO else 8
    horizontal = max((len(n) for n in labels), default=0) * k <= 24
    ax.set_xticks(
        ticks,
        labels,
        fontsize=font,
        rotation=0 if horizontal else 45,
        ha="center" if horizontal else "right",
        rotation_mode="anchor",
    )
    ax.set_yticks(ticks, labels, fontsize=font)
    errors, n = int(cm.sum() - np.trace(cm)), int(cm.sum())
    shares = "" if k <= _COUNTS_UP_TO else ", colour: share of the row"
    ax.set_title(f"{split}: {errors} error{'' if errors == 1 else 's'} in {n}{shares}", fontsize=16)


def exponentially_weighted_average(values: Sequence[float], beta: float) -> np.ndarray:
    """The course's exponentially weighted average with bias correction.

    ``v_0 = 0``, ``v_t = beta v_(t-1) + (1 - beta) theta_t``, and the corrected value
    ``v_t / (1 - beta^t)``, which removes the pull towards ``v_0 = 0`` over the first
    ``~1 / (1 - beta)`` steps. The recursion runs on the uncorrected ``v``; the correction
    divides only what is returned (feeding corrected values back would over-weight every
    step after the first).

    Args:
        values: ``theta_1 .. theta_T`` (e.g. the training cost of every step).
        beta: In [0, 1); 0 returns the values unchanged.

    Example:
        >>> exponentially_weighted_average([1.0, 1.0, 1.0], 0.9).round(6).tolist()
        [1.0, 1.0, 1.0]
        >>> exponentially_weighted_average([2.0, 4.0], 0.5).round(4).tolist()  # (1, 2.5)/(.5, .75)
        [2.0, 3.3333]
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta={beta} must be in [0, 1) (0.9 averages ~10 steps, 0.98 ~50).")
    theta = np.asarray(values, dtype=np.float64)
    v = np.empty_like(theta)
    running = 0.0
    for t, value in enumerate(theta):
        running = beta * running + (1.0 - beta) * value
        v[t] = running
    return v / (1.0 - beta ** np.arange(1, len(theta) + 1))


def cost_curve_figure(history: Sequence[dict[str, Any]], beta: float = 0.98) -> Figure:
    """Train and dev cost per epoch on one chart: the course's picture of bias and variance;
    beside it, when the epochs kept their ``step_costs``, the training cost of every step with
    its bias-corrected exponentially weighted average (:func:`exponentially_weighted_average`).

    Args:
        history: One dict per epoch with ``epoch``, ``cost/train``, (when validated)
            ``cost/dev`` and ``step_costs``, as kept by ``SupervisedModule.cost_curve``.
        beta: The smoothing's ``beta`` (the recipe's ``evaluation.smoothing_beta``).

    Example:
        >>> h = [{"epoch": 0, "cost/train": 0.7, "cost/dev": 0.69},
        ...      {"epoch": 1, "cost/train": 0.5, "cost/dev": 0.55}]
        >>> [line.get_label() for line in cost_curve_figure(h).axes[0].get_lines()]
        ['train cost', 'dev cost', 'lowest dev cost (epoch 1)']
        >>> h[0]["step_costs"], h[1]["step_costs"] = [0.8, 0.6], [0.55, 0.45]
        >>> [line.get_label() for line in cost_curve_figure(h, 0.9).axes[1].get_lines()]
        ['cost of each step', 'smoothed (EWA, beta=0.9, bias-corrected)']
    """
    steps = [float(c) for h in history for c in h.get("step_costs") or []]
    fig = Figure(figsize=(11.0 if steps else 6.0, 4.0), layout="constrained")
    ax, *step_ax = fig.subplots(1, 2 if steps else 1, squeeze=False)[0]
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
    if step_ax:
        _step_cost_axes(step_ax[0], steps, beta)
    return fig


def _step_cost_axes(ax: Any, steps: Sequence[float], beta: float) -> None:
    """The raw per-step training cost, faint, and its smoothed curve on top."""
    t = np.arange(1, len(steps) + 1)
    ax.plot(t, steps, color="tab:blue", alpha=0.3, linewidth=0.8, label="cost of each step")
    if beta > 0:
        smooth = exponentially_weighted_average(steps, beta)
        label = f"smoothed (EWA, beta={beta:g}, bias-corrected)"
        ax.plot(t, smooth, color="tab:blue", linewidth=2.0, label=label)
    ax.set_xlabel("step (mini-batch)")
    ax.set_ylabel("training cost J (no L2 term)")
    ax.set_title(f"training cost per step ({len(steps):,} steps)")
    ax.grid(alpha=0.3)
    ax.legend()


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
    metric = points[0].metric if points else "error"
    name = "error" if metric == "error" else metric.upper()  # a regressor's: RMSE, MSE, MAE
    ax.plot(m, [p.train_error for p in points], marker="o", label=f"training {name}")
    ax.plot(m, [p.dev_error for p in points], marker="o", label=f"dev {name}")
    if human_error is not None:
        ax.axhline(human_error, color="gray", linestyle="--", label="human-level error")
    ax.set_xscale("log")
    ax.set_xlabel("training examples m")
    ax.set_ylabel(name if metric == "error" else f"{name} (target's units)")
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
