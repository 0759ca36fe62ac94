"""The run report's section on the weighted error and the per-group errors (slices)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlstrategy.reporting.markdown import md_table, num, pct


def weighted_lines(splits: Mapping[str, Any]) -> list[str]:
    """``## Weighted error and slices``: each split's ``weighted_error`` (when the example
    weights or ``evaluation.class_costs`` make it differ from the error rate) and, with a
    group column,
    each group's error rate per split and ``error_group_mean``; ``[]`` when neither applies.

    Example:
        >>> splits = {"dev": {"error": 0.1, "weighted_error": 0.1, "error_group_mean": 0.15,
        ...                   "groups": {"fr": {"n": 10, "error": 0.2},
        ...                              "us": {"n": 30, "error": 0.1}}}}
        >>> print("\\n".join(weighted_lines(splits)))
        ## Weighted error and slices
        <BLANKLINE>
        Error rate per group (each group's own rate; `error_group_mean` is their unweighted \
mean, so every group counts the same):
        <BLANKLINE>
        | group | dev |
        |---|---|
        | fr | 20.00% (n=10) |
        | us | 10.00% (n=30) |
        | error_group_mean | 15.00% |
        <BLANKLINE>
    """
    rows = {s: r for s, r in splits.items() if r.get("weighted_error") is not None}
    weighted = any(
        abs(r["weighted_error"] - (r.get("error") or 0.0)) > 1e-12 for r in rows.values()
    )
    grouped = {s: r for s, r in rows.items() if r.get("groups")}
    if not (weighted or grouped):
        return []
    out = ["## Weighted error and slices", ""]
    if weighted:
        out += [
            "`weighted_error` = sum_i w_i cost[y_i, yhat_i] / sum_i w_i (w_i: the data's example "
            "weights; cost: `evaluation.class_costs`, 1 per mistake when not set):",
            "",
        ]
        out += md_table(
            ["split", "error", "weighted_error", "standard error"],
            [
                [s, pct(r.get("error")), num(r["weighted_error"]), num(_se(r))]
                for s, r in rows.items()
            ],
        )
        out.append("")
    if grouped:
        out += [
            "Error rate per group (each group's own rate; `error_group_mean` is their "
            "unweighted mean, so every group counts the same):",
            "",
        ]
        names = sorted({g for r in grouped.values() for g in r["groups"]})
        table = [[g, *(_cell(r["groups"].get(g)) for r in grouped.values())] for g in names]
        table.append(["error_group_mean", *(pct(r["error_group_mean"]) for r in grouped.values())])
        out += md_table(["group", *grouped], table)
        out.append("")
    return out


def _se(row: Mapping[str, Any]) -> float | None:
    value = (row.get("standard_errors") or {}).get("weighted_error")
    return None if value is None else float(value)


def _cell(group: Mapping[str, Any] | None) -> str:
    return "-" if group is None else f"{pct(group['error'])} (n={group['n']})"
