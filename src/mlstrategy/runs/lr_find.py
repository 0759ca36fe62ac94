"""Learning-rate finder for a recipe (``mlstrategy lr-find RECIPE``), via Lightning's Tuner.

The search trains the recipe's model from its initial weights for ``num_training`` steps while
the learning rate grows exponentially from ``min_lr`` to ``max_lr`` and records the (smoothed)
training cost at each step (Smith, "Cyclical Learning Rates", 2017). The suggestion is one tenth
of the rate with the lowest cost: safely below where the cost turns up, and steadier than
Lightning's steepest-slope point, which dropout and augmentation noise can throw far off. Both
are reported. The model's weights are restored afterwards; nothing is trained for good.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

LR_FIND_HELP = """\
Sweep the learning rate over a few hundred training steps and suggest one for the recipe.

The model trains from its initial weights while the learning rate grows from --min-lr to
--max-lr; the cost is recorded at every step. The suggestion is a tenth of the rate with the
lowest cost (just before the cost blows up); Lightning's steepest-slope rate is shown too.
The weights are restored after the sweep: nothing is trained for good.

Writes lr_find.png (cost against learning rate, log scale, suggestion marked) and
lr_find.json (rates, costs, suggestion) to logs/lr-find/<recipe>/<timestamp>/, and prints the
override to use: mlstrategy run RECIPE --model.init_args.learning_rate=SUGGESTION.

Overrides after the recipe use LightningCLI's dotted form, e.g. --data.init_args.batch_size=32.
With batch gradient descent (batch_size: null) each step is one epoch.
"""


_SKIP_BEGIN = 10  # Lightning's default skip_begin for its suggestion


def find_learning_rate(
    trainer: Any,
    model: Any,
    datamodule: Any,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
    mode: Literal["exponential", "linear"] = "exponential",
) -> dict[str, Any]:
    """Run Lightning's learning-rate finder; return rates, costs and the suggestion.

    Args:
        trainer: The Lightning trainer the recipe built.
        model: A module with ``learning_rate`` in its hyperparameters.
        datamodule: The recipe's data module.
        min_lr: First learning rate of the sweep, > 0.
        max_lr: Last learning rate of the sweep, > ``min_lr``.
        num_training: Training steps in the sweep, > 10 (the first 10 are not used).
        mode: ``exponential`` (even steps in log scale) or ``linear`` growth of the rate.

    Returns:
        ``{"lr", "cost", "suggestion", "steepest", "finder"}``: the swept rates and smoothed
        costs, a tenth of the rate with the lowest cost, Lightning's steepest-slope rate
        (``None`` when the sweep was too short) and Lightning's ``_LRFinder``.
    """
    from lightning.pytorch.tuner import Tuner

    if not 0 < min_lr < max_lr:
        raise ValueError(f"min_lr={min_lr}, max_lr={max_lr}: need 0 < min_lr < max_lr.")
    if num_training <= _SKIP_BEGIN:
        raise ValueError(f"num_training={num_training} must be > {_SKIP_BEGIN} steps.")
    if mode not in ("exponential", "linear"):
        raise ValueError(f"mode={mode!r} is not one of ['exponential', 'linear'].")
    if "learning_rate" not in getattr(model, "hparams", {}):
        raise ValueError(
            f"{type(model).__name__} has no learning_rate hyperparameter for the finder to sweep."
        )
    # The sweep is num_training steps however many epochs that takes (batch gradient descent:
    # one step per epoch); the recipe's max_epochs would cut it short.
    max_epochs = trainer.fit_loop.max_epochs
    trainer.fit_loop.max_epochs = -1
    try:
        finder = Tuner(trainer).lr_find(
            model,
            datamodule=datamodule,
            min_lr=min_lr,
            max_lr=max_lr,
            num_training=num_training,
            mode=mode,
            update_attr=False,
        )
    finally:
        trainer.fit_loop.max_epochs = max_epochs
    if finder is None:  # only on non-zero ranks of a distributed run
        return {"lr": [], "cost": [], "suggestion": None, "steepest": None, "finder": None}
    rates = [float(r) for r in finder.results["lr"]]
    costs = [float(c) for c in finder.results["loss"]]
    # Skip the first points like Lightning's own suggestion does: its bias correction there is
    # off by one step, so the first smoothed costs read about half the true cost.
    finite = [i for i, c in enumerate(costs) if math.isfinite(c) and i >= _SKIP_BEGIN]
    lowest = min(finite, key=costs.__getitem__) if finite else None
    steepest = finder.suggestion()
    return {
        "lr": rates,
        "cost": costs,
        "suggestion": rates[lowest] / 10 if lowest is not None else None,
        "steepest": float(steepest) if steepest is not None else None,
        "finder": finder,
    }


def lr_find_main(argv: list[str], console: Console) -> int:
    """``mlstrategy lr-find RECIPE [--min-lr ...] [--section.key=value ...]``."""
    from mlstrategy.cli import LOGS_DIR, _make_cli_class, _recipes_of
    from mlstrategy.io import write_json_atomic
    from mlstrategy.reporting.plots import save_figure

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
    args, overrides = parser.parse_known_args(argv)
    path = Path(args.recipe)
    if not path.is_file():
        raise ValueError(
            f"Recipe {args.recipe!r} is not a file. Give one .yaml recipe, e.g. "
            "`mlstrategy lr-find recipes/mnist1d/mlp.yaml`."
        )
    (configs,) = _recipes_of(path)
    cli_class: Any = _make_cli_class()
    cli_class.logs_dir = Path(LOGS_DIR) / "lr-find"
    cli = cli_class(args=[*(f"--config={c}" for c in configs), *overrides], run=False)
    result = find_learning_rate(
        cli.trainer,
        cli.model,
        cli.datamodule,
        args.min_lr,
        args.max_lr,
        args.num_training,
        args.mode,
    )
    run_dir = Path(cli.trainer.log_dir)
    finder = result.pop("finder")
    suggestion = result["suggestion"]
    recipe_lr = cli.model.hparams["learning_rate"]
    write_json_atomic(
        run_dir / "lr_find.json", {"recipe": str(path), "recipe_learning_rate": recipe_lr, **result}
    )
    if finder is not None:
        figure = finder.plot(suggest=False)
        if suggestion is not None:
            figure.axes[0].axvline(suggestion, color="red", linestyle="--", label="suggestion")
            figure.axes[0].legend()
        save_figure(figure, run_dir / "lr_find.png")
    if suggestion is None or not math.isfinite(suggestion):
        console.print(
            "[bold red]no suggestion:[/] the cost never fell steadily over the sweep. Widen "
            "--min-lr/--max-lr or raise --num-training."
        )
        return 1
    steepest = "n/a" if result["steepest"] is None else f"{result['steepest']:.3g}"
    console.print(
        f"learning rate: recipe {recipe_lr:g}, suggested [bold]{suggestion:.3g}[/] (a tenth of "
        f"the lowest-cost rate; steepest slope at {steepest}; swept {args.min_lr:g} .. "
        f"{args.max_lr:g} in {len(result['lr'])} steps)"
    )
    console.print(f"use it: mlstrategy run {path} --model.init_args.learning_rate={suggestion:.3g}")
    console.print(f"plot: {run_dir / 'lr_find.png'}")
    return 0
