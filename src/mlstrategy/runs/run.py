"""Run one recipe: fit, test the best checkpoint, score every split, diagnose, report.

The whole run is :func:`run_recipe`, one function with one failure wrapper (after
lightning-hydra-template's ``train``): build model, data and trainer from the recipe; fit;
score every split with the best checkpoint's weights; diagnose; write the run folder, with
``metrics.json`` last. A run that fails leaves ``FAILED`` with the reason instead.
"""

from __future__ import annotations

import shlex
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from mlstrategy.evaluation.diagnosis import Diagnosis, diagnose_run
from mlstrategy.evaluation.error_analysis import analyze_errors
from mlstrategy.evaluation.latency import measure_latency
from mlstrategy.evaluation.multitask import diagnose_tasks, is_multitask_run
from mlstrategy.evaluation.regression import split_predictions
from mlstrategy.evaluation.scoring import count_parameters, evaluate_splits, is_regressor
from mlstrategy.evaluation.settings import EvaluationSettings
from mlstrategy.io import write_json_atomic
from mlstrategy.reporting.run_report import write_run_report
from mlstrategy.run_folder import (
    CHECKPOINTS_DIR,
    FAILED_FILE,
    LAST_CHECKPOINT,
    LOGS_DIR,
    METRICS_FILE,
    REPORT_FILE,
    abandon,
    checkpoint_path,
    clear_failed,
    is_finished,
    latest_run,
    recipe_runs,
    shown,
)
from mlstrategy.runs.babysit import ResumedHyperparameters, current_config, resume_changes
from mlstrategy.runs.lightning_cli import build_run, run_dir_of
from mlstrategy.safety import check_checkpoint_matches, load_checkpoint


@dataclass
class RunResult:
    """What a finished run recorded (the same as its run folder's JSON files).

    Attributes:
        run_dir: The run folder.
        metrics: The content of ``metrics.json``.
        diagnosis: The run's diagnosis (of the summary row for a multi-task run), or why it
            has none (a multi-task run without an error rate: every task a regression).
        task_diagnoses: ``{task: Diagnosis or reason}`` of a multi-task run, else empty.
        analysis: The error analysis (most-confused classes, highest-loss dev examples, the
            dev/test distribution check), or empty where it does not apply.
    """

    run_dir: Path
    metrics: dict[str, Any]
    diagnosis: Diagnosis | str
    task_diagnoses: dict[str, Diagnosis | str] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> dict[str, dict[str, Any]]:
        """The per-split scores."""
        return self.metrics["splits"]


class RunFinished(ValueError):
    """``--resume`` named a run that finished: there is nothing to resume, nothing is changed.

    ``mlstrategy run --resume`` prints the message and exits 0 (a requeued job that resumes a
    run which finished before the requeue succeeds); elsewhere it is a ValueError (exit 2).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        super().__init__(
            f"{run_dir} finished already (it has {METRICS_FILE}): nothing to resume, and "
            f"nothing in it was changed. Its report: {run_dir / REPORT_FILE}; `mlstrategy "
            f"diagnose {run_dir}` prints its scores again, and the recipe without --resume "
            "starts a new run."
        )


def resume_dir(given: str, recipe: Path, logs_dir: Path = Path(LOGS_DIR)) -> Path:
    """The run folder ``run --resume`` continues: the one given, or the recipe's newest (by
    creation, :func:`~mlstrategy.run_folder.latest_run`).

    Raises:
        RunFinished: the run finished already.
        ValueError: no run to resume, a folder that does not exist, or one that stopped before
            its first checkpoint.
    """
    if given == "latest":
        found = latest_run(logs_dir, recipe.stem)
        if found is None:
            raise ValueError(
                f"--resume: no run of {recipe.stem!r} under {logs_dir}/{recipe.stem}/ to resume. "
                "Start it without --resume, or pass the run folder: --resume logs/NAME/RUN."
            )
        run_dir = found
    else:
        run_dir = newest_inside(Path(given))
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "does not exist"
        raise ValueError(f"--resume: {given!r} {what}. {_runs_to_resume(logs_dir, recipe)}")
    if is_finished(run_dir):
        raise RunFinished(run_dir)
    last = checkpoint_path(run_dir, LAST_CHECKPOINT)
    if not last.is_file():
        raise ValueError(
            f"--resume: {run_dir} has no {last.relative_to(run_dir)}, so there is nothing to "
            "resume (the run stopped before its first epoch ended). Start it again without "
            "--resume."
        )
    return run_dir


def newest_inside(folder: Path) -> Path:
    """``folder``, or the newest run inside it when it is a recipe's folder of runs (what
    ``--resume logs/<recipe>`` means): a folder with no checkpoints of its own whose
    subfolders have some."""
    if not folder.is_dir() or (folder / CHECKPOINTS_DIR).is_dir():
        return folder
    runs = [p for p in recipe_runs(folder.parent, folder.name) if (p / CHECKPOINTS_DIR).is_dir()]
    return runs[-1] if runs else folder


_LISTED_RUNS = 5


def _runs_to_resume(logs_dir: Path, recipe: Path) -> str:
    """The recipe's run folders that do exist, newest last, for a ``--resume`` that named none."""
    runs = recipe_runs(logs_dir, recipe.stem)
    folder = logs_dir / recipe.stem
    if not runs:
        return f"{recipe.stem!r} has no run folders under {folder}/: start it without --resume."
    listed = ", ".join(str(run) for run in runs[-_LISTED_RUNS:])
    more = (
        f" ({len(runs) - _LISTED_RUNS} older ones: ls {folder})" if len(runs) > _LISTED_RUNS else ""
    )
    return (
        f"The run folders of {recipe.stem!r}, newest last: {listed}{more}. --resume without a "
        "folder continues the newest."
    )


def run_recipe(
    configs: Sequence[Path],
    overrides: Sequence[str] = (),
    console: Console | None = None,
    logs_dir: Path | None = None,
    resume: Path | None = None,
    before_fit: Callable[[Any], None] | None = None,
) -> RunResult:
    """Fit a recipe, test its best checkpoint, score every split, diagnose, write the run folder.

    Args:
        configs: The recipe's config files, base first (see
            :func:`~mlstrategy.runs.recipes.recipe_configs`).
        overrides: Dotted LightningCLI overrides, e.g. ``--trainer.max_epochs=5``.
        console: Where progress lines go (the run folder, resuming, failure).
        logs_dir: Where the run folder goes (default ``logs``).
        resume: A run folder to continue from its last checkpoint.
        before_fit: Called with the data module before fitting (a learning curve's subset).

    Returns:
        The run's scores, diagnosis and analysis; ``metrics.json`` holds the same.
    """
    console = console or Console()
    cli = build_run(configs, overrides, logs_dir or LOGS_DIR, resume)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    if not trainer.is_global_zero:
        # A distributed run's other processes train and score with rank 0, silently: rank 0
        # prints, and writes every file of the one run folder.
        console.quiet = True
    run_dir = shown(run_dir_of(trainer))
    # Checked before anything is written: a resume refused leaves its folder as it was (its
    # FAILED with the command that continues it included).
    last = _check_resume(cli, run_dir, console) if resume is not None else None
    # Lightning answers Ctrl-C in a fit by ignoring SIGINT for good (its graceful shutdown);
    # the caller (a test, a notebook, the CLI with an inherited SIG_IGN) gets its own back.
    sigint = signal.getsignal(signal.SIGINT)
    try:
        if before_fit is not None:
            before_fit(datamodule)
        settings = cli.config_init.get("evaluation") or EvaluationSettings()
        settings.fit_model(regression=is_regressor(model))  # defaults by model kind; vetted
        console.print(f"[bold]run[/] {escape(str(configs[-1]))} -> {escape(str(run_dir))}")
        if last is not None:
            if trainer.is_global_zero:
                clear_failed(run_dir)
            console.print(f"resuming from {last}", markup=False)
        return _fit_and_report(
            trainer, model, datamodule, settings, configs, run_dir, last, console
        )
    except BaseException as err:
        # Leave what was written (checkpoints, events) but never a folder that looks finished;
        # a folder that holds nothing yet is removed.
        command = ["mlstrategy", "run", str(configs[-1]), *overrides]
        reason = failure_reason(err, run_dir, command if before_fit is None else None)
        if trainer.is_global_zero and abandon(run_dir, reason):
            console.print(
                f"[red]run failed[/]; {escape(str(run_dir))} is incomplete, see {FAILED_FILE}"
            )
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            console.print(f"[bold red]{escape(reason)}[/]", highlight=False, soft_wrap=True)
            # Lightning turns Ctrl-C into sys.exit(1); the caller sees it as what it was.
            raise KeyboardInterrupt from err
        raise
    finally:
        if sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)


def _check_resume(cli: Any, run_dir: Path, console: Console) -> Path:
    """The checkpoint a resume continues from, once it is known to fit the recipe; a trainer
    callback applies the recipe's changed hyperparameters from the first epoch it trains.

    Raises:
        ValueError: a damaged or another model's checkpoint, or a change that a resumed run
            cannot apply (the architecture, the data, the optimizer's class).
    """
    last = checkpoint_path(run_dir, LAST_CHECKPOINT)
    # The same loader as every other path: damaged, crafted or another model's checkpoint is
    # named before Lightning reads it.
    checkpoint = load_checkpoint(last)
    changes = resume_changes(run_dir, current_config(cli), checkpoint, cli.model.hparams)
    check_checkpoint_matches(checkpoint, cli.model, f"The checkpoint {last}")
    if changes:
        cli.trainer.callbacks.append(ResumedHyperparameters(changes, run_dir, last, console))
    return last


def failure_reason(err: BaseException, run_dir: Path, command: Sequence[str] | None) -> str:
    """What ``FAILED`` says: the error, or for Ctrl-C / SIGTERM that the run was interrupted
    and the exact command that continues it (``command``, the run's own, gets ``--resume``).

    Example:
        >>> failure_reason(ValueError("bad"), Path("logs/r/1"), None)
        'ValueError: bad'
        >>> command = ["mlstrategy", "run", "r.yaml"]
        >>> failure_reason(KeyboardInterrupt(), Path("/nonexistent"), command)
        'interrupted before its first checkpoint; start it again: mlstrategy run r.yaml'
    """
    if not isinstance(err, (KeyboardInterrupt, SystemExit)):
        return f"{type(err).__name__}: {err}"
    if command is None:
        return "interrupted"
    if checkpoint_path(run_dir, LAST_CHECKPOINT).is_file():
        resume = shlex.join([*command, "--resume", str(run_dir)])
        return f"interrupted; continue exactly where it stopped: {resume}"
    return f"interrupted before its first checkpoint; start it again: {shlex.join(command)}"


def _fit_and_report(
    trainer: Any,
    model: Any,
    datamodule: Any,
    settings: EvaluationSettings,
    configs: Sequence[Path],
    run_dir: Path,
    last: Path | None,
    console: Console,
) -> RunResult:
    start = time.perf_counter()
    with warnings.catch_warnings():
        if last is not None:  # a resumed run's checkpoints/ holds its checkpoints, as it should
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* is not empty")
        # Checkpoints hold tensors and plain values only: never unpickle anything else.
        trainer.fit(model, datamodule=datamodule, ckpt_path=last, weights_only=True)
    fit_seconds = time.perf_counter() - start
    run_dir = shown(run_dir_of(trainer))  # every rank's, now rank 0's (a collective)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    splits = evaluate_splits(
        trainer, model, datamodule, ckpt_path=best or None, class_costs=settings.class_costs
    )
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
        "cost_curve": list(getattr(model, "cost_curve", [])),
    }
    diagnosis = diagnose_run(splits, settings.human_error, settings.error_metric)
    result = RunResult(run_dir, metrics, diagnosis)
    if is_multitask_run(splits):
        result.task_diagnoses = diagnose_tasks(splits, settings.human_error)
    try:  # every run: in-memory arrays, image folders, multi-task models, regressors
        result.analysis = (
            {"predictions": split_predictions(model, datamodule)}
            if is_regressor(model)
            else analyze_errors(model, datamodule, splits)
        )
    except Exception as err:  # an extra section of the report: never lose the run to it
        console.print(
            f"[yellow]note:[/] error analysis skipped ({type(err).__name__}: {escape(str(err))})"
        )
    describe = getattr(datamodule, "describe_sources", None)
    if callable(describe):  # two distributions: where each split's examples came from
        result.analysis["sources"] = describe()
    if not trainer.is_global_zero:
        return result  # rank 0 writes the run folder
    _log_hyperparameters(trainer, model, datamodule, splits)
    write_run_report(
        run_dir,
        metrics,
        result.diagnosis,
        settings=settings.to_dict(),
        analysis=result.analysis,
        constraints=settings.constraints,
        optimize=settings.optimize,
        task_diagnoses=result.task_diagnoses or None,
        logger=trainer.logger,
    )
    if trainer.logger is not None:
        trainer.logger.finalize("success")
    # Written last: its presence marks a finished run.
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    return result


def _log_hyperparameters(
    trainer: Any, model: Any, datamodule: Any, splits: dict[str, dict[str, Any]]
) -> None:
    """TensorBoard's HParams tab: the model's and data's arguments, and each split's scores."""
    if trainer.logger is None:
        return
    hparams = {
        "model": {k: v for k, v in model.hparams.items() if not k.startswith("_")},
        "data": dict(datamodule.hparams),
    }
    scores = {
        f"hparams/{s}_{k}": row[k]
        for s, row in splits.items()
        for k in ("error", "f1", "rmse", "r2")
        if isinstance(row.get(k), (int, float))  # a regression-only run has no error rate
    }
    trainer.logger.log_hyperparams(hparams, metrics=scores)
