"""``mlstrategy errors RUN_DIR [--tags SHEET]``: the course's error analysis, by hand."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

ERRORS_HELP = """\
Error analysis, as the course does it: look at the dev examples the model gets wrong, tag
what went wrong with each, count the tags, and work on the category that buys the most.

  mlstrategy errors RUN_DIR
      writes errors.csv into the run folder: every misclassified dev example, highest loss
      first, with its dev index, the input it came from (image file, CSV line, or row of the
      data source), true and predicted class, p(true), loss, and an empty tags column. For
      images and signals (MNIST-1D), errors.png shows the highest-loss ones with their true
      and predicted labels.

  mlstrategy errors RUN_DIR --tags RUN_DIR/errors.csv
      after you filled in the tags column (several per row separated by ';', e.g.
      'blurry;mislabelled'; rows left empty count as not looked at), prints per tag: the
      count, its share of the dev errors, and the ceiling, the dev error if every error with
      that tag were fixed:  ceiling = dev error x (1 - share)  (= (errors - count) / n_dev
      when every error was tagged). Lowest ceiling first. The table also goes into the run's
      report.md ("Error analysis by tag") and TensorBoard (text panel error_analysis/tags,
      scalars error_tags/<tag>/count|share|ceiling).

RUN_DIR is a run folder, or a recipe's folder for its latest finished run.
"""


def main(argv: list[str], console: Console) -> int:
    """Write the error sheet of a run, or print the table of a tagged one."""
    parser = argparse.ArgumentParser(
        prog="mlstrategy errors",
        description=ERRORS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a recipe's folder")
    parser.add_argument("--tags", metavar="SHEET", help="the tagged errors.csv")
    args = parser.parse_args(argv)
    if args.tags is None:
        return _sheet(args.run_dir, console)
    return _tags(args.run_dir, args.tags, console)


def _sheet(run_dir: str, console: Console) -> int:
    from mlstrategy.run_folder import shown
    from mlstrategy.runs.error_sheet import write_error_sheet

    sheet = write_error_sheet(run_dir)
    console.print(
        f"{len(sheet.rows)} misclassified of {sheet.n_dev} dev examples written to "
        f"{shown(sheet.path)} (highest loss first)",
        markup=False,
    )
    if sheet.figure is not None:
        console.print(f"the highest-loss ones, drawn: {shown(sheet.figure)}", markup=False)
    if sheet.rows:
        console.print(
            "Fill in the tags column (e.g. blurry;mislabelled), then: "
            f"mlstrategy errors {run_dir} --tags {shown(sheet.path)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 0


def _tags(run_dir: str, sheet: str, console: Console) -> int:
    from mlstrategy.reporting.markdown import pct
    from mlstrategy.reporting.tables import plain_title
    from mlstrategy.runs.error_sheet import tag_report

    for table in tag_report(run_dir, sheet):
        task = f" ({table.task})" if table.task else ""
        out = Table(
            "tag",
            "errors",
            "share of dev errors",
            "dev error if fixed",
            "gain (points)",
            title=plain_title(
                f"Error analysis by tag{task}: dev error {pct(table.dev_error)}, "
                f"{table.examined} of {table.dev_errors} errors tagged"
            ),
        )
        for row in table.rows:
            out.add_row(
                escape(row.tag),
                str(row.count),
                pct(row.share, 1),
                pct(row.ceiling),
                f"{100 * row.gain:.2f}",
            )
        console.print(out)
        for note in table.notes:
            console.print(f"note: {note}", markup=False)
    console.print(
        "added to report.md (Error analysis by tag) and TensorBoard (error_analysis/tags)"
    )
    return 0
