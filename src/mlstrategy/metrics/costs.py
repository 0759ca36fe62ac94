"""What mistakes cost: ``evaluation.class_costs`` as a cost matrix, and the weighted error.

Course 3, week 1 ("When to change dev/test sets and metrics"): an error that counts some
mistakes more than others, e.g. a pornographic image shown as a cat::

    weighted_error = sum_i w_i cost[y_i, yhat_i] / sum_i w_i

over the examples ``i`` of a split, with ``w_i`` the example's weight (1 when the data has no
weight column) and ``cost`` a matrix indexed ``[true class, predicted class]``: by default 0
on the diagonal and 1 off it, so that ``weighted_error`` is the weighted error rate and,
without weights, the plain error rate. NumPy only (no torch): the settings check costs here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

COST_SHAPES = (
    "class_costs takes one of three shapes: {true: [c_0, ..., c_K-1]} (a mistake on an "
    "example of true class k costs c_k), {predicted: [c_0, ..., c_K-1]} (predicting class k "
    "wrongly costs c_k), or a K x K matrix [[...], ...] of costs indexed [true][predicted] "
    "(rows true classes, columns predictions; the diagonal, a right answer, is usually 0), "
    "all in the data's class order"
)
ClassCosts = dict[str, list[float]] | list[list[float]]


def check_class_costs(class_costs: Any, where: str = "evaluation.class_costs") -> None:
    """Refuse a ``class_costs`` that is not one of the accepted shapes, or holds a negative or
    non-finite cost (the number of classes is checked later, by :func:`cost_matrix`).

    Example:
        >>> check_class_costs({"true": [1, 10]})
        >>> check_class_costs({"true": [1, -1]})
        Traceback (most recent call last):
        ...
        ValueError: evaluation.class_costs holds the cost -1.0; costs must be finite and >= 0 \
(0: that mistake is free). Make every cost a number >= 0.
    """
    if isinstance(class_costs, dict):
        if len(class_costs) != 1 or next(iter(class_costs)) not in ("true", "predicted"):
            raise ValueError(
                f"{where}={class_costs!r} has the keys {sorted(class_costs)}; a mapping must have "
                f"exactly one key, true or predicted. {COST_SHAPES}."
            )
        values = np.asarray(next(iter(class_costs.values())), dtype=float)
        if values.ndim != 1:
            raise ValueError(
                f"{where}: {next(iter(class_costs))} needs one cost per class, a flat list; "
                f"got shape {values.shape}. {COST_SHAPES}."
            )
    else:
        try:
            values = np.asarray(class_costs, dtype=float)
        except (TypeError, ValueError):
            values = np.zeros((0,))
        if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] < 2:
            raise ValueError(f"{where}={class_costs!r} is not a square cost matrix. {COST_SHAPES}.")
    bad = values[~np.isfinite(values) | (values < 0)]
    if bad.size:
        raise ValueError(
            f"{where} holds the cost {float(bad[0])}; costs must be finite and >= 0 (0: that "
            "mistake is free). Make every cost a number >= 0."
        )


def cost_matrix(
    class_costs: ClassCosts | None, num_classes: int, where: str = "evaluation.class_costs"
) -> np.ndarray:
    """The ``(K, K)`` cost matrix, indexed ``[true, predicted]``, that ``class_costs`` gives.

    Args:
        class_costs: None (0-1 cost: every mistake costs 1), ``{"true": [...]}`` (the cost of
            any mistake on an example of that true class), ``{"predicted": [...]}`` (the cost of
            wrongly predicting that class), or a full ``K x K`` matrix. Right answers cost 0 in
            the first two shapes; a full matrix may give them a cost too.
        num_classes: ``K``, the data's number of classes.
        where: How messages name the setting.

    Raises:
        ValueError: a shape that is not one of those, a size other than ``K``, or a negative
            or non-finite cost.

    Example:
        >>> cost_matrix({"true": [1, 10]}, 2).tolist()
        [[0.0, 1.0], [10.0, 0.0]]
        >>> cost_matrix({"predicted": [1, 10, 5]}, 3)[0].tolist()
        [0.0, 10.0, 5.0]
    """
    off = 1.0 - np.eye(num_classes)
    if class_costs is None:
        return off
    check_class_costs(class_costs, where)
    values = next(iter(class_costs.values())) if isinstance(class_costs, dict) else class_costs
    costs = np.asarray(values, dtype=float)
    size = len(costs)
    if size != num_classes:
        raise ValueError(
            f"{where} gives {size} costs per axis, but the data has {num_classes} classes. Give "
            f"one cost per class, in the data's class order (0..{num_classes - 1}). "
            f"{COST_SHAPES}."
        )
    if isinstance(class_costs, dict):  # one cost per class; right answers cost 0
        return off * (costs[:, None] if "true" in class_costs else costs[None, :])
    return costs


def weighted_error(
    y: Sequence[int] | np.ndarray,
    yhat: Sequence[int] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    costs: np.ndarray | None = None,
) -> float:
    """``sum_i w_i cost[y_i, yhat_i] / sum_i w_i`` over one set of predictions (NumPy).

    Args:
        y: True classes.
        yhat: Predicted classes.
        weights: One weight ``w_i >= 0`` per example; default 1 each.
        costs: The ``[true, predicted]`` cost matrix; default the 0-1 cost.

    Example:
        >>> weighted_error([0, 1, 1], [0, 0, 1], weights=[1, 2, 1])
        0.5
        >>> weighted_error([0, 1, 1], [0, 0, 1], costs=cost_matrix({"true": [1, 10]}, 2))
        3.3333333333333335
    """
    y, yhat = np.asarray(y, dtype=np.int64), np.asarray(yhat, dtype=np.int64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    if costs is None:
        costs = 1.0 - np.eye(int(max(y.max(), yhat.max())) + 1)
    return float((w * costs[y, yhat]).sum() / w.sum())
