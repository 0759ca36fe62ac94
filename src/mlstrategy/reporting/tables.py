"""Terminal tables (rich): scores per split, the diagnosis, and the comparison of runs."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from mlstrategy.evaluation.diagnosis import GAP_TITLES, Diagnosis
from mlstrategy.evaluation.selection import Selection, format_metric
from mlstrategy.metrics.names import METRIC_NAMES, REGRESSION_NAMES
from mlstrategy.reporting.markdown import num, pct

SPLIT_COLUMNS = ("error", *METRIC_NAMES, "loss")
REGRESSION_SPLIT_COLUMNS = (*REGRESSION_NAMES, "loss")  # a regressor's row


def plain_title(title: str | None) -> Text | None:
    """A table title shown as written: a path or a name holding ``[...]`` is not markup.

    Example:
        >>> plain_title("run [a]/b.yaml").plain
        'run [a]/b.yaml'
    """
    return None if title is None else Text(title, style="table.title")


def summary_table(metrics: Mapping[str, Any], title: str | None = None) -> Table:
    """A rich table: one row per split, error / accuracy / precision / recall / F1 / loss.

    Example:
        >>> row = {"n": 10, "error": 0.1, "accuracy": 0.9, "precision": 0.8, "recall": 1.0,
        ...        "f1": 0.89, "loss": 0.3}
        >>> summary_table({"splits": {"dev": row}}).row_count
        1
    """
    table = Table(title=plain_title(title), title_justify="left")
    table.add_column("split")
    table.add_column("n", justify="right")
    regression = any("rmse" in r and "tasks" not in r for r in metrics["splits"].values())
    columns = REGRESSION_SPLIT_COLUMNS if regression else SPLIT_COLUMNS
    for col in columns:
        table.add_column(col, justify="right")
    for split, row in metrics["splits"].items():
        table.add_row(split, str(row["n"]), *(num(row.get(c)) for c in columns))
    return table


def gap_value(d: Diagnosis, value: float | None) -> str:
    """An error or gap of ``d`` as the tables show it: a percentage for error rates, a number
    in the metric's units for a regression.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> gap_value(diagnose(0.08, 0.1), 0.02), gap_value(diagnose(3.0, 4.0, metric="rmse"), 1.0)
        ('2.00%', '1.0000')
    """
    return pct(value) if d.metric == "error" else num(value)


def gap_formulas(d: Diagnosis) -> dict[str, str]:
    """How each gap was computed, with the numbers, e.g. ``"train 8.00% - human 1.00%"``.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> gap_formulas(diagnose(0.08, 0.1, human_error=0.01))["avoidable_bias"]
        'train 8.00% - human 1.00%'
    """

    def fmt(value: float | None) -> str:  # a regression's errors are in its metric's units
        return gap_value(d, value)

    human = f"human {fmt(d.human_error)}" if d.human_error is not None else "0 (no human_error)"
    train_dev = d.train_dev_error
    return {
        "avoidable_bias": f"train {fmt(d.train_error)} - {human}",
        "variance": (
            f"train-dev {fmt(train_dev)} - train {fmt(d.train_error)}"
            if train_dev is not None
            else f"dev {fmt(d.dev_error)} - train {fmt(d.train_error)}"
        ),
        "data_mismatch": (
            f"dev {fmt(d.dev_error)} - train-dev {fmt(train_dev)}"
            if train_dev is not None
            else "needs a train-dev split"
        ),
        "dev_overfitting": (
            f"test {fmt(d.test_error)} - dev {fmt(d.dev_error)}"
            if d.test_error is not None
            else "needs a test split"
        ),
    }


def diagnosis_table(d: Diagnosis, title: str = "diagnosis") -> Table:
    """The four gaps with how each was computed; the largest is marked.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> diagnosis_table(diagnose(0.08, 0.1, 0.11, human_error=0.01)).row_count
        4
    """
    table = Table(title=plain_title(title), title_justify="left")
    table.add_column("gap")
    table.add_column("value", justify="right")
    table.add_column("computed as")
    table.add_column("")
    formulas = gap_formulas(d)
    for gap, value in d.gaps.items():
        mark = "<- largest" if gap == d.largest else ""
        if gap == "avoidable_bias" and "train" in d.below_human:
            mark = "below human: see note"
        style = "bold" if gap == d.largest else None
        table.add_row(GAP_TITLES[gap], gap_value(d, value), formulas[gap], mark, style=style)
    return table


def diagnosis_renderable(d: Diagnosis) -> Group:
    """The diagnosis table, the verdict, the remedies and any notes, for ``console.print``."""
    lines: list[Any] = [diagnosis_table(d), Text(d.verdict, style="bold")]
    title = "Remedies" if d.largest != "none" else "Next"
    lines.append(Text(f"{title} ({GAP_TITLES[d.largest]}):"))
    lines.extend(Text(f"  - {r}") for r in d.remedies)
    lines.extend(Text(f"note: {n}", style="dim") for n in d.notes)
    return Group(*lines)


def compare_table(
    selection: Selection,
    columns: Sequence[str] = ("dev/error", "params"),
    title: str | None = None,
) -> Table:
    """Every run with its optimizing and satisficing metrics; failed constraints and the
    winner marked.

    Args:
        selection: From :func:`~mlstrategy.evaluation.selection.select`.
        columns: Further metrics to show when the runs have them.
        title: Table title.

    Example:
        >>> from mlstrategy.evaluation.selection import select
        >>> s = select({"a": {"dev/f1": 0.9}, "b": {"dev/f1": 0.8}}, "dev/f1")
        >>> compare_table(s).row_count
        2
    """
    shown = [selection.optimize]
    for c in selection.constraints:
        if c.metric not in shown:
            shown.append(c.metric)
    chosen_by = len(shown)  # the optimizing and satisficing metrics: never dropped
    present = {k for cand in selection.candidates for k in cand.values}
    shown += [c for c in columns if c not in shown and c in present]
    arrow = "max" if selection.goal == "max" else "min"
    table = _FoldingTable(title=plain_title(title), title_justify="left")
    rows = [[_shown_value(cand.values.get(m)) for m in shown] for cand in selection.candidates]
    # Numbers are never cut (each column at least as wide as its widest value); on a narrow
    # terminal the headers take two lines and names and the status fold, and the further
    # columns that still do not fit are left out, so the status (and the winner) stays in
    # view at 80 columns.
    table.add_column("run", overflow="fold", min_width=8)
    for i, name in enumerate(shown):
        header = f"{name} {arrow}" if i == 0 else name
        widest = max((len(row[i]) for row in rows), default=1)
        table.add_column(header, justify="right", overflow="fold", min_width=max(widest, 4))
    table.add_column("status", overflow="fold", min_width=len("winner"))
    # The further columns go last first: params, then the recipe's columns from its last.
    table.droppable = [table.columns[1 + i] for i in reversed(range(chosen_by, len(shown)))]
    for cand, values in zip(selection.candidates, rows, strict=True):
        if cand.name == selection.winner:
            status, style = "winner", "bold green"
        elif cand.eligible:
            status, style = "ok", None
        else:
            status, style = "fails " + ", ".join(cand.failures), "dim"
        table.add_row(escape(cand.name), *values, escape(status), style=style)
    return table


def _two_lines(header: str) -> str:
    """``header`` split at its last space, slash or underscore.

    Example:
        >>> _two_lines("dev/f1 max"), _two_lines("dev/recall"), _two_lines("latency_ms")
        ('dev/f1\\nmax', 'dev/\\nrecall', 'latency\\n_ms')
    """
    cut = max(header.rfind(" "), header.rfind("/"), header.rfind("_"))
    if cut <= 0:
        return header
    if header[cut] == " ":
        return f"{header[:cut]}\n{header[cut + 1 :]}"
    keep = cut + 1 if header[cut] == "/" else cut  # "dev/" above "recall"; "_ms" below
    return f"{header[:keep]}\n{header[keep:]}"


class _FoldingTable(Table):
    """A table that fits the terminal: its headers take two lines when it would not fit on
    one line each, and when even its narrowest layout (every column at its ``min_width``) is
    too wide, the ``droppable`` columns are left out in that order, and a line below the
    table names them.

    Rendering works on a copy, so the same table prints whole on a wider console.
    """

    droppable: Sequence[Column] = ()  # compare_table sets the further metric columns

    def __rich_console__(self, console: Any, options: Any) -> Any:
        width = options.max_width
        kept = list(self.columns)
        dropped = []
        for column in self.droppable:
            if _narrowest(kept) <= width:
                break
            kept.remove(column)
            dropped.append(column)
        table = copy.copy(self)
        table.columns = [dataclasses.replace(c, _index=i) for i, c in enumerate(kept)]
        if table.__rich_measure__(console, options).maximum > width:
            for column in table.columns:
                if isinstance(column.header, str):
                    column.header = _two_lines(column.header)
        yield from Table.__rich_console__(table, console, options)
        if dropped:
            names = ", ".join(str(c.header) for c in reversed(dropped))
            yield Text(
                f"not shown at {width} columns: {names} (a wider terminal shows them)",
                style="dim",
            )


def _narrowest(columns: Sequence[Column]) -> int:
    """The width of a table of ``columns`` at their ``min_width``: rich folds a column no
    narrower, and crops the table's right side when the terminal is narrower still."""
    padding = 2  # one space each side of a cell
    return len(columns) + 1 + sum((c.min_width or 1) + padding for c in columns)  # + borders


def _shown_value(value: float | None) -> str:
    return "-" if value is None else format_metric(value)
