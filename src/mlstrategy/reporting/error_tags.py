"""The "Error analysis by tag" section: the ceiling table in ``report.md`` and TensorBoard.

``mlstrategy errors RUN_DIR --tags errors.csv`` runs after the run finished, so its section is
added to the run's ``report.md`` (replacing the one an earlier ``--tags`` wrote, never doubling
it) instead of the run report being rendered again. TensorBoard gets the table as a text panel
(``error_analysis/tags``) and per tag the scalars ``error_tags/{tag}/count``, ``share`` and
``ceiling`` (``error_tags/{task}/{tag}/...`` for a multi-task run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlstrategy.evaluation.error_tags import TagTable
from mlstrategy.io import write_text_atomic
from mlstrategy.reporting.markdown import md_table, pct

TAG_SECTION = "## Error analysis by tag"


def tag_table_lines(table: TagTable) -> list[str]:
    """One table as Markdown: what it was computed from, the rows, and its notes.

    Example:
        >>> from mlstrategy.evaluation.error_tags import tag_table
        >>> lines = tag_table_lines(tag_table([["blurry"], ["dog"]], 2, 100))
        >>> lines[0]
        'Dev error 2.00% (2 of 100 dev examples misclassified; 2 examined and tagged).'
        >>> lines[4]
        '| blurry | 1 | 50.0% | 1.00% | 1.00 |'
    """
    lines = [
        f"Dev error {pct(table.dev_error)} ({table.dev_errors} of {table.n_dev} dev examples "
        f"misclassified; {table.examined} examined and tagged)."
    ]
    lines += [""]
    lines += md_table(
        ["tag", "errors", "share of dev errors", "dev error if fixed (ceiling)", "gain (points)"],
        [
            [r.tag, r.count, pct(r.share, 1), pct(r.ceiling), f"{100 * r.gain:.2f}"]
            for r in table.rows
        ],
        align=["left", "right", "right", "right", "right"],
    )
    return [*lines, *(["", *(f"> Note: {n}" for n in table.notes)] if table.notes else [])]


def tag_section_lines(tables: Sequence[TagTable]) -> list[str]:
    """The whole section: a heading, how to read it, one table per task (or just one).

    Example:
        >>> from mlstrategy.evaluation.error_tags import tag_table
        >>> tag_section_lines([tag_table([["blurry"]], 1, 10)])[0]
        '## Error analysis by tag'
    """
    out = [
        TAG_SECTION,
        "",
        "From the tagged `errors.csv` (`mlstrategy errors RUN_DIR --tags errors.csv`). A tag's "
        "ceiling is the dev error left if every error with that tag were fixed; the first row "
        "is the category worth working on first.",
        "",
    ]
    for table in tables:
        if table.task is not None:
            out += [f"### {table.task}", ""]
        out += [*tag_table_lines(table), ""]
    return out


def with_section(report: str, lines: Sequence[str]) -> str:
    """``report`` with the section that ``lines`` start with replaced, or added at the end.

    The section runs to the next heading of the same or a higher level.

    Example:
        >>> text = "# R\\n\\n## A\\nold\\n\\n## B\\nb\\n"
        >>> print(with_section(text, ["## A", "new"]), end="")
        # R
        <BLANKLINE>
        ## A
        new
        <BLANKLINE>
        ## B
        b
        >>> with_section("# R\\n", ["## A", "x"])
        '# R\\n\\n## A\\nx\\n'
    """
    heading = lines[0]
    level = len(heading) - len(heading.lstrip("#"))
    old = report.splitlines()
    body = [*lines]
    while body and not body[-1].strip():
        body.pop()
    if heading in old:
        start = old.index(heading)
        end = next(
            (
                i
                for i in range(start + 1, len(old))
                if old[i].startswith("#") and len(old[i]) - len(old[i].lstrip("#")) <= level
            ),
            len(old),
        )
        new = [*old[:start], *body, *([""] if end < len(old) else []), *old[end:]]
    else:
        while old and not old[-1].strip():
            old.pop()
        new = [*old, "", *body]
    return "\n".join(new) + "\n"


def write_tag_report(report: Path, tables: Sequence[TagTable], writer: Any = None) -> list[str]:
    """Put the section into ``report`` (created if missing) and, given a TensorBoard
    ``SummaryWriter``, the table as text and each tag's count, share and ceiling as scalars.

    Returns:
        The section's lines.
    """
    lines = tag_section_lines(tables)
    old = report.read_text() if report.is_file() else ""
    write_text_atomic(report, with_section(old, lines))
    if writer is not None:
        writer.add_text("error_analysis/tags", "\n".join(lines), global_step=0)
        for table in tables:
            prefix = f"error_tags/{table.task}" if table.task is not None else "error_tags"
            for row in table.rows:
                for key in ("count", "share", "ceiling"):
                    writer.add_scalar(f"{prefix}/{row.tag}/{key}", getattr(row, key), 0)
        writer.flush()
    return lines
