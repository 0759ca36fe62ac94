"""The learning-rate finder for a recipe (``mlstrategy lr-find RECIPE``), via Lightning's Tuner.

The search trains the recipe's model from its initial weights for ``num_training`` steps while
the learning rate grows exponentially from ``min_lr`` to ``max_lr`` and records the (smoothed)
training cost at each step (Smith, "Cyclical Learning Rates", 2017). The suggestion is one tenth
of the rate with the lowest cost: safely below where the cost turns up, and steadier than
Lightning's steepest-slope point, which dropout and augmentation noise can throw far off (it is
kept in ``lr_find.json`` as ``steepest``, not suggested). The model's weights are restored
afterwards; nothing is trained for good.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure

from mlstrategy.io import write_json_atomic
from mlstrategy.reporting.plots import save_figure
from mlstrategy.run_folder import LOGS_DIR, abandon
from mlstrategy.runs.lightning_cli import build_run, run_dir_of
from mlstrategy.runs.recipes import recipe_configs

_SKIP_BEGIN = 10  # Lightning's default skip_begin for its suggestion
RULE = "a tenth of the rate with the lowest smoothed cost"

# What Lightning logs around its scratch checkpoint (``.lr_find_<uuid>.ckpt``, saved before the
# sweep and restored after it): "`weights_only` was not set" is about *saving* callbacks' state,
# not torch's unsafe loading (the toolkit's checkpoint IO loads with weights_only=True).
_SCRATCH_NOISE = ("`weights_only` was not set", ".lr_find_", "`max_steps=")


class _DropScratchNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(part in str(record.msg) for part in _SCRATCH_NOISE)


@contextlib.contextmanager
def _quiet_scratch_checkpoint() -> Iterator[None]:
    names = (
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
        "lightning.pytorch.utilities.rank_zero",
    )
    loggers, noise = [logging.getLogger(n) for n in names], _DropScratchNoise()
    for logger in loggers:
        logger.addFilter(noise)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


_BETA = 0.98  # Lightning's smoothing of the sweep's cost (its _LRCallback default)


def unbiased_costs(smoothed: Sequence[float], beta: float = _BETA) -> list[float]:
    """Lightning's smoothed sweep costs with the course's bias correction made exact.

    Lightning keeps ``v_t = beta v_(t-1) + (1 - beta) J_t`` and records ``v_t / (1 -
    beta^(t+1))`` at step ``t`` (counted from 1): one power too many, so the first costs read
    about half the true cost and the curve seems to climb at the smallest rates. This returns
    ``v_t / (1 - beta^t)``, the exponentially weighted average that
    :func:`~mlstrategy.reporting.plots.exponentially_weighted_average` computes.

    Example:
        >>> [round(c, 3) for c in unbiased_costs([0.505, 0.6734])]  # Lightning's, for 1, 1
        [1.0, 1.0]
    """
    return [
        c * (1.0 - beta ** (t + 1)) / (1.0 - beta**t) if math.isfinite(c) else c
        for t, c in enumerate(smoothed, start=1)
    ]


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
        with _quiet_scratch_checkpoint():
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
    costs = unbiased_costs([float(c) for c in finder.results["loss"]])
    # Skip the first points like Lightning's own suggestion does (the average of a few steps
    # is still noisy there).
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


def lr_find_figure(
    rates: Sequence[float], costs: Sequence[float], suggestion: float | None, name: str
) -> Figure:
    """The smoothed training cost against the learning rate (log scale), suggestion marked."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    # From step 10, as the suggestion: the average of the first few steps is still noisy.
    shown = slice(_SKIP_BEGIN, None)
    ax.plot(rates[shown], costs[shown], color="tab:blue", label="training cost (smoothed)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("cost")
    ax.set_title(f"Learning-rate sweep: {name}")
    if suggestion is not None:
        label = f"suggestion {suggestion:.3g} ({RULE})"
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=label)
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


FIGURE_FILE = "lr_find.png"
RESULTS_FILE = "lr_find.json"


@dataclass
class LRFind:
    """The sweep of one recipe.

    Attributes:
        run_dir: Where ``lr_find.png`` and ``lr_find.json`` went.
        recipe_lr: The recipe's own learning rate.
        suggestion: A tenth of the lowest-cost rate, or None when the cost never fell.
        steepest: Lightning's steepest-slope rate, or None.
        rates: The swept rates.
        costs: The smoothed training cost at each.
        writer: False on a distributed sweep's other processes, which write and print
            nothing (rank 0 writes the one run folder).
    """

    run_dir: Path
    recipe_lr: float
    suggestion: float | None
    steepest: float | None
    rates: list[float]
    costs: list[float]
    writer: bool = True

    @property
    def figure_path(self) -> Path:
        """The plot of cost against learning rate."""
        return self.run_dir / FIGURE_FILE


def lr_find(
    recipe: Path,
    overrides: Sequence[str] = (),
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
    mode: Literal["exponential", "linear"] = "exponential",
    logs_dir: Path = Path(LOGS_DIR),
) -> LRFind:
    """Sweep the learning rate for ``recipe``; write the plot and the numbers.

    The run folder is ``logs/lr-find/<recipe>/<timestamp>/``. Arguments as
    :func:`find_learning_rate`.
    """
    (configs,) = recipe_configs(recipe)
    cli = build_run(configs, overrides, logs_dir / "lr-find")
    run_dir = run_dir_of(cli.trainer)
    writer = cli.trainer.is_global_zero  # a distributed sweep: rank 0 writes, once
    try:
        result = find_learning_rate(
            cli.trainer, cli.model, cli.datamodule, min_lr, max_lr, num_training, mode
        )
        run_dir = run_dir_of(cli.trainer)  # rank 0's folder on every rank, once the sweep ran
        finder = result.pop("finder")
        suggestion = result["suggestion"]
        recipe_lr = cli.model.hparams["learning_rate"]
        if writer:
            write_json_atomic(
                run_dir / RESULTS_FILE,
                {"recipe": str(recipe), "recipe_learning_rate": recipe_lr, **result},
            )
        if writer and finder is not None:
            figure = lr_find_figure(result["lr"], result["cost"], suggestion, Path(recipe).stem)
            save_figure(figure, run_dir / FIGURE_FILE)
    except BaseException as err:
        if writer:
            abandon(run_dir, err)  # no folder left that looks like a finished sweep
        raise
    rates, costs = result["lr"], result["cost"]
    return LRFind(run_dir, recipe_lr, suggestion, result["steepest"], rates, costs, writer)
