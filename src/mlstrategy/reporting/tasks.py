"""The per-task tables and report sections of a multi-task run (console and Markdown)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mlstrategy.evaluation.diagnosis import GAP_TITLES, GAPS, Diagnosis
from mlstrategy.evaluation.multitask import NO_LABELS, task_names
from mlstrategy.reporting.markdown import md_table, num, pct
from mlstrategy.reporting.tables import plain_title


def _first_split(splits: Mapping[str, Any], *names: str) -> str | None:
    return next((s for s in names if s in splits), None)


def task_table(
    splits: Mapping[str, Mapping[str, Any]],
    diagnoses: Mapping[str, Diagnosis | str] | None = None,
    title: str | None = "per task (present labels only)",
) -> Table:
    """One row per task: its error on each split (squared error for a regression task), its
    F1 and number of labels on the test split (dev without one), and the largest gap of its
    diagnosis. Precision and recall are in ``report.md`` and ``metrics.json``.

    Example:
        >>> row = {"kind": "binary", "n": 4, "error": 0.25, "f1": 0.667}
        >>> task_table({"dev": {"tasks": {"car": row}}}).row_count
        1
    """
    split_names = list(splits)
    scored = _first_split(splits, "test", "dev") or split_names[-1]
    if title:
        title += f": error per split; F1 and labels (n) on {scored}"
    table = Table(title=plain_title(title), title_justify="left")
    table.add_column("task", no_wrap=True)
    for s in split_names:
        table.add_column(s, justify="right", no_wrap=True)
    table.add_column("F1", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    if diagnoses is not None:
        table.add_column("largest gap", min_width=11)  # the longest word: "overfitting"
    for task in task_names(splits):
        rows = {
            s: splits[s].get("tasks", {}).get(task, {"no_labels": True, "n": 0}) for s in splits
        }
        regression = any(r.get("kind") == "regression" for r in rows.values())
        cells = [escape(task) + (" (mse)" if regression else "")]
        for s in split_names:
            r = rows[s]
            if r.get("no_labels"):
                cells.append(NO_LABELS)
            else:
                cells.append(f"{r['mse']:.3g}" if regression else pct(r["error"], 1))
        r = rows[scored]
        cells.append("-" if r.get("no_labels") or regression else num(r["f1"], 3))
        cells.append(str(r.get("n", 0)))
        if diagnoses is not None:
            d = diagnoses.get(task)
            if isinstance(d, Diagnosis):
                value = d.gaps.get(d.largest)
                size = f" {pct(value, 1)}" if value is not None and d.largest != "none" else ""
                cells.append(GAP_TITLES[d.largest] + size)
            else:
                cells.append(str(d or "-"))
        table.add_row(*cells)
    return table


def task_renderable(
    splits: Mapping[str, Mapping[str, Any]], diagnoses: Mapping[str, Diagnosis | str]
) -> Group:
    """The per-task table and a line on how the summary rows above it are averaged."""
    return Group(task_table(splits, diagnoses), Text(summary_note(splits), style="dim"))


def summary_note(splits: Mapping[str, Mapping[str, Any]]) -> str:
    """How a multi-task run's summary rows are made: the mean of its classification tasks,
    or, with none, no error rate at all.

    Example:
        >>> size = {"kind": "regression", "n": 4, "mse": 0.2}
        >>> summary_note({"dev": {"tasks": {"size": size}}})[:28]
        'No task is a classification:'
    """
    kinds = {r.get("kind") for row in splits.values() for r in row.get("tasks", {}).values()}
    if kinds <= {"regression"}:
        return (
            "No task is a classification: the summary rows have no error rate (-), and their "
            "loss is the weighted multi-task cost (the tasks' squared errors, weighted)."
        )
    return (
        "The summary rows average the classification tasks (each task's score on its present "
        "labels, every task counted once); loss is the weighted multi-task cost."
    )


def _score_row(task: str, split: str, r: Mapping[str, Any]) -> list[Any]:
    """One row of the per-task scores: a classification or regression task, or no labels."""
    if r.get("no_labels"):
        return [task, split, 0, f"*{NO_LABELS}*", "", "", "", "", ""]
    loss = num(r["loss"]) if "loss" in r else ""
    if r["kind"] == "regression":
        return [
            task,
            split,
            r["n"],
            f"mse {num(r['mse'])}",
            f"mae {num(r['mae'])}",
            "",
            "",
            "",
            loss,
        ]
    scores = [num(r[m]) for m in ("accuracy", "precision", "recall", "f1")]
    return [task, split, r["n"], pct(r["error"]), *scores, loss]


def render_task_report(
    splits: Mapping[str, Mapping[str, Any]], diagnoses: Mapping[str, Diagnosis | str]
) -> str:
    """The per-task sections of ``report.md``: scores per task and split, then the diagnosis.

    Example:
        >>> row = {"kind": "binary", "n": 4, "error": 0.25, "accuracy": 0.75, "precision": 1.0,
        ...        "recall": 0.5, "f1": 0.667, "loss": 0.5}
        >>> md = render_task_report({"dev": {"tasks": {"car": row}}}, {})
        >>> md.splitlines()[0]
        '## Per-task scores (present labels only)'
    """
    out = ["## Per-task scores (present labels only)", ""]
    out += [
        "Each task is scored on the examples whose label for it is present; `n` counts them. "
        + summary_note(splits),
        "",
    ]
    rows = [
        _score_row(task, s, split_row["tasks"][task])
        for task in task_names(splits)
        for s, split_row in splits.items()
        if task in split_row.get("tasks", {})
    ]
    out += md_table(
        ["task", "split", "n", "error", "accuracy", "precision", "recall", "f1", "loss"], rows
    )
    out += ["", "## Per-task diagnosis", ""]
    drows = []
    for task, d in diagnoses.items():
        if isinstance(d, Diagnosis):
            drows.append(
                [
                    task,
                    *(pct(v) for v in d.gaps.values()),
                    f"**{GAP_TITLES[d.largest]}**",
                    d.remedies[0] if d.remedies else "",
                ]
            )
        else:
            drows.append([task, "", "", "", "", f"*{d}*", ""])
    out += md_table(["task", *(GAP_TITLES[g] for g in GAPS), "largest", "first remedy"], drows)
    return "\n".join(out) + "\n"


def task_comparison_table(runs: Mapping[str, Mapping[str, Any]], split: str = "test") -> Table:
    """Multi-task runs side by side, one column each: the size of the train split, each task's
    F1, their mean, the parameters and the training time.

    Runs are ordered by the size of their train split, then by name, so the runs of one data
    size sit together.

    Args:
        runs: ``{run name: metrics.json content}``; runs without per-task scores are left out.
        split: The split whose F1 is shown (test: not used to choose anything).

    Example:
        >>> row = {"kind": "binary", "n": 4, "f1": 0.5}
        >>> m = {"params": 10, "fit_seconds": 1.0,
        ...      "splits": {"train": {"n": 8}, "test": {"f1": 0.5, "tasks": {"car": row}}}}
        >>> [c.header for c in task_comparison_table({"mt": m}).columns]
        ['', 'mt']
    """
    multi = {k: m for k, m in runs.items() if "tasks" in m.get("splits", {}).get(split, {})}

    def train_n(item: tuple[str, Mapping[str, Any]]) -> tuple[int, str]:
        return int(item[1]["splits"].get("train", {}).get("n", 0)), item[0]

    ordered = sorted(multi.items(), key=train_n)
    tasks: list[str] = []
    for _, m in ordered:
        tasks += [t for t in m["splits"][split]["tasks"] if t not in tasks]
    table = Table(title=f"per-task {split} F1 (present labels only)", title_justify="left")
    table.add_column("", no_wrap=True)
    for name, _ in ordered:
        # Spaces let a long run name wrap onto several header lines; numbers never wrap.
        table.add_column(escape(name.replace("_", " ")), justify="right")

    def f1(row: Mapping[str, Any] | None) -> str:
        if row is None:
            return ""
        if row.get("no_labels"):
            return NO_LABELS
        return num(row["f1"], 3) if "f1" in row else f"mse {row.get('mse', 0):.3g}"

    table.add_row("train n", *(str(m["splits"].get("train", {}).get("n", "?")) for _, m in ordered))
    for t in tasks:
        table.add_row(escape(t), *(f1(m["splits"][split]["tasks"].get(t)) for _, m in ordered))
    table.add_row(
        "mean F1",
        *(num(m["splits"][split].get("f1", math.nan), 3) for _, m in ordered),
        style="bold",
    )
    table.add_row("params", *(f"{int(m.get('params', 0)):,}" for _, m in ordered))
    table.add_row("fit s", *(f"{m.get('fit_seconds', 0):.1f}" for _, m in ordered))
    return table
