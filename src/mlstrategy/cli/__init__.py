"""The ``mlstrategy`` command: thin verbs that parse, call the run layer and print.

Each verb lives in its own module with its help text beside it. Nothing imports this package;
it imports the run layer lazily, so ``mlstrategy --help``, ``diagnose`` and ``compare`` start
without importing torch or Lightning.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from rich.console import Console

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
  grad-check RECIPE   check backprop against a two-sided numerical gradient, per layer
                      (float64, dropout off, L2 on; mlstrategy grad-check -h)
  predict RUN_DIR [INPUT]
                      a finished run's predictions on a CSV, an npz, an image folder or its
                      test split: class names and probabilities (mlstrategy predict RUN_DIR -h)
  errors RUN_DIR      errors.csv (misclassified dev examples to tag) and errors.png; with
                      --tags errors.csv, the ceiling per tag (mlstrategy errors -h)
  suspects RUN_DIR    refit the recipe on K folds of train + dev and rank every label by how
                      unlikely the fit that never saw it finds it: suspect_labels.csv
                      (mlstrategy suspects -h)
  tune RECIPE         hyperparameter search on Optuna over the recipe's search: ranges
                      (random, log scales, median pruning; mlstrategy tune -h)
  tune STUDY_DIR      continue a study; --refine: coarse to fine around its best trials
  fit                 LightningCLI: train           (mlstrategy fit --config RECIPE)
  validate            LightningCLI: score the dev split
  test                LightningCLI: score the test split (--ckpt_path CHECKPOINT)
  predict --config RECIPE --ckpt_path CHECKPOINT
                      LightningCLI: class probabilities for the test split

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
  mlstrategy tune recipes/tune/mlp.yaml --trials 20
  mlstrategy suspects logs/softmax_digits --folds 5
  tensorboard --logdir logs

Safety: recipes may name classes from mlstrategy, torch, torchvision, torchmetrics and
lightning; anything else is refused before it is imported unless you pass
--allow-module NAME. Checkpoints load with weights_only=True, never unsafely.
A killed run continues exactly where it stopped: mlstrategy run RECIPE --resume [RUN_DIR].

Set MLSTRATEGY_DEBUG=1 to see a traceback instead of a one-paragraph error.
"""

_DEBUG_ENV = "MLSTRATEGY_DEBUG"
_LIGHTNING_VERBS = ("fit", "validate", "test", "predict")
_DISK_FIXES = {
    errno.ENOSPC: "The disk is full: free some space, or run from a folder on another disk "
    "(run folders go under ./logs)",
    errno.EDQUOT: "The disk quota is used up: free some space, or run from another folder",
    errno.EFBIG: "The file grew past the size this process may write (ulimit -f): raise the limit",
    errno.EACCES: "No permission: make it readable and writable (chmod u+rw), or run from a "
    "folder you can write to",
    errno.EPERM: "No permission: make it readable and writable, or run from a folder you can "
    "write to",
    errno.EROFS: "The disk is read-only: run from a folder on a writable disk",
    errno.ENOTDIR: "A file stands where a folder should be: move or remove it",
    errno.EEXIST: "A file stands where a folder should be: move or remove it",
}
# Verbs that read recipes or checkpoints, and so are vetted against the allowlist first.
_VETTED = (
    "run",
    "learning-curve",
    "lr-find",
    "grad-check",
    "errors",
    "tune",
    "suspects",
    *_LIGHTNING_VERBS,
)


# Each toolkit verb's module under mlstrategy.cli; the LightningCLI verbs share cli.lightning.
_VERB_MODULES = {
    "run": "run",
    "diagnose": "diagnose",
    "compare": "compare",
    "learning-curve": "learning_curve",
    "lr-find": "lr_find",
    "grad-check": "grad_check",
    "errors": "errors",
    "tune": "tune",
    "suspects": "suspects",
}
_TOOLKIT_VERBS = tuple(_VERB_MODULES)


def _verb(name: str) -> Callable[[list[str], Console], int]:
    """The verb's ``main``, imported only when it is called."""
    return _verb_module(_VERB_MODULES.get(name, "lightning"))


def _verb_module(module_name: str) -> Callable[[list[str], Console], int]:
    module = importlib.import_module(f"mlstrategy.cli.{module_name}")
    return module.main  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlstrategy`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=False)
    if not args or args[0] in ("-h", "--help"):
        print(TOP_HELP)
        return 0
    if args[0] == "--version":
        from mlstrategy import __version__

        print(f"mlstrategy {__version__}")
        return 0
    verb = args[0]
    if verb not in (*_TOOLKIT_VERBS, *_LIGHTNING_VERBS):
        Console(stderr=True).print(
            f"error: unknown verb {verb!r}. Use one of: "
            f"{', '.join((*_TOOLKIT_VERBS, *_LIGHTNING_VERBS))} (mlstrategy --help).",
            markup=False,
        )
        return 2
    # SIGTERM (a scheduler, `kill`) stops a run like Ctrl-C: marked FAILED, resumable. SIGINT
    # stays Python's: a job that a non-interactive shell put in the background inherits it
    # ignored and keeps ignoring it, as every program does.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        return _dispatch(verb, args[1:], console)
    except KeyboardInterrupt:
        Console(stderr=True).print("[bold red]interrupted[/]")
        return 130
    except SystemExit as exit_:
        # jsonargparse reports config errors (unknown key, wrong type) itself, then exits 2;
        # Lightning exits 1 after Ctrl-C (the run layer has said what to do).
        return exit_.code if isinstance(exit_.code, int) else 2
    except Exception as err:
        return _report(err)
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dispatch(verb: str, tail: list[str], console: Console) -> int:
    if verb in _VETTED:
        from mlstrategy.runs.recipes import split_allow_module, vet_command

        # Vetting reads YAML only (and a --ckpt_path with torch), so a refused command answers
        # before Lightning is imported.
        allow, tail = split_allow_module(tail)
        vet_command(verb, tail, allow)

        from mlstrategy.runs.lightning_cli import quiet_known_warnings

        # Lightning 2.6 still calls jsonargparse APIs deprecated in 4.49; users cannot act on it.
        os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
        quiet_known_warnings()
    if verb == "predict" and tail and not tail[0].startswith("-"):
        # `predict RUN_DIR [INPUT]` is the toolkit's verb; `predict --config ...` Lightning's.
        return _verb_module("predict")(tail, console)
    if verb in _LIGHTNING_VERBS:
        return _verb(verb)([verb, *tail], console)
    from mlstrategy.cli.options import verb_flags
    from mlstrategy.runs.errors import ConfigError

    try:
        return _verb(verb)(tail, console)
    except ConfigError as err:
        # The verb passed the options it does not know on to LightningCLI: a misspelt option
        # of the verb's own (--trails) is matched against the verb's options too.
        flags = verb_flags()
        if not flags:
            raise
        raise ValueError(err.for_verb(verb, flags)) from None


def _report(err: Exception) -> int:
    """One clear line for the errors a user can fix; a traceback for anything else."""
    from mlstrategy.runs.errors import user_message

    err_console = Console(stderr=True)
    if os.environ.get(_DEBUG_ENV, "0") not in ("", "0"):
        raise err
    if _is_user_error(err):
        _say(err_console, "error:", user_message(err))
        return 2
    if isinstance(err, RuntimeError):
        from mlstrategy.callbacks.guards import NonFiniteError

        if not isinstance(err, NonFiniteError):
            raise err
        _say(err_console, "training stopped:", str(err))
        return 1
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
        fix = _DISK_FIXES.get(err.errno or 0)
        if fix is None:
            raise err
        where = f" {err.filename}" if err.filename else ""
        _say(err_console, "error:", f"cannot use{where}: {err.strerror}. {fix}.")
        return 1
    raise err


def _say(console: Console, label: str, text: str) -> None:
    """``label`` in bold red, then ``text`` as written (a path or message may hold "[...]")."""
    console.print(f"[bold red]{label}[/] ", end="")
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _is_user_error(err: Exception) -> bool:
    """A bad recipe, argument or file: the user can fix it from the message (exit 2)."""
    if isinstance(err, (ValueError, FileNotFoundError, TypeError, argparse.ArgumentError)):
        return True
    # Lightning's word for a bad Trainer argument (max_epochs=-3, accelerator=cuda without one).
    return type(err).__name__ == "MisconfigurationException"
