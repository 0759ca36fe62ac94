"""``mlstrategy compare RUNS``: one optimizing metric, satisficing constraints, the winner."""

from __future__ import annotations

import argparse

from rich.console import Console

COMPARE_HELP = """\
Compare finished runs with one optimizing metric and satisficing constraints.

Each RUN is a run folder or a folder holding runs (a study's logs/<study>, a recipe's
logs/<recipe>, or logs itself); of the runs of one recipe the latest is used unless
--all-runs. Every run is listed; runs that fail a constraint are marked, and the winner is
the best of the others on the optimizing metric.

Metrics: params, latency_ms (ms per example), fit_seconds, epochs, SPLIT/METRIC such as
dev/f1, dev/recall, dev/error, train_dev/error, dev/f1_weighted (multi-class), and per
class SPLIT/METRIC/CLASS such as dev/recall/malignant. Errors, losses, latency and sizes
are minimized, the rest maximized, unless --goal says otherwise. Choose on dev metrics:
a choice made on test/... leaves no unbiased estimate of the chosen model's error.

Without --optimize and --satisfy, the rules in the runs' recipes (evaluation.optimize,
evaluation.satisfy) are used; without those, --optimize dev/f1.

Runs scored on different data (another data source, other split settings, or other dev or
test sizes) are refused: a dev metric ranks models only on one dev set. --across-data
compares them anyway, with a warning.
"""


def main(argv: list[str], console: Console) -> int:
    """Compare the finished runs named on the command line; print the table and the winner."""
    from mlstrategy.cli.show import print_comparison
    from mlstrategy.run_folder import find_runs
    from mlstrategy.runs.compare import (
        Rules,
        candidates,
        compare_runs,
        data_warning,
        recorded_rules,
    )

    parser = argparse.ArgumentParser(
        prog="mlstrategy compare",
        description=COMPARE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="run folders, or folders holding runs"
    )
    parser.add_argument("--optimize", metavar="METRIC", help="the optimizing metric, e.g. dev/f1")
    parser.add_argument(
        "--satisfy",
        action="append",
        default=[],
        metavar="EXPR",
        help='a satisficing constraint, e.g. "latency_ms<=5" (repeatable; quote it)',
    )
    parser.add_argument(
        "--goal", choices=("auto", "max", "min"), default="auto", help="maximize or minimize"
    )
    parser.add_argument(
        "--all-runs", action="store_true", help="every run of each recipe, not just the latest"
    )
    parser.add_argument(
        "--across-data",
        action="store_true",
        help="compare runs scored on different data or splits (refused without it)",
    )
    args = parser.parse_args(argv)
    run_dirs = find_runs(args.runs, all_runs=args.all_runs)
    if args.optimize is None and not args.satisfy:
        rules = recorded_rules(run_dirs)
        if args.goal != "auto":
            rules.goal = args.goal
    else:
        rules = Rules(args.optimize or "dev/f1", args.goal, tuple(args.satisfy))
    comparison = compare_runs(run_dirs, rules)
    mixed = data_warning(candidates(run_dirs), comparison.names)
    if mixed and not args.across_data:
        raise ValueError(f"{mixed} Pass --across-data to compare them anyway.")
    print_comparison(comparison, console, title=" ".join(args.runs))
    return 0
