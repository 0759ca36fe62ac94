"""Suspect labels of a run: refit its recipe on k folds of train + dev, rank every example by
how unlikely the fit that never saw it finds its given label, and write what was found.

The recipe is the run's own ``config.yaml`` (vetted first), rebuilt once per fold with the same
hyperparameters; each fold trains on the other folds and uses the held-out one as its dev split
(for what the recipe's callbacks watch, e.g. early stopping), quietly (no progress bar, no
checkpoints, nothing written outside a temporary folder). The ranking itself is
:mod:`mlstrategy.evaluation.suspect_labels`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from mlstrategy.evaluation.suspect_labels import (
    check_folds,
    out_of_sample_proba,
    rank_suspects,
    suspect_rows,
)
from mlstrategy.reporting.suspects import (
    suspect_section_lines,
    suspects_figure,
    write_suspects_csv,
    write_suspects_section,
)
from mlstrategy.run_folder import (
    CONFIG_FILE,
    REPORT_FILE,
    SUSPECTS_FIGURE,
    SUSPECTS_FILE,
    find_run,
)

FIGURE_EXAMPLES = 24
_QUIET = (
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--checkpoint.save_top_k=0",  # the fold's final weights predict; nothing is kept
    "--checkpoint.save_last=false",
)


@dataclass
class SuspectLabels:
    """What the cross-validated fits found.

    Attributes:
        rows: Every train and dev example, most suspect first (``rank``, ``split``,
            ``index`` in its split, ``source_row`` when the split can be retraced, ``given``,
            ``p_given``, ``suggested``, ``p_suggested``, ``margin``, ``confident_issue``).
        estimated_issues: Confident learning's count of likely wrong labels.
        folds: Number of folds.
        fold_errors: Each fold's held-out error (against the given labels).
        x: The raw examples in the order of ``rows`` (for the contact sheet).
        source: The data source, as the recipe names it.
        csv: ``suspect_labels.csv``, once written.
        figure: The contact sheet, once written (None for flat features).
    """

    rows: list[dict[str, Any]]
    estimated_issues: int
    folds: int
    fold_errors: list[float]
    x: np.ndarray
    source: str
    csv: Path | None = None
    figure: Path | None = None


def run_config(path: str | Path) -> Path:
    """The ``config.yaml`` of the run ``path`` names (a run folder, or a recipe's folder for
    its latest finished run).

    Raises:
        ValueError: no such run, or a run folder without ``config.yaml``.
    """
    given = Path(path)
    run_dir = given if (given / CONFIG_FILE).is_file() else find_run(given)
    config = run_dir / CONFIG_FILE
    if not config.is_file():
        raise ValueError(
            f"{run_dir} has no {CONFIG_FILE}, the recipe `suspects` refits. Give a run folder "
            "that `mlstrategy run` wrote (it saves the resolved recipe there), or run the "
            "recipe again."
        )
    return config


def find_suspects(
    configs: Sequence[Path], folds: int = 5, console: Console | None = None, seed: int = 0
) -> SuspectLabels:
    """Refit the recipe on ``folds`` folds of train + dev and rank every example's label.

    Args:
        configs: The recipe's files (a run's ``config.yaml``, or a recipe, base first).
        folds: Number of cross-validation folds (>= 2).
        console: Where the line per fold goes.
        seed: Seed of the fold assignment and of each fit.

    Raises:
        ValueError: fewer than 2 folds, a data module without in-memory splits, or a
            multi-task model.
    """
    from mlstrategy.safety import check_recipe

    check_folds(folds)
    console = console or Console()
    check_recipe(list(configs), [])
    with tempfile.TemporaryDirectory() as scratch, _quiet_lightning():
        fits = _Folds(configs, Path(scratch), seed)
        x, y, ids = fits.pool()
        errors: list[float] = []

        def progress(k: int, held: np.ndarray, proba: np.ndarray) -> None:
            errors.append(float(np.mean(proba.argmax(axis=1) != y[held])))
            console.print(
                f"fold {k}/{folds}: fitted on {len(y) - len(held):,} examples, scored "
                f"{len(held):,} it never saw (error {100 * errors[-1]:.2f}% against their "
                f"given labels, {fits.last_seconds:.1f} s)",
                highlight=False,
            )

        proba = out_of_sample_proba(
            fits.fit_predict, y, len(fits.class_names), folds, seed, on_fold=progress
        )
    ranking = rank_suspects(proba, y)
    rows = suspect_rows(ranking, y, fits.class_names, ids)
    return SuspectLabels(
        rows, ranking.estimated_issues, folds, errors, x[ranking.order], fits.source
    )


def write_suspects(
    path: str | Path, folds: int = 5, console: Console | None = None
) -> SuspectLabels:
    """:func:`find_suspects` on a run; writes ``suspect_labels.csv``, the contact sheet (for
    pictures) and the report section into the run folder."""
    from mlstrategy.reporting.plots import save_figure

    check_folds(folds)
    config = run_config(path)
    run_dir = config.parent
    found = find_suspects([config], folds, console)
    found.csv = write_suspects_csv(run_dir / SUSPECTS_FILE, found.rows)
    top = found.rows[:FIGURE_EXAMPLES]
    title = f"{run_dir}: the {len(top)} most suspect labels (least likely given label first)"
    fig = suspects_figure(_as_picture(found.x[: len(top)], found.source), top, title)
    if fig is not None:
        found.figure = save_figure(fig, run_dir / SUSPECTS_FIGURE)
    name = found.figure.name if found.figure is not None else None
    lines = suspect_section_lines(found.rows, folds, found.estimated_issues, name)
    write_suspects_section(run_dir / REPORT_FILE, lines)
    return found


class _Folds:
    """The recipe built once per fold, trained on the other folds of train + dev."""

    def __init__(self, configs: Sequence[Path], scratch: Path, seed: int) -> None:
        from mlstrategy.runs.lightning_cli import build_run

        self.seed = seed
        overrides = [*_QUIET, f"--trainer.default_root_dir={scratch}"]
        self.cli = build_run(configs, overrides, logs_dir=scratch)
        self.last_seconds = 0.0
        datamodule = self.cli.datamodule
        splits = datamodule.prepare() if callable(getattr(datamodule, "prepare", None)) else None
        if not isinstance(splits, dict) or not {"train", "dev"} <= set(splits):
            raise ValueError(
                f"suspects refits the recipe on folds of its train and dev splits, so it needs "
                f"a data module that keeps them in memory (mlstrategy.data.ArrayDataModule); "
                f"{type(datamodule).__name__} does not."
            )
        if splits["train"][1].dim() != 1 or not hasattr(self.cli.model, "predict_labels"):
            raise ValueError(
                "suspects ranks the labels of a single-task classifier; this run's model has "
                "several label columns (multi-task) or no classes."
            )
        self.class_names = list(datamodule.class_names)
        self.source = type(getattr(datamodule, "source", None)).__name__
        self._splits = {k: splits[k] for k in ("train", "dev")}
        self._rows = _source_rows(datamodule)

    def pool(self) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train then dev: raw examples, given labels, and what identifies each."""
        import torch

        self.x = torch.cat([self._splits["train"][0], self._splits["dev"][0]])
        self.y = torch.cat([self._splits["train"][1], self._splits["dev"][1]])
        ids: list[dict[str, Any]] = []
        for split in ("train", "dev"):
            rows = (self._rows or {}).get(split)
            for i in range(len(self._splits[split][1])):
                ids.append({"split": split, "index": i})
                if rows is not None:
                    ids[-1]["source_row"] = int(rows[i])
        return self.x.numpy(), self.y.numpy(), ids

    def fit_predict(self, train: np.ndarray, held: np.ndarray) -> np.ndarray:
        import lightning as L
        import torch

        start = time.perf_counter()
        # Every fold from the same seed: a fresh model (same initial weights), data module and
        # trainer.
        L.seed_everything(self.seed, verbose=False)
        self.cli.instantiate_classes()
        splits = self.cli.datamodule.prepare()
        train_t, held_t = torch.from_numpy(train), torch.from_numpy(held)
        splits["train"] = (self.x[train_t], self.y[train_t])
        splits["dev"] = (self.x[held_t], self.y[held_t])
        model = self.cli.model
        self.cli.trainer.fit(model, datamodule=self.cli.datamodule)
        proba = _predict_proba(model, self.x[held_t])
        self.last_seconds = time.perf_counter() - start
        return proba


def _predict_proba(model: Any, x: Any, batch_size: int = 4096) -> np.ndarray:
    import torch

    model.eval()
    device = next(model.parameters()).device
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = model.predict_proba(model(x[start : start + batch_size].to(device)))
            parts.append(out.float().cpu())
    return torch.cat(parts).numpy()


def _source_rows(datamodule: Any) -> dict[str, np.ndarray] | None:
    """Each split's rows in the data source, when the split can be retraced (checked against
    the splits themselves), else None."""
    from mlstrategy.data.splits import stratified_split

    try:
        arrays = datamodule.source.load(datamodule.seed)
        own_test = datamodule.use_source_test_split and arrays.x_test is not None
        index = stratified_split(
            arrays.y,
            dev_fraction=datamodule.dev_fraction,
            test_fraction=None if own_test else datamodule.test_fraction,
            train_dev_fraction=datamodule.train_dev_fraction,
            seed=datamodule.seed,
        )
    except (AttributeError, TypeError, ValueError):
        return None
    splits = datamodule.prepare()
    for split in ("train", "dev"):
        rows = index.get(split)
        if rows is None or not np.array_equal(arrays.x[rows], splits[split][0].numpy()):
            return None
    return {s: index[s] for s in ("train", "dev")}


def _as_picture(x: np.ndarray, source: str) -> np.ndarray:
    """Flat 8x8 digits drawn as images, MNIST-1D as signals; other flat features stay flat."""
    side = round(x.shape[1] ** 0.5) if x.ndim == 2 else 0
    if x.ndim == 2 and source == "Digits" and side * side == x.shape[1]:
        return x.reshape(len(x), 1, side, side)
    if x.ndim == 2 and source == "MNIST1D":
        return x[:, None, :]
    return x


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-fit lines (accelerator, seed, "max_epochs reached") off for a while."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
