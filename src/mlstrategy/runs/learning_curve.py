"""The learning curve of a recipe: training and dev error against the training-set size m.

Each size is a full run (fit, best checkpoint, scores, diagnosis) on a nested, stratified
subset of the train split; train-dev, dev and test stay whole (Machine Learning Yearning,
ch. 28-32). In-memory data and image folders alike.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from mlstrategy.data.protocol import evaluation_data
from mlstrategy.evaluation.learning_curve import (
    CurvePoint,
    curve_to_dict,
    nested_subset,
    what_more_data_buys,
)
from mlstrategy.io import write_json_atomic
from mlstrategy.reporting.plots import learning_curve_figure, save_figure
from mlstrategy.run_folder import LOGS_DIR, abandon, load_settings, new_run_version
from mlstrategy.runs.lightning_cli import writes_files
from mlstrategy.runs.recipes import recipe_configs
from mlstrategy.runs.run import run_recipe

FIGURE_FILE = "learning_curve.png"
RESULTS_FILE = "learning_curve.json"


@dataclass
class LearningCurve:
    """A recipe's learning curve.

    Attributes:
        root: Its folder, ``logs/<recipe>-learning-curve/<timestamp>/``.
        points: One per size, smallest first.
        human_error: The recipe's human-level error, if it gives one.
        reading: What more data would buy (``message`` and the numbers behind it).
        written: False on a distributed run's other processes, which train and score with
            rank 0 and write nothing.
    """

    root: Path
    points: list[CurvePoint]
    human_error: float | None
    reading: dict[str, Any]
    written: bool = True

    @property
    def figure_path(self) -> Path:
        """The plot of training and dev error against m."""
        return self.root / FIGURE_FILE


def train_subset(fraction: float) -> Callable[[Any], None]:
    """Keep a nested, stratified ``fraction`` of a data module's train split (in memory or a
    folder of images alike, through :class:`~mlstrategy.data.protocol.EvaluationData`)."""

    def apply(datamodule: Any) -> None:
        data = evaluation_data(datamodule)
        if data is None or "train" not in data.split_names:
            raise ValueError(
                f"learning-curve trains on subsets of the train split, and "
                f"{type(datamodule).__name__} does not offer its splits (neither prepare() of "
                "in-memory data nor the image folders' split methods). Use "
                "mlstrategy.data.ArrayDataModule or mlstrategy.data.ImageFolderDataModule."
            )
        y = data.split_labels("train")
        # Class labels are kept in proportion; a real-valued target, or a column per task,
        # has no classes (one stratum).
        if y.is_floating_point() or y.dim() != 1:
            strata = np.zeros(len(y), dtype=np.int64)
        else:
            strata = y.numpy()
        data.keep_train(nested_subset(strata, fraction, getattr(datamodule, "seed", 0)))

    return apply


def learning_curve(
    recipe: Path,
    sizes: Sequence[float],
    overrides: Sequence[str] = (),
    on_point: Callable[[CurvePoint], None] | None = None,
    logs_dir: Path = Path(LOGS_DIR),
) -> LearningCurve:
    """Train ``recipe`` on each fraction of its train split; plot and record the curve.

    Writes ``learning_curve.png``, ``learning_curve.json``, TensorBoard scalars
    ``learning_curve/*`` with m as the step, and one run folder per size.

    Args:
        recipe: One recipe file.
        sizes: Fractions of the train split, increasing, in (0, 1].
        overrides: Dotted overrides for every run.
        on_point: Called with each point as it is measured.
        logs_dir: The logs root.
    """
    (configs,) = recipe_configs(recipe)
    name = f"{recipe.stem}-learning-curve"
    if not writes_files(configs, overrides):
        # A DDP run's other process: it trains and scores every size with rank 0, which alone
        # reserves the folder and writes into it. Its fits learn their folders from rank 0 (so
        # the placeholder is never made).
        unwritten = logs_dir / name / "unwritten"
        points, _ = _measure(configs, sizes, overrides, unwritten, None, writer=False)
        root = Path(points[-1].run_dir).parents[2] if points else unwritten
        return LearningCurve(root, points, None, what_more_data_buys(points, None), False)
    root = logs_dir / name / new_run_version(logs_dir, name)
    try:
        points, human_error = _measure(configs, sizes, overrides, root, on_point)
        reading = what_more_data_buys(points, human_error)
        curve = LearningCurve(root, points, human_error, reading)
        _write(curve, recipe)
    except BaseException as err:
        abandon(root, err)  # the sizes measured so far stay, under a FAILED marker
        raise
    return curve


def _measure(
    configs: Sequence[Path],
    sizes: Sequence[float],
    overrides: Sequence[str],
    root: Path,
    on_point: Callable[[CurvePoint], None] | None,
    writer: bool = True,
) -> tuple[list[CurvePoint], float | None]:
    """One full run per size; the points and the recipe's human-level error (read from the
    run folders by the process that writes them)."""
    quiet = Console(file=io.StringIO())
    points: list[CurvePoint] = []
    human_error = None
    for fraction in sizes:
        result = run_recipe(
            configs,
            overrides,
            quiet,
            logs_dir=root / f"size_{fraction:g}",
            before_fit=train_subset(fraction),
        )
        train, dev = result.splits["train"], result.splits["dev"]
        # A regressor's curve is of the error its diagnosis uses (RMSE by default).
        metric = str(getattr(result.diagnosis, "metric", "error"))
        if train.get(metric) is None or dev.get(metric) is None:
            raise ValueError(
                f"learning-curve plots error rates, and {configs[-1]} has none (every task is a "
                "regression). Compare the runs' mse with `mlstrategy compare` instead."
            )
        point = CurvePoint(
            fraction,
            int(train["n"]),
            float(train[metric]),
            float(dev[metric]),
            str(result.run_dir),
            metric,
        )
        points.append(point)
        if writer:
            human_error = load_settings(result.run_dir).get("human_error")
        if on_point is not None:
            on_point(point)
    return points, human_error


def _write(curve: LearningCurve, recipe: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    figure = learning_curve_figure(curve.points, curve.human_error)
    save_figure(figure, curve.figure_path)
    write_json_atomic(
        curve.root / RESULTS_FILE,
        {
            "recipe": str(recipe),
            "human_error": curve.human_error,
            "points": curve_to_dict(curve.points),
            **curve.reading,
        },
    )
    with SummaryWriter(str(curve.root)) as writer:
        for p in curve.points:
            writer.add_scalar(f"learning_curve/train_{p.metric}", p.train_error, p.m)
            writer.add_scalar(f"learning_curve/dev_{p.metric}", p.dev_error, p.m)
        writer.add_figure("learning_curve", figure, close=False)
        writer.add_text("learning_curve", curve.reading["message"])
