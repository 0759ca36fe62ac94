"""Human-level error in the run report: every level the recipe gave and which one is the proxy
for Bayes error, the mark on an avoidable bias that a below-human train error leaves
unmeasurable, and the course's 2x3 table for mismatched distributions (see
:mod:`mlstrategy.evaluation.human_level`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlstrategy.evaluation.diagnosis import Diagnosis
from mlstrategy.evaluation.human_level import (
    LEVELS,
    distributions_table,
    levels_note,
    shown_error,
)
from mlstrategy.reporting.markdown import md_table, pct
from mlstrategy.reporting.tables import gap_value

BELOW_HUMAN_MARK = "(train below human level: not an estimate, see the notes)"

# The course's 2x3 table (Structuring ML Projects, week 2, "addressing data mismatch").
TABLE_ROWS = {
    "human level": "human level",
    "trained on": "error on examples trained on",
    "not trained on": "error on examples not trained on",
}


def human_level_lines(d: Diagnosis, shown: str) -> list[str]:
    """The report's human-level line, or with several levels a table marking the proxy.

    Args:
        d: The diagnosis.
        shown: The proxy as the report writes it (a percentage, or a regression's number).

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> d = diagnose(0.05, 0.06, human_error={"typical": 0.03, "expert": 0.01})
        >>> human_level_lines(d, "1.00%")[-2]
        '| expert | 1.00% | **the proxy** |'
    """
    if not d.human_levels:
        return [f"Human-level error (proxy for Bayes error): {shown}.", ""]
    rows = [
        [LEVELS[k], gap_value(d, v), "**the proxy**" if k == d.human_proxy else ""]
        for k, v in d.human_levels.items()
    ]
    return [
        "Human-level error, at each level given; the best (lowest) is the proxy for Bayes "
        "error, since Bayes error is at most what the best humans achieve:",
        "",
        *md_table(
            ["human level", "error" if d.metric == "error" else f"error ({d.unit})", ""], rows
        ),
        "",
    ]


def shown_notes(d: Diagnosis) -> list[str]:
    """The notes the report quotes: all but the list of levels, which its table shows."""
    listed = levels_note(d.human_levels, d.human_proxy, lambda v: shown_error(v, d.metric))
    return [n for n in d.notes if n != listed]


def gap_text(d: Diagnosis, gap: str, text: str) -> str:
    """A gap's cell, with :data:`BELOW_HUMAN_MARK` on an avoidable bias that cannot be estimated
    (train error below the human-level proxy)."""
    if gap == "avoidable_bias" and "train" in d.below_human:
        return f"{text} {BELOW_HUMAN_MARK}"
    return text


def estimable_gaps(d: Diagnosis) -> dict[str, float]:
    """The gaps that were measured, less an avoidable bias that cannot be estimated (train
    error below the human-level proxy): what goes to TensorBoard, where no note can follow.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> sorted(estimable_gaps(diagnose(0.01, 0.05, human_error=0.02)))
        ['variance']
    """
    unestimated = "avoidable_bias" if "train" in d.below_human else None
    return {g: v for g, v in d.gaps.items() if v is not None and g != unestimated}


def _cell(cell: Mapping[str, Any]) -> str:
    if cell["error"] is None:
        return f"— ({cell['reason']})"
    on = f" ({cell['measured_on']})" if cell.get("measured_on") else ""
    return f"{pct(cell['error'])}{on}"


def distributions_lines(table: Mapping[str, Any] | None) -> list[str]:
    """The course's 2x3 table (rows human level / trained on / not trained on, columns the
    general and the target distribution) and what it reads, for the report.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> from mlstrategy.evaluation.human_level import distributions_table
        >>> d = diagnose(0.07, 0.06, train_dev_error=0.10, human_error=0.04)
        >>> sources = {"splits": {"train": {"source": 90, "target": 0}}}
        >>> lines = distributions_lines(distributions_table(d, sources, 0.06))
        >>> lines[6]
        '| human level | 4.00% | 6.00% |'
    """
    if not table:
        return []
    rows = [
        [TABLE_ROWS[row], _cell(cells["general"]), _cell(cells["target"])]
        for row, cells in table["rows"].items()
    ]
    out = [
        "### Human level and errors on each distribution",
        "",
        "The course's table for training and testing on different distributions (Structuring "
        "ML Projects, week 2). Down the general column: avoidable bias (human level to trained "
        "on), variance (trained on to not trained on); across the bottom row, data mismatch.",
        "",
        *md_table(["", "general distribution (source)", "target distribution"], rows),
        "",
    ]
    readings = table.get("readings") or {}
    if "human_dev_minus_human" in readings:
        gap = readings["human_dev_minus_human"]
        harder = "harder" if gap > 0 else "easier" if gap < 0 else "as hard"
        out.append(
            f"- Human level on the target minus on the general distribution: {pct(gap)}: the "
            f"target is {harder} for humans than the general data."
        )
    if "dev_minus_human_dev" in readings:
        gap = readings["dev_minus_human_dev"]
        out.append(
            f"- Dev error minus human level on the target: {pct(gap)}: "
            + (
                "the error left above human level on the distribution the system must work on."
                if gap > 1e-12
                else "the model is at human level on the target."
                if gap > -1e-12
                else "the model is below human level on the target, whose Bayes error is then "
                "unknown (below the best human)."
            )
        )
    return [*out, ""] if readings else out


def distributions_entry(
    diagnosis: Diagnosis | str,
    analysis: Mapping[str, Any],
    settings: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``{"distributions_table": table}`` for a classifier's run on two distributions (its
    analysis has ``sources``), with ``settings["human_error_dev"]``; else ``{}``."""
    sources = analysis.get("sources")
    if not sources or not isinstance(diagnosis, Diagnosis) or diagnosis.metric != "error":
        return {}
    dev = (settings or {}).get("human_error_dev")
    return {"distributions_table": distributions_table(diagnosis, sources, dev)}
