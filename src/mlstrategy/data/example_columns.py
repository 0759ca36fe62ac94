"""Per-example columns of a user's file: the labels, and the optional weight and group.

:class:`~mlstrategy.data.ArrayFile` reads them; :func:`split_columns` gives each split its
rows of the weight and group columns, which the scorer reads to compute ``weighted_error``
and the per-group errors (:mod:`mlstrategy.metrics.weighted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def encode_labels(y: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """Map labels to ``0..K-1``: integer labels are kept, strings become sorted classes."""
    y = np.asarray(y).reshape(-1)
    if len(y) == 0:
        raise ValueError(f"{path}: there are no labels (0 examples).")
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"{path}: every label is {y[0].item()!r}, so there is one class; a classifier needs "
            "examples of at least 2 classes. Is `target` the label column?"
        )
    if y.dtype.kind in "US":  # strings from a CSV: numeric if they all parse
        try:
            y = y.astype(np.float64)
        except ValueError:
            names = sorted(set(y.tolist()))
            if "" in names:
                raise ValueError(
                    f"{path}: some labels are empty; every row needs a label."
                ) from None
            return np.searchsorted(names, y).astype(np.int64), names
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        raise ValueError(f"{path}: labels are {y.dtype}; give integers 0..K-1 or strings.")
    y = y.astype(np.float64)
    if np.isnan(y).any():
        raise ValueError(f"{path}: {int(np.isnan(y).sum())} labels are missing (NaN or empty).")
    if (y != np.round(y)).any() or (y < 0).any() or np.isinf(y).any():
        bad = y[(y != np.round(y)) | (y < 0) | np.isinf(y)][:3].tolist()
        raise ValueError(
            f"{path}: labels out of range, e.g. {bad}. Class labels must be integers 0..K-1 "
            "(or strings, mapped to classes in sorted order)."
        )
    top = int(y.max())
    if top >= len(y):
        raise ValueError(
            f"{path}: the largest label is {top} but there are only {len(y)} examples, so most "
            f"of the {top + 1} classes 0..{top} have none. Class labels must be 0..K-1; is "
            "`target` really the label column (not an id)?"
        )
    if not (y == 0).any():
        raise ValueError(
            f"{path}: labels run from {int(y.min())} to {top} and none is 0; class labels must "
            "be 0..K-1. Subtract 1 if they count from 1, or give them as strings."
        )
    y_int = y.astype(np.int64)
    return y_int, [str(k) for k in range(top + 1)]


def example_weights(values: np.ndarray, path: Path, column: str) -> np.ndarray:
    """The weight column as float64, refusing empty, non-numeric, negative or non-finite
    weights and a column whose weights are all 0, each with the row and the fix.

    Example:
        >>> example_weights(np.array(["1", "2.5"]), Path("d.csv"), "w").tolist()
        [1.0, 2.5]
    """
    where = f"{path}: the weight column {column!r}"
    try:
        w = np.asarray(values).reshape(-1).astype(np.float64)
    except ValueError:
        raise ValueError(
            f"{where} holds a cell that is not a number (or is empty); every example needs a "
            "weight >= 0 (1 = counts once, 10 = counts ten times)."
        ) from None
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise ValueError(
            f"{where}: example {int(bad[0])} (counting from 0) has the weight {w[bad[0]]}; "
            "weights must be finite and >= 0 (0 leaves the example out of the weighted error). "
            "Fix or drop those rows."
        )
    if not (w > 0).any():
        raise ValueError(f"{where}: every weight is 0, so no example counts; give some > 0.")
    return w


def encode_groups(values: np.ndarray, path: Path, column: str) -> tuple[np.ndarray, list[str]]:
    """Group codes ``0..G-1`` (groups in sorted order of their names) and the names.

    Example:
        >>> encode_groups(np.array(["us", "fr", "us"]), Path("d.csv"), "country")
        (array([1, 0, 1]), ['fr', 'us'])
    """
    text = np.asarray([str(v).strip() for v in np.asarray(values).reshape(-1)])
    if (text == "").any():
        row = int(np.flatnonzero(text == "")[0])
        raise ValueError(
            f"{path}: the group column {column!r} is empty for example {row} (counting from "
            "0); every example needs a group. Fill it in (e.g. 'unknown') or drop the row."
        )
    names = sorted(set(text.tolist()))
    return np.searchsorted(names, text).astype(np.int64), names


def split_columns(
    columns: Mapping[str, np.ndarray | None], index: Mapping[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Each split's rows of the per-example columns that are given: ``{split: {name: rows}}``.

    Example:
        >>> index = {"train": np.array([2, 0]), "dev": np.array([1])}
        >>> split_columns({"weight": np.array([1.0, 2.0, 3.0]), "group": None}, index)
        {'train': {'weight': array([3., 1.])}, 'dev': {'weight': array([2.])}}
    """
    given = {name: values for name, values in columns.items() if values is not None}
    return {split: {name: v[rows] for name, v in given.items()} for split, rows in index.items()}
