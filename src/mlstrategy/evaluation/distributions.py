"""Do dev and test come from one distribution? Their labels and their feature means.

The course requires dev and test from the same distribution (the data you expect to get in the
future), or the team aims at one target and is scored on another. :func:`compare_distributions`
tests a single-task run's class counts (chi-square) and feature means (Welch's z, Bonferroni);
:func:`compare_task_distributions` does the same for a multi-task run, on each task's present
labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def compare_distributions(
    dev: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    alpha: float = 0.01,
    feature_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Test whether dev and test look like one distribution: labels and feature means.

    Labels: a chi-square test of homogeneity on the class counts. Features: Welch's z for the
    difference of every feature's mean, with a Bonferroni correction for the number of
    features (only with at least 30 examples in each split). A p-value under ``alpha`` is a
    warning: the course requires dev and test from the same distribution, or the team aims at
    one target and is scored on another.

    Args:
        dev: ``(x, y)`` of the dev split.
        test: ``(x, y)`` of the test split.
        num_classes: Number of classes.
        alpha: Significance level of the warning.
        feature_names: One name per feature, for the message (default: its index).

    Returns:
        ``{"dev_labels", "test_labels"`` (class proportions), ``"labels_p"``,
        ``"worst_feature"``, ``"worst_feature_z"``, ``"features_p"`` (Bonferroni),
        ``"differ"`` (bool), ``"message"``}; with ``feature_names``, ``"worst_feature_name"``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(400, 3)); y = np.arange(400) % 2
        >>> compare_distributions((x[:200], y[:200]), (x[200:], y[200:]), 2)["differ"]
        False
        >>> compare_distributions((x[:200], y[:200]), (x[200:] + 1, y[200:]), 2)["differ"]
        True
    """
    (x_dev, y_dev), (x_test, y_test) = dev, test
    labels_p = _labels_p(y_dev, y_test, num_classes)
    worst, worst_z, features_p = _feature_shift(x_dev, x_test)
    name = feature_names[worst] if feature_names else None
    consistent = f"labels p={labels_p:.2g}, features Bonferroni p={features_p:.2g}"
    parts = []
    if labels_p < alpha:
        parts.append(f"label proportions differ (chi-square p={labels_p:.2g})")
    if features_p < alpha:
        parts.append(_feature_part(name or str(worst), worst_z, features_p))
    out = {
        "dev_labels": _proportions(y_dev, num_classes),
        "test_labels": _proportions(y_test, num_classes),
        "labels_p": labels_p,
        "worst_feature": worst,
        "worst_feature_z": worst_z,
        "features_p": features_p,
        "differ": bool(parts),
        "message": _verdict(parts, consistent),
    }
    if name is not None:
        out["worst_feature_name"] = name
    return out


def compare_task_distributions(
    x_dev: np.ndarray,
    x_test: np.ndarray,
    labels: Mapping[str, tuple[np.ndarray, np.ndarray, int]],
    alpha: float = 0.01,
) -> dict[str, Any]:
    """:func:`compare_distributions` for a multi-task run: the feature means once, and the
    labels of each classification task on its present labels.

    Args:
        x_dev: Dev features.
        x_test: Test features.
        labels: ``{task: (dev labels, test labels, number of classes)}``, present labels only.
        alpha: Significance level of the warning.

    Returns:
        ``{"worst_feature", "worst_feature_z", "features_p", "tasks": {task: {"dev_labels",
        "test_labels", "labels_p"}}, "differ", "message"}``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(400, 3)); car = np.arange(400) % 2
        >>> out = compare_task_distributions(x[:200], x[200:], {"car": (car[:200], car[200:], 2)})
        >>> out["differ"], out["tasks"]["car"]["dev_labels"]
        (False, [0.5, 0.5])
    """
    worst, worst_z, features_p = _feature_shift(x_dev, x_test)
    tasks: dict[str, dict[str, Any]] = {}
    parts: list[str] = []
    for task, (y_dev, y_test, k) in labels.items():
        p = _labels_p(y_dev, y_test, k)
        tasks[task] = {
            "dev_labels": _proportions(y_dev, k),
            "test_labels": _proportions(y_test, k),
            "labels_p": p,
        }
        if p < alpha:
            parts.append(f"the labels of {task} differ (chi-square p={p:.2g})")
    if features_p < alpha:
        parts.append(_feature_part(str(worst), worst_z, features_p))
    consistent = f"features Bonferroni p={features_p:.2g}"
    if tasks:
        lowest = min(float(t["labels_p"]) for t in tasks.values())
        consistent = f"lowest labels p={lowest:.2g} over {len(tasks)} task(s), {consistent}"
    return {
        "worst_feature": worst,
        "worst_feature_z": worst_z,
        "features_p": features_p,
        "tasks": tasks,
        "differ": bool(parts),
        "message": _verdict(parts, consistent),
    }


def _labels_p(y_dev: np.ndarray, y_test: np.ndarray, num_classes: int) -> float:
    """The chi-square test of homogeneity of two splits' class counts (1 with one class)."""
    from scipy.stats import chi2_contingency

    counts = np.stack(
        [np.bincount(y_dev, minlength=num_classes), np.bincount(y_test, minlength=num_classes)]
    )
    counts = counts[:, counts.sum(axis=0) > 0]
    p = 1.0 if counts.shape[1] < 2 else float(chi2_contingency(counts).pvalue)
    return p if math.isfinite(p) else 1.0


def _feature_shift(x_dev: np.ndarray, x_test: np.ndarray) -> tuple[int, float, float]:
    """``(worst feature, its Welch z, Bonferroni p)`` of the difference of feature means."""
    from scipy.stats import norm

    a = x_dev.reshape(len(x_dev), -1).astype(np.float64)
    b = x_test.reshape(len(x_test), -1).astype(np.float64)
    # Welch's z needs enough examples for the normal approximation; with a handful of dev
    # examples a pixel that happens to be blank in all of them would look "different".
    if min(len(a), len(b)) < 30:
        z = np.zeros(a.shape[1])
    else:
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        diff = a.mean(axis=0) - b.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A constant feature is fine when equal in both, a certain difference otherwise.
            z = np.where(se > 0, np.abs(diff) / se, np.where(diff == 0, 0.0, np.inf))
    worst = int(np.argmax(z)) if z.size else 0
    worst_z = float(z[worst]) if z.size else 0.0
    return worst, worst_z, min(1.0, float(2 * norm.sf(worst_z)) * max(z.size, 1))


def _feature_part(name: str, z: float, p: float) -> str:
    return f"feature {name} has a different mean (z={z:.1f}, Bonferroni p={p:.2g})"


def _verdict(parts: Sequence[str], consistent: str) -> str:
    if parts:
        return (
            "Dev and test look like different distributions: " + "; ".join(parts) + ". Take "
            "dev and test from one distribution (the data you expect to get in the future), "
            "e.g. shuffle them together and split again."
        )
    return f"Dev and test are consistent with one distribution ({consistent})."


def _proportions(y: np.ndarray, num_classes: int) -> list[float]:
    n = max(len(y), 1)
    return [round(c / n, 4) for c in np.bincount(y, minlength=num_classes).tolist()]
