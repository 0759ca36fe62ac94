"""Model selection with one optimizing metric and any number of satisficing ones.

The course's rule (deeplearning.ai course 3, "Satisficing and optimizing metrics"): of N
metrics, pick one to optimize (e.g. dev F1) and make the others constraints that only need to
be good enough (e.g. latency at most 5 ms). The winner is the run that meets every constraint
and is best on the optimizing metric.

Metric names are those of :func:`flatten_metrics`: ``params``, ``latency_ms``, ``dev/f1``,
``test/recall``, ``dev/f1_weighted``, ``test/recall/malignant`` (per class), ...
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlstrategy.metrics.names import (
    AVERAGES,
    CONFUSION_NAMES,
    METRIC_NAMES,
    PER_CLASS_NAMES,
    WEIGHTED_NAMES,
)

Goal = Literal["max", "min"]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
_CONSTRAINT = re.compile(r"^\s*(?P<metric>[^<>=!]+?)\s*(?P<op><=|>=|==|<|>)\s*(?P<value>[^<>=]+)$")
# Smaller is better for these (a regression's squared and absolute errors, false positives and
# negatives and their rates too); everything else (accuracy, precision, recall, f1, r2) is
# maximized.
_MINIMIZED = re.compile(
    r"(error|loss|latency_ms|params|seconds|epochs|^r?mse|^mae|^fp|^fn)(_\w+)?$"
)


@dataclass(frozen=True)
class Constraint:
    """A satisficing metric: ``metric op threshold``, e.g. ``latency_ms <= 5``.

    Attributes:
        metric: A name from :func:`flatten_metrics`.
        op: One of ``<=``, ``>=``, ``<``, ``>``, ``==``.
        threshold: The bound.
    """

    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` meets the constraint.

        Example:
            >>> Constraint("latency_ms", "<=", 5.0).holds(4.2)
            True
        """
        return _OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_constraint(text: str) -> Constraint:
    """Parse ``"latency_ms<=5"`` or ``"dev/recall >= 0.9"`` into a :class:`Constraint`.

    Args:
        text: ``METRIC OP NUMBER`` with OP one of ``<=``, ``>=``, ``<``, ``>``, ``==``.

    Raises:
        ValueError: when the text is not of that form.

    Example:
        >>> parse_constraint("dev/recall >= 0.9")
        Constraint(metric='dev/recall', op='>=', threshold=0.9)
    """
    match = _CONSTRAINT.match(text)
    threshold = math.nan
    if match:
        try:
            threshold = float(match["value"])
        except ValueError:
            match = None
    if not match or not math.isfinite(threshold):
        raise ValueError(
            f"Cannot read the constraint {text!r}. Write METRIC OP NUMBER with OP one of "
            '<=, >=, <, >, ==, e.g. --satisfy "latency_ms<=5" or --satisfy "dev/recall>=0.9" '
            "(quote it so the shell does not read < and > as redirections)."
        )
    return Constraint(match["metric"].strip(), match["op"], threshold)


def default_goal(metric: str) -> Goal:
    """``"min"`` for errors, losses, latency, sizes and times; ``"max"`` for the rest.

    Example:
        >>> default_goal("dev/error"), default_goal("dev/f1"), default_goal("latency_ms")
        ('min', 'max', 'min')
        >>> [default_goal(f"dev/{m}") for m in ("rmse", "mse", "mae", "r2")]
        ['min', 'min', 'min', 'max']
        >>> [default_goal(m) for m in ("dev/fp_rate", "dev/fn", "test/fn_rate/cat", "dev/f1")]
        ['min', 'min', 'min', 'max']
    """
    parts = metric.split("/")
    name = parts[1] if len(parts) == 3 else parts[-1]  # split/metric/class: the metric part
    return "min" if _MINIMIZED.search(name) else "max"


RUN_METRICS = ("params", "trainable_params", "latency_ms", "fit_seconds", "epochs")
SPLITS = ("train", "train_dev", "dev", "test")
SPLIT_METRICS = (
    "n",
    "error",
    *METRIC_NAMES,
    "loss",
    "mse",
    "mae",
    "rmse",
    "r2",
    *(f"{m}_{a}" for m in PER_CLASS_NAMES for a in AVERAGES),
    *CONFUSION_NAMES,
    *WEIGHTED_NAMES,
)


def check_metric_name(name: str, where: str) -> None:
    """Refuse a metric name no run can record, before anything trains.

    Names are ``params``, ``trainable_params``, ``latency_ms``, ``fit_seconds``, ``epochs``,
    ``SPLIT/METRIC`` or ``SPLIT/METRIC/CLASS`` (per task: ``SPLIT/METRIC/TASK``).

    Example:
        >>> check_metric_name("test/recall/malignant", "evaluation.optimize")
        >>> check_metric_name("dev/speed", "evaluation.satisfy")
        Traceback (most recent call last):
        ...
        ValueError: evaluation.satisfy names the metric 'dev/speed', which no run records: \
'speed' is not one of n, error, accuracy, precision, recall, f1, loss, mse, mae, rmse, \
r2, precision_micro, precision_macro, precision_weighted, recall_micro, recall_macro, \
recall_weighted, f1_micro, f1_macro, f1_weighted, fp, fn, fp_rate, fn_rate, \
weighted_error, error_group_mean.
    """
    parts = name.split("/")
    if len(parts) == 1:
        if name not in RUN_METRICS:
            raise ValueError(
                f"{where} names the metric {name!r}, which no run records: give one of "
                f"{', '.join(RUN_METRICS)}, or SPLIT/METRIC such as dev/f1."
            )
        return
    if len(parts) > 3 or parts[0] not in SPLITS:
        raise ValueError(
            f"{where} names the metric {name!r}, which no run records: write SPLIT/METRIC or "
            f"SPLIT/METRIC/CLASS with SPLIT one of {', '.join(SPLITS)} (e.g. dev/f1)."
        )
    if parts[1] not in SPLIT_METRICS:
        raise ValueError(
            f"{where} names the metric {name!r}, which no run records: {parts[1]!r} is not one "
            f"of {', '.join(SPLIT_METRICS)}."
        )


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The selectable numbers of a run's ``metrics.json``, by name.

    Top-level numbers keep their name (``params``, ``latency_ms``, ``fit_seconds``); per-split
    scores become ``{split}/{name}`` and per-class scores ``{split}/{name}/{class}``; the
    per-task scores of a multi-task run become ``{split}/{name}/{task}`` (``test/f1/car``).

    Example:
        >>> m = {"params": 31, "splits": {"dev": {"f1": 0.9, "per_class": {"a": {"f1": 0.8}}}}}
        >>> flatten_metrics(m)
        {'params': 31.0, 'dev/f1': 0.9, 'dev/f1/a': 0.8}
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = float(value)
    for split, row in (metrics.get("splits") or {}).items():
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[f"{split}/{key}"] = float(value)
        for cls, scores in (row.get("per_class") or {}).items():
            for key, value in scores.items():
                flat[f"{split}/{key}/{cls}"] = float(value)
        for task, scores in (row.get("tasks") or {}).items():
            for key, value in scores.items():
                if isinstance(value, float):  # scores, not counts, flags or nested tables
                    flat[f"{split}/{key}/{task}"] = value
    return flat


@dataclass
class Candidate:
    """One run in a comparison.

    Attributes:
        name: How the run is shown, e.g. the recipe name.
        values: Its metrics, from :func:`flatten_metrics`.
        failures: The constraints it fails (or whose metric it lacks), as text.
    """

    name: str
    values: dict[str, float]
    failures: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> bool:
        """True when the run meets every satisficing constraint."""
        return not self.failures


@dataclass
class Selection:
    """The outcome of :func:`select`.

    Attributes:
        optimize: The optimizing metric.
        goal: ``"max"`` or ``"min"``.
        constraints: The satisficing constraints.
        candidates: Every run, eligible ones first, each group best-first.
        winner: Name of the best eligible run, or None when no run meets every constraint.
    """

    optimize: str
    goal: Goal
    constraints: list[Constraint]
    candidates: list[Candidate]
    winner: str | None


def _check_known(metric: str, available: Sequence[str], what: str) -> None:
    if metric not in available:
        close = [m for m in available if metric.split("/")[-1] in m][:8]
        hint = f" Did you mean one of {close}?" if close else ""
        listing = ", ".join(m for m in available if m.count("/") < 2)
        raise ValueError(
            f"Unknown {what} metric {metric!r}: no run has it.{hint} Metrics available: "
            f"{listing} (per class: SPLIT/METRIC/CLASS, e.g. dev/recall/<class name>)."
        )


def select(
    runs: Mapping[str, Mapping[str, float]],
    optimize: str,
    satisfy: Sequence[Constraint | str] = (),
    goal: Goal | None = None,
) -> Selection:
    """Pick the run that meets every constraint and is best on ``optimize``.

    Args:
        runs: ``{run name: flattened metrics}`` (see :func:`flatten_metrics`).
        optimize: The optimizing metric, e.g. ``"dev/f1"``.
        satisfy: Satisficing constraints, as :class:`Constraint` or text (``"latency_ms<=5"``).
        goal: ``"max"`` or ``"min"``; default from the name (:func:`default_goal`).

    Returns:
        A :class:`Selection`; ties on the optimizing metric go to the run listed first.

    Raises:
        ValueError: no runs, a metric no run has (the message lists those available), or a
            malformed constraint.

    Example:
        >>> runs = {"big": {"dev/f1": 0.95, "latency_ms": 9.0},
        ...         "small": {"dev/f1": 0.91, "latency_ms": 1.0}}
        >>> s = select(runs, "dev/f1", ["latency_ms<=5"])
        >>> s.winner, s.candidates[1].failures
        ('small', ['latency_ms<=5 (9)'])
    """
    if not runs:
        raise ValueError("No runs to compare. Give run folders that hold a metrics.json.")
    constraints = [c if isinstance(c, Constraint) else parse_constraint(c) for c in satisfy]
    available = sorted({k for values in runs.values() for k in values})
    _check_known(optimize, available, "optimizing")
    for c in constraints:
        _check_known(c.metric, available, "satisficing")
    goal = goal or default_goal(optimize)
    if goal not in ("max", "min"):
        raise ValueError(f"goal={goal!r}; use 'max' or 'min'.")
    candidates = []
    for name, values in runs.items():
        cand = Candidate(name, dict(values))
        for c in constraints:
            if c.metric not in values:
                cand.failures.append(f"{c} (no {c.metric})")
            elif not c.holds(values[c.metric]):
                cand.failures.append(f"{c} ({format_metric(values[c.metric])})")
        if optimize not in values:
            cand.failures.append(f"no {optimize}")
        candidates.append(cand)
    sign = -1.0 if goal == "max" else 1.0

    def rank(c: Candidate) -> tuple[bool, float]:
        value = c.values.get(optimize, math.nan)
        return (not c.eligible, sign * value if not math.isnan(value) else math.inf)

    ordered = sorted(candidates, key=rank)  # stable: ties keep the given order
    winner = ordered[0].name if ordered[0].eligible else None
    return Selection(optimize, goal, constraints, ordered, winner)


def format_metric(value: float) -> str:
    """A metric's value as the comparison shows it: whole numbers in full (``17025``, not
    ``1.702e+04``), others to 4 significant digits.

    Example:
        >>> format_metric(17025.0), format_metric(0.912345), format_metric(float("nan"))
        ('17025', '0.9123', 'nan')
    """
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"
