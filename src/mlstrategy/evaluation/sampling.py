"""How precisely a split measures an error rate, and the smallest difference in error between
two models that would be significant on a split its size.

An error rate ``e`` measured on ``n`` examples is a binomial proportion, so its standard error
is ``sqrt(e (1 - e) / n)``. Choosing between two models on one dev set asks a sharper question:
is the difference of their errors larger than sampling noise? *Machine Learning Yearning*
(ch. 6) puts it in numbers: a dev set of 10,000 examples detects an improvement of about 0.1%,
100 examples only differences of about 10%. :func:`detectable_difference` gives the figure for
the dev set at hand: the smallest difference that would be significant at 95% (two-sided
z-test), so a true difference of exactly that size is detected only about half the time (50%
power); surer detection needs a bigger difference or a bigger dev set. :func:`errors_differ`
is the test itself, and :func:`examples_needed` the dev size a target difference needs.

The test is the two-proportion z-test with the pooled error (two independent samples of
``n``); two models scored on the *same* dev set could use a paired test (McNemar's) on their
disagreements, which is more powerful, but needs both models' per-example predictions.

Example:
    >>> round(standard_error(0.05, 1_000), 4)
    0.0069
    >>> round(detectable_difference(0.001, 10_000), 4)  # MLY: 10,000 examples detect ~0.1%
    0.0011
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Z_95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1), e.g. 0.95.")
    if confidence == 0.95:
        return Z_95
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check(error: float, n: int) -> None:
    if not 0.0 <= error <= 1.0:
        raise ValueError(f"error={error} is not an error rate; give a fraction in [0, 1].")
    if n < 1:
        raise ValueError(f"n={n}: an error rate needs at least one example.")


def standard_error(error: float, n: int) -> float:
    """The binomial standard error of an error rate: ``sqrt(e (1 - e) / n)``.

    Example:
        >>> round(standard_error(0.1, 100), 6)
        0.03
    """
    _check(error, n)
    return math.sqrt(error * (1.0 - error) / n)


def detectable_difference(error: float, n: int, confidence: float = 0.95) -> float:
    """The smallest difference in error that would be significant on ``n`` examples at
    ``confidence`` (two-sided z-test); a true difference of this size is detected about half
    the time (50% power).

    It is the ``d`` at which the pooled two-proportion z-test between a model with error
    ``e`` and one with ``e + d``, each scored on ``n`` examples, just rejects "same error"::

        d = z sqrt(2 p (1 - p) / n),   p = e + d / 2     (solved for d, a quadratic)

    For ``d`` small against ``e`` it is the familiar half-width ``z sqrt(2 e (1 - e) / n)``
    (1.96 for 95%); unlike that form it stays honest at ``e = 0``, where one extra error
    is not a detectable difference.

    Args:
        error: The better model's error, e.g. the dev error of the run.
        n: Examples in the split.
        confidence: Two-sided confidence of the test.

    Example:
        >>> round(detectable_difference(0.05, 1_000), 4)
        0.0209
        >>> round(1.96 * math.sqrt(2 * 0.05 * 0.95 / 1_000), 4)  # the small-d form
        0.0191
        >>> round(detectable_difference(0.0, 100), 4)  # no error yet: ~z^2 / n
        0.0377
    """
    _check(error, n)
    z2 = _z(confidence) ** 2
    e = min(error, 1.0 - error)  # the test is symmetric in error and accuracy
    # n d^2 = 2 z^2 (e + d/2)(1 - e - d/2)  ->  a d^2 + b d + c = 0
    a = n + z2 / 2
    b = -z2 * (1 - 2 * e)
    c = -2 * z2 * e * (1 - e)
    d = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return min(d, 1.0 - e)


def errors_differ(
    error_a: float, error_b: float, n_a: int, n_b: int, confidence: float = 0.95
) -> bool:
    """Whether two error rates differ by more than sampling noise (pooled two-proportion
    z-test, two-sided).

    Example:
        >>> errors_differ(0.10, 0.12, 500, 500), errors_differ(0.10, 0.15, 2_000, 2_000)
        (False, True)
    """
    _check(error_a, n_a)
    _check(error_b, n_b)
    pooled = (error_a * n_a + error_b * n_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return False  # both 0 or both 1: nothing tells them apart
    return abs(error_a - error_b) / se > _z(confidence)


def examples_needed(difference: float, error: float, confidence: float = 0.95) -> int:
    """The dev-set size whose :func:`detectable_difference` at ``error`` is ``difference``.

    Example:
        >>> examples_needed(0.001, 0.001)  # MLY's 0.1% at a 0.1% error rate
        11508
        >>> detectable_difference(0.001, 11_508) <= 0.001
        True
    """
    if not 0.0 < difference <= 1.0:
        raise ValueError(f"difference={difference} must be in (0, 1], e.g. 0.01 for 1 point.")
    _check(error, 1)
    p = min(error, 1.0 - error) + difference / 2
    return math.ceil(2 * _z(confidence) ** 2 * p * (1 - p) / difference**2)


def split_sampling(
    splits: Mapping[str, Mapping[str, Any]], confidence: float = 0.95
) -> dict[str, dict[str, float | int]]:
    """Per split with an error rate: ``{"n", "error", "standard_error",
    "detectable_difference"}`` (the two as fractions, like the error).

    Example:
        >>> split_sampling({"dev": {"n": 100, "error": 0.1}, "y": {"n": 9, "error": None}})
        {'dev': {'n': 100, 'error': 0.1, 'standard_error': 0.03, 'detectable_difference': 0.098812}}
    """
    out: dict[str, dict[str, float | int]] = {}
    for split, row in splits.items():
        error, n = row.get("error"), row.get("n")
        if not isinstance(error, (int, float)) or not isinstance(n, int) or n < 1:
            continue
        out[split] = {
            "n": n,
            "error": float(error),
            "standard_error": round(standard_error(float(error), n), 6),
            "detectable_difference": round(detectable_difference(float(error), n, confidence), 6),
        }
    return out


def dev_size_note(sampling: Mapping[str, Mapping[str, float | int]]) -> str | None:
    """One sentence on what the dev set can decide, or None without a dev error.

    Example:
        >>> dev_size_note(split_sampling({"dev": {"n": 114, "error": 0.0088}}))[:60]
        'The dev set (n=114) measures error 0.88% with a standard err'
    """
    dev = sampling.get("dev")
    if not dev:
        return None
    n, error = int(dev["n"]), float(dev["error"])
    d = float(dev["detectable_difference"])
    return (
        f"The dev set (n={n:,}) measures error {100 * error:.2f}% with a standard error of "
        f"{100 * float(dev['standard_error']):.2f} points; the smallest difference in dev error "
        f"between two models that would be significant at 95% is {100 * d:.2f} points "
        f"(two-sided pooled two-proportion z-test; a true difference of that size is detected "
        f"only about half the time). Machine Learning Yearning: 10,000 examples detect about "
        f"0.1%; at this error rate that needs {examples_needed(0.001, error):,} examples."
    )


BOOTSTRAP_RESAMPLES = 1_000


def bootstrap_standard_errors(
    preds: Any, targets: Any, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict[str, float]:
    """The bootstrap standard error of a regressor's MSE, RMSE, MAE and R^2 on one split.

    A regression error has no binomial formula, so its sampling noise is measured by
    resampling: draw the split's ``n`` (prediction, target) pairs with replacement
    ``resamples`` times, score each draw, and take the standard deviation of the scores
    (Efron and Tibshirani, *An Introduction to the Bootstrap*, ch. 6). Seeded, so a run's
    report does not change when it is written again.

    Args:
        preds: Predicted values, shape ``(n,)``.
        targets: True values, shape ``(n,)``.
        resamples: Bootstrap draws.
        seed: Seed of the draws.

    Returns:
        ``{"mse", "rmse", "mae", "r2"}`` standard errors (in the scores' own units); empty for
        fewer than 2 examples.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = rng.normal(size=400)
        >>> se = bootstrap_standard_errors(y + rng.normal(size=400), y)
        >>> round(1 / math.sqrt(2 * 400), 4), 0.03 < se["rmse"] < 0.04  # delta method
        (0.0354, True)
    """
    import numpy as np

    p = np.asarray(preds, dtype=np.float64).reshape(-1)
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    n = len(t)
    if n < 2:
        return {}
    rng = np.random.default_rng(seed)
    scores: dict[str, list[np.ndarray]] = {"mse": [], "rmse": [], "mae": [], "r2": []}
    chunk = max(1, min(resamples, 2_000_000 // n))  # bounded memory for large splits
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        err, tt = p[idx] - t[idx], t[idx]
        mse = (err**2).mean(axis=1)
        total = ((tt - tt.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        scores["mse"].append(mse)
        scores["rmse"].append(np.sqrt(mse))
        scores["mae"].append(np.abs(err).mean(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            scores["r2"].append(1.0 - (err**2).sum(axis=1) / total)
    out = {}
    for name, parts in scores.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        out[name] = round(float(values.std(ddof=1)), 6) if len(values) > 1 else 0.0
    return out
