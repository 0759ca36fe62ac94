"""Write a run folder's report files: ``diagnosis.json``, ``report.md`` and its figures.

A finished run folder holds, besides the TensorBoard events, config and checkpoints (their
names are in :mod:`mlstrategy.run_folder`):

- ``metrics.json`` (written by the run layer): per split error, accuracy, precision, recall,
  F1 (multi-class: micro, macro and weighted too), loss, per-class scores and the confusion
  matrix; the parameter count, the inference latency and the cost curve (train and dev cost
  per epoch).
- ``diagnosis.json``: the gaps (avoidable bias, variance, data mismatch, overfitting to dev),
  the largest one and its remedies, the error analysis and the dev/test distribution check;
  for a multi-task run, ``"tasks"``: the diagnosis of each task.
- ``report.md`` with ``confusion_matrix.png``, ``cost_curve.png`` and, for image or signal
  data, ``dev_highest_loss.png``; a multi-task run's report ends with its per-task sections.

:func:`write_run_report` writes each of them once. The same report goes to TensorBoard:
``diagnosis/*`` scalars (``diagnosis/{task}/*`` per task), a ``report`` text panel
(``report/tasks`` for the per-task sections) and the figures as images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlstrategy.evaluation.diagnosis import GAP_TITLES, KNOBS, Diagnosis
from mlstrategy.evaluation.multitask import diagnoses_to_dict
from mlstrategy.evaluation.sampling import split_sampling
from mlstrategy.evaluation.selection import Constraint, flatten_metrics, format_metric
from mlstrategy.io import write_json_atomic, write_text_atomic
from mlstrategy.metrics.names import AVERAGES
from mlstrategy.reporting.error_analysis import (
    distribution_lines,
    error_analysis_lines,
    task_error_analysis_lines,
)
from mlstrategy.reporting.human_level import (
    distributions_entry,
    estimable_gaps,
    gap_text,
    human_level_lines,
    shown_notes,
)
from mlstrategy.reporting.markdown import md_table, num, pct
from mlstrategy.reporting.mismatch import ladder_lines, mismatch_figures, sources_lines
from mlstrategy.reporting.regression import (
    regression_figures,
    regression_figures_lines,
    regression_scores_lines,
)
from mlstrategy.reporting.slices import weighted_lines
from mlstrategy.reporting.tables import SPLIT_COLUMNS, gap_formulas, gap_value
from mlstrategy.reporting.tasks import render_task_report
from mlstrategy.run_folder import DIAGNOSIS_FILE, REPORT_FILE

DEFAULT_SMOOTHING_BETA = 0.98  # EvaluationSettings.smoothing_beta's default

FIGURE_FILES = {
    "confusion_matrix": "confusion_matrix.png",
    "cost_curve": "cost_curve.png",
    "dev_examples": "dev_highest_loss.png",
    "mismatch_errors": "mismatch_errors.png",  # two distributions (reporting.mismatch)
    "predicted_vs_true": "predicted_vs_true.png",  # a regressor's (reporting.regression)
    "residuals": "residuals.png",
}


def render_report(
    metrics: Mapping[str, Any],
    diagnosis: Diagnosis | str,
    analysis: Mapping[str, Any] | None = None,
    constraints: Sequence[Constraint] = (),
    optimize: str | None = None,
    images: Mapping[str, str] | None = None,
    task_diagnoses: Mapping[str, Diagnosis | str] | None = None,
) -> str:
    """The run's ``report.md``: scores, diagnosis, what to do in order, figures, error analysis
    and, for a multi-task run, the per-task scores and diagnosis.

    Args:
        metrics: The content of ``metrics.json``.
        diagnosis: From :func:`~mlstrategy.evaluation.diagnosis.diagnose_run`: the diagnosis,
            or why there is none (a run without an error rate).
        analysis: From :func:`~mlstrategy.evaluation.error_analysis.analyze_errors`.
        constraints: The recipe's satisficing constraints, checked for this run.
        optimize: The recipe's optimizing metric, shown with its value.
        images: ``{figure key: file name}`` of the PNGs written beside the report.
        task_diagnoses: A multi-task run's ``{task: Diagnosis or reason}``, from
            :func:`~mlstrategy.evaluation.multitask.diagnose_tasks`; its sections end the report.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> row = {"n": 10, "error": 0.1, "accuracy": 0.9, "precision": 0.8, "recall": 1.0,
        ...        "f1": 0.89, "loss": 0.3}
        >>> md = render_report({"recipe": "r.yaml", "splits": {"dev": row}}, diagnose(0.2, 0.1))
        >>> md.splitlines()[0], "## Diagnosis" in md
        ('# Run report: r', True)
    """
    body, tasks = _render(
        metrics, diagnosis, analysis, constraints, optimize, images, task_diagnoses
    )
    return _joined(body, tasks)


def _joined(body: str, tasks: str | None) -> str:
    """The whole ``report.md``: the run's sections, then any per-task ones after a blank line."""
    return body if tasks is None else f"{body}\n{tasks}"


def _render(
    metrics: Mapping[str, Any],
    diagnosis: Diagnosis | str,
    analysis: Mapping[str, Any] | None,
    constraints: Sequence[Constraint],
    optimize: str | None,
    images: Mapping[str, str] | None,
    task_diagnoses: Mapping[str, Diagnosis | str] | None,
) -> tuple[str, str | None]:
    """The run's sections and, for a multi-task run, the per-task ones (None otherwise)."""
    analysis = analysis or {}
    images = images or {}
    splits = metrics["splits"]
    out = [
        *_header(metrics),
        *(regression_scores_lines(splits) if _regression(splits) else _scores_section(splits)),
        *_sampling_section(splits),
        *_diagnosis_section(diagnosis),
        *(_knobs_section(diagnosis) if isinstance(diagnosis, Diagnosis) else []),
        *sources_lines(
            analysis.get("sources"),
            images.get("mismatch_errors"),
            analysis.get("distributions_table"),  # the course's 2x3 table (human levels)
        ),
        *_selection_section(metrics, constraints, optimize),
        *_figures_section(images, _has_step_costs(metrics)),
        *regression_figures_lines(images),
        *_per_class_section(splits),
        *weighted_lines(splits),  # example weights, class costs, per-group errors
    ]
    if "highest_loss" in analysis:
        out += error_analysis_lines(analysis, images.get("dev_examples"))
    out += distribution_lines(
        analysis.get("same_distribution"),
        list(splits.get("dev", {}).get("per_class") or []),
        _task_class_names(splits),
    )
    body = "\n".join(out).rstrip() + "\n"
    tasks = None
    if task_diagnoses is not None or analysis.get("tasks"):
        tasks = render_task_report(splits, task_diagnoses or {})
        tasks += "\n".join(["", *task_error_analysis_lines(analysis.get("tasks") or {})])
        tasks = tasks.rstrip() + "\n"
    return body, tasks


def _regression(splits: Mapping[str, Any]) -> bool:
    """A single-task regressor's splits: scored by RMSE and friends, not by an error rate."""
    return any("rmse" in r and "tasks" not in r for r in splits.values())


def _task_class_names(splits: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{task: class names}`` as its ``per_class`` scores name them (dev first)."""
    names: dict[str, list[str]] = {}
    for split in sorted(splits, key=lambda s: s != "dev"):
        for task, row in (splits[split].get("tasks") or {}).items():
            if row.get("per_class") and task not in names:
                names[task] = list(row["per_class"])
    return names


def _header(metrics: Mapping[str, Any]) -> list[str]:
    name = Path(str(metrics.get("recipe", "run"))).stem
    facts = [f"recipe `{metrics.get('recipe', '?')}`"]
    if "params" in metrics:
        facts.append(f"{metrics['params']:,} parameters")
    if "latency_ms" in metrics:
        facts.append(
            f"latency {metrics['latency_ms']:.3g} ms per example "
            f"({metrics.get('latency_device', '?')}, median of {metrics.get('latency_repeats')})"
        )
    if "epochs" in metrics:
        facts.append(f"{metrics['epochs']} epochs in {metrics.get('fit_seconds', 0):.1f} s")
    return [f"# Run report: {name}", "", ", ".join(facts) + ".", ""]


def _scores_section(splits: Mapping[str, Any]) -> list[str]:
    out = ["## Scores per split", ""]
    out += md_table(
        ["split", "n", *SPLIT_COLUMNS],
        [[s, r["n"], *(num(r.get(c)) for c in SPLIT_COLUMNS)] for s, r in splits.items()],
    )
    multi = [s for s, r in splits.items() if "f1_macro" in r]
    if multi:
        out += ["", "Averages over classes (multi-class):", ""]
        cols = [f"{m}_{a}" for m in ("precision", "recall", "f1") for a in AVERAGES]
        out += md_table(["split", *cols], [[s, *(num(splits[s][c]) for c in cols)] for s in multi])
    return [*out, ""]


def _sampling_section(splits: Mapping[str, Any]) -> list[str]:
    """Each split's error with its standard error, and the smallest significant difference."""
    sampling = split_sampling(splits)
    if not sampling:
        return []
    out = [
        "## How precise these errors are",
        "",
        "An error measured on n examples is a proportion: its standard error is "
        "sqrt(e (1 - e) / n). The last column is the smallest difference in error between two "
        "models that would be significant at 95% on a split this size (two-sided pooled "
        "two-proportion z-test, the better model at this error); a true difference of that "
        "size is detected only about half the time. On dev it is the smallest improvement "
        "worth comparing runs on. Machine Learning Yearning: 10,000 dev examples detect about "
        "0.1%.",
        "",
    ]
    out += md_table(
        ["split", "n", "error", "standard error", "significant difference (95%)"],
        [
            [s, f"{r['n']:,}", pct(r["error"]), pct(r["standard_error"]),
             pct(r["detectable_difference"])]
            for s, r in sampling.items()
        ],
    )  # fmt: skip
    return [*out, ""]


def _diagnosis_section(diagnosis: Diagnosis | str) -> list[str]:
    if not isinstance(diagnosis, Diagnosis):
        return ["## Diagnosis", "", f"Skipped: {diagnosis}.", ""]
    d = diagnosis
    human = gap_value(d, d.human_error) if d.human_error is not None else "not given"
    if d.metric != "error":
        human += f" ({d.unit}, in the target's units, like every error below)"
    out = ["## Diagnosis", "", *human_level_lines(d, human)]
    if getattr(diagnosis, "metric", "error") == "error":  # the course's ladder of error rates
        out += ladder_lines(diagnosis)
    formulas = gap_formulas(diagnosis)
    out += md_table(
        ["gap", "value", "computed as", ""],
        [
            [
                GAP_TITLES[g],
                gap_text(d, g, gap_value(d, v)),
                formulas[g],
                "**largest**" if g == d.largest else "",
            ]
            for g, v in diagnosis.gaps.items()
        ],
    )
    out += ["", f"**{diagnosis.verdict}**", ""]
    out += [f"- {r}" for r in diagnosis.remedies]
    out.append("")
    for note in shown_notes(d):  # one quote block each, or Markdown runs them together
        out += [f"> Note: {note}", ""]
    return out


def _knobs_section(diagnosis: Diagnosis) -> list[str]:
    out = [
        "## What to do, in order",
        "",
        "One knob per goal, in the course's order (orthogonalization): fix the first goal that "
        "is not met before turning the next knob.",
        "",
    ]
    gaps = diagnosis.gaps
    rows = []
    for i, (goal, gap, knobs) in enumerate(KNOBS, start=1):
        size = gap_text(diagnosis, gap, gap_value(diagnosis, gaps.get(gap))) if gap in gaps else "-"
        mark = "**work on this**" if gap == diagnosis.largest else ""
        title = GAP_TITLES[gap] if gap != "none" else "-"
        rows.append([f"{i}. {goal}", title, size, knobs, mark])
    return [*out, *md_table(["goal", "gap", "size", "knobs", ""], rows), ""]


def _selection_section(
    metrics: Mapping[str, Any], constraints: Sequence[Constraint], optimize: str | None
) -> list[str]:
    if not constraints and not optimize:
        return []
    flat = flatten_metrics(metrics)

    def measured(metric: str) -> str:
        value = flat.get(metric)
        return format_metric(value) if value is not None else "not measured"

    out = ["## Selection rules", ""]
    if optimize:
        out += [f"- optimizing: `{optimize}` = {measured(optimize)}"]
    for c in constraints:
        value = flat.get(c.metric)
        verdict = "n/a" if value is None else ("met" if c.holds(value) else "**FAILED**")
        out += [f"- satisficing: `{c}`: {measured(c.metric)}, {verdict}"]
    return [*out, ""]


def _has_step_costs(metrics: Mapping[str, Any]) -> bool:
    return any(h.get("step_costs") for h in metrics.get("cost_curve") or [])


def _figures_section(images: Mapping[str, str], step_costs: bool = False) -> list[str]:
    out = []
    if "cost_curve" in images:
        out += ["## Cost per epoch", "", f"![train and dev cost per epoch]({images['cost_curve']})"]
        if step_costs:
            out += [
                "",
                "Right: the training cost of every step (faint) and its exponentially weighted "
                "average with bias correction, v_t = beta v_(t-1) + (1 - beta) theta_t reported "
                "as v_t / (1 - beta^t) (beta: evaluation.smoothing_beta). Mini-batch costs are "
                "noisy; the smoothed curve shows the trend: still falling means train longer, "
                "flat and high means avoidable bias.",
            ]
        out.append("")
    if "confusion_matrix" in images:
        out += ["## Confusion matrices", "", f"![confusion matrices]({images['confusion_matrix']})"]
        out += ["", "Rows are the true class, columns the predicted class.", ""]
    return out


def _per_class_section(splits: Mapping[str, Any]) -> list[str]:
    if "dev" not in splits or "per_class" not in splits["dev"]:
        return []
    out = ["## Per-class scores (dev)", ""]
    out += md_table(
        ["class", "precision", "recall", "f1", "support"],
        [
            [c, num(s["precision"]), num(s["recall"]), num(s["f1"]), s["support"]]
            for c, s in splits["dev"]["per_class"].items()
        ],
    )
    return [*out, ""]


def _class_names(row: Mapping[str, Any], k: int) -> list[str]:
    """The class names a split's ``per_class`` scores carry, else ``0``, ``1``, ... ``k - 1``."""
    return list(row.get("per_class") or []) or [str(i) for i in range(k)]


def write_run_report(
    run_dir: Path,
    metrics: Mapping[str, Any],
    diagnosis: Diagnosis | str,
    *,
    settings: Mapping[str, Any] | None = None,
    analysis: Mapping[str, Any] | None = None,
    constraints: Sequence[Constraint] = (),
    optimize: str | None = None,
    task_diagnoses: Mapping[str, Diagnosis | str] | None = None,
    logger: Any = None,
) -> dict[str, Path]:
    """Write the figures, ``diagnosis.json`` and ``report.md``, each once; send them to
    TensorBoard.

    Args:
        run_dir: The run folder.
        metrics: The content of ``metrics.json`` (with ``cost_curve`` when trained).
        diagnosis: The run's diagnosis, or why it has none (``diagnosis.json`` then holds
            ``"skipped": reason`` instead of the gaps).
        settings: The recipe's ``evaluation`` settings, stored in ``diagnosis.json``.
        analysis: From :func:`~mlstrategy.evaluation.error_analysis.analyze_errors`; its
            ``highest_loss_x`` (the raw examples) goes to the figure only.
        constraints: Satisficing constraints to check in the report.
        optimize: The optimizing metric to show in the report.
        task_diagnoses: A multi-task run's per-task diagnoses (from
            :func:`~mlstrategy.evaluation.multitask.diagnose_tasks`): they go to
            ``diagnosis.json`` as ``"tasks"``, to the end of ``report.md``, and to TensorBoard
            as ``diagnosis/{task}/{gap}`` scalars and a ``report/tasks`` text panel.
        logger: A ``TensorBoardLogger`` (or None): gets ``diagnosis/*`` scalars, the report as
            a text panel and the figures as images.

    Returns:
        ``{file key: path}`` of what was written.
    """
    from mlstrategy.reporting.plots import save_figure

    analysis = dict(analysis or {})
    examples = analysis.pop("highest_loss_x", None)
    analysis |= distributions_entry(diagnosis, analysis, settings)  # two distributions: 2x3
    beta = float((settings or {}).get("smoothing_beta", DEFAULT_SMOOTHING_BETA))
    figures = _figures(metrics, analysis, examples, beta)
    figures |= mismatch_figures(diagnosis, analysis)  # two distributions: the five errors
    # A regressor's predictions per split: for its figures only, not for diagnosis.json.
    figures |= regression_figures({"predictions": analysis.pop("predictions", None)})
    written = {key: save_figure(fig, run_dir / FIGURE_FILES[key]) for key, fig in figures.items()}
    images = {k: p.name for k, p in written.items()}

    task_analysis = analysis.pop("tasks", None) or {}
    verdict = diagnosis.to_dict() if isinstance(diagnosis, Diagnosis) else {"skipped": diagnosis}
    payload = {**verdict, "settings": dict(settings or {}), **analysis}
    if task_diagnoses is not None or task_analysis:
        per_task = diagnoses_to_dict(task_diagnoses or {})
        for task, found in task_analysis.items():
            per_task[task] = {**per_task.get(task, {}), **found}
        payload["tasks"] = per_task
    written["diagnosis"] = run_dir / DIAGNOSIS_FILE
    write_json_atomic(written["diagnosis"], payload)
    analysis["tasks"] = task_analysis
    body, tasks = _render(
        metrics, diagnosis, analysis, constraints, optimize, images, task_diagnoses
    )
    written["report"] = run_dir / REPORT_FILE
    write_text_atomic(written["report"], _joined(body, tasks))

    experiment = getattr(logger, "experiment", None)
    if experiment is not None and hasattr(experiment, "add_text"):
        logger.log_metrics(_gap_scalars(diagnosis, task_diagnoses or {}), step=0)
        experiment.add_text("report", body, global_step=0)
        if tasks is not None:
            experiment.add_text("report/tasks", tasks, global_step=0)
        for key, fig in figures.items():
            experiment.add_figure(key, fig, global_step=0, close=False)
        experiment.flush()
    return written


def _figures(
    metrics: Mapping[str, Any],
    analysis: Mapping[str, Any],
    examples: Any,
    beta: float = 0.98,
) -> dict[str, Any]:
    """The report's figures, by :data:`FIGURE_FILES` key: those the run has data for."""
    from mlstrategy.reporting.plots import (
        confusion_matrix_figure,
        cost_curve_figure,
        examples_figure,
    )

    figures: dict[str, Any] = {}
    splits = metrics["splits"]
    matrices = {s: r["confusion_matrix"] for s, r in splits.items() if "confusion_matrix" in r}
    if matrices:
        first = next(iter(splits.values()))
        names = _class_names(first, len(first["confusion_matrix"]))
        figures["confusion_matrix"] = confusion_matrix_figure(matrices, names)
    history = metrics.get("cost_curve") or []
    if history:
        figures["cost_curve"] = cost_curve_figure(history, beta)
    if examples is not None:
        captions = [
            f"#{w['index']} {w['true']}->{w['predicted']}" for w in analysis.get("highest_loss", [])
        ]
        fig = examples_figure(examples, captions)
        if fig is not None:
            figures["dev_examples"] = fig
    return figures


def _gap_scalars(
    diagnosis: Diagnosis | str, task_diagnoses: Mapping[str, Diagnosis | str]
) -> dict[str, float]:
    """``diagnosis/{gap}`` and ``diagnosis/{task}/{gap}``: every gap that was measured (not an
    avoidable bias that a train error below human level leaves unestimated)."""
    scalars: dict[str, float] = {}
    if isinstance(diagnosis, Diagnosis):
        scalars = {f"diagnosis/{g}": v for g, v in estimable_gaps(diagnosis).items()}
    for task, d in task_diagnoses.items():
        if isinstance(d, Diagnosis):
            scalars |= {f"diagnosis/{task}/{g}": v for g, v in estimable_gaps(d).items()}
    return scalars
