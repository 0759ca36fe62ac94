"""``mlstrategy suspects RUN_DIR [--folds K]``: the labels the recipe's own model doubts."""

from __future__ import annotations

import argparse

from rich.console import Console

SUSPECTS_HELP = """\
Find likely label errors (the course's "cleaning up incorrectly labeled data"): rank every
train and dev example by how unlikely the recipe's own model finds its given label.

The run's config.yaml is refitted K times, with the same hyperparameters, on K stratified
folds of train + dev (one line per fold); each example is scored by the fit that never saw
it, so a wrong label cannot have been memorised. Examples are ranked by p(given label), least
likely first. Confident learning (Northcutt et al. 2021, written in the project) marks the
likely label issues: another class reaches its per-class threshold (the mean p(class) over
the examples labelled with it) and wins; their count estimates how many labels are wrong.

Writes into the run folder:
  suspect_labels.csv   every train and dev example, most suspect first: rank, split, index
                       in its split, input (the example's file, line or row in its source),
                       given label, p(given), the model's class and its p, margin,
                       confident_issue, and an empty verdict column for you
  suspect_labels.png   for images and signals: the most suspect examples, drawn
  report.md            a "Suspect labels" section (replaced when run again)

RUN_DIR is a run folder, or a recipe's folder for its latest finished run. Needs a data
module that keeps its splits in memory (ArrayDataModule) and a single-task classifier.
"""


def main(argv: list[str], console: Console) -> int:
    """Rank a run's train and dev labels; print where the results are and the top few."""
    from mlstrategy.run_folder import shown
    from mlstrategy.runs.suspects import write_suspects

    parser = argparse.ArgumentParser(
        prog="mlstrategy suspects",
        description=SUSPECTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a recipe's folder")
    parser.add_argument(
        "--folds", type=int, default=5, metavar="K", help="cross-validation folds (default 5)"
    )
    args = parser.parse_args(argv)
    found = write_suspects(args.run_dir, folds=args.folds, console=console)
    if found.csv is None:
        return 0  # a DDP run's other process: rank 0 wrote and prints
    share = 100 * found.estimated_issues / max(len(found.rows), 1)
    console.print(
        f"{len(found.rows):,} train and dev labels ranked into {shown(found.csv)}; confident "
        f"learning marks {found.estimated_issues:,} ({share:.1f}%) as likely wrong",
        markup=False,
        highlight=False,
    )
    if found.figure is not None:
        console.print(
            f"the most suspect, drawn: {shown(found.figure)}", markup=False, highlight=False
        )
    for row in found.rows[:5]:
        console.print(
            f"  #{row['rank']} {row['split']} {row['index']}: given {row['given']} "
            f"(p={row['p_given']:.3f}), the model says {row['suggested']} "
            f"(p={row['p_suggested']:.3f})",
            markup=False,
            highlight=False,
        )
    return 0
