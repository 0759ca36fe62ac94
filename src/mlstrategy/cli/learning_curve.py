"""``mlstrategy learning-curve RECIPE``: training and dev error against the training-set size."""

from __future__ import annotations

import argparse

from rich.console import Console

from mlstrategy.cli.options import parse_known

LEARNING_CURVE_HELP = """\
Train the recipe on growing fractions of its train split and plot training and dev error
against the number of training examples m (Machine Learning Yearning, ch. 28-32).

Each size is a full run (fit, best checkpoint, scores, diagnosis) on a stratified subset of
the train split; smaller subsets are inside larger ones, and dev and test stay whole. The
result goes to logs/<recipe>-learning-curve/<timestamp>/: learning_curve.png (training and
dev error against m, with the human-level error when the recipe gives one),
learning_curve.json, TensorBoard scalars learning_curve/* with m as the step, and one run
folder per size.

Reading it: when training error at full size is already above human-level error, more data
cannot fix it (high bias); when dev error is still falling and well above training error,
more data should help (variance).
"""


def main(argv: list[str], console: Console) -> int:
    """Measure the recipe's learning curve; print each point, the table and the reading."""
    from rich.markup import escape
    from rich.table import Table

    from mlstrategy.evaluation.learning_curve import CurvePoint, format_error, parse_sizes
    from mlstrategy.reporting.tables import plain_title
    from mlstrategy.runs.learning_curve import learning_curve
    from mlstrategy.runs.recipes import one_recipe

    parser = argparse.ArgumentParser(
        prog="mlstrategy learning-curve",
        description=LEARNING_CURVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mlstrategy learning-curve RECIPE [--sizes F1,F2,...] [--section.key=value ...]",
    )
    parser.add_argument("recipe", help="a recipe .yaml file")
    parser.add_argument(
        "--sizes",
        default="0.1,0.25,0.5,1.0",
        help="fractions of the train split, comma-separated (default 0.1,0.25,0.5,1.0)",
    )
    args, overrides = parse_known(parser, argv)
    path = one_recipe(args.recipe, "learning-curve", "recipes/strategy/flower_wide_net.yaml")

    def show(point: CurvePoint) -> None:
        console.print(
            f"  {100 * point.fraction:5.1f}% of train, m={point.m:>6}: training error "
            f"{format_error(point.train_error, point.metric):>7}, dev error "
            f"{format_error(point.dev_error, point.metric):>7}"
        )

    curve = learning_curve(path, parse_sizes(args.sizes), overrides, on_point=show)
    if not curve.written:
        return 0  # a DDP run's other process: rank 0 prints
    table = Table(title=plain_title(f"learning curve: {path}"), title_justify="left")
    for col in ("fraction", "m", "training error", "dev error", "dev - train"):
        table.add_column(col, justify="right")
    for p in curve.points:
        gap = p.dev_error - p.train_error
        table.add_row(
            f"{p.fraction:g}",
            str(p.m),
            format_error(p.train_error, p.metric),
            format_error(p.dev_error, p.metric),
            f"{100 * gap:.2f}" if p.metric == "error" else f"{gap:.4g}",
        )
    console.print(table)
    console.print(f"[bold]{escape(curve.reading['message'])}[/]")
    console.print(f"plot: {curve.figure_path}  ·  tensorboard --logdir {curve.root}", markup=False)
    return 0
