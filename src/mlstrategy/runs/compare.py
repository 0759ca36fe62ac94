"""Comparing finished runs: the selection rules the runs recorded, and the winner under them.

Reads only the run folders' JSON and YAML, so ``mlstrategy compare`` starts without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from mlstrategy.evaluation.sampling import (
    detectable_difference,
    errors_differ,
    examples_needed,
)
from mlstrategy.evaluation.selection import SPLITS, Selection, flatten_metrics, select
from mlstrategy.run_folder import CONFIG_FILE, load_metrics, load_settings, run_names

GoalName = Literal["auto", "max", "min"]


@dataclass
class Rules:
    """How to choose: one optimizing metric and satisficing constraints.

    Attributes:
        optimize: The optimizing metric, e.g. ``dev/f1``.
        goal: ``max``, ``min``, or ``auto`` (from the metric's name).
        satisfy: Constraints such as ``latency_ms<=5``.
        note: Set when the runs' recipes disagree on the rules (the first run's are used).
    """

    optimize: str = "dev/f1"
    goal: GoalName = "auto"
    satisfy: tuple[str, ...] = ()
    note: str | None = None


@dataclass
class Comparison:
    """Runs side by side under one set of rules.

    Attributes:
        rules: The rules used.
        selection: Every candidate with its value, feasibility and the winner.
        names: ``{run folder: short display name}``.
        metrics: ``{display name: metrics.json content}``.
        columns: Extra metrics the recipes ask to show (``evaluation.columns``).
        warnings: What the comparison cannot tell, e.g. that the dev set is too small to
            separate the top two candidates (:func:`dev_set_warning`).
    """

    rules: Rules
    selection: Selection
    names: dict[Path, str]
    metrics: dict[str, dict[str, Any]]
    columns: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def winner_dir(self) -> Path | None:
        """The winner's run folder, or None when no run meets every constraint."""
        by_name = {v: k for k, v in self.names.items()}
        return by_name.get(self.selection.winner) if self.selection.winner else None


def candidates(run_dirs: list[Path]) -> list[Path]:
    """The runs to compare: not those whose recipe says ``evaluation.candidate: false`` (runs
    that prepare the others, such as pretraining on a transfer study's source task)."""
    return [d for d in run_dirs if load_settings(d).get("candidate", True)] or run_dirs


def recorded_rules(run_dirs: list[Path]) -> Rules:
    """The selection rules recorded by the runs: the first run's, with a note if others differ."""
    run_dirs = candidates(run_dirs)
    rules = []
    for run_dir in run_dirs:
        s = load_settings(run_dir)
        rules.append(
            (
                str(s.get("optimize") or "dev/f1"),
                str(s.get("goal") or "auto"),
                tuple(str(c) for c in s.get("satisfy") or []),
            )
        )
    optimize, goal, satisfy = rules[0]
    note = None
    if any(r != rules[0] for r in rules[1:]):
        note = (
            "the runs' recipes give different selection rules; using the first run's "
            f"({run_dirs[0]}). Put them in the study's _base.yaml to share them."
        )
    goal = goal if goal in ("auto", "max", "min") else "auto"
    return Rules(optimize, cast(GoalName, goal), satisfy, note)


def compare_runs(run_dirs: list[Path], rules: Rules) -> Comparison:
    """Choose among ``run_dirs`` by ``rules`` (runs marked ``candidate: false`` left out).

    Raises:
        ValueError: an unknown metric or a malformed constraint (the message lists the known
            metrics).
    """
    run_dirs = candidates(run_dirs)
    columns = list(dict.fromkeys(["dev/error", *(load_settings(run_dirs[0]).get("columns") or [])]))
    names = run_names(run_dirs)
    metrics = {names[d]: load_metrics(d) for d in run_dirs}
    flat = {name: flatten_metrics(m) for name, m in metrics.items()}
    goal = None if rules.goal == "auto" else rules.goal
    selection = select(flat, rules.optimize, list(rules.satisfy), goal=goal)
    warnings = [w for w in (data_warning(run_dirs, names), dev_set_warning(selection)) if w]
    return Comparison(rules, selection, names, metrics, columns, warnings)


# Source arguments that change how the same examples are shaped, not which examples they are.
_REPRESENTATION = frozenset({"as_sequence", "flatten", "channels", "image_size", "download"})
# The data module's arguments that decide which examples land in dev and test.
_SPLIT_KEYS = ("dev_fraction", "test_fraction", "seed", "use_source_test_split")


def data_identity(run_dir: Path) -> dict[str, Any]:
    """What decides a run's dev and test examples: the data source (its class and arguments,
    without those that only reshape the examples), the split settings of its recipe, and the
    dev and test sizes it was scored on.

    Runs that differ here were scored on different dev sets, so their dev metrics do not rank
    models. Train-only settings (batch size, augmentation, train-dev fraction, how much
    source data is mixed into train) are left out: a study varies them on purpose.
    """
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    data: dict[str, Any] = config["data"] if isinstance(config.get("data"), dict) else {}
    init: dict[str, Any] = data["init_args"] if isinstance(data.get("init_args"), dict) else {}
    source = init["source"] if isinstance(init.get("source"), dict) else None
    identity: dict[str, Any] = {}
    if source is not None:
        args = source.get("init_args") if isinstance(source.get("init_args"), dict) else {}
        identity["data source"] = source.get("class_path")
        identity |= {f"source {k}": v for k, v in args.items() if k not in _REPRESENTATION}
    elif data:
        identity["data module"] = data.get("class_path")
        identity |= {k: v for k, v in init.items() if k in ("root", "path", "folder")}
    identity |= {k: init[k] for k in _SPLIT_KEYS if k in init}
    splits = load_metrics(run_dir).get("splits") or {}
    for split in ("dev", "test"):
        if isinstance(splits.get(split), dict) and "n" in splits[split]:
            identity[f"{split} size"] = splits[split]["n"]
    return identity


def data_warning(run_dirs: list[Path], names: dict[Path, str] | None = None) -> str | None:
    """A warning when the runs were not scored on the same dev and test sets, else None.

    Example:
        >>> import json, tempfile
        >>> from mlstrategy.run_folder import METRICS_FILE
        >>> root = Path(tempfile.mkdtemp())
        >>> for name, n in (("a", 114), ("b", 60)):
        ...     (root / name).mkdir()
        ...     splits = {"dev": {"n": n, "error": 0.1}}
        ...     _ = (root / name / METRICS_FILE).write_text(json.dumps({"splits": splits}))
        >>> data_warning([root / "a", root / "b"])[:63]
        'The runs were not scored on the same data: a and b differ in de'
        >>> data_warning([root / "a", root / "a"]) is None
        True
    """
    names = names or {d: d.name for d in run_dirs}
    identities = [data_identity(d) for d in run_dirs]
    first = identities[0]
    for run_dir, identity in zip(run_dirs[1:], identities[1:], strict=True):
        keys = [k for k in dict.fromkeys([*first, *identity]) if first.get(k) != identity.get(k)]
        if keys:
            differ = "; ".join(f"{k} {first.get(k)!r} vs {identity.get(k)!r}" for k in keys[:3])
            return (
                f"The runs were not scored on the same data: {names[run_dirs[0]]} and "
                f"{names[run_dir]} differ in {differ}. A dev metric ranks models only on one "
                "dev set; compare the runs of one data set."
            )
    return None


def dev_set_warning(selection: Selection) -> str | None:
    """A warning when the split that chose cannot separate the top two eligible candidates.

    The optimizing metric's split (dev for ``dev/f1``) decides. Its error rates are compared:
    the optimizing metric itself when it is an error or an accuracy, else that split's error
    (the rate behind an F1 or a loss). When the two errors do not differ by more than sampling
    noise (pooled two-proportion z-test at 95%,
    :func:`~mlstrategy.evaluation.sampling.errors_differ`), the ranking is not evidence.

    Example:
        >>> from mlstrategy.evaluation.selection import select
        >>> runs = {"a": {"dev/error": 0.05, "dev/n": 200}, "b": {"dev/error": 0.06, "dev/n": 200}}
        >>> dev_set_warning(select(runs, "dev/error"))[:58]
        'The dev set cannot separate the top two candidates: a and '
        >>> runs["b"] |= {"dev/error": 0.2}
        >>> dev_set_warning(select(runs, "dev/error")) is None
        True
    """
    top = [c for c in selection.candidates if c.eligible][:2]
    split = selection.optimize.split("/")[0]
    if len(top) < 2 or split not in SPLITS:
        return None
    metric = f"{split}/error"
    rates = []
    for cand in top:
        value, n = cand.values.get(selection.optimize), cand.values.get(f"{split}/n")
        if selection.optimize == f"{split}/accuracy" and value is not None:
            value = 1.0 - value
        elif selection.optimize != metric:
            value = cand.values.get(metric)
        if value is None or not n:
            return None
        rates.append((float(value), int(n)))
    (e1, n1), (e2, n2) = rates
    if errors_differ(e1, e2, n1, n2):
        return None
    best = min(e1, e2)
    need = detectable_difference(best, min(n1, n2))
    gap = abs(e1 - e2)
    judged = "" if selection.optimize in (metric, f"{split}/accuracy") else (
        f" (judged on {metric}, the error rate behind {selection.optimize})"
    )  # fmt: skip
    more = f"about {examples_needed(gap, best):,}" if gap > 0 else "no number of"
    return (
        f"The {split} set cannot separate the top two candidates: {top[0].name} and "
        f"{top[1].name} have {split} errors {100 * e1:.2f}% and {100 * e2:.2f}% "
        f"({100 * gap:.2f} points apart, n={n1:,} and {n2:,}){judged}, below the "
        f"{100 * need:.2f} points a {split} set this size detects at 95% (pooled "
        f"two-proportion z-test). Treat them as tied (decide on the satisficing metrics), or "
        f"get a bigger {split} set: {more} examples detect a difference this small."
    )
