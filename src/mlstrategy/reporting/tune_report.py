"""A tune's report: ``report.md`` with the optimization history, each parameter against the
dev metric, and the top trials; every stage of a coarse-to-fine search on the same figures.

Reads trial records duck-typed (``number``, ``stage``, ``name``, ``state``, ``params``,
``values``, ``value``, ``metrics``, ``failures``, ``feasible``, ``epochs``, ``epochs_saved``,
``run_dir``), so this layer needs neither Optuna nor the run layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mlstrategy.io import write_text_atomic
from mlstrategy.reporting.markdown import md_table, num
from mlstrategy.reporting.plots import save_figure
from mlstrategy.run_folder import REPORT_FILE, TUNE_HPARAMS_DIR, TUNE_TEST_FILE

HISTORY_FIGURE = "optimization_history.png"
PARAMS_FIGURE = "params_vs_dev.png"
_STAGE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
TOP_TRIALS = 10


def history_figure(records: Sequence[Any], optimize: str, goal: str) -> Figure:
    """Each trial's dev metric in the order the trials ran, the best feasible so far as a
    step line; infeasible trials hollow, pruned and failed ones as ticks along the bottom.

    Example:
        >>> from types import SimpleNamespace as T
        >>> rs = [T(number=i, stage=1, state="complete", value=v, feasible=True)
        ...       for i, v in enumerate([0.3, 0.2, 0.25])]
        >>> fig = history_figure(rs, "dev/error", "min")
        >>> [float(y) for y in fig.axes[0].get_lines()[-1].get_ydata()]
        [0.3, 0.2, 0.2]
    """
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.subplots()
    order = sorted(records, key=lambda r: (r.stage, r.number))
    best_x, best_y, best = [], [], math.nan
    scored = [r.value for r in order if r.value is not None]
    floor = min(scored) if scored else 0.0
    for i, r in enumerate(order):
        color = _STAGE_COLORS[(r.stage - 1) % len(_STAGE_COLORS)]
        if r.value is not None:
            face = color if r.feasible else "none"
            ax.scatter([i], [r.value], color=color, facecolors=face, s=25, zorder=3)
            if r.feasible and (math.isnan(best) or _better(r.value, best, goal)):
                best = r.value
        elif r.state in ("pruned", "failed"):
            ax.scatter([i], [floor], marker="|" if r.state == "pruned" else "x", color="gray")
        if not math.isnan(best):
            best_x.append(i)
            best_y.append(best)
    for stage in sorted({r.stage for r in order}):
        ax.scatter([], [], color=_STAGE_COLORS[(stage - 1) % 4], label=f"stage {stage}")
    ax.scatter([], [], marker="|", color="gray", label="pruned (at the bottom)")
    ax.plot(best_x, best_y, drawstyle="steps-post", color="black", label="best feasible so far")
    ax.set_xlabel("trial (in the order they were numbered; stages one after another)")
    ax.set_ylabel(f"{optimize} (dev)")
    ax.set_title("optimization history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def params_figure(records: Sequence[Any], optimize: str, log_params: Sequence[str]) -> Figure:
    """One panel per sampled parameter: its value against the dev metric (log axis for log
    and beta scales; choices as categories), every stage in its own colour.

    Example:
        >>> from types import SimpleNamespace as T
        >>> rs = [T(stage=1, value=0.1 * i, params={"lr": 10.0 ** -i, "bs": 32}, feasible=True)
        ...       for i in range(1, 4)]
        >>> fig = params_figure(rs, "dev/error", ["lr"])
        >>> [ax.get_xscale() for ax in fig.axes]
        ['linear', 'log']
    """
    names = sorted({n for r in records for n in r.params})
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4.0 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        points = [r for r in records if r.value is not None and name in r.params]
        categorical = any(isinstance(r.params[name], str) for r in points)
        labels = sorted({str(r.params[name]) for r in points}) if categorical else []
        for r in points:
            x = labels.index(str(r.params[name])) if categorical else r.params[name]
            color = _STAGE_COLORS[(r.stage - 1) % len(_STAGE_COLORS)]
            face = color if r.feasible else "none"
            ax.scatter([x], [r.value], color=color, facecolors=face, s=25)
        if categorical:
            ax.set_xticks(range(len(labels)), [s.removeprefix("json:") for s in labels])
        elif name in log_params:
            ax.set_xscale("log")
        ax.set_xlabel(name.removeprefix("model.init_args.").removeprefix("data.init_args."))
        ax.set_ylabel(f"{optimize} (dev)")
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    return fig


def write_tune_report(study_dir: Path, result: Any, rules: Any) -> Path:
    """Write ``report.md`` and its figures for a tune's result (``TuneResult``).

    Args:
        study_dir: The study folder.
        result: The tune's result: ``setup``, ``records``, ``parents``, ``best``, ``test``,
            ``test_note``, ``selection``, ``epochs_saved``.
        rules: The selection rules (``optimize``, ``satisfy``).
    """
    setup = result.setup
    records = [*result.parents, *result.records]
    goal = result.selection.goal if result.selection is not None else "min"
    log_params = _log_params(setup.search)
    save_figure(history_figure(records, rules.optimize, goal), study_dir / HISTORY_FIGURE)
    save_figure(params_figure(records, rules.optimize, log_params), study_dir / PARAMS_FIGURE)
    lines = [f"# Study `{setup.name}` (stage {setup.stage})", ""]
    lines += _summary(setup, result, rules)
    lines += ["", "## The chosen trial", "", *_chosen(result, rules)]
    lines += ["", "## Optimization history", "", f"![optimization history]({HISTORY_FIGURE})"]
    lines += ["", "## Each parameter against the dev metric", ""]
    lines += [f"![parameters]({PARAMS_FIGURE})", ""]
    lines += ["## Top trials", "", *_top_table(records, rules, goal)]
    lines += ["", "## Search space", "", *_space_table(setup.search)]
    path = study_dir / REPORT_FILE
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _summary(setup: Any, result: Any, rules: Any) -> list[str]:
    states: dict[str, int] = {}
    for r in result.records:
        states[r.state] = states.get(r.state, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    lines = [
        f"- recipe: `{setup.configs[-1]}`"
        + (f", overrides `{' '.join(setup.overrides)}`" if setup.overrides else ""),
        f"- sampler: {setup.sampler}; pruner: {setup.pruner} (dev cost per epoch)",
        f"- storage: `{_hide(setup.storage)}`, study `{setup.name}`",
        f"- trials: {len(result.records)} ({counts}); pruning saved {result.epochs_saved} epochs",
        f"- objective: `{rules.optimize}` on dev"
        + (f"; constraints: {', '.join(f'`{c}`' for c in rules.satisfy)}" if rules.satisfy else ""),
        f"- HParams: `tensorboard --logdir {study_dir_hparams(result.study_dir)}` (one row per "
        "trial: sampled values and dev scores)",
    ]
    if setup.parent:
        lines.append(
            f"- refines `{setup.parent}` (its trials are stage {setup.stage - 1} on "
            "the figures and in the table)"
        )
    return lines


def study_dir_hparams(study_dir: Path) -> Path:
    """The folder of a study's HParams rows."""
    return study_dir / TUNE_HPARAMS_DIR


def _chosen(result: Any, rules: Any) -> list[str]:
    best = result.best
    if best is None:
        return ["No trial completed and met every constraint, so none is chosen."]
    lines = [
        f"**{best.name}**: `{rules.optimize}` = {num(best.value)} on dev. "
        f"`mlstrategy run {result.best_recipe}` trains it again.",
        "",
    ]
    lines += md_table(["recipe key", "value"], [[f"`{k}`", v] for k, v in best.values.items()])
    test = result.test
    if test:
        shown = chosen_test_line(test)
        lines += ["", f"Test (scored once, for this trial only; never used to choose): {shown}."]
    else:
        lines += ["", f"Test: not scored ({getattr(result, 'test_note', None) or 'no scores'})."]
    lines += [
        "",
        "Every trial was trained and scored with its test split withheld: the trials' run "
        f"folders hold train and dev scores only, and the test scores above (`{TUNE_TEST_FILE}`) "
        "come from the chosen trial's best checkpoint, after the choice.",
    ]
    return lines


def chosen_test_line(test: dict[str, Any]) -> str:
    """The chosen trial's test scores in one line.

    Example:
        >>> chosen_test_line({"error": 0.0625, "accuracy": 0.9375, "n": 64})
        'error 0.0625, accuracy 0.9375 (64 examples)'
    """
    shown = {k: test[k] for k in ("error", "accuracy", "f1", "loss", "mse") if k in test}
    line = ", ".join(f"{k} {num(v)}" for k, v in shown.items())
    return line + (f" ({test['n']} examples)" if "n" in test else "")


def _top_table(records: Sequence[Any], rules: Any, goal: str) -> list[str]:
    done = [r for r in records if r.value is not None]
    sign = -1.0 if goal == "max" else 1.0
    done.sort(key=lambda r: (not r.feasible, sign * r.value))
    keys = list(dict.fromkeys(k for r in done for k in r.values))
    extra = [] if rules.optimize == "dev/error" else ["dev/error"]
    header = ["#", "trial", *[k.rsplit(".", 1)[-1] for k in keys], rules.optimize, *extra]
    header += ["epochs", "feasible"]
    rows = []
    for i, r in enumerate(done[:TOP_TRIALS], 1):
        cells = [_cell(r.values.get(k)) for k in keys]
        feasible = "yes" if r.feasible else "no: " + "; ".join(r.failures)
        shown = [num(r.metrics.get("dev/error"))] if extra else []
        epochs = r.epochs if r.epochs is not None else "-"
        rows.append([i, r.name, *cells, num(r.value), *shown, epochs, feasible])
    if not rows:
        return ["No trial completed yet."]
    return md_table(header, rows)


def _space_table(search: dict[str, Any]) -> list[str]:
    rows = [[f"`{k}`", f"`{v}`"] for k, v in search.items()]
    return md_table(["recipe key", "range"], rows)


def _log_params(search: dict[str, Any]) -> list[str]:
    names = []
    for key, spec in search.items():
        if spec.get("beta"):
            names.append(f"{key}:1-beta")
        elif spec.get("log"):
            names.append(key)
        for part in ("layers", "units"):
            if isinstance(spec.get(part), dict) and spec[part].get("log"):
                names.append(f"{key}:{part}")
    return names


def _better(a: float, b: float, goal: str) -> bool:
    return a > b if goal == "max" else a < b


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _hide(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
