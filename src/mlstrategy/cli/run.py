"""``mlstrategy run RECIPE | FOLDER``: fit, test, score every split, diagnose, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from mlstrategy.cli.options import parse_known

RUN_HELP = """\
Fit a recipe, test its best checkpoint, score every split, and write one run folder.

A recipe is a LightningCLI config in YAML with three sections:

  model:                                  # which LightningModule, and its hyperparameters
    class_path: mlstrategy.models.LogisticRegression
    init_args: {optimizer: gd, learning_rate: 0.1}
  data:                                   # which DataModule: source, splits, batch size
    class_path: mlstrategy.data.ArrayDataModule
    init_args:
      source: {class_path: mlstrategy.data.BreastCancer}
      dev_fraction: 0.2
  trainer: {max_epochs: 100}              # any lightning.Trainer argument
  evaluation:                             # optional: the diagnosis and the selection rules
    human_error: 0.01                     # human-level error, the proxy for Bayes error
    optimize: dev/f1                      # the single-number metric for comparing runs
    satisfy: ["latency_ms<=5"]            # constraints a run must meet to be chosen

The model's input_shape and num_classes come from the data. Every key is typed and checked
before training; `mlstrategy fit --print_config --config RECIPE` shows them all, with
defaults. Overrides after the recipe use LightningCLI's dotted form, with '=':
--trainer.max_epochs=5 --model.init_args.learning_rate=0.01 --trainer.accelerator=cuda.

RECIPE may also be a folder (a study): every *.yaml in it is run in name order, each
composed on top of the folder's _base.yaml when there is one (also when a recipe of the
folder is run alone); the runs go to
logs/<study>/<recipe>/<timestamp>/ and one table compares them by the evaluation rules of
the first recipe (the winner is marked).

A recipe with a `study:` section instead of model/data/trainer names a study class that runs
its own comparison, e.g. `mlstrategy run recipes/end_to_end/` (end-to-end vs pipeline).

The run folder, logs/<recipe name>/<timestamp>/, holds TensorBoard events (the cost per
epoch in train/ and dev/ sub-runs, one chart in the Scalars tab; per-split scores,
hyperparameters, diagnosis/* scalars, the report as text, confusion matrices as images),
config.yaml (the full resolved recipe), checkpoints/best.ckpt and last.ckpt, metrics.json
(per split: error, accuracy, precision, recall, F1 (multi-class: micro, macro, weighted),
loss, n, per-class scores, confusion matrix; parameter count; latency_ms, the median time to
predict one example), diagnosis.json (avoidable bias, variance, data mismatch, overfitting
to dev, the largest gap and its remedies, error analysis) and report.md (all of it, with
confusion_matrix.png and cost_curve.png, train and dev cost per epoch).
"""


def main(argv: list[str], console: Console) -> int:
    """Run one recipe, a study folder, or a study recipe; print the scores and diagnosis."""
    from mlstrategy.cli.show import print_comparison, print_run
    from mlstrategy.run_folder import LOGS_DIR
    from mlstrategy.runs.recipes import recipe_configs
    from mlstrategy.runs.run import RunFinished, resume_dir, run_recipe
    from mlstrategy.runs.study import run_study
    from mlstrategy.runs.study_recipe import is_study_recipe, run_study_recipe

    parser = argparse.ArgumentParser(
        prog="mlstrategy run",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mlstrategy run RECIPE [--section.key=value ...]",
    )
    parser.add_argument("recipe", help="a recipe .yaml file, or a folder of recipes (a study)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_DIR",
        help="continue a killed run from its checkpoints/last.ckpt (default: the recipe's newest "
        "run folder); the result is identical to an uninterrupted run. Babysitting: changed "
        "optimizer settings (--model.init_args.learning_rate=0.05, beta1, beta2, epsilon, "
        "weight_decay, lr_decay, decay_rate, decay_interval, l2_lambda) or more "
        "--trainer.max_epochs apply from the resumed epoch, one console line each, recorded in "
        "the run's config_history.yaml; another model, architecture, optimizer or data is "
        "refused (start a new run)",
    )
    parser.add_argument(
        "--human-error",
        default=None,
        metavar="FRACTION",
        help="human-level error, the proxy for Bayes error, as a fraction (5%% -> 0.05), or "
        "the course's levels, typical=0.03,expert=0.01,team=0.005 (the lowest is the proxy); "
        "the same as --evaluation.human_error=FRACTION (default: the recipe's)",
    )
    args, overrides = parse_known(parser, argv)
    if args.human_error is not None:
        from mlstrategy.evaluation.human_level import override_value, parse_human_error_option

        human = override_value(parse_human_error_option(args.human_error))
        overrides = [*overrides, f"--evaluation.human_error={human}"]
    path = Path(args.recipe)
    if not path.exists():
        raise ValueError(
            f"Recipe {args.recipe!r} does not exist. Give the path of a .yaml recipe or a folder "
            "of recipes, e.g. `mlstrategy run recipes/quickstart.yaml` (see `ls recipes`)."
        )
    recipes = recipe_configs(path)
    if len(recipes) == 1 and is_study_recipe(recipes[0][-1]):
        run_study_recipe(recipes[0], overrides, console, Path(LOGS_DIR), resume=args.resume)
        return 0
    if args.resume is not None and len(recipes) != 1:
        raise ValueError("--resume continues one run: give one recipe file, not a folder.")
    if len(recipes) == 1:
        try:
            resume = None if args.resume is None else resume_dir(args.resume, recipes[0][-1])
        except RunFinished as done:
            # Exit 0: the run the user wants finished is finished; a requeued job that
            # resumes it after it completed succeeds instead of failing.
            console.print(str(done), markup=False, soft_wrap=True, highlight=False)
            return 0
        print_run(run_recipe(recipes[0], overrides, console, resume=resume), console)
        return 0
    study = run_study(path, recipes, overrides, console, on_run=lambda r: print_run(r, console))
    print_comparison(study.comparison, console, title=f"study {path}")
    console.print("largest gap per run:")
    for result in study.runs:  # each run's verdict, for the study's story at a glance
        d = result.diagnosis
        verdict = f"diagnosis skipped: {d}" if isinstance(d, str) else d.verdict
        console.print(f"  {result.run_dir.parent.name}: {verdict}", markup=False, highlight=False)
    console.print(
        f"compare again: mlstrategy compare {study.logs_dir}", markup=False, soft_wrap=True
    )
    return 0
