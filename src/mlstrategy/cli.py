"""The ``mlstrategy`` command: LightningCLI's verbs plus ``run``, ``diagnose`` and ``compare``.

``mlstrategy fit | validate | test | predict --config RECIPE`` are plain LightningCLI verbs.
``mlstrategy run RECIPE`` fits, tests the best checkpoint, scores every split in eval mode,
diagnoses bias / variance / data mismatch and writes the run folder (``metrics.json``,
``diagnosis.json``, ``report.md``, ``config.yaml``, checkpoints, TensorBoard events).
``mlstrategy diagnose RUN_DIR`` re-prints a run's diagnosis; ``mlstrategy compare RUNS`` picks
a winner by one optimizing metric under satisficing constraints.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from rich.console import Console

LOGS_DIR = "logs"

TOP_HELP = """\
usage: mlstrategy VERB [options]

Practical ML strategy in PyTorch Lightning: train the course's models from a YAML recipe,
score every split, and be told whether the problem is bias, variance or data mismatch.

verbs:
  run RECIPE          fit, test the best checkpoint, score train/dev/test, diagnose, write
                      the run folder under logs/ (metrics.json, diagnosis.json, report.md)
                      and print the scores and the diagnosis (mlstrategy run --help)
  run FOLDER          a study: run every recipe in the folder, then compare them
  diagnose RUN_DIR    re-print a finished run's scores and diagnosis (mlstrategy diagnose -h)
  compare RUNS...     compare finished runs: one optimizing metric, satisficing constraints,
                      the winner (mlstrategy compare -h)
  learning-curve RECIPE
                      train on growing fractions of the train split, plot train and dev
                      error against size, say what more data would buy
  lr-find RECIPE      sweep the learning rate over a few steps and suggest one
                      (mlstrategy lr-find -h)
  fit                 LightningCLI: train           (mlstrategy fit --config RECIPE)
  validate            LightningCLI: score the dev split
  test                LightningCLI: score the test split (--ckpt_path CHECKPOINT)
  predict             LightningCLI: class probabilities for the test split

Each LightningCLI verb takes --help, --config RECIPE (repeatable: later files override
earlier ones) and dotted overrides such as --trainer.max_epochs=5 or
--trainer.accelerator=cuda. `mlstrategy fit --print_config --config RECIPE` shows every key.

examples:
  mlstrategy run recipes/quickstart.yaml
  mlstrategy run recipes/softmax_digits.yaml --trainer.max_epochs=50
  mlstrategy run recipes/strategy/
  mlstrategy diagnose logs/quickstart
  mlstrategy compare logs/strategy --optimize dev/f1 --satisfy "latency_ms<=5"
  mlstrategy learning-curve recipes/strategy/flower_wide_net.yaml --sizes 0.25,0.5,1.0
  tensorboard --logdir logs

Safety: recipes may name classes from mlstrategy, torch, torchvision, torchmetrics and
lightning; anything else is refused before it is imported unless you pass
--allow-module NAME. Checkpoints load with weights_only=True, never unsafely.
A killed run continues exactly where it stopped: mlstrategy run RECIPE --resume [RUN_DIR].

Set MLSTRATEGY_DEBUG=1 to see a traceback instead of a one-paragraph error.
"""

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

The run folder, logs/<recipe name>/<timestamp>/, holds TensorBoard events (cost/train and
cost/dev per epoch on one chart under Custom Scalars, per-split scores, hyperparameters,
diagnosis/* scalars, the report as text, confusion matrices as images), config.yaml (the
full resolved recipe), checkpoints/best.ckpt and last.ckpt, metrics.json (per split: error,
accuracy, precision, recall, F1 (multi-class: micro, macro, weighted), loss, n, per-class
scores, confusion matrix; parameter count; latency_ms, the median time to predict one
example), diagnosis.json (avoidable bias, variance, data mismatch, overfitting to dev, the
largest gap and its remedies, error analysis) and report.md (all of it, with
confusion_matrix.png and learning_curve.png).
"""

DIAGNOSE_HELP = """\
Re-print the scores and the diagnosis of a finished run (one that `mlstrategy run` wrote).

RUN_DIR is a run folder, logs/<recipe>/<timestamp>, or a recipe's folder, logs/<recipe>, for
its latest finished run. The diagnosis uses the human-level error the recipe gave
(evaluation.human_error) unless --human-error overrides it:

  avoidable bias     = train error - human-level error
  variance           = train-dev error - train error   (dev - train without a train-dev split)
  data mismatch      = dev error - train-dev error
  overfitting to dev = test error - dev error

The largest gap is named with the course's remedies. The full report, with the confusion
matrix, learning curve and error analysis, is report.md in the run folder.
"""

COMPARE_HELP = """\
Compare finished runs with one optimizing metric and satisficing constraints.

Each RUN is a run folder or a folder holding runs (a study's logs/<study>, a recipe's
logs/<recipe>, or logs itself); of the runs of one recipe the latest is used unless
--all-runs. Every run is listed; runs that fail a constraint are marked, and the winner is
the best of the others on the optimizing metric.

Metrics: params, latency_ms (ms per example), fit_seconds, epochs, SPLIT/METRIC such as
dev/f1, test/recall, dev/error, train_dev/error, dev/f1_weighted (multi-class), and per
class SPLIT/METRIC/CLASS such as test/recall/malignant. Errors, losses, latency and sizes
are minimized, the rest maximized, unless --goal says otherwise.

Without --optimize and --satisfy, the rules in the runs' recipes (evaluation.optimize,
evaluation.satisfy) are used; without those, --optimize dev/f1.
"""

_DEBUG_ENV = "MLSTRATEGY_DEBUG"
_LIGHTNING_VERBS = ("fit", "validate", "test", "predict")
_TOOLKIT_VERBS = ("run", "diagnose", "compare", "learning-curve", "lr-find")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def _quiet_known_warnings() -> None:
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
    # In-memory batches are not DataLoaders, so worker and logging-interval advice does not apply.
    for message in (
        r".*does not have many workers.*",
        r".*smaller than the logging interval.*",
        r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
        # `run` hands LightningCLI the recipe as args on purpose.
        r".*LightningCLI's args parameter is intended.*",
    ):
        warnings.filterwarnings("ignore", message=message)


def _new_run_version(save_dir: Path, name: str) -> str:
    """A timestamped folder name, reserved with an exclusive mkdir so parallel runs never share."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = save_dir / name
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        version = stamp if i == 0 else f"{stamp}-{i}"
        try:
            (base / version).mkdir()
            return version
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {base}")


def _make_cli_class() -> type:
    # Imported lazily so `mlstrategy --help` answers without loading torch.
    from lightning.pytorch.callbacks import (
        BasePredictionWriter,
        ModelCheckpoint,
        ProgressBar,
        RichProgressBar,
    )
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
    from lightning.pytorch.loggers import TensorBoardLogger

    from mlstrategy.callbacks.guards import NonFiniteGuard, RNGState
    from mlstrategy.callbacks.predictions import PredictionsCSV
    from mlstrategy.evaluation.settings import EvaluationSettings
    from mlstrategy.io import AtomicCheckpointIO

    class MLStrategyCLI(LightningCLI):
        """LightningCLI with the toolkit's defaults: any of its models and data modules, sizes
        linked from the data, TensorBoard under ``logs/<recipe>/<timestamp>``, best and last
        checkpoints by dev cost, a rich progress bar, seed 0 and deterministic algorithms, and
        an ``evaluation`` section (human-level error, selection rules) that only ``run`` reads.
        """

        logs_dir: str | Path = LOGS_DIR
        resume_dir: Path | None = None  # `run --resume`: log into this run folder again

        def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
            super().__init__(
                model_class=None,
                datamodule_class=None,
                args=list(args) if args is not None else None,
                run=run,
                seed_everything_default=0,
                trainer_defaults={"deterministic": True},
                save_config_kwargs={"overwrite": True},
            )

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            for size in ("input_shape", "num_classes"):
                parser.link_arguments(
                    f"data.{size}", f"model.init_args.{size}", apply_on="instantiate"
                )
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            # A typed section, so recipes keep working with the plain verbs (which ignore it)
            # and a typo in it fails before training.
            parser.add_class_arguments(EvaluationSettings, "evaluation")
            parser.set_defaults(
                {
                    "checkpoint.monitor": "cost/dev",
                    "checkpoint.mode": "min",
                    "checkpoint.filename": "best",
                    "checkpoint.save_last": True,
                    "checkpoint.auto_insert_metric_name": False,
                }
            )

        def _recipe_name(self) -> str:
            config = self.config
            if self.subcommand:
                config = self.config.get(self.subcommand, self.config)
            paths = config.get("config") or []
            return Path(str(paths[-1])).stem if paths else "run"

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            config = self._get(self.config_init, "trainer", default={})
            # Absolute paths: ModelCheckpoint only restores its state (best score, best path)
            # on resume when the folder is spelled the same way.
            run_dir = self.resume_dir.resolve() if self.resume_dir is not None else None
            if self.subcommand in ("validate", "test", "predict"):
                # Scoring a finished run: log into that run's folder, keep its config.yaml.
                self.save_config_callback = None
                ckpt = self.config[self.subcommand].get("ckpt_path")
                if ckpt and Path(ckpt).parent.name == "checkpoints":
                    run_dir = Path(ckpt).resolve().parent.parent
            if config.get("logger") in (None, True):
                if run_dir is not None:
                    save_dir, name = run_dir.parent.parent, run_dir.parent.name
                    version = run_dir.name
                else:
                    save_dir, name = Path(self.logs_dir).resolve(), self._recipe_name()
                    version = _new_run_version(save_dir, name)
                kwargs["logger"] = TensorBoardLogger(
                    save_dir=str(save_dir), name=name, version=version, default_hp_metric=False
                )
            callbacks = list(config.get("callbacks") or [])
            if config.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in callbacks
            ):
                callbacks.append(RichProgressBar())
            if self.subcommand == "predict" and not any(
                isinstance(c, BasePredictionWriter) for c in callbacks
            ):
                callbacks.append(PredictionsCSV())  # predictions.csv in the run folder
            # Always on, and outside the recipe's callbacks list so recipes keep their own.
            kwargs["callbacks"] = [*callbacks, NonFiniteGuard(), RNGState()]
            if not config.get("plugins"):
                kwargs["plugins"] = [AtomicCheckpointIO()]
            return super().instantiate_trainer(**kwargs)

    return MLStrategyCLI


def _run_one(
    configs: list[Path],
    overrides: list[str],
    console: Console,
    logs_dir: Path | None = None,
    resume: Path | None = None,
    before_fit: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    from mlstrategy.evaluation.diagnosis import diagnose_splits
    from mlstrategy.evaluation.error_analysis import analyze_errors
    from mlstrategy.evaluation.latency import measure_latency
    from mlstrategy.evaluation.multitask import diagnose_tasks
    from mlstrategy.evaluation.scoring import (
        count_parameters,
        evaluate_splits,
        evaluate_tasks,
        is_multitask,
    )
    from mlstrategy.evaluation.settings import EvaluationSettings
    from mlstrategy.io import write_json_atomic
    from mlstrategy.reporting.run_report import write_run_report
    from mlstrategy.reporting.tables import diagnosis_renderable, summary_table
    from mlstrategy.reporting.tasks import task_renderable, write_task_report

    cli_class: Any = _make_cli_class()
    if logs_dir is not None:
        cli_class.logs_dir = logs_dir
    cli_class.resume_dir = resume
    cli = cli_class(args=[*(f"--config={c}" for c in configs), *overrides], run=False)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    if before_fit is not None:
        before_fit(datamodule)
    settings = cli.config_init.get("evaluation") or EvaluationSettings()
    run_dir = _shown(Path(trainer.log_dir))
    console.print(f"[bold]run[/] {configs[-1]} -> {run_dir}")
    last = run_dir / "checkpoints" / "last.ckpt" if resume is not None else None
    if last is not None:
        (run_dir / "FAILED").unlink(missing_ok=True)
        console.print(f"resuming from {last}")
    start = time.perf_counter()
    try:
        # Checkpoints hold tensors and plain values only: never unpickle anything else.
        trainer.fit(model, datamodule=datamodule, ckpt_path=last, weights_only=True)
        if trainer.interrupted:
            raise KeyboardInterrupt
        fit_seconds = time.perf_counter() - start
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        # A multi-task model is scored per task, on the labels present for each.
        multitask = is_multitask(model)
        evaluate = evaluate_tasks if multitask else evaluate_splits
        splits = evaluate(trainer, model, datamodule, ckpt_path=best or None)
        # Timed where the model trained (Lightning moves it back to the CPU after testing).
        device = trainer.strategy.root_device
        example = next(iter(datamodule.eval_dataloader("dev")))[0][0]
        latency = measure_latency(model, example, settings.latency_repeats, device=device)
        metrics: dict[str, Any] = {
            "recipe": str(configs[-1]),
            "run_dir": str(run_dir),
            "best_checkpoint": best or None,
            "epochs": trainer.current_epoch,
            "fit_seconds": round(fit_seconds, 3),
            **count_parameters(model),
            "latency_ms": round(latency, 5),
            "latency_device": str(device),
            "latency_repeats": settings.latency_repeats,
            "splits": splits,
            "learning_curve": list(getattr(model, "history", [])),
        }
        diagnosis = diagnose_splits(splits, settings.human_error)
        try:
            analysis = {} if multitask else analyze_errors(model, datamodule, splits)
        except Exception as err:  # an extra section of the report: never lose the run to it
            analysis = {}
            console.print(f"[yellow]note:[/] error analysis skipped ({type(err).__name__}: {err})")
        if trainer.logger is not None:
            hparams = {
                "model": {k: v for k, v in model.hparams.items() if not k.startswith("_")},
                "data": dict(datamodule.hparams),
            }
            scores = {
                f"hparams/{s}_{k}": row[k] for s, row in splits.items() for k in ("error", "f1")
            }
            trainer.logger.log_hyperparams(hparams, metrics=scores)
        write_run_report(
            run_dir,
            metrics,
            diagnosis,
            settings=settings.to_dict(),
            analysis=analysis,
            constraints=settings.constraints,
            optimize=settings.optimize,
            logger=trainer.logger,
        )
        if multitask:
            task_diagnoses = diagnose_tasks(splits, settings.human_error)
            write_task_report(run_dir, metrics, task_diagnoses, logger=trainer.logger)
        if trainer.logger is not None:
            trainer.logger.finalize("success")
        # Written last: its presence marks a finished run.
        write_json_atomic(run_dir / "metrics.json", metrics)
    except BaseException as err:
        # Leave what was written (checkpoints, events) but never a folder that looks finished.
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "FAILED").write_text(f"{type(err).__name__}: {err}\n")
        console.print(f"[red]run failed[/]; {run_dir} is incomplete (no metrics.json), see FAILED")
        raise
    console.print(summary_table(metrics, title=f"{configs[-1]}  ({fit_seconds:.1f} s fit)"))
    if multitask:
        console.print(task_renderable(splits, task_diagnoses))
    console.print(diagnosis_renderable(diagnosis))
    same = analysis.get("same_distribution") or {}
    if same.get("differ"):
        console.print(f"[bold yellow]warning:[/] {same['message']}")
    console.print(
        f"run folder: {run_dir}  ·  report: {run_dir / 'report.md'}  ·  "
        f"tensorboard --logdir {run_dir.parent.parent}"
    )
    return metrics


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it lies inside it (shorter to read)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _resume_dir(given: str, recipe: Path) -> Path:
    """The run folder to resume: the one given, or the recipe's newest under logs/."""
    if given == "latest":
        candidates = sorted(
            (p for p in (Path(LOGS_DIR) / recipe.stem).glob("*") if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
        )
        if not candidates:
            raise ValueError(
                f"--resume: no run of {recipe.stem!r} under {LOGS_DIR}/{recipe.stem}/ to resume. "
                "Start it without --resume, or pass the run folder: --resume logs/NAME/RUN."
            )
        run_dir = candidates[-1]
    else:
        run_dir = Path(given)
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        raise ValueError(
            f"--resume: {run_dir} has no checkpoints/last.ckpt, so there is nothing to resume "
            "(the run stopped before its first epoch ended). Start it again without --resume."
        )
    return run_dir


def _recipes_of(path: Path) -> list[list[Path]]:
    if path.is_file():
        # A recipe of a study is composed on its folder's base, run alone or with the others.
        base = path.parent / "_base.yaml"
        return [[base, path]] if base.is_file() and path.name != base.name else [[path]]
    base = path / "_base.yaml"
    recipes = sorted(p for p in path.glob("*.yaml") if not p.name.startswith("_"))
    if not recipes:
        raise ValueError(
            f"Folder {str(path)!r} holds no *.yaml recipes (files starting with _ are bases)."
        )
    return [[base, p] if base.is_file() else [p] for p in recipes]


def _run(argv: list[str], console: Console) -> int:
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
        "run folder); the result is identical to an uninterrupted run",
    )
    args, overrides = parser.parse_known_args(argv)
    path = Path(args.recipe)
    if not path.exists():
        raise ValueError(
            f"Recipe {args.recipe!r} does not exist. Give the path of a .yaml recipe or a folder "
            "of recipes, e.g. `mlstrategy run recipes/quickstart.yaml` (see `ls recipes`)."
        )
    runs = _recipes_of(path)
    from mlstrategy.pipeline.study import is_study_recipe, run_study_recipe

    if len(runs) == 1 and is_study_recipe(runs[0][-1]):
        run_study_recipe(runs[0], overrides, console, Path(LOGS_DIR), resume=args.resume)
        return 0
    if args.resume is not None:
        if len(runs) != 1:
            raise ValueError("--resume continues one run: give one recipe file, not a folder.")
        _run_one(runs[0], overrides, console, resume=_resume_dir(args.resume, runs[0][-1]))
        return 0
    if len(runs) == 1:
        _run_one(runs[0], overrides, console)
        return 0
    # A study's runs share one folder, so `compare logs/<study>` and TensorBoard see just them.
    logs_dir = Path(LOGS_DIR) / path.resolve().name
    results = [_run_one(configs, overrides, console, logs_dir=logs_dir) for configs in runs]
    run_dirs = [Path(m["run_dir"]) for m in results]
    optimize, goal, satisfy = _study_rules(run_dirs, console)
    _print_comparison(run_dirs, optimize, goal, satisfy, console, title=f"study {path}")
    console.print(f"compare again: mlstrategy compare {logs_dir}")
    return 0


def _study_rules(
    run_dirs: list[Path], console: Console
) -> tuple[str, Literal["auto", "max", "min"], list[str]]:
    """The selection rules recorded by the runs: the first run's, with a note if others differ."""
    from mlstrategy.run_folder import load_settings

    run_dirs = _candidates(run_dirs)
    rules = []
    for run_dir in run_dirs:
        s = load_settings(run_dir)
        rules.append(
            (s.get("optimize") or "dev/f1", s.get("goal") or "auto", s.get("satisfy") or [])
        )
    if any(r != rules[0] for r in rules[1:]):
        console.print(
            "[yellow]note:[/] the runs' recipes give different selection rules; using the first "
            f"run's ({run_dirs[0]}). Put them in the study's _base.yaml to share them."
        )
    optimize, goal, satisfy = rules[0]
    goal = goal if goal in ("auto", "max", "min") else "auto"
    return str(optimize), cast(Literal["auto", "max", "min"], goal), [str(c) for c in satisfy]


def _candidates(run_dirs: list[Path]) -> list[Path]:
    """The runs to compare: not those whose recipe says ``evaluation.candidate: false`` (runs
    that prepare the others, such as pretraining on a transfer study's source task)."""
    from mlstrategy.run_folder import load_settings

    return [d for d in run_dirs if load_settings(d).get("candidate", True)] or run_dirs


def _print_comparison(
    run_dirs: list[Path],
    optimize: str,
    goal: Literal["auto", "max", "min"],
    satisfy: list[str],
    console: Console,
    title: str | None = None,
) -> None:
    from mlstrategy.evaluation.selection import flatten_metrics, select
    from mlstrategy.reporting.tables import compare_table
    from mlstrategy.run_folder import load_metrics, load_settings, run_names

    run_dirs = _candidates(run_dirs)
    columns = dict.fromkeys(["dev/error", *(load_settings(run_dirs[0]).get("columns") or [])])
    names = run_names(run_dirs)
    runs = {names[d]: flatten_metrics(load_metrics(d)) for d in run_dirs}
    selection = select(runs, optimize, satisfy, goal=None if goal == "auto" else goal)
    rules = f"optimize {optimize} ({selection.goal})"
    if selection.constraints:
        rules += ", satisfy " + ", ".join(str(c) for c in selection.constraints)
    # The rules on their own line: as a table title they would wrap to the table's width.
    console.print(f"[bold]{title or 'comparison'}[/]: {rules}", highlight=False)
    console.print(compare_table(selection, columns=[*columns, "params"]))
    from mlstrategy.reporting.tasks import task_comparison_table

    # Multi-task runs: each task's F1 side by side (the table is empty for other runs).
    per_task = task_comparison_table({names[d]: load_metrics(d) for d in run_dirs})
    if len(per_task.columns) > 1:  # a column per multi-task run; none in other studies
        console.print(per_task)
    if selection.winner is None:
        console.print(
            "[bold red]no winner:[/] no run meets every satisficing constraint. Relax a "
            "constraint, or train a model that meets them (e.g. a smaller one for latency)."
        )
    else:
        values = runs[selection.winner]
        by_name = {v: k for k, v in names.items()}
        # The test split was not used to choose, so its error is an unbiased estimate.
        test = f", test/error = {values['test/error']:.4g}" if "test/error" in values else ""
        console.print(
            f"[bold green]winner:[/] {selection.winner} ({optimize} = {values[optimize]:.4g}"
            f"{test})  ·  {by_name[selection.winner]}"
        )


def _diagnose(argv: list[str], console: Console) -> int:
    from mlstrategy.evaluation.diagnosis import diagnose_splits
    from mlstrategy.reporting.tables import diagnosis_renderable, summary_table
    from mlstrategy.run_folder import find_run, load_metrics, load_settings

    parser = argparse.ArgumentParser(
        prog="mlstrategy diagnose",
        description=DIAGNOSE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a recipe's folder")
    parser.add_argument(
        "--human-error",
        type=float,
        default=None,
        help="human-level error as a fraction (5%% -> 0.05); default: the recipe's",
    )
    args = parser.parse_args(argv)
    run_dir = find_run(args.run_dir)
    metrics = load_metrics(run_dir)
    human_error = args.human_error
    if human_error is None:
        human_error = load_settings(run_dir).get("human_error")
    diagnosis = diagnose_splits(metrics["splits"], human_error)
    console.print(summary_table(metrics, title=f"{metrics.get('recipe', run_dir)}  ({run_dir})"))
    if any("tasks" in row for row in metrics["splits"].values()):
        from mlstrategy.evaluation.multitask import diagnose_tasks
        from mlstrategy.reporting.tasks import task_renderable

        tasks = diagnose_tasks(metrics["splits"], human_error)
        console.print(task_renderable(metrics["splits"], tasks))
    console.print(diagnosis_renderable(diagnosis))
    report = run_dir / "report.md"
    if report.is_file():
        console.print(f"full report: {report}")
    return 0


def _compare(argv: list[str], console: Console) -> int:
    from mlstrategy.run_folder import find_runs

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
    args = parser.parse_args(argv)
    run_dirs = find_runs(args.runs, all_runs=args.all_runs)
    if args.optimize is None and not args.satisfy:
        optimize, goal, satisfy = _study_rules(run_dirs, console)
        if args.goal != "auto":
            goal = args.goal
    else:
        optimize, goal, satisfy = args.optimize or "dev/f1", args.goal, args.satisfy
    _print_comparison(run_dirs, optimize, goal, satisfy, console, title=" ".join(args.runs))
    return 0


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


def _learning_curve(argv: list[str], console: Console) -> int:
    from rich.table import Table

    from mlstrategy.evaluation.learning_curve import (
        CurvePoint,
        curve_to_dict,
        error_vs_size_figure,
        parse_sizes,
        what_more_data_buys,
    )
    from mlstrategy.io import write_json_atomic
    from mlstrategy.reporting.plots import save_figure
    from mlstrategy.run_folder import load_settings

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
    args, overrides = parser.parse_known_args(argv)
    path = Path(args.recipe)
    if not path.is_file():
        raise ValueError(
            f"Recipe {args.recipe!r} is not a file. Give one .yaml recipe, e.g. "
            "`mlstrategy learning-curve recipes/strategy/flower_wide_net.yaml`."
        )
    sizes = parse_sizes(args.sizes)
    (configs,) = _recipes_of(path)
    name = f"{path.stem}-learning-curve"
    root = Path(LOGS_DIR) / name / _new_run_version(Path(LOGS_DIR), name)
    quiet = Console(file=io.StringIO())
    points: list[CurvePoint] = []
    human_error = None
    for fraction in sizes:
        metrics = _run_one(
            configs,
            overrides,
            quiet,
            logs_dir=root / f"size_{fraction:g}",
            before_fit=_train_subset(fraction),
        )
        splits = metrics["splits"]
        point = CurvePoint(
            fraction,
            int(splits["train"]["n"]),
            float(splits["train"]["error"]),
            float(splits["dev"]["error"]),
            metrics["run_dir"],
        )
        points.append(point)
        human_error = load_settings(Path(metrics["run_dir"])).get("human_error")
        console.print(
            f"  {100 * fraction:5.1f}% of train, m={point.m:>6}: training error "
            f"{100 * point.train_error:6.2f}%, dev error {100 * point.dev_error:6.2f}%"
        )
    reading = what_more_data_buys(points, human_error)
    figure = error_vs_size_figure(points, human_error)
    save_figure(figure, root / "learning_curve.png")
    write_json_atomic(
        root / "learning_curve.json",
        {
            "recipe": str(path),
            "human_error": human_error,
            "points": curve_to_dict(points),
            **reading,
        },
    )
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(root)) as writer:
        for p in points:
            writer.add_scalar("learning_curve/train_error", p.train_error, p.m)
            writer.add_scalar("learning_curve/dev_error", p.dev_error, p.m)
        writer.add_figure("learning_curve", figure, close=False)
        writer.add_text("learning_curve", reading["message"])

    table = Table(title=f"learning curve: {path}", title_justify="left")
    for col in ("fraction", "m", "training error", "dev error", "dev - train"):
        table.add_column(col, justify="right")
    for p in points:
        table.add_row(
            f"{p.fraction:g}",
            str(p.m),
            f"{100 * p.train_error:.2f}%",
            f"{100 * p.dev_error:.2f}%",
            f"{100 * (p.dev_error - p.train_error):.2f}",
        )
    console.print(table)
    console.print(f"[bold]{reading['message']}[/]")
    console.print(f"plot: {root / 'learning_curve.png'}  ·  tensorboard --logdir {root}")
    return 0


def _train_subset(fraction: float) -> Callable[[Any], None]:
    """Keep a nested, stratified ``fraction`` of the data module's train split."""

    def apply(datamodule: Any) -> None:
        import torch

        from mlstrategy.evaluation.learning_curve import nested_subset

        prepare = getattr(datamodule, "prepare", None)
        splits = prepare() if callable(prepare) else None
        if not isinstance(splits, dict) or "train" not in splits:
            raise ValueError(
                f"learning-curve needs a data module that keeps its splits in memory "
                f"(mlstrategy.data.ArrayDataModule); {type(datamodule).__name__} does not."
            )
        x, y = splits["train"]
        keep = torch.from_numpy(nested_subset(y.numpy(), fraction, getattr(datamodule, "seed", 0)))
        # prepare() hands back its cached splits, so the subset is what setup() and the
        # train-only normalization statistics see.
        splits["train"] = (x[keep], y[keep])

    return apply


def _user_message(err: BaseException) -> str:
    """The part of an error a user can act on.

    jsonargparse wraps a ``ValueError`` raised while building a class (a model's bad
    hyperparameter) in "Does not validate against any of the Union subtypes ... Given value:
    Namespace(...)"; only the inner messages say what is wrong.
    """
    text = str(err)
    if "Does not validate against any of the Union subtypes" not in text:
        return text
    inner = [
        line.strip()[2:]
        for line in text.splitlines()
        if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line
    ]
    return " ".join(inner) or text


def _vet(args: list[str]) -> list[str]:
    """Refuse foreign class paths and crafted checkpoints before anything is imported.

    Consumes ``--allow-module NAME`` (repeatable) and returns the remaining arguments.
    """
    from mlstrategy.safety import check_recipe, load_checkpoint

    allow: list[str] = []
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--allow-module":
            allow.append(next(it, ""))
        elif arg.startswith("--allow-module="):
            allow.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    configs: list[Path] = []
    overrides: list[str] = []
    ckpt: str | None = None
    verb, tail = rest[0], rest[1:]
    for i, arg in enumerate(tail):
        value = arg.split("=", 1)[1] if "=" in arg else (tail[i + 1] if i + 1 < len(tail) else "")
        if arg == "--config" or arg.startswith("--config="):
            configs.append(Path(value))
        elif arg == "--ckpt_path" or arg.startswith("--ckpt_path="):
            ckpt = value
        elif arg.startswith("--"):
            overrides.append(arg if "=" in arg else f"{arg}={value}")
    if verb in ("run", "learning-curve", "lr-find") and tail and not tail[0].startswith("-"):
        target = Path(tail[0])
        configs += sorted(target.glob("*.yaml")) if target.is_dir() else [target]
        configs += [target.parent / "_base.yaml"] if target.is_file() else []
    check_recipe([c for c in configs if c.is_file()], overrides, allow)
    if ckpt and Path(ckpt).is_file():
        load_checkpoint(ckpt, allow)
    return rest


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlstrategy`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=False)
    err_console = Console(stderr=True)
    if not args or args[0] in ("-h", "--help"):
        print(TOP_HELP)
        return 0
    if args[0] == "--version":
        from mlstrategy import __version__

        print(f"mlstrategy {__version__}")
        return 0
    verb = args[0]
    # Lightning 2.6 still calls jsonargparse APIs deprecated in 4.49; users cannot act on that.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    _quiet_known_warnings()
    try:
        args = _vet(args)
        if verb == "run":
            return _run(args[1:], console)
        if verb == "diagnose":
            return _diagnose(args[1:], console)
        if verb == "compare":
            return _compare(args[1:], console)
        if verb == "learning-curve":
            return _learning_curve(args[1:], console)
        if verb == "lr-find":
            from mlstrategy.tuning import lr_find_main

            return lr_find_main(args[1:], console)
        if verb in _LIGHTNING_VERBS:
            _make_cli_class()(args=args)
            return 0
        err_console.print(
            f"error: unknown verb {verb!r}. Use one of: "
            f"{', '.join((*_TOOLKIT_VERBS, *_LIGHTNING_VERBS))} "
            "(mlstrategy --help)."
        )
        return 2
    except SystemExit as exit_:
        # jsonargparse reports config errors (unknown key, wrong type) itself, then exits 2.
        return exit_.code if isinstance(exit_.code, int) else 2
    except RuntimeError as err:
        from mlstrategy.callbacks.guards import NonFiniteError

        if not isinstance(err, NonFiniteError) or os.environ.get(_DEBUG_ENV):
            raise
        err_console.print(f"[bold red]training stopped:[/] {err}", highlight=False, soft_wrap=True)
        return 1
    except (ValueError, FileNotFoundError, TypeError) as err:
        if os.environ.get(_DEBUG_ENV):
            raise
        err_console.print("[bold red]error:[/] ", end="")
        err_console.print(_user_message(err), markup=False, highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
