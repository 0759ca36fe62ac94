"""What kind of run a diagnosis is for: a regressor's (RMSE and friends), or one with no error
rate at all (a multi-task run without a classification task with labels). Re-exported by
:mod:`mlstrategy.evaluation.diagnosis`, where :func:`~mlstrategy.evaluation.diagnosis.diagnose_run`
uses them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_regression_run(splits: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when a run's scored splits are a single-task regressor's (they hold ``rmse``).

    Example:
        >>> is_regression_run({"dev": {"rmse": 0.3}}), is_regression_run({"dev": {"error": 0.1}})
        (True, False)
    """
    return any("rmse" in row and "tasks" not in row for row in splits.values())


def no_error_rate(splits: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why a multi-task run has no error rate to diagnose, or None when it has one.

    A multi-task run's summary error averages its classification tasks; with none of them
    (every head a regression) or none with labels in train or dev, the summary has no error
    rate (None) and there is no bias / variance diagnosis of the run: each regression task is
    judged by its squared error instead.

    Example:
        >>> size = {"kind": "regression", "n": 9, "mse": 0.2}
        >>> no_error_rate({"train": {"error": None, "tasks": {"size": size}},
        ...                "dev": {"error": None, "tasks": {"size": size}}}).split(";")[0]
        'no task is a classification, so there is no error rate to diagnose'
        >>> no_error_rate({"train": {"error": 0.1}, "dev": {"error": 0.2}}) is None
        True
    """
    rows = [splits.get(s, {}) for s in ("train", "dev")]
    if not any("tasks" in r for r in rows) or all(r.get("error") is not None for r in rows):
        return None
    kinds = {t.get("kind") for r in splits.values() for t in r.get("tasks", {}).values()}
    if kinds <= {"regression"}:
        return (
            "no task is a classification, so there is no error rate to diagnose; the "
            "regression tasks are scored by their squared error (mse, per task)"
        )
    lacking = [s for s, r in zip(("train", "dev"), rows, strict=True) if r.get("error") is None]
    return (
        f"no classification task has labels in {' and '.join(lacking)}, so there is no error "
        "rate to diagnose there"
    )
