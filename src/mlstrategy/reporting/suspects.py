"""What ``mlstrategy suspects`` writes: ``suspect_labels.csv``, the contact sheet of the most
suspect examples, and the "Suspect labels" section of ``report.md``.

The section replaces the one an earlier ``suspects`` wrote (never doubled), with
:func:`~mlstrategy.reporting.error_tags.with_section`, rather than rendering the whole run
report again. The contact sheet reuses :mod:`~mlstrategy.reporting.contact_sheet`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstrategy.io import write_text_atomic
from mlstrategy.reporting.contact_sheet import SheetCell, contact_sheet_figure
from mlstrategy.reporting.error_tags import with_section
from mlstrategy.reporting.markdown import md_table, num

SECTION_TITLE = "## Suspect labels (train and dev)"
REPORT_ROWS = 20


@dataclass(frozen=True)
class SuspectCell(SheetCell):
    """A contact-sheet cell for a suspect label: its split, the given label and the model's.

    Example:
        >>> SuspectCell(7, "3", "8", 0.012, split="train").caption()
        'train #7  given 3, model: 8\\np(given) = 0.01'
    """

    split: str = "dev"

    def caption(self) -> str:
        return f"{self.split} #{self.index}  given {self.true}, model: {self.predicted}\n" + (
            f"p(given) = {self.p_true:.2f}"
        )


def write_suspects_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """The ranked rows as CSV (atomically), columns in the rows' order, the ``verdict`` column
    last for the person who checks them (``wrong``, ``ok``, ``unsure``): a row's own
    ``verdict`` (one kept from an earlier sheet), else empty."""
    buffer = io.StringIO()
    columns = [*(c for c in (rows[0] if rows else ["rank"]) if c != "verdict"), "verdict"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "verdict": row.get("verdict") or ""})
    write_text_atomic(path, buffer.getvalue())
    return path


def suspects_figure(x: np.ndarray, rows: Sequence[Mapping[str, Any]], title: str) -> Any:
    """The contact sheet of ``rows`` (their raw examples ``x``), or None for flat features."""
    cells = [
        SuspectCell(int(r["index"]), str(r["given"]), str(r["suggested"]), float(r["p_given"]),
                    split=str(r["split"]))
        for r in rows
    ]  # fmt: skip
    return contact_sheet_figure(x, cells, title=title)


def suspect_section_lines(
    rows: Sequence[Mapping[str, Any]],
    folds: int,
    estimated: int,
    figure: str | None = None,
    top: int = REPORT_ROWS,
) -> list[str]:
    """The report section: how the ranking was made, the estimate, the top rows, the figure.

    Example:
        >>> row = {"rank": 1, "split": "train", "index": 4, "input": "digits.csv line 11",
        ...        "given": "3", "p_given": 0.01, "suggested": "8", "p_suggested": 0.97,
        ...        "margin": -0.96, "confident_issue": True}
        >>> lines = suspect_section_lines([row], folds=5, estimated=1)
        >>> lines[0]
        '## Suspect labels (train and dev)'
        >>> lines[-2]
        '| 1 | train | 4 | digits.csv line 11 | 3 | 0.010 | 8 | 0.970 | yes |'
    """
    n = len(rows)
    out = [
        SECTION_TITLE,
        "",
        f"Every train and dev example ({n:,}) scored by the recipe refitted {folds} times "
        f"({folds}-fold cross-validation of train + dev, same hyperparameters), each example by "
        "the fit that never saw it, then ranked by p(given label), least likely first. "
        "Confident learning (Northcutt et al. 2021) marks an example as a likely label issue "
        "when another class reaches its per-class threshold (the mean p(class) over the "
        f"examples labelled with it) and wins: {estimated:,} of {n:,} "
        f"({100 * estimated / max(n, 1):.1f}%) here, its estimate of the wrong labels.",
        "",
        "Check the top of `suspect_labels.csv` by eye (its `verdict` column is for that); "
        "relabel what is wrong, and count how many dev errors were label errors: if they are "
        "a large share of the dev error, cleaning the dev set comes first.",
        "",
    ]
    keys = ["rank", "split", "index", *(["input"] if rows and "input" in rows[0] else [])]
    out += md_table(
        [*keys, "given", "p(given)", "model says", "p", "issue"],
        [
            [*(r[k] for k in keys), r["given"], num(r["p_given"], 3), r["suggested"],
             num(r["p_suggested"], 3), "yes" if r["confident_issue"] else ""]
            for r in rows[:top]
        ],
    )  # fmt: skip
    if figure:
        out += ["", f"![most suspect labels]({figure})"]
    return [*out, ""]


def write_suspects_section(report: Path, lines: Sequence[str]) -> None:
    """Put the section into ``report`` (created if missing), replacing an earlier one."""
    old = report.read_text() if report.is_file() else ""
    write_text_atomic(report, with_section(old, lines))
