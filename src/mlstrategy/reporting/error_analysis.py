"""The error-analysis sections of ``report.md``: the most-confused classes, the dev examples
with the highest loss, and the dev/test distribution check, for single- and multi-task runs.

They render what :func:`~mlstrategy.evaluation.error_analysis.analyze_errors` found; the
module imports only the standard library and the Markdown helpers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlstrategy.reporting.markdown import md_table, num, pct


def error_analysis_lines(
    analysis: Mapping[str, Any], figure: str | None = None, title: str = "## Error analysis (dev)"
) -> list[str]:
    """The most-confused class pairs and the highest-loss dev examples (with their files when
    the examples are image files), then the figure of those examples when there is one.

    Example:
        >>> worst = [{"index": 4, "file": "dev/cat/1.png", "true": "cat", "predicted": "dog",
        ...           "p_true": 0.1, "loss": 2.3}]
        >>> lines = error_analysis_lines({"most_confused": [], "highest_loss": worst})
        >>> lines[2], lines[-2]
        ('No dev example is misclassified.', '| 4 | dev/cat/1.png | cat | dog | 0.100 | 2.300 |')
    """
    out = [title, ""]
    confused = analysis.get("most_confused") or []
    if confused:
        out += ["Most-confused class pairs (look at these examples first):", ""]
        out += md_table(
            ["true", "predicted as", "count", "share of dev errors"],
            [[p["true"], p["predicted"], p["count"], pct(p["share"], 1)] for p in confused],
        )
    else:
        out += ["No dev example is misclassified."]
    worst = analysis.get("highest_loss") or []
    if worst:
        files = any("file" in w for w in worst)
        out += ["", "Dev examples with the highest loss (the most confidently wrong):", ""]
        out += md_table(
            ["dev index", *(["file"] if files else []), "true", "predicted", "p(true)", "loss"],
            [
                [
                    w["index"],
                    *([f"{w.get('file', '')}"] if files else []),
                    w["true"],
                    w["predicted"],
                    num(w["p_true"], 3),
                    num(w["loss"], 3),
                ]
                for w in worst
            ],
        )
    if figure:
        out += ["", f"![highest-loss dev examples]({figure})"]
    return [*out, ""]


def task_error_analysis_lines(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The error analysis of each classification task of a multi-task run, on its present
    labels: one subsection per task, as :func:`error_analysis_lines`.

    Example:
        >>> lines = task_error_analysis_lines({"car": {"most_confused": [], "highest_loss": []}})
        >>> lines[0], lines[4]
        ('## Error analysis per task (dev, present labels only)', '### car')
    """
    if not tasks:
        return []
    out = [
        "## Error analysis per task (dev, present labels only)",
        "",
        "Each classification task on the dev examples that have a label for it; `dev index` is "
        "the example's position in the dev split.",
        "",
    ]
    for task, analysis in tasks.items():
        out += error_analysis_lines(analysis, title=f"### {task}")
    return out


def distribution_lines(
    same: Mapping[str, Any] | None,
    class_names: Sequence[str],
    task_class_names: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The dev/test check: its verdict, then the label shares of dev and test (per task for a
    multi-task run, with each task's chi-square p-value).

    Args:
        same: The ``same_distribution`` of the analysis, or None.
        class_names: The class names of a single-task run (the label columns).
        task_class_names: ``{task: class names}`` of a multi-task run.

    Example:
        >>> same = {"differ": False, "message": "Consistent.", "dev_labels": [0.5, 0.5],
        ...         "test_labels": [0.4, 0.6]}
        >>> distribution_lines(same, ["cat", "dog"])[-3]
        '| dev | 0.5 | 0.5 |'
    """
    if not same:
        return []
    prefix = "**Warning:** " if same["differ"] else ""
    out = ["## Dev and test distributions", "", prefix + same["message"], ""]
    if "tasks" in same:
        if not same["tasks"]:
            return out  # no classification task: the features only
        names = task_class_names or {}
        out += md_table(
            ["task", "dev label shares", "test label shares", "chi-square p"],
            [
                [
                    t,
                    _shares(r["dev_labels"], names.get(t)),
                    _shares(r["test_labels"], names.get(t)),
                    f"{r['labels_p']:.2g}",
                ]
                for t, r in same["tasks"].items()
            ],
        )
        return [*out, ""]
    header = list(class_names) or [str(i) for i in range(len(same["dev_labels"]))]
    out += md_table(
        ["label share", *header], [["dev", *same["dev_labels"]], ["test", *same["test_labels"]]]
    )
    return [*out, ""]


def _shares(shares: Sequence[float], names: Sequence[str] | None) -> str:
    """``class: share`` of each class, e.g. ``absent: 0.6, present: 0.4``."""
    names = list(names or []) if len(names or []) == len(shares) else []
    return ", ".join(f"{names[k] if names else k}: {v}" for k, v in enumerate(shares))
