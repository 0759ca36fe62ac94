"""The ``mlstrategy`` command: LightningCLI's verbs plus ``run``.

``mlstrategy fit | validate | test | predict --config RECIPE`` are plain LightningCLI verbs.
``mlstrategy run RECIPE`` fits, tests the best checkpoint, scores every split in eval mode and
writes the run folder (``metrics.json``, ``config.yaml``, checkpoints, TensorBoard events).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

LOGS_DIR = "logs"

TOP_HELP = """\
usage: mlstrategy VERB [options]

Practical ML strategy in PyTorch Lightning: train the course's models from a YAML recipe,
score every split, and read the result in TensorBoard.

verbs:
  run RECIPE          fit, test the best checkpoint, score train/dev/test, write the run
                      folder under logs/ and print a summary (mlstrategy run --help)
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
  tensorboard --logdir logs

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

The model's input_shape and num_classes come from the data. Every key is typed and checked
before training; `mlstrategy fit --print_config --config RECIPE` shows them all, with
defaults. Overrides after the recipe use LightningCLI's dotted form, with '=':
--trainer.max_epochs=5 --model.init_args.learning_rate=0.01 --trainer.accelerator=cuda.

RECIPE may also be a folder (a study): every *.yaml in it is run in name order, each
composed on top of the folder's _base.yaml when there is one, then one table compares them.

The run folder, logs/<recipe name>/<timestamp>/, holds TensorBoard events (cost/train and
cost/dev per epoch on one chart under Custom Scalars, per-split scores, hyperparameters),
config.yaml (the full resolved recipe), checkpoints/best.ckpt and last.ckpt, and
metrics.json (per split: error, accuracy, precision, recall, F1, loss, n; parameter counts).
"""

_DEBUG_ENV = "MLSTRATEGY_DEBUG"
_LIGHTNING_VERBS = ("fit", "validate", "test", "predict")


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
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
    from lightning.pytorch.loggers import TensorBoardLogger

    class MLStrategyCLI(LightningCLI):
        """LightningCLI with the toolkit's defaults: any of its models and data modules, sizes
        linked from the data, TensorBoard under ``logs/<recipe>/<timestamp>``, best and last
        checkpoints by dev cost, a rich progress bar, seed 0 and deterministic algorithms."""

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
            parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
            parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
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
            config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
            paths = config.get("config") or []
            return Path(str(paths[-1])).stem if paths else "run"

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            config = self._get(self.config_init, "trainer", default={})
            run_dir = None
            if self.subcommand in ("validate", "test", "predict"):
                # Scoring a finished run: log into that run's folder, keep its config.yaml.
                self.save_config_callback = None
                ckpt = self.config[self.subcommand].get("ckpt_path")
                if ckpt and Path(ckpt).parent.name == "checkpoints":
                    run_dir = Path(os.path.relpath(Path(ckpt).resolve().parent.parent))
            if config.get("logger") in (None, True):
                if run_dir is not None:
                    save_dir, name, version = run_dir.parent.parent, run_dir.parent.name, run_dir.name
                else:
                    save_dir, name = Path(LOGS_DIR), self._recipe_name()
                    version = _new_run_version(save_dir, name)
                kwargs["logger"] = TensorBoardLogger(
                    save_dir=str(save_dir), name=name, version=version, default_hp_metric=False
                )
            callbacks = list(config.get("callbacks") or [])
            if config.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in callbacks
            ):
                kwargs["callbacks"] = [*callbacks, RichProgressBar()]
            return super().instantiate_trainer(**kwargs)

    return MLStrategyCLI


def _run_one(configs: list[Path], overrides: list[str], console: Console) -> dict[str, Any]:
    from mlstrategy.evaluation.report import (
        count_parameters,
        evaluate_splits,
        summary_table,
        write_json_atomic,
    )

    cli = _make_cli_class()(args=[*(f"--config={c}" for c in configs), *overrides], run=False)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    run_dir = Path(trainer.log_dir)
    console.print(f"[bold]run[/] {configs[-1]} -> {run_dir}")
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule)
        if trainer.interrupted:
            raise KeyboardInterrupt
        fit_seconds = time.perf_counter() - start
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        splits = evaluate_splits(trainer, model, datamodule, ckpt_path=best or None)
    except BaseException as err:
        # Leave what was written (checkpoints, events) but never a folder that looks finished.
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "FAILED").write_text(f"{type(err).__name__}: {err}\n")
        console.print(f"[red]run failed[/]; {run_dir} is incomplete (no metrics.json), see FAILED")
        raise
    metrics: dict[str, Any] = {
        "recipe": str(configs[-1]),
        "run_dir": str(run_dir),
        "best_checkpoint": best or None,
        "epochs": trainer.current_epoch,
        "fit_seconds": round(fit_seconds, 3),
        **count_parameters(model),
        "splits": splits,
    }
    if trainer.logger is not None:
        hparams = {
            "model": {k: v for k, v in model.hparams.items() if not k.startswith("_")},
            "data": dict(datamodule.hparams),
        }
        scores = {f"hparams/{s}_{k}": row[k] for s, row in splits.items() for k in ("error", "f1")}
        trainer.logger.log_hyperparams(hparams, metrics=scores)
        trainer.logger.finalize("success")
    write_json_atomic(run_dir / "metrics.json", metrics)
    console.print(summary_table(metrics, title=f"{configs[-1]}  ({fit_seconds:.1f} s fit)"))
    console.print(f"run folder: {run_dir}  ·  tensorboard --logdir {run_dir.parent.parent}")
    return metrics


def _recipes_of(path: Path) -> list[list[Path]]:
    if path.is_file():
        return [[path]]
    base = path / "_base.yaml"
    recipes = sorted(p for p in path.glob("*.yaml") if not p.name.startswith("_"))
    if not recipes:
        raise ValueError(f"Folder {str(path)!r} holds no *.yaml recipes (files starting with _ are bases).")
    return [[base, p] if base.is_file() else [p] for p in recipes]


def _run(argv: list[str], console: Console) -> int:
    parser = argparse.ArgumentParser(
        prog="mlstrategy run",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="mlstrategy run RECIPE [--section.key=value ...]",
    )
    parser.add_argument("recipe", help="a recipe .yaml file, or a folder of recipes (a study)")
    args, overrides = parser.parse_known_args(argv)
    path = Path(args.recipe)
    if not path.exists():
        raise ValueError(
            f"Recipe {args.recipe!r} does not exist. Give the path of a .yaml recipe or a folder "
            "of recipes, e.g. `mlstrategy run recipes/quickstart.yaml` (see `ls recipes`)."
        )
    runs = _recipes_of(path)
    results = [_run_one(configs, overrides, console) for configs in runs]
    if len(results) > 1:
        from rich.table import Table

        table = Table(title=f"study {path}", title_justify="left")
        for col in ("recipe", "test error", "test f1", "dev error", "params", "fit s"):
            table.add_column(col, justify="left" if col == "recipe" else "right")
        for m in results:
            test, dev = m["splits"]["test"], m["splits"]["dev"]
            table.add_row(
                Path(m["recipe"]).stem,
                f"{test['error']:.4f}",
                f"{test['f1']:.4f}",
                f"{dev['error']:.4f}",
                str(m["params"]),
                f"{m['fit_seconds']:.1f}",
            )
        console.print(table)
    return 0


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
        if verb == "run":
            return _run(args[1:], console)
        if verb in _LIGHTNING_VERBS:
            _make_cli_class()(args=args)
            return 0
        err_console.print(
            f"error: unknown verb {verb!r}. Use one of: run, {', '.join(_LIGHTNING_VERBS)} "
            "(mlstrategy --help)."
        )
        return 2
    except SystemExit as exit_:
        # jsonargparse reports config errors (unknown key, wrong type) itself, then exits 2.
        return exit_.code if isinstance(exit_.code, int) else 2
    except (ValueError, FileNotFoundError, TypeError) as err:
        if os.environ.get(_DEBUG_ENV):
            raise
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
