"""A regressor's part of the run report: its scores, predicted against true values per split,
and residuals against prediction.

Two figures (matplotlib's object API, as :mod:`mlstrategy.reporting.plots`):

- **predicted vs true**, one panel per split, with the line ``y_hat = y``: points on the line
  are right; a cloud tilted off it (too flat) is a model that underfits.
- **residuals vs prediction** (``y - y_hat`` against ``y_hat``), train and dev: a band of even
  width around 0 is noise; a curve or a funnel is structure the model has not learned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mlstrategy.metrics.names import REGRESSION_NAMES
from mlstrategy.reporting.markdown import md_table, num

REGRESSION_COLUMNS = (*REGRESSION_NAMES, "loss")
_COLORS = {"train": "tab:blue", "train_dev": "tab:purple", "dev": "tab:orange", "test": "tab:green"}


def predicted_vs_true_figure(predictions: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """One scatter of predicted against true values per split, with the line ``y_hat = y``.

    Args:
        predictions: ``{split: {"pred", "true"}}`` in the target's units.

    Example:
        >>> y = np.arange(5.0)
        >>> fig = predicted_vs_true_figure({"train": {"pred": y, "true": y}, "dev": {
        ...     "pred": y + 1, "true": y}})
        >>> [ax.get_title() for ax in fig.axes]
        ['train (RMSE 0)', 'dev (RMSE 1)']
    """
    splits = list(predictions)
    fig = Figure(figsize=(3.6 * len(splits), 3.8), layout="constrained")
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    everything = np.concatenate([np.r_[p["pred"], p["true"]] for p in predictions.values()])
    low, high = (float(everything.min()), float(everything.max())) if everything.size else (0, 1)
    for ax, split in zip(axes, splits, strict=True):
        pred, true = predictions[split]["pred"], predictions[split]["true"]
        ax.scatter(true, pred, s=8, alpha=0.5, color=_COLORS.get(split, "tab:gray"))
        ax.plot([low, high], [low, high], color="black", linewidth=1, label="y_hat = y")
        rmse = float(np.sqrt(np.mean((pred - true) ** 2))) if len(true) else float("nan")
        ax.set_title(f"{split} (RMSE {rmse:.4g})")
        ax.set_xlabel("true y")
        ax.set_ylabel("predicted y_hat")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
    axes[0].legend(loc="upper left")
    return fig


def residuals_figure(predictions: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """Residuals ``y - y_hat`` against the prediction ``y_hat``, train and dev on one axis.

    Example:
        >>> y = np.arange(5.0)
        >>> residuals_figure({"dev": {"pred": y, "true": y + 1}}).axes[0].get_ylabel()
        'residual y - y_hat'
    """
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    shown = [s for s in ("train", "dev") if s in predictions] or list(predictions)
    for split in shown:
        pred, true = predictions[split]["pred"], predictions[split]["true"]
        ax.scatter(pred, true - pred, s=8, alpha=0.5, label=split, color=_COLORS.get(split))
    ax.axhline(0.0, color="black", linewidth=1)
    ax.set_xlabel("predicted y_hat")
    ax.set_ylabel("residual y - y_hat")
    ax.set_title("residuals vs prediction")
    ax.legend()
    return fig


def regression_figures(analysis: Mapping[str, Any]) -> dict[str, Figure]:
    """``{"predicted_vs_true", "residuals"}`` figures of a regressor's run, from its
    ``analysis["predictions"]``; empty for any other run."""
    predictions = analysis.get("predictions")
    if not predictions:
        return {}
    return {
        "predicted_vs_true": predicted_vs_true_figure(predictions),
        "residuals": residuals_figure(predictions),
    }


def regression_scores_lines(splits: Mapping[str, Any]) -> list[str]:
    """The report's scores table of a regressor: MSE, RMSE, MAE, R^2 and loss per split, each
    error with its bootstrap standard error.

    Example:
        >>> row = {"n": 9, "mse": 0.04, "rmse": 0.2, "mae": 0.15, "r2": 0.9, "loss": 0.1,
        ...        "standard_errors": {"rmse": 0.01}}
        >>> regression_scores_lines({"dev": row})[4]
        '| dev | 9 | 0.0400 | 0.2000 ± 0.0100 | 0.1500 | 0.9000 | 0.1000 |'
    """
    out = ["## Scores per split", ""]
    rows = []
    for split, row in splits.items():
        se = row.get("standard_errors") or {}
        cells = [
            num(row.get(c)) + (f" ± {num(se[c])}" if c in se and c != "loss" else "")
            for c in REGRESSION_COLUMNS
        ]
        rows.append([split, row.get("n", "-"), *cells])
    out += md_table(["split", "n", *REGRESSION_COLUMNS], rows)
    out += [
        "",
        "MSE, RMSE and MAE are in the target's units (MSE squared); ± is the bootstrap standard "
        "error (1,000 resamples of the split). loss is the training cost 1/(2m) sum (y_hat - y)^2 "
        "on the standardized target.",
        "",
    ]
    return out


def regression_figures_lines(images: Mapping[str, str]) -> list[str]:
    """The report's section with the two figures, where they were written."""
    if "predicted_vs_true" not in images:
        return []
    return [
        "## Predicted vs true",
        "",
        f"![predicted vs true per split]({images['predicted_vs_true']})",
        "",
        "On the line y_hat = y a prediction is right. A cloud flatter than the line underfits "
        "(avoidable bias); train on the line and dev off it is variance.",
        "",
        f"![residuals vs prediction]({images['residuals']})",
        "",
        "Residuals y - y_hat: an even band around 0 is noise the model cannot predict; a curve "
        "or a funnel is structure it has not learned.",
        "",
    ]
