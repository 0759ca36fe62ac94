"""Missing labels: which are present, and means over the present ones only.

A multi-task example may lack some of its labels: ``-1`` marks a missing class label and
``NaN`` a missing real-valued one. The training cost and every score skip them; both find
them here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def present_mask(y: Tensor, class_column: bool) -> Tensor:
    """Which labels are present: ``y >= 0`` in a column of class labels (missing = ``-1``),
    finite in a column of real numbers (missing = ``NaN``).

    Args:
        y: Labels, any shape.
        class_column: True for class labels, False for real values (where ``-1`` is a value).

    Example:
        >>> present_mask(torch.tensor([1.0, -1.0, 0.0, float("nan")]), True).tolist()
        [True, False, True, False]
        >>> present_mask(torch.tensor([-1.5, float("nan")]), False).tolist()
        [True, False]
    """
    finite = torch.isfinite(y)
    return finite & (y >= 0) if class_column else finite


def masked_mean(values: Tensor, present: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over the present entries; 0 where none is present.

    ``torch.where`` routes a zero gradient to the missing entries, so they get exactly zero
    gradient; their values must still be finite (the callers replace missing targets before
    computing ``values``), because ``0 * inf`` would be ``NaN``.

    Args:
        values: Per-entry values, e.g. each example's cost.
        present: Which entries count, same shape as ``values``.
        dim: Average along this dimension only; None = over all entries.

    Example:
        >>> masked_mean(torch.tensor([1.0, 5.0, 3.0]), torch.tensor([True, False, True]))
        tensor(2.)
        >>> masked_mean(torch.tensor([1.0]), torch.tensor([False]))
        tensor(0.)
    """
    kept = torch.where(present, values, torch.zeros_like(values))
    if dim is None:
        return kept.sum() / present.sum().clamp(min=1)
    return kept.sum(dim) / present.sum(dim).clamp(min=1)
