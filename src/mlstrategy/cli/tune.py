"""``mlstrategy tune RECIPE --trials N`` and ``mlstrategy tune STUDY_DIR [--refine]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from mlstrategy.cli.options import parse_known

TUNE_HELP = """\
Search a recipe's hyperparameters as the course teaches: at random (not on a grid), on a log
scale for the learning rate and for 1 - beta, coarse to fine, choosing on the dev set only.

The recipe's search: section maps dotted recipe keys to ranges:
  search:
    model.init_args.learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}
    model.init_args.keep_prob: {low: 0.5, high: 1.0}
    data.init_args.batch_size: {choices: [32, 64, 128]}
    model.init_args.beta1: {low: 0.9, high: 0.999, beta: true}     # 1 - beta on a log scale
    model.init_args.layer_dims: {layers: {low: 1, high: 4}, units: {low: 16, high: 256}}
Whole-number low/high sample integers. The plain verbs and `run` ignore the section.

Each trial is an ordinary run folder, logs/tune/<study>/trial_NNN/<recipe>/<time>/; its
objective is the
recipe's evaluation.optimize on dev, its evaluation.satisfy constraints decide feasibility,
and the median pruner stops trials whose dev cost per epoch is worse than the median of
earlier trials. The study folder holds the Optuna storage (study.db), study.json, report.md
with its figures, <study>_best.yaml (the chosen trial as a complete recipe: `mlstrategy run`
it, and its runs go to logs/<study>_best/) and hparams/ (tensorboard --logdir <study>/hparams:
one HParams row per trial). Test is scored for the chosen trial alone and never used to
choose.

--trials is the study's budget in all: run the same command again after a kill, or on other
machines with one --storage and --study, and it continues until N trials have run.
Overrides after the recipe (--trainer.max_epochs=10) apply to every trial.
"""


def main(argv: list[str], console: Console) -> int:
    """Run or continue a study; print where its report and best recipe are."""
    parser = argparse.ArgumentParser(
        prog="mlstrategy tune",
        description=TUNE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mlstrategy tune RECIPE|STUDY_DIR [--trials N] [--refine] [--sampler random|tpe] "
        "[--pruner median|none] [--storage URL] [--study NAME] [--section.key=value ...]",
    )
    parser.add_argument("target", help="a recipe with a search: section, or a study folder")
    parser.add_argument("--trials", type=int, default=20, help="the study's budget (20)")
    parser.add_argument(
        "--refine",
        action="store_true",
        help="coarse to fine: a child study "
        "with the ranges narrowed around STUDY_DIR's best trials",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=None,
        help="--refine: trials to narrow "
        "around (default: a quarter of the feasible ones, at least 3)",
    )
    parser.add_argument("--sampler", default="random", help="random (default) or tpe")
    parser.add_argument("--pruner", default="median", help="median (default) or none")
    parser.add_argument(
        "--storage",
        default=None,
        help="journal:PATH, sqlite:///PATH, "
        "postgresql://..., mysql://... (default: SQLite in the study folder)",
    )
    parser.add_argument("--study", default=None, help="the study's name (default: the recipe's)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the random sampler's seed (0); TPE is left unseeded, so workers "
        "sharing a study do not all start from the same points",
    )
    args, overrides = parse_known(parser, argv)
    result = _run(args, overrides, console)
    best = result.best
    saved = result.epochs_saved
    console.print(
        f"study {result.setup.name}: {len(result.records)} trials, pruning saved "
        f"{saved} epochs -> {result.study_dir}",
        markup=False,
    )
    if best is None:
        console.print("[bold red]no trial completed and met every constraint[/]")
        return 1
    console.print(
        f"best: {best.name}, {result.setup and _objective(result)}={best.value:.4g} "
        f"on dev; values {best.values}",
        markup=False,
    )
    if result.test:
        from mlstrategy.reporting.tune_report import chosen_test_line

        console.print(
            f"test (scored once, for {best.name} only; never used to choose): "
            f"{chosen_test_line(result.test)}",
            markup=False,
        )
    else:
        console.print(f"test: not scored ({result.test_note})", markup=False)
    console.print(f"report: {result.report}", markup=False)
    console.print(f"recipe: mlstrategy run {result.best_recipe}", markup=False)
    return 0


def _run(args: argparse.Namespace, overrides: list[str], console: Console) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mlstrategy.runs.tune import continue_study, refine, tune

    target = Path(args.target)
    with Progress(
        TextColumn("[bold]tune[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[best]}"),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("trials", total=args.trials, best="")

        def on_trial(record: Any, best: Any, done: int, total: int) -> None:
            shown = f"best {best.name}: {best.value:.4g}" if best is not None else ""
            progress.update(bar, completed=done, total=total, best=shown)

        common: dict[str, Any] = {"console": progress.console, "on_trial": on_trial}
        if target.is_dir():
            if overrides:
                raise ValueError(
                    f"{target} is a study folder: its recipe and overrides are recorded in it. "
                    f"Leave out {' '.join(overrides)}, or tune the recipe under another --study."
                )
            if args.refine:
                return refine(target, args.trials, args.top, args.storage, **common)
            return continue_study(target, args.trials, **common)
        if args.refine:
            raise ValueError("--refine takes a study folder (logs/tune/<study>), not a recipe.")
        return tune(
            target,
            args.trials,
            overrides,
            args.sampler,
            args.pruner,
            args.storage,
            args.study,
            seed=args.seed,
            **common,
        )


def _objective(result: Any) -> str:
    return str(result.selection.optimize) if result.selection is not None else "objective"
