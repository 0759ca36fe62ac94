"""Comparing finished runs: the selection rules the runs recorded, and the winner under them.

Reads only the run folders' JSON and YAML, so ``mlstrategy compare`` starts without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from mlstrategy.evaluation.selection import Selection, flatten_metrics, select
from mlstrategy.run_folder import load_metrics, load_settings, run_names

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
    """

    rules: Rules
    selection: Selection
    names: dict[Path, str]
    metrics: dict[str, dict[str, Any]]
    columns: list[str]

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
    return Comparison(rules, selection, names, metrics, columns)
