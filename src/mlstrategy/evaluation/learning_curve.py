"""Learning curves over training-set size: what more data would buy.

*Machine Learning Yearning* ch. 28-32: plot dev error and training error against the number
of training examples ``m``. Training error rises with ``m`` (more to fit), dev error falls.
When training error at full size is already above the desired (human-level) error, more data
cannot bring dev error down to it: reduce bias first. When dev error is still falling and sits
well above training error, more data should help.

This module runs no training and draws nothing: the ``learning-curve`` verb trains the runs,
and :func:`mlstrategy.reporting.plots.learning_curve_figure` draws the curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CurvePoint:
    """One training run on a fraction of the train split.

    Attributes:
        fraction: Fraction of the train split trained on.
        m: Number of training examples.
        train_error: Error on those ``m`` examples (eval mode).
        dev_error: Error on the whole dev split.
        run_dir: The run folder of that training run.
        metric: What the errors are: ``error`` (error rates) or a regressor's ``rmse``,
            ``mse`` or ``mae`` (in the target's units).
    """

    fraction: float
    m: int
    train_error: float
    dev_error: float
    run_dir: str = ""
    metric: str = "error"


def format_error(value: float, metric: str = "error") -> str:
    """An error as the curve reports it: a percentage, or a regression error in its units.

    Example:
        >>> format_error(0.1234), format_error(0.2085, "rmse")
        ('12.34%', '0.2085 RMSE')
    """
    return f"{100 * value:.2f}%" if metric == "error" else f"{value:.4g} {metric.upper()}"


def parse_sizes(text: str) -> list[float]:
    """``"0.1,0.25,0.5,1.0"`` -> sorted, distinct fractions in (0, 1].

    Raises:
        ValueError: a value that is not a number in (0, 1], or fewer than two sizes.

    Example:
        >>> parse_sizes("0.5, 0.1,1")
        [0.1, 0.5, 1.0]
    """
    try:
        sizes = sorted({float(s) for s in text.split(",") if s.strip()})
    except ValueError:
        sizes = []
    if len(sizes) < 2 or not all(0 < s <= 1 for s in sizes):
        raise ValueError(
            f"--sizes {text!r}: give two or more fractions of the train split in (0, 1], "
            "separated by commas, e.g. --sizes 0.1,0.25,0.5,1.0."
        )
    return sizes


def nested_subset(y: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a stratified subset of ``fraction`` of the examples, nested across fractions.

    Each class is shuffled once (by ``seed``) and examples are ordered by their relative
    position within their class, so any prefix keeps the class proportions and a smaller
    subset is always inside a larger one: the curve changes only by the examples added.

    Args:
        y: Labels of the train split.
        fraction: Fraction to keep, in (0, 1].
        seed: Seed of the shuffle.

    Returns:
        Sorted indices, ``round(fraction * len(y))`` of them (at least one).

    Example:
        >>> y = np.array([0] * 8 + [1] * 4)
        >>> small, big = nested_subset(y, 0.25), nested_subset(y, 0.5)
        >>> np.bincount(y[small]).tolist(), set(small) <= set(big)
        ([2, 1], True)
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction} must be in (0, 1].")
    rng = np.random.default_rng(seed)
    rank = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    order = np.lexsort((rng.random(len(y)), rank))  # ties broken at random
    k = max(1, round(fraction * len(y)))
    return np.sort(order[:k])


def what_more_data_buys(
    points: Sequence[CurvePoint], human_error: float | None = None
) -> dict[str, Any]:
    """Read a learning curve the course's way.

    Args:
        points: The curve, smallest ``m`` first (at least two points).
        human_error: The desired error (human-level); None: 0.

    Returns:
        ``{"verdict": "high_bias" | "more_data_helps" | "flat", "message": str,
        "dev_drop": dev error fall over the last step, "gap": dev - train at full size}``.

    Example:
        >>> pts = [CurvePoint(0.5, 50, 0.00, 0.30), CurvePoint(1.0, 100, 0.01, 0.20)]
        >>> what_more_data_buys(pts, human_error=0.02)["verdict"]
        'more_data_helps'
        >>> pts = [CurvePoint(0.5, 50, 0.28, 0.33), CurvePoint(1.0, 100, 0.30, 0.32)]
        >>> what_more_data_buys(pts, human_error=0.05)["verdict"]
        'high_bias'
    """
    if len(points) < 2:
        raise ValueError("A learning curve needs at least two training-set sizes.")
    prev, last = points[-2], points[-1]
    desired = human_error if human_error is not None else 0.0
    dev_drop = prev.dev_error - last.dev_error
    gap = last.dev_error - last.train_error
    bias = last.train_error - desired
    sizes = f"m={prev.m} to m={last.m}"
    # What counts as a real gap: 1 point of error rate; for a regression error (in the
    # target's units) 2% of the dev error.
    small = 0.01 if last.metric == "error" else 0.02 * abs(last.dev_error)

    def amount(value: float) -> str:  # a difference: points of error rate, or the units
        return f"{100 * value:.1f} points" if last.metric == "error" else f"{value:.4g}"

    if bias > max(gap, 0.0) and bias > small:
        verdict = "high_bias"
        message = (
            f"More data alone will not get dev error to {format_error(desired, last.metric)}: "
            f"training error ({format_error(last.train_error, last.metric)}) is already "
            f"{amount(bias)} above it and only rises with m. Reduce avoidable bias first "
            "(bigger network, train longer)."
        )
    elif dev_drop > small / 2 and gap > small:
        verdict = "more_data_helps"
        message = (
            f"More data should help: dev error fell {amount(dev_drop)} from {sizes} and is still "
            f"{amount(gap)} above training error (variance). Doubling m again is the next thing "
            "to try, or regularize if data is expensive."
        )
    else:
        verdict = "flat"
        drop = f"{100 * -dev_drop:+.1f} points" if last.metric == "error" else f"{-dev_drop:+.4g}"
        message = (
            f"Dev error changed by {drop} from {sizes}: more data of this kind buys little. The "
            f"gap to training error is {amount(gap)}; work on the largest gap of the diagnosis "
            "instead."
        )
    return {"verdict": verdict, "message": message, "dev_drop": dev_drop, "gap": gap}


def curve_to_dict(points: Sequence[CurvePoint]) -> list[dict[str, Any]]:
    """The points as JSON-ready dicts."""
    return [asdict(p) for p in points]
