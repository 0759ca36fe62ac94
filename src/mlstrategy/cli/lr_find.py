"""``mlstrategy lr-find RECIPE``: sweep the learning rate and suggest one."""

from __future__ import annotations

import argparse
import math

from rich.console import Console

from mlstrategy.cli.options import parse_known

LR_FIND_HELP = """\
Sweep the learning rate over a few hundred training steps and suggest one for the recipe.

The model trains from its initial weights while the learning rate grows from --min-lr to
--max-lr; the cost is recorded at every step. The suggestion is a tenth of the rate with the
lowest cost (safely below where the cost blows up). The weights are restored after the
sweep: nothing is trained for good.

Writes lr_find.png (cost against learning rate, log scale, suggestion marked) and
lr_find.json (rates, costs, suggestion) to logs/lr-find/<recipe>/<timestamp>/, and prints the
override to use: mlstrategy run RECIPE --model.init_args.learning_rate=SUGGESTION.

Overrides after the recipe use LightningCLI's dotted form, e.g. --data.init_args.batch_size=32.
With batch gradient descent (batch_size: null) each step is one epoch.
"""


def main(argv: list[str], console: Console) -> int:
    """Sweep the recipe's learning rate; print the suggestion and the override that uses it."""
    from mlstrategy.runs.lr_find import RULE, lr_find
    from mlstrategy.runs.recipes import one_recipe

    parser = argparse.ArgumentParser(
        prog="mlstrategy lr-find",
        description=LR_FIND_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mlstrategy lr-find RECIPE [--min-lr A] [--max-lr B] [--num-training N] "
        "[--section.key=value ...]",
    )
    parser.add_argument("recipe", help="a recipe .yaml file")
    parser.add_argument("--min-lr", type=float, default=1e-6, help="first rate (default 1e-6)")
    parser.add_argument("--max-lr", type=float, default=1.0, help="last rate (default 1)")
    parser.add_argument(
        "--num-training", type=int, default=100, help="steps in the sweep (default 100)"
    )
    parser.add_argument("--mode", choices=("exponential", "linear"), default="exponential")
    args, overrides = parse_known(parser, argv)
    path = one_recipe(args.recipe, "lr-find", "recipes/mnist1d/mlp.yaml")
    found = lr_find(path, overrides, args.min_lr, args.max_lr, args.num_training, args.mode)
    suggestion = found.suggestion
    if not found.writer:
        return 0  # a distributed sweep's other process: rank 0 prints
    if suggestion is None or not math.isfinite(suggestion):
        console.print(
            "[bold red]no suggestion:[/] the cost never fell steadily over the sweep. Widen "
            "--min-lr/--max-lr or raise --num-training."
        )
        return 1
    console.print(
        f"suggested learning rate: [bold]{suggestion:.3g}[/] ({RULE}; the recipe has "
        f"{found.recipe_lr:g}; swept {args.min_lr:g} .. {args.max_lr:g} in {len(found.rates)} "
        "steps)"
    )
    # One unwrapped line, so that the command copies whole.
    hint = f"use it: mlstrategy run {path} --model.init_args.learning_rate={suggestion:.3g}"
    console.print(hint, soft_wrap=True, highlight=False)
    console.print(f"plot: {found.figure_path}", markup=False)
    return 0
