"""Suspect labels of a run: refit its recipe on k folds of train + dev, rank every example by
how unlikely the fit that never saw it finds its given label, and write what was found.

The recipe is the run's own ``config.yaml`` (vetted first), rebuilt once per fold with the same
hyperparameters; each fold trains on the other folds, quietly (no progress bar, no checkpoints,
nothing written outside a temporary folder). What the recipe's callbacks watch (early stopping
and its restored best weights) is a stratified dev set carved from the fold's own training part
(:data:`INNER_DEV_FRACTION` of it), never the held-out fold: the probabilities of the held-out
examples come from weights chosen without them. The ranking itself is
:mod:`mlstrategy.evaluation.suspect_labels`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
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
from mlstrategy.runs.lightning_cli import quiet_lightning, writes_files
from mlstrategy.runs.trained_run import input_identities, keep_filled

FIGURE_EXAMPLES = 24
# The share of each fold's training part kept aside as its dev split, for the callbacks only:
# small, so the fit keeps most of the fold (a fit on less data would doubt more good labels).
INNER_DEV_FRACTION = 0.1
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
            ``index`` in its split, ``input``: where it came from, named as ``errors.csv``
            names it, see :func:`~mlstrategy.runs.trained_run.input_identities`; ``given``,
            ``p_given``, ``suggested``, ``p_suggested``, ``margin``, ``confident_issue``).
        estimated_issues: Confident learning's count of likely wrong labels.
        folds: Number of folds.
        fold_errors: Each fold's held-out error (against the given labels).
        x: The raw examples in the order of ``rows`` (for the contact sheet).
        source: The data source, as the recipe names it.
        csv: ``suspect_labels.csv``, once written (never on a DDP run's other processes,
            which refit with rank 0 and write nothing).
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
    with tempfile.TemporaryDirectory() as scratch, quiet_lightning():
        fits = _Folds(configs, Path(scratch), seed)
        x, y, ids = fits.pool()
        errors: list[float] = []

        def progress(k: int, held: np.ndarray, proba: np.ndarray) -> None:
            errors.append(float(np.mean(proba.argmax(axis=1) != y[held])))
            console.print(
                f"fold {k}/{folds}: fitted on {fits.last_fit:,} examples (dev: "
                f"{len(y) - len(held) - fits.last_fit:,} more), scored "
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
    pictures) and the report section into the run folder. The verdicts already filled in an
    earlier ``suspect_labels.csv`` are kept (matched by split, index and input).

    Raises:
        ValueError: as :func:`find_suspects`, or a ``suspect_labels.csv`` whose filled
            verdicts cannot all be carried over (nothing is written then).
    """
    from mlstrategy.reporting.plots import save_figure

    check_folds(folds)
    config = run_config(path)
    run_dir = config.parent
    writer = writes_files([config], [])
    if not writer and console is not None:
        console.quiet = True  # a DDP run refits with DDP: rank 0 alone prints and writes
    found = find_suspects([config], folds, console)
    if not writer:
        return found
    again = f"mlstrategy suspects {run_dir} --folds {folds}"
    keep_filled(run_dir / SUSPECTS_FILE, found.rows, "verdict", ["split", "index"], again)
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
        self.last_fit = 0
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
        self._inputs = {k: input_identities(datamodule, k) for k in ("train", "dev")}

    def pool(self) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train then dev: raw examples, given labels, and what identifies each."""
        import torch

        self.x = torch.cat([self._splits["train"][0], self._splits["dev"][0]])
        self.y = torch.cat([self._splits["train"][1], self._splits["dev"][1]])
        ids = [
            {"split": split, "index": i, "input": name}
            for split in ("train", "dev")
            for i, name in enumerate(self._inputs[split])
        ]
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
        fit, inner_dev = inner_dev_split(train, self.y.numpy()[train], self.seed)
        fit_t, dev_t = torch.from_numpy(fit), torch.from_numpy(inner_dev)
        self.last_fit = len(fit)
        splits["train"] = (self.x[fit_t], self.y[fit_t])
        splits["dev"] = (self.x[dev_t], self.y[dev_t])  # the held-out fold stays unseen
        held_t = torch.from_numpy(held)
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


def inner_dev_split(
    train: np.ndarray, labels: np.ndarray, seed: int, fraction: float = INNER_DEV_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """``train`` (a fold's training indices, their ``labels``) split into the indices to fit on
    and a dev set of ``fraction`` of them, stratified when every class has 2 examples or more
    (random otherwise), for what the recipe's callbacks watch.

    Example:
        >>> fit, dev = inner_dev_split(np.arange(100, 140), np.repeat([0, 1], 20), seed=0)
        >>> len(fit), len(dev), sorted(np.concatenate([fit, dev]).tolist()) == list(range(100, 140))
        (36, 4, True)
    """
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    n_dev = max(1, round(fraction * len(train)))
    if stratify is not None:
        n_dev = max(n_dev, len(np.unique(labels)))  # one of each class, at least
    fit, dev = train_test_split(train, test_size=n_dev, stratify=stratify, random_state=seed)
    return np.sort(fit), np.sort(dev)


def _as_picture(x: np.ndarray, source: str) -> np.ndarray:
    """Flat 8x8 digits drawn as images, MNIST-1D as signals; other flat features stay flat."""
    side = round(x.shape[1] ** 0.5) if x.ndim == 2 else 0
    if x.ndim == 2 and source == "Digits" and side * side == x.shape[1]:
        return x.reshape(len(x), 1, side, side)
    if x.ndim == 2 and source == "MNIST1D":
        return x[:, None, :]
    return x
