"""``mlstrategy grad-check RECIPE``: backprop's gradient against a two-sided difference."""

from __future__ import annotations

import argparse

from rich.console import Console

from mlstrategy.cli.options import parse_known

GRAD_CHECK_HELP = """\
Check the recipe's backpropagation numerically, as in course 2, week 1 (gradient checking).

The recipe's model and data are built as `run` builds them (initial weights, nothing is
trained). On the first --batch examples of the train split, in float64, with dropout off
(keep_prob treated as 1) and the L2 term included, every parameter coordinate theta_i gets
the two-sided difference

    (J(theta + eps) - J(theta - eps)) / (2 eps),   eps = 1e-7,

and each layer's relative difference ||grad - approx|| / (||grad|| + ||approx||) is read in
the course's bands: < 1e-7 great, < 1e-5 look closer, < 1e-3 suspicious, above: wrong.
Batch norm runs in train mode (batch statistics of the fixed batch). Each coordinate costs
two evaluations of J; for a big net, --max-coords N checks a seeded sample of N coordinates
per layer (--seed).

Exits 0 when no layer is wrong, 1 when one is. Overrides after the recipe use LightningCLI's
dotted form, e.g. --model.init_args.l2_lambda=0.5.
"""


def main(argv: list[str], console: Console) -> int:
    """Check the recipe's gradients; print one row per layer and the verdict."""
    from rich.table import Table

    from mlstrategy.reporting.tables import plain_title
    from mlstrategy.runs.grad_check import EPSILON, grad_check
    from mlstrategy.runs.recipes import one_recipe

    parser = argparse.ArgumentParser(
        prog="mlstrategy grad-check",
        description=GRAD_CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mlstrategy grad-check RECIPE [--batch N] [--max-coords N] [--seed S] "
        "[--section.key=value ...]",
    )
    parser.add_argument("recipe", help="a recipe .yaml file")
    parser.add_argument(
        "--batch", type=int, default=16, help="train examples in the batch (default 16)"
    )
    parser.add_argument("--epsilon", type=float, default=EPSILON, help="step (default 1e-7)")
    parser.add_argument(
        "--max-coords",
        type=int,
        default=None,
        help="check a seeded sample of at most N coordinates per layer (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    args, overrides = parse_known(parser, argv)
    path = one_recipe(args.recipe, "grad-check", "recipes/quickstart.yaml")
    result = grad_check(path, overrides, args.batch, args.epsilon, args.max_coords, args.seed)
    table = Table(
        title=plain_title(
            f"gradient check: {path} (float64, {result.batch_size} train examples, "
            f"eps={result.epsilon:g}, dropout off, L2 lambda={result.l2_lambda:g})"
        ),
        title_justify="left",
    )
    for col in ("layer", "kind", "checked", "|grad|", "|approx|", "difference", "verdict"):
        left = col in ("layer", "kind", "verdict")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    colours = {"great": "green", "look closer": "yellow", "suspicious": "yellow", "wrong": "red"}
    for c in result.layers:
        checked = f"{c.checked}" if c.checked == c.size else f"{c.checked} of {c.size}"
        table.add_row(
            c.layer,
            c.kind,
            checked,
            f"{c.grad_norm:.3g}",
            f"{c.approx_norm:.3g}",
            f"{c.difference:.2e}",
            f"[{colours[c.verdict]}]{c.verdict}[/]",
        )
    console.print(table)
    if result.wrong:
        names = ", ".join(c.layer for c in result.wrong)
        console.print(
            f"[bold red]wrong:[/] backprop disagrees with the numerical gradient in {names} "
            "(difference > 1e-3): look for a bug in that layer's backward pass."
        )
        return 1
    worst = max(result.layers, key=lambda c: c.difference)
    console.print(
        f"[bold green]ok:[/] no layer is wrong; the largest difference is "
        f"{worst.difference:.2e} ({worst.layer}, {worst.verdict})."
    )
    return 0
