"""The run folder: its file names, new versions, the FAILED marker, and its readers.

This module is the only place that spells the names of the files every run folder holds
(metrics, diagnosis, report, config, FAILED, checkpoints); a figure or a study's results are
named by the module that writes them. A run folder
lives at ``logs/<recipe>/<timestamp>/`` (``logs/<study>/<recipe>/<timestamp>/`` for the recipes
of a study) and holds TensorBoard events, ``config.yaml``, ``checkpoints/best.ckpt`` and
``last.ckpt``, ``diagnosis.json``, ``report.md`` with its figures, and ``metrics.json``,
written last: its presence means the run finished. A run that failed holds ``FAILED`` with
the reason instead.

It imports only the standard library and PyYAML, so the read-only verbs (``diagnose``,
``compare``) and every layer that reads an earlier run (a pretrained backbone) can use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

LOGS_DIR = "logs"
METRICS_FILE = "metrics.json"
DIAGNOSIS_FILE = "diagnosis.json"
REPORT_FILE = "report.md"
CONFIG_FILE = "config.yaml"
FAILED_FILE = "FAILED"
CHECKPOINTS_DIR = "checkpoints"
BEST_CHECKPOINT = "best"  # ModelCheckpoint's filename, without the .ckpt suffix
LAST_CHECKPOINT = "last"
# A tune's study folder (logs/tune/<study>/): its Optuna storage (SQLite, by default), what the
# study is (recipe, overrides, search space, storage, parent), the chosen recipe, the HParams rows.
TUNE_STORAGE_FILE = "study.db"
TUNE_STUDY_FILE = "study.json"
TUNE_BEST_RECIPE = "best.yaml"  # written as <study>_best.yaml (runs.tune_trials.best_recipe_path)
TUNE_HPARAMS_DIR = "hparams"
TUNE_TEST_FILE = "test.json"  # the chosen trial's test scores, scored once
TUNE_DIR = "tune"  # logs/tune/<study>/
# Written by `mlstrategy predict RUN_DIR` and `mlstrategy errors RUN_DIR` into the run folder.
PREDICTIONS_FILE = "predictions.csv"
# Written by LightningCLI's `mlstrategy predict --config ... --ckpt_path ...` (its data module's
# predict split), in the layout of predictions.csv.
LIGHTNING_PREDICTIONS_FILE = "lightning_predictions.csv"
ERRORS_FILE = "errors.csv"
ERRORS_FIGURE = "errors.png"
# Written by `mlstrategy suspects RUN_DIR`: every train and dev example ranked by how unlikely
# its given label is, and the contact sheet of the most suspect ones (image data).
SUSPECTS_FILE = "suspect_labels.csv"
SUSPECTS_FIGURE = "suspect_labels.png"
# Written by `mlstrategy run --resume` with changed hyperparameters: each resume's changes (key,
# old, new) and the epoch and step they apply from, oldest first (config.yaml holds the newest).
CONFIG_HISTORY_FILE = "config_history.yaml"
# TensorBoard sub-runs inside a run folder (events of their own): the train and dev cost on one
# chart, one line each, as Keras writes train/ and validation/.
TENSORBOARD_TRAIN_RUN = "train"
TENSORBOARD_DEV_RUN = "dev"


def checkpoint_path(run_dir: Path, which: str = BEST_CHECKPOINT) -> Path:
    """``run_dir/checkpoints/{which}.ckpt`` (``which`` is ``best`` or ``last``)."""
    return run_dir / CHECKPOINTS_DIR / f"{which}.ckpt"


def _now() -> datetime:
    return datetime.now()


def new_run_version(save_dir: Path, name: str) -> str:
    """A timestamped folder name under ``save_dir/name``, reserved with an exclusive mkdir so
    parallel runs never share one."""
    stamp = _now().strftime("%Y%m%d-%H%M%S")
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


def shown(path: Path) -> Path:
    """``path`` relative to the working directory when it lies inside it (shorter to read)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def mark_failed(run_dir: Path, reason: BaseException | str) -> None:
    """Leave ``FAILED`` with the reason, so the folder never looks finished.

    Best effort: on a full disk even this small file may not fit, and the caller is already
    reporting a failure.
    """
    text = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / FAILED_FILE).write_text(text.rstrip("\n") + "\n")
    except OSError:
        pass


def abandon(run_dir: Path, reason: BaseException | str) -> bool:
    """After a failure: remove ``run_dir`` if nothing was written into it yet, else mark it
    ``FAILED``. Returns True when the folder is kept (and marked)."""
    if run_dir.is_dir() and not any(p.is_file() for p in run_dir.rglob("*")):
        for folder in sorted(run_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            folder.rmdir()
        run_dir.rmdir()
        return False
    mark_failed(run_dir, reason)
    return True


def clear_failed(run_dir: Path) -> None:
    """Remove the ``FAILED`` marker (a resumed run tries again)."""
    (run_dir / FAILED_FILE).unlink(missing_ok=True)


def is_finished(run_dir: Path) -> bool:
    """True when ``run_dir`` holds ``metrics.json``, the file a run writes last."""
    return (run_dir / METRICS_FILE).is_file()


def run_order(run_dir: Path) -> tuple[str | int, ...]:
    """The sort key that puts the run folders of one recipe in the order they were created.

    A run folder is named by :func:`new_run_version` when it is created, never after, so its
    name is its age (on the machine's local clock: a clock set back, as at the end of summer
    time, can name a newer run lower for that hour): ``20250101-120000``, then
    ``20250101-120000-1``, ``-2``, ... ``-10`` for more in the same second. Numbers in the
    name compare as numbers (``-10`` after ``-2``). Modification times are no guide:
    `mlstrategy errors`, `predict` and `suspects` write into a finished run long after newer
    runs started.

    Example:
        >>> names = ["20250101-120000-10", "20250101-120000-2", "20250101-120000", "20241231-0"]
        >>> sorted(names, key=lambda n: run_order(Path(n)))
        ['20241231-0', '20250101-120000', '20250101-120000-2', '20250101-120000-10']
    """
    # Text and runs of digits alternate (text first, maybe empty), so the key's items compare
    # text with text and number with number.
    parts = re.split(r"(\d+)", run_dir.name)
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def recipe_runs(logs_dir: Path, recipe: str) -> list[Path]:
    """The run folders of ``recipe`` under ``logs_dir`` (finished or not), oldest first."""
    folder = logs_dir / recipe
    runs = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return sorted(runs, key=run_order)


def latest_run(logs_dir: Path, recipe: str) -> Path | None:
    """The newest run folder of ``recipe`` under ``logs_dir`` (finished or not), or None.

    Newest by creation (:func:`run_order`), the order :func:`find_run` uses too.
    """
    runs = recipe_runs(logs_dir, recipe)
    return runs[-1] if runs else None


def run_checkpoint(path: str | Path) -> Path:
    """The checkpoint file ``path`` names: a ``.ckpt`` file, a run folder (its best
    checkpoint, else its last), or a folder of runs of one recipe (the latest finished run's).

    Raises:
        FileNotFoundError: nothing there, with how to make it.
    """
    given = Path(path)
    if given.is_file():
        return given
    how = (
        "Run the source task first: in a study, its pretraining recipe runs before the others "
        "(`mlstrategy run recipes/transfer/` pretrains, then transfers), and `checkpoint` names "
        "its folder of runs, e.g. logs/transfer/0_pretrain."
    )
    if not given.exists():
        raise FileNotFoundError(f"checkpoint={str(given)!r} does not exist. {how}")
    if (given / CHECKPOINTS_DIR).is_dir() and not is_finished(given):
        run_dir = given  # a fit-only run folder (mlstrategy fit)
    else:
        try:
            run_dir = find_run(given)
        except ValueError as err:
            raise FileNotFoundError(
                f"checkpoint={str(given)!r} holds no finished run ({err}) {how}"
            ) from None
    for which in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        if checkpoint_path(run_dir, which).is_file():
            return checkpoint_path(run_dir, which)
    raise FileNotFoundError(
        f"The run {run_dir} has no {CHECKPOINTS_DIR}/{BEST_CHECKPOINT}.ckpt or "
        f"{LAST_CHECKPOINT}.ckpt. {how}"
    )


def _why_unfinished(folder: Path) -> str:
    failed = folder / FAILED_FILE
    if failed.is_file():
        reason = failed.read_text().strip().splitlines()[0] if failed.read_text().strip() else ""
        return f"the run failed ({reason}); fix the recipe and run it again with `mlstrategy run`"
    if (folder / CHECKPOINTS_DIR).is_dir():
        return (
            "it looks like a `mlstrategy fit` run, which trains but does not score the splits; "
            "use `mlstrategy run RECIPE` to get metrics, a diagnosis and a report"
        )
    return "it is not a run folder (or the run is still going); run folders are under logs/"


def _newest_last(run_dir: Path) -> tuple[Any, ...]:
    """Runs anywhere under one folder (several recipes of a study): by creation, then path."""
    return (run_order(run_dir), str(run_dir))


def _by_folder(run_dir: Path) -> tuple[Any, ...]:
    """Runs grouped by their recipe folder, oldest first within each."""
    return (run_dir.parent.parts, run_order(run_dir))


def find_run(path: str | Path) -> Path:
    """The finished run folder ``path`` names: itself, or the latest finished run under it.

    Args:
        path: A run folder (``logs/quickstart/20250101-120000``), or a folder holding runs
            (``logs/quickstart``), in which case the latest finished one is used.

    Raises:
        ValueError: the folder does not exist or holds no finished run (the message says why
            and what to do).
    """
    folder = Path(path)
    if not folder.exists():
        raise ValueError(
            f"Run folder {str(folder)!r} does not exist. Give a folder that `mlstrategy run` "
            "wrote, e.g. logs/quickstart/<timestamp> or logs/quickstart for its latest run "
            "(list them with `ls logs/*/`)."
        )
    if not folder.is_dir():
        raise ValueError(
            f"{str(folder)!r} is a file; give the run folder that holds it "
            f"({str(folder.parent)!r})."
        )
    if is_finished(folder):
        return folder
    runs = sorted((p.parent for p in folder.rglob(METRICS_FILE)), key=_newest_last)
    if runs:
        return runs[-1]
    raise ValueError(f"{str(folder)!r} has no {METRICS_FILE}: {_why_unfinished(folder)}.")


def find_runs(paths: Iterable[str | Path], all_runs: bool = False) -> list[Path]:
    """Every finished run folder named by ``paths``, for a comparison.

    Each path is a run folder, or a folder searched recursively for runs (a recipe's folder,
    a study's folder, ``logs``). Of the runs of one recipe (same parent folder) only the
    latest is kept unless ``all_runs``.

    Args:
        paths: Run folders or folders holding runs.
        all_runs: Keep every run, not just the latest of each recipe.

    Raises:
        ValueError: a path that does not exist, or no finished run at all.
    """
    found: list[Path] = []
    for path in paths:
        folder = Path(path)
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is a file, not a folder"
            raise ValueError(
                f"{str(folder)!r} {what}. Give run folders or folders of runs, e.g. "
                "`mlstrategy compare logs/strategy` after `mlstrategy run recipes/strategy/`."
            )
        if is_finished(folder):
            found.append(folder)
            continue
        runs = sorted((p.parent for p in folder.rglob(METRICS_FILE)), key=_by_folder)
        if not runs:
            raise ValueError(
                f"{str(folder)!r} holds no finished run (no {METRICS_FILE} under it): "
                f"{_why_unfinished(folder)}."
            )
        if not all_runs:
            latest: dict[Path, Path] = {}
            for run in runs:  # sorted, so the last of each recipe folder is the latest
                latest[run.parent] = run
            runs = sorted(latest.values())
        found.extend(runs)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [shown(p) for p in unique]


def run_names(runs: list[Path]) -> dict[Path, str]:
    """Short, unique display names: the recipe name, with more of the path when needed.

    Example:
        >>> run_names([Path("logs/a/1"), Path("logs/b/1")])
        {PosixPath('logs/a/1'): 'a', PosixPath('logs/b/1'): 'b'}
        >>> list(run_names([Path("logs/a/1"), Path("logs/a/2")]).values())
        ['a/1', 'a/2']
    """
    for depth in (1, 2, 3):
        names = {
            run: "/".join(run.parts[-depth - 1 : -1] if depth == 1 else run.parts[-depth:])
            for run in runs
        }
        if len(set(names.values())) == len(runs):
            return names
    return {run: str(run) for run in runs}


def load_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json``.

    Raises:
        ValueError: it is missing or not valid JSON.
    """
    path = run_dir / METRICS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{str(run_dir)!r} has no {METRICS_FILE}: {_why_unfinished(run_dir)}."
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); the run folder is damaged. Run the recipe again."
        ) from None
    if not isinstance(data, dict) or "splits" not in data:
        raise ValueError(f"{path} has no 'splits'; it was not written by `mlstrategy run`.")
    _check_splits(data["splits"], path)
    return data


def _check_splits(splits: Any, path: Path) -> None:
    """``splits`` as ``mlstrategy run`` writes it: ``{split: {"n": count, score: number}}``."""
    damaged = f"{path} is damaged or was not written by `mlstrategy run`"
    if not isinstance(splits, dict) or not splits:
        raise ValueError(f"{damaged}: 'splits' is not a mapping of split names to scores.")
    for split, row in splits.items():
        if not isinstance(row, dict) or not isinstance(row.get("n"), int):
            raise ValueError(f"{damaged}: split {split!r} has no example count 'n'.")
        for key in ("error", "accuracy", "precision", "recall", "f1", "loss"):
            value = row.get(key)
            if value is not None and not isinstance(value, (int, float)):
                raise ValueError(f"{damaged}: {split}/{key} is {value!r}, not a number.")


def load_settings(run_dir: Path) -> dict[str, Any]:
    """The recipe's ``evaluation`` settings as the run recorded them, or ``{}``.

    Read from ``diagnosis.json`` (``settings``), else from the ``evaluation`` section of the
    run's ``config.yaml``.
    """
    diagnosis = run_dir / DIAGNOSIS_FILE
    if diagnosis.is_file():
        try:
            settings = json.loads(diagnosis.read_text()).get("settings")
        except json.JSONDecodeError:
            settings = None
        if isinstance(settings, dict):
            return settings
    config = run_dir / CONFIG_FILE
    if config.is_file():
        try:
            section = (yaml.safe_load(config.read_text()) or {}).get("evaluation")
        except yaml.YAMLError:
            section = None
        if isinstance(section, dict):
            return section
    return {}
