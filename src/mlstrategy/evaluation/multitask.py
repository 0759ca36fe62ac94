"""The diagnosis of each task of a multi-task run, on the labels that are present.

A task is one label column, scored on the examples whose label for it is present (see
:mod:`mlstrategy.evaluation.scoring`). A task without any label in a split gets a
``"no labels"`` entry there instead of numbers. The diagnosis (avoidable bias, variance, data
mismatch, overfitting to dev) is :func:`~mlstrategy.evaluation.diagnosis.diagnose_splits`
applied to each task's errors; ``diagnosis.json`` adds ``"tasks": {task: diagnosis}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlstrategy.evaluation.diagnosis import Diagnosis, diagnose_splits

NO_LABELS = "no labels"


def is_multitask_run(splits: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when a run's scored splits hold per-task rows (a multi-task run).

    Example:
        >>> is_multitask_run({"dev": {"n": 3, "tasks": {}}}), is_multitask_run({"dev": {"n": 3}})
        (True, False)
    """
    return any("tasks" in row for row in splits.values())


def task_names(splits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every task that any split scores, in the order they first appear.

    Example:
        >>> task_names({"train": {"tasks": {"car": {}}}, "dev": {"tasks": {"sign": {}, "car": {}}}})
        ['car', 'sign']
    """
    names: list[str] = []
    for row in splits.values():
        names += [t for t in row.get("tasks", {}) if t not in names]
    return names


def diagnose_tasks(
    splits: Mapping[str, Mapping[str, Any]], human_error: float | Mapping[str, float] | None = None
) -> dict[str, Diagnosis | str]:
    """The diagnosis of every classification task, from its errors on its present labels.

    Args:
        splits: The ``splits`` of a multi-task run's ``metrics.json``.
        human_error: Human-level error (the same for every task).

    Returns:
        ``{task: Diagnosis}``, or ``{task: reason}`` where the task cannot be diagnosed
        (a regression task has no error rate; a task with no labels in train or dev).
    """
    out: dict[str, Diagnosis | str] = {}
    for task in task_names(splits):
        rows = {s: r["tasks"][task] for s, r in splits.items() if task in r.get("tasks", {})}
        kinds = {r.get("kind") for r in rows.values()}
        if "regression" in kinds:
            out[task] = "regression: no error rate (see mse)"
            continue
        lacking = [s for s in ("train", "dev") if s not in rows or rows[s].get("no_labels")]
        if lacking:
            out[task] = f"{NO_LABELS} in {' and '.join(lacking)}: cannot diagnose"
            continue
        present = {s: r for s, r in rows.items() if not r.get("no_labels")}
        out[task] = diagnose_splits(present, human_error)
    return out


def diagnoses_to_dict(diagnoses: Mapping[str, Diagnosis | str]) -> dict[str, Any]:
    """``{task: diagnosis dict}``, or ``{task: {"skipped": reason}}``, for ``diagnosis.json``."""
    return {
        t: d.to_dict() if isinstance(d, Diagnosis) else {"skipped": d} for t, d in diagnoses.items()
    }
