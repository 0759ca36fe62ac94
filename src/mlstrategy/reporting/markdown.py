"""How the reports spell numbers and tables: percentages, scores and Markdown tables.

Every report (``report.md`` of a run, of a multi-task run, of a study) and every console table
formats its numbers with these, so one error rate reads the same everywhere. The module
imports only the standard library: the read-only verbs use it without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

Align = Literal["left", "right"]


def pct(value: float | None, digits: int = 2) -> str:
    """An error rate (a fraction) as a percentage; ``-`` when it is missing or NaN.

    Example:
        >>> pct(0.0812), pct(0.0812, 1), pct(None), pct(float("nan"))
        ('8.12%', '8.1%', '-', '-')
    """
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 4) -> str:
    """A score (accuracy, F1, loss, ...) with ``digits`` decimals; ``-`` when it is missing.

    Example:
        >>> num(0.87654), num(4.6, 3), num(None)
        ('0.8765', '4.600', '-')
    """
    return "-" if value is None else f"{value:.{digits}f}"


def md_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    align: Sequence[Align] | None = None,
) -> list[str]:
    """A Markdown (GitHub) table as lines: the header, the rule, one line per row.

    Args:
        header: The column titles.
        rows: The cells of each row (shown with ``str``); a short row leaves the last cells out.
        align: ``left`` or ``right`` per column; None: the renderer's default (left).

    Example:
        >>> print("\\n".join(md_table(["m", "error"], [[10, "50.0%"]], align=["right"] * 2)))
        | m | error |
        |---:|---:|
        | 10 | 50.0% |
    """
    rule = ["---:" if a == "right" else "---" for a in (align or ["left"] * len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines
