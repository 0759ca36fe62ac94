"""What an end-to-end vs pipeline study shows: the crossover, the tables and the plot, and the
study's run folder (``report.md``, ``error_vs_train_size.png``, TensorBoard events and, last,
``study.json``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from mlstrategy.pipeline.ceiling import CeilingAnalysis
from mlstrategy.reporting.markdown import Align, md_table, pct
from mlstrategy.reporting.tables import plain_title
from mlstrategy.run_folder import REPORT_FILE

RESULTS_FILE = "study.json"
FIGURE_FILE = "error_vs_train_size.png"


@dataclass(frozen=True)
class Crossover:
    """Where one learning curve (test error vs training-set size) falls below another.

    Attributes:
        at: The interpolated training-set size where the curves cross (linear in
            ``log m``), or None when they do not cross.
        between: The two measured sizes the crossing lies between, or None.
        summary: One sentence saying what happened, with the numbers.
    """

    at: float | None
    between: tuple[int, int] | None
    summary: str


def find_crossover(
    sizes: Sequence[int],
    challenger: Sequence[float],
    incumbent: Sequence[float],
    names: tuple[str, str] = ("end-to-end", "pipeline"),
) -> Crossover:
    """The first size from which ``challenger``'s error is at or below ``incumbent``'s.

    Args:
        sizes: Training-set sizes, increasing.
        challenger: Test error of the approach expected to win with more data, one per size.
        incumbent: Test error of the other approach, one per size.
        names: How the summary names the two approaches.

    Returns:
        The crossing (interpolated in ``log m`` between the last size where the challenger was
        behind and the first where it is not), or a :class:`Crossover` without one, saying who
        led throughout.

    Example:
        >>> c = find_crossover([100, 1000, 10000], [0.5, 0.2, 0.05], [0.2, 0.15, 0.1])
        >>> round(c.at), c.between
        (3162, (1000, 10000))
        >>> find_crossover([100, 1000], [0.5, 0.3], [0.2, 0.1]).at is None
        True
    """
    if not (len(sizes) == len(challenger) == len(incumbent)) or not sizes:
        raise ValueError(
            f"sizes, challenger and incumbent need one value per size; got lengths "
            f"{len(sizes)}, {len(challenger)} and {len(incumbent)}."
        )
    if any(b <= a for a, b in itertools.pairwise(sizes)):
        raise ValueError(f"sizes={list(sizes)} must be increasing.")
    first, second = names
    gap = [c - i for c, i in zip(challenger, incumbent, strict=True)]
    if gap[0] <= 0:
        return Crossover(
            None,
            None,
            f"No crossover: {first} is at or below {second} already at m={sizes[0]} "
            f"({pct(challenger[0], 1)} vs {pct(incumbent[0], 1)}).",
        )
    for k in range(1, len(sizes)):
        if gap[k] <= 0:
            m0, m1 = sizes[k - 1], sizes[k]
            d0, d1 = gap[k - 1], gap[k]
            fraction = d0 / (d0 - d1)
            at = math.exp(math.log(m0) + fraction * (math.log(m1) - math.log(m0)))
            return Crossover(
                at,
                (m0, m1),
                f"{first} overtakes {second} between m={m0} ({pct(challenger[k - 1], 1)} vs "
                f"{pct(incumbent[k - 1], 1)}) and m={m1} ({pct(challenger[k], 1)} vs "
                f"{pct(incumbent[k], 1)}), at about m={at:.0f} training examples.",
            )
    return Crossover(
        None,
        None,
        f"No crossover up to m={sizes[-1]}: {second} stays ahead of {first} at every size "
        f"({pct(incumbent[-1], 1)} vs {pct(challenger[-1], 1)} at m={sizes[-1]}).",
    )


def crossover_figure(
    sizes: Sequence[int], curves: Mapping[str, Sequence[float]], crossover: Crossover | None = None
) -> Figure:
    """Test error against training-set size (log scale), one line per approach, and where
    they cross.

    Example:
        >>> fig = crossover_figure([10, 100], {"a": [0.5, 0.1], "b": [0.3, 0.2]})
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['a', 'b']
    """
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, errors in curves.items():
        ax.plot(sizes, [100 * e for e in errors], marker="o", label=label)
    if crossover is not None and crossover.at is not None:
        ax.axvline(
            crossover.at, color="gray", linestyle=":", label=f"crossover (m~{crossover.at:.0f})"
        )
    ax.set_xscale("log")
    ax.set_xticks(list(sizes), [str(m) for m in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training-set size m (canvases)")
    ax.set_ylabel("test error (%)")
    ax.set_title("end-to-end vs pipeline")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


_CEILING_HEADER = ("component made perfect", "system error", "share of error", "stage's own error")


def _size_rows(sizes: Sequence[int], curves: Mapping[str, Sequence[float]]) -> list[list[str]]:
    """One row per training-set size: ``m``, then each approach's test error."""
    return [[str(m), *(pct(e[k], 1) for e in curves.values())] for k, m in enumerate(sizes)]


def _ceiling_rows(analysis: CeilingAnalysis) -> list[tuple[list[str], bool]]:
    """Each row's cells, and whether it is the stage with the largest share."""
    rows = []
    for row in analysis.rows:
        if row.component == "overall system":
            cells = ["overall system (none)", pct(row.error, 1), "", ""]
        else:
            cells = [f"+ {row.component}", pct(row.error, 1), pct(row.gain, 1)]
            cells.append(pct(row.stage_error, 1))
        rows.append((cells, row.component == analysis.worst))
    return rows


def sizes_table(sizes: Sequence[int], curves: Mapping[str, Sequence[float]]) -> Table:
    """A rich table: one row per training-set size, test error of each approach."""
    table = Table(title="test error vs training-set size", title_justify="left")
    table.add_column("m", justify="right")
    for label in curves:
        table.add_column(label, justify="right")
    for cells in _size_rows(sizes, curves):
        table.add_row(*cells)
    return table


def ceiling_table(analysis: CeilingAnalysis, title: str) -> Table:
    """A rich table of a ceiling analysis: error with each stage perfect, and its share."""
    table = Table(title=plain_title(title), title_justify="left")
    for i, col in enumerate(_CEILING_HEADER):
        table.add_column(col, justify="left" if i == 0 else "right")
    for cells, worst in _ceiling_rows(analysis):
        table.add_row(*cells, style="bold" if worst else None)
    return table


def ceiling_verdict(analysis: CeilingAnalysis) -> str:
    """One sentence: which stage to improve first, and the most that would buy.

    Example:
        >>> from mlstrategy.pipeline.ceiling import CeilingRow
        >>> a = CeilingAnalysis((CeilingRow("overall system", (), 0.3, 0.0),
        ...     CeilingRow("find", ("find",), 0.1, 0.2, 0.25),
        ...     CeilingRow("read", ("find", "read"), 0.0, 0.1, 0.1)))
        >>> ceiling_verdict(a)
        'Improve find first: perfect, it would cut the error from 30.0% to 10.0% (2/3 of it).'
    """
    worst = analysis.worst
    row = next(r for r in analysis.rows if r.component == worst)
    total = analysis.system_error
    if total == 0:
        return "The pipeline makes no mistakes on these examples: no stage to improve."
    share = Fraction(row.gain / total).limit_denominator(10)
    return (
        f"Improve {worst} first: perfect, it would cut the error from {pct(total, 1)} to "
        f"{pct(total - row.gain, 1)} ({share} of it)."
    )


def sizes_markdown(sizes: Sequence[int], curves: Mapping[str, Sequence[float]]) -> str:
    """The test-error table in Markdown.

    Example:
        >>> print(sizes_markdown([10], {"a": [0.5]}))
        | m | a |
        |---:|---:|
        | 10 | 50.0% |
    """
    align: list[Align] = ["right"] * (len(curves) + 1)
    return "\n".join(md_table(["m", *curves], _size_rows(sizes, curves), align))


def ceiling_markdown(analysis: CeilingAnalysis) -> str:
    """A ceiling analysis in Markdown (the stage with the largest share in bold)."""
    rows = [
        [f"**{cells[0]}**", *cells[1:]] if worst else cells
        for cells, worst in _ceiling_rows(analysis)
    ]
    align: list[Align] = ["left", "right", "right", "right"]
    return "\n".join(md_table(_CEILING_HEADER, rows, align))


def write_study(
    run_dir: Path,
    console: Console,
    study: Any,
    errors: Mapping[str, Sequence[float]],
    ceilings: Mapping[str, Sequence[CeilingAnalysis]],
    seconds: Mapping[str, Sequence[float]],
    test_size: int,
    total_seconds: float,
    cpu_seconds: float,
) -> dict[str, Any]:
    """Print and write an end-to-end vs pipeline study's results.

    Writes ``report.md``, ``error_vs_train_size.png``, TensorBoard events (``test_error/*``
    against the training-set size on one chart, the figure, the report as text) and, last,
    ``study.json``, whose presence marks a finished study.

    Args:
        run_dir: The run folder.
        console: Where the tables are printed.
        study: The study (its ``train_sizes`` and ``task``).
        errors: Test error per approach (the end-to-end one first), one per size.
        ceilings: Each pipeline's ceiling analysis, one per size.
        seconds: Training time per approach and size.
        test_size: Number of test canvases.
        total_seconds: Wall time of the whole study.
        cpu_seconds: CPU time of the whole study (all threads).

    Returns:
        What ``study.json`` holds.
    """
    from mlstrategy.io import write_json_atomic, write_text_atomic
    from mlstrategy.reporting.plots import save_figure

    sizes = list(study.train_sizes)
    names = list(errors)
    e2e = names[0]
    crossovers = {
        p: find_crossover(sizes, errors[e2e], errors[p], names=(e2e, p)) for p in names[1:]
    }
    figure = crossover_figure(sizes, errors, next(iter(crossovers.values()), None))
    save_figure(figure, run_dir / FIGURE_FILE)
    timing = f"Study time {total_seconds:.0f} s wall, {cpu_seconds:.0f} s CPU."
    intro = f"Task: {study.task!r}; {test_size} test canvases (held-out digits). {timing}"
    report = _study_markdown(intro, sizes, errors, crossovers, ceilings)
    write_text_atomic(run_dir / REPORT_FILE, report)
    _log_study(run_dir, sizes, errors, ceilings, figure, report)
    _print_study(console, sizes, errors, crossovers, ceilings)

    results: dict[str, Any] = {
        "task": repr(study.task),
        "train_sizes": sizes,
        "test_size": test_size,
        "test_error": {k: list(v) for k, v in errors.items()},
        "crossover": {
            p: {"at": c.at, "between": c.between, "summary": c.summary}
            for p, c in crossovers.items()
        },
        "ceiling": {
            name: {str(m): a.to_dict() for m, a in zip(sizes, analyses, strict=True)}
            for name, analyses in ceilings.items()
        },
        "train_seconds": {k: list(v) for k, v in seconds.items()},
        "total_seconds": round(total_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
    }
    write_json_atomic(run_dir / RESULTS_FILE, results)
    return results


def _study_markdown(
    intro: str,
    sizes: Sequence[int],
    errors: Mapping[str, Sequence[float]],
    crossovers: Mapping[str, Crossover],
    ceilings: Mapping[str, Sequence[CeilingAnalysis]],
) -> str:
    """The study's ``report.md``: the test errors, where they cross, and the ceiling analyses
    at the largest size."""
    lines = [
        "# End-to-end vs pipeline",
        "",
        intro,
        "",
        "## Test error vs training-set size",
        "",
        sizes_markdown(sizes, errors),
        "",
        *(f"- {c.summary}" for c in crossovers.values()),
        "",
        f"![test error vs training-set size]({FIGURE_FILE})",
        "",
        f"## Error analysis by parts (ceiling analysis, m={sizes[-1]})",
        "",
        "Each row replaces one more stage by its ground truth (its intermediate label); the "
        "share is how much of the system's error that stage is responsible for. The row "
        "before the last is the classifier's own error on clean digits.",
    ]
    for name, analyses in ceilings.items():
        lines += [
            "",
            f"### {name}",
            "",
            ceiling_markdown(analyses[-1]),
            "",
            ceiling_verdict(analyses[-1]),
        ]
    return "\n".join(lines) + "\n"


def _log_study(
    run_dir: Path,
    sizes: Sequence[int],
    errors: Mapping[str, Sequence[float]],
    ceilings: Mapping[str, Sequence[CeilingAnalysis]],
    figure: Figure,
    report: str,
) -> None:
    """TensorBoard: ``test_error/*`` against ``m`` on one chart, ``ceiling/*`` gains, the
    figure and the report."""
    from torch.utils.tensorboard import SummaryWriter

    largest = sizes[-1]
    writer = SummaryWriter(log_dir=str(run_dir))
    try:
        tags = {name: f"test_error/{_tag(name)}" for name in errors}
        writer.add_custom_scalars(
            {"end-to-end vs pipeline": {"test error vs m": ["Multiline", list(tags.values())]}}
        )
        for name, tag in tags.items():
            for m, error in zip(sizes, errors[name], strict=True):
                writer.add_scalar(tag, error, global_step=m)
        for name, analyses in ceilings.items():
            for m, analysis in zip(sizes, analyses, strict=True):
                for stage, gain in analysis.gains.items():
                    writer.add_scalar(f"ceiling/{_tag(name)}/{stage}", gain, global_step=m)
        writer.add_figure("error_vs_train_size", figure, global_step=largest)
        writer.add_text("report", report, global_step=largest)
    finally:
        writer.close()


def _print_study(
    console: Console,
    sizes: Sequence[int],
    errors: Mapping[str, Sequence[float]],
    crossovers: Mapping[str, Crossover],
    ceilings: Mapping[str, Sequence[CeilingAnalysis]],
) -> None:
    console.print(sizes_table(sizes, errors))
    for c in crossovers.values():
        console.print(c.summary, highlight=False)
    for name, analyses in ceilings.items():
        console.print(ceiling_table(analyses[-1], f"error by parts: {name}, m={sizes[-1]}"))
        console.print(ceiling_verdict(analyses[-1]), highlight=False)


def _tag(name: str) -> str:
    """A TensorBoard-friendly tag: ``pipeline (template localizer)`` -> ``pipeline_template``."""
    return name.replace(" localizer)", "").replace(" (", "_").replace("-", "_").replace(" ", "_")
