"""The contact sheet of misclassified dev examples: a grid to look at before tagging them.

Each cell shows one example as the model saw it before normalization (an image, or a signal
such as MNIST-1D drawn as a line plot), titled with its dev index, its true class and the
predicted one, the probability the model gave the true class and, for an image file, the
file. Cells are large (about
250 pixels) so a person can judge each example by eye, as the course's error analysis asks.

Built with matplotlib's object API (no pyplot state), like the other figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

CELL_INCHES = 2.5  # 250 px per example at the 100 dpi figures are saved with
MAX_COLUMNS = 6


@dataclass(frozen=True)
class SheetCell:
    """What one cell is titled with.

    Attributes:
        index: The example's position in the dev split.
        true: Its true class.
        predicted: The predicted class.
        p_true: The probability the model gave the true class.
        name: Where the example came from (an image file), to find it again; None for
            in-memory data.
    """

    index: int
    true: str
    predicted: str
    p_true: float
    name: str | None = None

    def caption(self) -> str:
        """``#index`` and ``true -> predicted``, then ``p(true)``, then the name if any (its
        last 30 characters).

        Example:
            >>> SheetCell(12, "3", "8", 0.041).caption()
            '#12  true 3 -> 8\\np(true) = 0.04'
            >>> SheetCell(0, "cat", "dog", 0.5, "cat/0042.jpg").caption().splitlines()[-1]
            'cat/0042.jpg'
        """
        text = f"#{self.index}  true {self.true} -> {self.predicted}\np(true) = {self.p_true:.2f}"
        if self.name:
            text += "\n" + (self.name if len(self.name) <= 30 else "..." + self.name[-27:])
        return text


def contact_sheet_figure(
    x: np.ndarray, cells: Sequence[SheetCell], title: str = "", columns: int = MAX_COLUMNS
) -> Figure | None:
    """A grid of examples with their true and predicted labels.

    Args:
        x: Raw examples in the order of ``cells``: images ``(n, C, H, W)`` (1 or 3 channels)
            or signals ``(n, C, L)`` (each channel one line).
        cells: One per example.
        title: The figure's title.
        columns: Examples per row (fewer when there are fewer examples).

    Returns:
        The figure, or None when there is nothing to draw (no examples, or flat feature
        vectors, which have no picture).

    Example:
        >>> cells = [SheetCell(i, "1", "7", 0.1) for i in range(3)]
        >>> fig = contact_sheet_figure(np.zeros((3, 1, 8, 8)), cells)
        >>> len(fig.axes), fig.axes[0].get_title().splitlines()[0]
        (3, '#0  true 1 -> 7')
        >>> contact_sheet_figure(np.zeros((3, 30)), cells) is None
        True
    """
    x = np.asarray(x)
    if x.ndim not in (3, 4) or len(x) == 0:
        return None
    if len(x) != len(cells):
        raise ValueError(f"{len(x)} examples but {len(cells)} captions; give one per example.")
    cols = min(columns, len(x))
    rows = math.ceil(len(x) / cols)
    fig = Figure(
        figsize=(CELL_INCHES * cols, CELL_INCHES * 1.15 * rows + 0.5), layout="constrained"
    )
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, example, cell in zip(axes, x, cells, strict=False):
        if x.ndim == 4:
            _draw_image(ax, example)
        else:
            _draw_signal(ax, example)
        ax.set_title(cell.caption(), fontsize=10, color="firebrick")
    for ax in axes[len(x) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def _draw_image(ax: Any, example: np.ndarray) -> None:
    """One ``(C, H, W)`` image: grey (dark ink on white) or colour scaled to [0, 1]."""
    if example.shape[0] == 1:
        ax.imshow(example[0], cmap="gray_r", interpolation="nearest")
    else:
        image = np.moveaxis(example[:3], 0, -1).astype(np.float64)
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else image * 0
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_signal(ax: Any, example: np.ndarray) -> None:
    """One ``(C, L)`` signal: a line per channel, against the position."""
    for channel in example:
        ax.plot(np.arange(len(channel)), channel, linewidth=1.5)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
