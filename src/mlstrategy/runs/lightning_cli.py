"""The toolkit's LightningCLI: the plain verbs (fit, validate, test, predict) and every run."""

from __future__ import annotations

import argparse
import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    Callback,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
)
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from mlstrategy.callbacks.guards import NonFiniteGuard, RNGState
from mlstrategy.callbacks.predictions import PredictionsCSV
from mlstrategy.callbacks.progress import NetworkSummary, RunProgressBar
from mlstrategy.evaluation.scoring import SplitScorer
from mlstrategy.evaluation.settings import EvaluationSettings
from mlstrategy.io import AtomicCheckpointIO
from mlstrategy.run_folder import BEST_CHECKPOINT, CHECKPOINTS_DIR, LOGS_DIR, new_run_version
from mlstrategy.runs.errors import ConfigError, config_error
from mlstrategy.runs.recipes import recipe_configs
from mlstrategy.safety import (
    check_checkpoint_class,
    check_checkpoint_matches,
    load_checkpoint,
    restrict_jsonargparse_imports,
)

# A bad key or value raises (one line from the CLI) instead of a usage dump.
_STRICT = {"exit_on_error": False, "allow_abbrev": False}


class _DropAdverts(logging.Filter):
    # Lightning's tips, and its notes on loading the best checkpoint to score it (the run
    # prints its folder, and the scoring bars say which split they score).
    _NOISE = ("💡 Tip", "Restoring states from the checkpoint", "Loaded model weights from")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._NOISE)


def quiet_known_warnings() -> None:
    """Silence Lightning's advice that does not apply to the toolkit's runs."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
    # In-memory batches are not DataLoaders, so worker and logging-interval advice does not apply.
    for message in (
        r".*does not have many workers.*",
        r".*smaller than the logging interval.*",
        # The prediction writer keeps the order of the in-memory batches, not their indices.
        r".*Couldn't infer the batch indices fetched from your dataloader: `InMemoryBatches`.*",
        r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
        # `run` hands LightningCLI the recipe as args on purpose.
        r".*LightningCLI's args parameter is intended.*",
        # The toolkit's epoch-level values are torchmetrics results, already summed over
        # processes; sync_dist would only average equal numbers again.
        r".*It is recommended to use `self.log\('"
        r"(cost/|lr|train/|train_dev/|dev/|dev_test/|test/).*",
    ):
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's per-fit notices (devices, seed, "max_epochs reached") off for a while: the
    many small fits of a tune, a cross-validation or a study print their own lines."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class MLStrategyCLI(LightningCLI):
    """LightningCLI with the toolkit's defaults: any of its models and data modules, sizes
    linked from the data, TensorBoard under ``logs/<recipe>/<timestamp>``, best and last
    checkpoints by dev cost, a rich progress bar, seed 0 and deterministic algorithms, and
    an ``evaluation`` section (human-level error, selection rules) that only ``run`` reads.

    Args:
        args: The command line (or a recipe as ``--config=...`` plus overrides).
        run: Run the subcommand (the plain verbs); False only builds model, data and trainer.
        logs_dir: Where new run folders go (``logs_dir/<recipe>/<timestamp>``).
        resume_dir: A run folder to log into again (``run --resume``).
    """

    def __init__(
        self,
        args: Sequence[str] | None = None,
        run: bool = True,
        logs_dir: str | Path = LOGS_DIR,
        resume_dir: Path | None = None,
    ) -> None:
        self.logs_dir = Path(logs_dir)
        self.resume_dir = resume_dir
        self._checkpoint: dict[str, Any] | None = None  # --ckpt_path's, until it is matched
        restrict_jsonargparse_imports()
        super().__init__(
            model_class=None,
            datamodule_class=None,
            args=with_study_bases(list(args)) if args is not None else None,
            run=run,
            seed_everything_default=0,
            # "warn": deterministic algorithms wherever torch has them (every CPU op here, so
            # the same seed gives the same weights); on CUDA the few ops without one (e.g.
            # AdaptiveMaxPool2d's backward) warn and run anyway instead of stopping the run.
            trainer_defaults={"deterministic": "warn"},
            save_config_kwargs={"overwrite": True},
            # No abbreviations: argparse would take --trainer.max_epoch (a typo) for
            # --trainer.max_epochs, while model and data keys are matched in full.
            parser_kwargs={
                **_STRICT,
                **{verb: dict(_STRICT) for verb in ("fit", "validate", "test", "predict")},
            },
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for size in ("input_shape", "num_classes"):
            parser.link_arguments(f"data.{size}", f"model.init_args.{size}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # A typed section, so recipes keep working with the plain verbs (which ignore it)
        # and a typo in it fails before training.
        parser.add_class_arguments(EvaluationSettings, "evaluation")
        # `mlstrategy tune`'s ranges (runs/search_space.py reads and checks them); a plain
        # mapping here, so the plain verbs and `run` accept and ignore it.
        parser.add_argument("--search", type=dict[str, Any] | None, default=None)
        parser.set_defaults(
            {
                "checkpoint.monitor": "cost/dev",
                "checkpoint.mode": "min",
                "checkpoint.filename": BEST_CHECKPOINT,
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

    def _run_dir(self) -> Path | None:
        """The run folder to log into again, if any (resume, or scoring a finished run)."""
        # Absolute paths: ModelCheckpoint only restores its state (best score, best path)
        # on resume when the folder is spelled the same way.
        run_dir = self.resume_dir.resolve() if self.resume_dir is not None else None
        if self.subcommand in ("validate", "test", "predict"):
            # Scoring a finished run: log into that run's folder, keep its config.yaml.
            self.save_config_callback = None
            ckpt = self.config[self.subcommand].get("ckpt_path")
            if ckpt and Path(ckpt).parent.name == CHECKPOINTS_DIR:
                run_dir = Path(ckpt).resolve().parent.parent
        return run_dir

    def _ckpt_path(self) -> str | None:
        """The checkpoint file a verb's ``--ckpt_path`` names, if it names a file."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return None
        ckpt = self.config[subcommand].get("ckpt_path")
        text = str(ckpt or "")
        # Lightning's own names ("best", "last", "hpc", "registry[:...]"), not files.
        special = text in ("best", "last", "hpc") or text.lower().split(":", 1)[0] == "registry"
        if not text or special or "://" in text:
            return None
        return str(ckpt)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then read ``--ckpt_path`` with the toolkit's loader before Lightning does.

        Lightning rebuilds the model from the checkpoint's hyperparameters (importing the class
        they name) right after parsing; a missing, damaged, crafted or other model's checkpoint
        fails here instead, before anything is built and before a run folder exists.
        """
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as err:
            text, argv, options = str(err), list(args or ()), _option_names(parser)
            message = config_error(text, argv, options)
            if message is None:
                raise
            raise ConfigError(message, text, argv, options) from None
        subcommand = self.config.get("subcommand")
        if subcommand in ("test", "validate", "predict") and not self.config[subcommand].get(
            "ckpt_path"
        ):
            raise ValueError(
                f"`mlstrategy {subcommand}` scores a trained model: give its checkpoint, "
                "--ckpt_path logs/<recipe>/<run>/checkpoints/best.ckpt (`mlstrategy run RECIPE` "
                "trains, then tests its best checkpoint itself)."
            )
        ckpt = self._ckpt_path()
        if ckpt is None:
            return
        self._checkpoint = load_checkpoint(ckpt)
        model = self.config[self.config["subcommand"]].get("model")
        class_path = getattr(model, "class_path", None) if model is not None else None
        if class_path:
            check_checkpoint_class(self._checkpoint, str(class_path), f"The checkpoint {ckpt}")

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        if self._checkpoint is not None:
            # The model is built now; a checkpoint of another model fails before a run folder.
            where = f"The checkpoint {self._ckpt_path()}"
            check_checkpoint_matches(self._checkpoint, self.model, where)
            self._checkpoint = None
        config = self._get(self.config_init, "trainer", default={})
        run_dir = self._run_dir()
        if config.get("logger") in (None, True):
            if run_dir is not None:
                save_dir, name, version = run_dir.parent.parent, run_dir.parent.name, run_dir.name
            else:
                # Named once the trainer knows this process's rank (below): nothing is
                # created before then, so a trainer that fails to build leaves no folder.
                save_dir, name = self.logs_dir.resolve(), self._recipe_name()
                version = _PENDING_VERSION
            kwargs["logger"] = RunLogger(
                save_dir=str(save_dir), name=name, version=version, default_hp_metric=False
            )
        # Always on, and outside the recipe's callbacks list so recipes keep their own.
        kwargs["callbacks"] = [*self._callbacks(config), NonFiniteGuard(), RNGState()]
        if any(isinstance(c, NetworkSummary) for c in kwargs["callbacks"]):
            kwargs["enable_model_summary"] = False  # ours is the summary: no second one
        kwargs["callbacks"].append(SharedRunFolder())
        if not config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        trainer = super().instantiate_trainer(**kwargs)
        logger = trainer.logger
        if (
            isinstance(logger, TensorBoardLogger)
            and logger.version == _PENDING_VERSION
            and trainer.global_rank == 0
        ):
            # Only global rank 0 reserves (creates) a folder; the others learn its name from
            # rank 0 once the process group is up (SharedRunFolder).
            logger._version = new_run_version(Path(logger.save_dir), logger.name)
        if isinstance(logger, RunLogger):
            seed = self._get(self.config_init, "seed_everything", default=None)
            logger.run_parts = {
                "model": self.model,
                "datamodule": self.datamodule,
                "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                "max_epochs": trainer.max_epochs,
            }
        return trainer

    def _callbacks(self, config: Any) -> list[Any]:
        """The recipe's callbacks, plus a progress bar and the verb's own writer or scorer."""
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(RunProgressBar())  # "epoch 3/200", "scoring dev"; 80 columns
        if config.get("enable_model_summary") is not False and not any(
            isinstance(c, ModelSummary) for c in callbacks
        ):
            callbacks.append(NetworkSummary())  # the network's layers, not the metric objects
        if self.subcommand == "predict" and not any(
            isinstance(c, BasePredictionWriter) for c in callbacks
        ):
            callbacks.append(PredictionsCSV())  # predictions.csv in the run folder
        if self.subcommand == "test":
            callbacks.append(SplitScorer("test"))  # test/error, test/f1, ... as before
        return callbacks


_PENDING_VERSION = "pending-run-folder"  # a non-zero rank's version until rank 0's arrives


class RunLogger(TensorBoardLogger):
    """Lightning's TensorBoard logger, with the HParams tab the toolkit wants: the call with
    the split scores writes :func:`~mlstrategy.reporting.hparams.hparam_columns` (model class,
    optimizer, learning rate, batch size, seed and what else the recipe sets) and the scores
    as ``{split}/{score}`` metrics, not every argument of the model and the data module.
    Lightning's own call at the start of a fit (no metrics) still writes ``hparams.yaml``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_parts: dict[str, Any] = {}  # model, datamodule, seed, max_epochs
        self._logged: set[str] = set()  # scalar tags already written

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._logged.update(metrics)
        super().log_metrics(metrics, step)

    @rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None
    ) -> None:
        if metrics is None or not self.run_parts:
            super().log_hyperparams(params, metrics, step)
            return
        from mlstrategy.reporting.hparams import hparam_columns, hparams_summaries, score_columns

        scores = score_columns(metrics)
        # The HParams table reads each metric's last scalar in the run; the scorer logged most.
        missing = {k: v for k, v in scores.items() if k not in self._logged}
        if missing:
            self.log_metrics(missing, step)
        writer = self.experiment._get_file_writer()
        for summary in hparams_summaries(hparam_columns(**self.run_parts), list(scores)):
            writer.add_summary(summary, step)


class SharedRunFolder(Callback):
    """One run folder for every process of a distributed run: when the process group is up,
    rank 0 broadcasts its run folder's name and every other rank logs (and checkpoints) into
    it. Before that no rank but 0 has a folder, and none but 0 ever writes into it.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = trainer.logger
        if trainer.world_size > 1 and isinstance(logger, TensorBoardLogger):
            logger._version = trainer.strategy.broadcast(logger.version, src=0)


def _option_names(parser: Any) -> list[str]:
    """Every dotted key ``parser`` and its subcommands' parsers take."""
    names: list[str] = []
    for action in parser._actions:
        subparsers = getattr(action, "_name_parser_map", None)
        if subparsers:
            for sub in subparsers.values():
                names += _option_names(sub)
        elif action.dest and action.dest != "help":
            names.append(action.dest)
    return names


def with_study_bases(args: list[str]) -> list[str]:
    """``args`` with each ``--config`` recipe of a study preceded by its folder's
    ``_base.yaml`` (unless given already), so the plain verbs compose a study's recipe as
    ``run`` does.

    Example:
        >>> import tempfile
        >>> study = Path(tempfile.mkdtemp())
        >>> for name in ("_base.yaml", "a.yaml"):
        ...     _ = (study / name).write_text("{}")
        >>> args = with_study_bases(["fit", "--config", str(study / "a.yaml")])
        >>> [a.replace(f"{study}/", "") for a in args]
        ['fit', '--config=_base.yaml', '--config=a.yaml']
    """
    joined: list[str] = []  # `--config X` and `-c X` spelled `--config=X`
    it = iter(args)
    for arg in it:
        joined.append(f"--config={next(it, '')}" if arg in ("--config", "-c") else arg)
    configs = [Path(a.split("=", 1)[1]) for a in joined if a.startswith("--config=")]
    given = {c.resolve() for c in configs}
    out: list[str] = []
    for arg in joined:
        path = Path(arg.split("=", 1)[1]) if arg.startswith("--config=") else None
        if path is not None and path.is_file():
            base = recipe_configs(path)[0][0]
            if base != path and base.resolve() not in given:
                out.append(f"--config={base}")
                given.add(base.resolve())
        out.append(arg)
    return out


def build_run(
    configs: Sequence[Path],
    overrides: Sequence[str],
    logs_dir: str | Path = LOGS_DIR,
    resume_dir: Path | None = None,
) -> MLStrategyCLI:
    """Parse a recipe and its overrides; build (not run) its model, data module and trainer.

    Args:
        configs: The recipe's files, base first.
        overrides: Dotted LightningCLI overrides.
        logs_dir: Where a new run folder is reserved.
        resume_dir: A run folder to log into again instead.

    Returns:
        The CLI, with ``model``, ``datamodule``, ``trainer`` and ``config_init`` built.
    """
    args = [*(f"--config={c}" for c in configs), *overrides]
    return MLStrategyCLI(args=args, run=False, logs_dir=logs_dir, resume_dir=resume_dir)


class _ConfigOnly(MLStrategyCLI):
    """Parse and check a recipe with its overrides; build nothing (no data, no run folder)."""

    def instantiate_classes(self) -> None:
        return None


def parse_recipe(configs: Sequence[Path], overrides: Sequence[str]) -> dict[str, Any]:
    """The recipe with its overrides, parsed and checked, as a dict; nothing built."""
    args = [*(f"--config={c}" for c in configs), *overrides]
    return dict(_ConfigOnly(args=args, run=False).config.as_dict())


PLACEMENT = ("accelerator", "devices", "num_nodes", "strategy")


def placed_trainer(trainer: Mapping[str, Any]) -> L.Trainer:
    """A bare Trainer placed as the recipe's ``trainer`` section places one (accelerator,
    devices, num_nodes, strategy), in this process's launch: its ``world_size`` and
    ``global_rank`` are the run's. It builds nothing else and writes nothing."""
    given = {k: trainer[k] for k in PLACEMENT if isinstance(trainer.get(k), (str, int, list))}
    return L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **given,
    )


def writes_files(configs: Sequence[Path], overrides: Sequence[str]) -> bool:
    """Whether this process writes the recipe's results: True unless the recipe trains across
    processes (DDP) and this is not its global rank 0, which alone writes and prints. A verb
    that reserves a folder of its own before its first fit asks this first."""
    with quiet_lightning():
        trainer = parse_recipe(configs, overrides).get("trainer") or {}
        return bool(placed_trainer(trainer).is_global_zero)


def run_dir_of(trainer: Any) -> Path:
    """The folder the trainer logs into: the run folder.

    Raises:
        ValueError: the recipe turned the logger off, so there is no run folder.
    """
    if trainer.log_dir is None:
        raise ValueError(
            "The trainer has no folder to log into; `run` writes its run folder there. "
            "Remove trainer.logger: false (or default_root_dir: null) from the recipe."
        )
    return Path(trainer.log_dir)
