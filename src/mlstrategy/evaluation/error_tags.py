"""The course's error-analysis table: per tag, how many dev errors carry it, and the ceiling.

Error analysis (Structuring ML projects, week 2; *Machine Learning Yearning* ch. 14-19): look at
the misclassified dev examples, tag each with what went wrong (``blurry``, ``dog``,
``mislabelled``; several tags per example are fine), then count. A tag's *ceiling* is the dev
error left if every error with that tag were fixed::

    share   = count / examined                  (the fraction of the examined errors)
    ceiling = dev_error * (1 - share)           = (errors - count) / n_dev when every error
                                                  was examined

With a sample of the errors examined (the course suggests about 100), ``share`` estimates the
fraction of all errors and the ceiling scales it to all of them. Work on the tag with the lowest
ceiling first: it is the most that fixing one category can buy.

Only the standard library: the maths is checked by hand in its tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TAG_SEPARATOR = ";"


def parse_tags(cell: str) -> list[str]:
    """The tags of one sheet cell: separated by ``;``, trimmed, each once, in order.

    Example:
        >>> parse_tags(" blurry; dog ;;blurry ")
        ['blurry', 'dog']
        >>> parse_tags("")
        []
    """
    return list(dict.fromkeys(t.strip() for t in cell.split(TAG_SEPARATOR) if t.strip()))


@dataclass(frozen=True)
class TagRow:
    """One row of the table.

    Attributes:
        tag: The tag.
        count: Examined errors that carry it.
        share: ``count / examined``: the fraction of dev errors with this tag.
        ceiling: The dev error if every error with this tag were fixed.
        gain: ``dev_error - ceiling``: the most that fixing this category can buy.
    """

    tag: str
    count: int
    share: float
    ceiling: float
    gain: float


@dataclass(frozen=True)
class TagTable:
    """The table and what it was computed from.

    Attributes:
        rows: One per tag, lowest ceiling (largest gain) first.
        examined: Errors that got at least one tag.
        dev_errors: Misclassified dev examples of the run.
        n_dev: Dev examples.
        untagged: Rows of the sheet left without a tag (not counted as examined).
        task: The task of a multi-task run, else None.
    """

    rows: list[TagRow]
    examined: int
    dev_errors: int
    n_dev: int
    untagged: int = 0
    task: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def dev_error(self) -> float:
        """The run's dev error, ``dev_errors / n_dev``."""
        return self.dev_errors / self.n_dev


def tag_table(
    tags: Iterable[Sequence[str]], dev_errors: int, n_dev: int, task: str | None = None
) -> TagTable:
    """Count each tag over the examined errors and compute its ceiling.

    Args:
        tags: The tags of each row of the sheet (from :func:`parse_tags`); a row without tags
            was not examined and is left out.
        dev_errors: Misclassified dev examples (from the run's confusion matrix).
        n_dev: Dev examples.
        task: The task a multi-task sheet's rows belong to.

    Returns:
        The table, sorted by ceiling (then by tag).

    Raises:
        ValueError: no row carries a tag, more rows are tagged than there are errors, or the
            counts are impossible.

    Example:
        >>> table = tag_table([["blurry"], ["blurry", "dog"], ["dog"], ["mislabelled"]], 4, 100)
        >>> [(r.tag, r.count, r.share, r.ceiling) for r in table.rows]
        [('blurry', 2, 0.5, 0.02), ('dog', 2, 0.5, 0.02), ('mislabelled', 1, 0.25, 0.03)]
    """
    if n_dev < 1 or not 0 <= dev_errors <= n_dev:
        raise ValueError(f"dev_errors={dev_errors}, n_dev={n_dev}: need 0 <= errors <= n_dev >= 1.")
    rows = [list(r) for r in tags]
    tagged = [r for r in rows if r]
    where = f" for task {task!r}" if task else ""
    if not tagged:
        raise ValueError(
            f"No row of the sheet{where} has a tag. Fill in the `tags` column (several tags per "
            f"row separated by '{TAG_SEPARATOR}', e.g. 'blurry;dog'), save it, and run "
            "`mlstrategy errors RUN_DIR --tags errors.csv` again."
        )
    if len(tagged) > dev_errors:
        raise ValueError(
            f"The sheet{where} has {len(tagged)} tagged rows, but the run has only {dev_errors} "
            "misclassified dev examples: is it this run's errors.csv? Write a fresh one with "
            "`mlstrategy errors RUN_DIR`."
        )
    counts: dict[str, int] = {}
    for row in tagged:
        for tag in dict.fromkeys(row):
            counts[tag] = counts.get(tag, 0) + 1
    error = dev_errors / n_dev
    table = []
    for tag, count in counts.items():
        share = count / len(tagged)
        ceiling = error * (1 - share)
        table.append(
            TagRow(tag, count, round(share, 6), round(ceiling, 6), round(error - ceiling, 6))
        )
    table.sort(key=lambda r: (r.ceiling, r.tag))
    notes = []
    if len(tagged) < dev_errors:
        notes.append(
            f"{len(tagged)} of {dev_errors} dev errors were tagged; shares are estimated from "
            "them and the ceilings scaled to all errors."
        )
    return TagTable(table, len(tagged), dev_errors, n_dev, len(rows) - len(tagged), task, notes)
