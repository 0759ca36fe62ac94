"""A study's training curves side by side: every run's cost per epoch and per step on one
chart, and each layer's gradient norm per epoch, one panel per run.

A lesson study (a folder of recipes, e.g. ``recipes/deep/minibatch/``) writes them into its
folder of runs, ``logs/<study>/``: ``cost_curves.png``, ``grad_norms.png`` (when the runs
logged gradient norms) and ``curves.md``, which shows both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

COSTS_FIGURE = "cost_curves.png"
GRAD_NORMS_FIGURE = "grad_norms.png"
CURVES_REPORT = "curves.md"
GRAD_NORM_PREFIX = "grad_norm/"  # the tags GradientNorms logs


def _step_points(curve: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    """Each step's cost at its place in epochs: step ``i`` of ``n`` in epoch ``e`` at
    ``e + (i + 1) / n`` (so an epoch's last step sits where its mean is drawn)."""
    xs, ys = [], []
    for point in curve:
        steps = point.get("step_costs") or []
        for i, cost in enumerate(steps):
            xs.append(point["epoch"] + (i + 1) / len(steps))
            ys.append(cost)
    return xs, ys


def study_costs_figure(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> Figure:
    """Every run's training cost on one chart: against epochs (left) and against optimizer
    steps on a log scale (right). The thin line is each mini-batch's own cost, the raw noise
    of (mini-batch or stochastic) gradient descent; the thick line with dots is the epoch's
    mean (``cost/train``).

    Args:
        curves: ``{run name: its cost curve}``, as ``metrics.json`` keeps it (``epoch``,
            ``cost/train``, ``step_costs``).

    Example:
        >>> fig = study_costs_figure({"batch": [{"epoch": 0, "cost/train": 0.7,
        ...     "step_costs": [0.7]}], "sgd": [{"epoch": 0, "cost/train": 0.6,
        ...     "step_costs": [0.8, 0.4]}]})
        >>> [line.get_label() for line in fig.axes[0].get_lines() if line.get_label()[0] != "_"]
        ['batch (1 step an epoch)', 'sgd (2 steps an epoch)']
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    by_epoch, by_step = fig.subplots(1, 2)
    for i, (name, curve) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        per_epoch = max((len(p.get("step_costs") or []) for p in curve), default=0)
        # The noisiest run's steps go to the back, faint, so the others' stay readable.
        behind, faint = 2 - math.log10(max(per_epoch, 1)) / 10, 0.35 if per_epoch <= 10 else 0.2
        xs, ys = _step_points(curve)
        if per_epoch > 1:
            by_epoch.plot(xs, ys, color=colour, alpha=faint, linewidth=0.7, zorder=behind)
        epochs = [p["epoch"] + 1 for p in curve]
        costs = [p["cost/train"] for p in curve]
        label = f"{name} ({per_epoch} step{'s' if per_epoch != 1 else ''} an epoch)"
        by_epoch.plot(epochs, costs, color=colour, linewidth=2, marker="o", markersize=3,
                      label=label, zorder=3)  # fmt: skip
        by_step.plot(range(1, len(ys) + 1), ys, color=colour, linewidth=0.6, label=name,
                     alpha=min(1.0, 2 * faint + 0.2), zorder=behind)  # fmt: skip
    by_epoch.set_xlabel("epoch (thin: each mini-batch's cost; thick: the epoch's mean)")
    by_epoch.set_ylabel("training cost (no L2 term)")
    by_epoch.set_title("cost against epochs")
    by_step.set_xscale("log")
    by_step.set_xlabel("optimizer step (log scale)")
    by_step.set_ylabel("mini-batch cost")
    by_step.set_title("cost against steps")
    # Single examples' costs reach far above any epoch's mean; the means set the scale and
    # the noise runs off the top.
    means = [p["cost/train"] for curve in curves.values() for p in curve]
    top = 1.6 * max(means, default=1.0)
    for ax in (by_epoch, by_step):
        ax.set_ylim(0, top if math.isfinite(top) and top > 0 else None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def grad_norm_figure(norms: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]]) -> Figure:
    """Each layer's gradient norm per epoch (log scale), one line per layer, one panel per
    run, on a shared y-axis: vanishing gradients are the first layers' lines orders of
    magnitude below the last one's, exploding ones lines that climb.

    Args:
        norms: ``{run name: {layer: [(epoch, norm), ...]}}``.

    Example:
        >>> fig = grad_norm_figure({"plain": {"layer_1": [(0, 1e-4)], "layer_2": [(0, 0.1)]}})
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['layer_1', 'layer_2']
    """
    cols = min(len(norms), 3)
    rows = math.ceil(len(norms) / cols)
    fig = Figure(figsize=(4.2 * cols + 0.5, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    from matplotlib import colormaps

    shades = colormaps["viridis"]
    for ax, (name, layers) in zip(axes, norms.items(), strict=False):
        for i, (layer, points) in enumerate(sorted(layers.items())):
            shade = 0.85 * i / max(len(layers) - 1, 1)  # first layer dark, the output yellow
            # A gradient of exactly 0 (a zeros init's hidden layers) is drawn at 1e-12.
            ax.plot([e + 1 for e, _ in points], [max(v, 1e-12) for _, v in points],
                    color=shades(shade), label=layer)  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in axes[len(norms) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("gradient norm ||dW, db|| (log)")
    fig.suptitle("gradient norm of each layer per epoch (RMS over the epoch's steps)")
    return fig


def read_grad_norms(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{layer: [(epoch, norm), ...]}`` from a run's TensorBoard events (``grad_norm/*``);
    empty when it logged none."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    norms: dict[str, dict[int, float]] = {}
    for tag in events.Tags()["scalars"]:
        if tag.startswith(GRAD_NORM_PREFIX):
            layer = norms.setdefault(tag.removeprefix(GRAD_NORM_PREFIX), {})
            for event in events.Scalars(tag):
                layer[event.step] = event.value  # a resumed run's later events win
    return {layer: sorted(points.items()) for layer, points in norms.items()}


def write_study_curves(folder: Path, runs: Mapping[str, Path]) -> dict[str, Path]:
    """Write the study's ``cost_curves.png``, ``grad_norms.png`` and ``curves.md`` into
    ``folder`` from its runs' ``metrics.json`` and events.

    Args:
        folder: The study's folder of runs (``logs/<study>``).
        runs: ``{run name: run folder}`` in the study's order.

    Returns:
        ``{"report": path, "costs": path[, "grad_norms": path]}``, or ``{}`` when no run has a
        cost curve (nothing was trained).
    """
    from mlstrategy.io import write_text_atomic
    from mlstrategy.reporting.plots import save_figure
    from mlstrategy.run_folder import load_metrics

    curves = {name: load_metrics(d).get("cost_curve") or [] for name, d in runs.items()}
    curves = {name: curve for name, curve in curves.items() if curve}
    if not curves:
        return {}
    written = {"costs": save_figure(study_costs_figure(curves), folder / COSTS_FIGURE)}
    lines = [
        f"# Training curves: {folder.name}",
        "",
        "Every run's training cost, against epochs and against steps; the thin lines are "
        "each mini-batch's own cost.",
        "",
        f"![training cost of every run]({COSTS_FIGURE})",
    ]
    norms = {name: read_grad_norms(d) for name, d in runs.items()}
    norms = {name: layers for name, layers in norms.items() if layers}
    if norms:
        written["grad_norms"] = save_figure(grad_norm_figure(norms), folder / GRAD_NORMS_FIGURE)
        lines += [
            "",
            "## Gradient norm of each layer",
            "",
            "Per epoch, the root mean square over its steps of each layer's gradient norm "
            "(log scale; exactly 0 is drawn at 1e-12): vanishing gradients sit orders of "
            "magnitude below the output layer's, exploding ones climb.",
            "",
            f"![gradient norm per layer]({GRAD_NORMS_FIGURE})",
        ]
    written["report"] = folder / CURVES_REPORT
    write_text_atomic(written["report"], "\n".join(lines) + "\n")
    return written
