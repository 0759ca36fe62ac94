"""Score a trained model on every split and write the run folder's evaluation files.

A finished run folder holds, besides the TensorBoard events, config and checkpoints:

- ``metrics.json``: per split error, accuracy, precision, recall, F1 (multi-class: micro,
  macro and weighted too), loss, per-class scores and the confusion matrix; the parameter
  count, the inference latency and the learning curve.
- ``diagnosis.json``: the gaps (avoidable bias, variance, data mismatch, overfitting to dev),
  the largest one and its remedies, the error analysis and the dev/test distribution check.
- ``report.md`` with ``confusion_matrix.png``, ``learning_curve.png`` and, for image or signal
  data, ``dev_highest_loss.png``.

The same report goes to TensorBoard: ``diagnosis/*`` scalars, a ``report`` text panel and the
figures as images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlstrategy.evaluation.diagnosis import GAP_TITLES, KNOBS, Diagnosis
from mlstrategy.evaluation.selection import Constraint, flatten_metrics
from mlstrategy.io import write_json_atomic, write_text_atomic
from mlstrategy.metrics.names import AVERAGES
from mlstrategy.reporting.tables import SPLIT_COLUMNS, gap_formulas

REPORT_FILES = {
    "diagnosis": "diagnosis.json",
    "report": "report.md",
    "confusion_matrix": "confusion_matrix.png",
    "learning_curve": "learning_curve.png",
    "dev_examples": "dev_highest_loss.png",
}


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def render_report(
    metrics: Mapping[str, Any],
    diagnosis: Diagnosis,
    analysis: Mapping[str, Any] | None = None,
    constraints: Sequence[Constraint] = (),
    optimize: str | None = None,
    images: Mapping[str, str] | None = None,
) -> str:
    """The run's ``report.md``: scores, diagnosis, what to do in order, figures, error analysis.

    Args:
        metrics: The content of ``metrics.json``.
        diagnosis: From :func:`~mlstrategy.evaluation.diagnosis.diagnose`.
        analysis: From :func:`analyze_errors`.
        constraints: The recipe's satisficing constraints, checked for this run.
        optimize: The recipe's optimizing metric, shown with its value.
        images: ``{figure key: file name}`` of the PNGs written beside the report.

    Example:
        >>> from mlstrategy.evaluation.diagnosis import diagnose
        >>> row = {"n": 10, "error": 0.1, "accuracy": 0.9, "precision": 0.8, "recall": 1.0,
        ...        "f1": 0.89, "loss": 0.3}
        >>> md = render_report({"recipe": "r.yaml", "splits": {"dev": row}}, diagnose(0.2, 0.1))
        >>> md.splitlines()[0], "## Diagnosis" in md
        ('# Run report: r', True)
    """
    analysis = analysis or {}
    images = images or {}
    name = Path(str(metrics.get("recipe", "run"))).stem
    out = [f"# Run report: {name}", ""]
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
    out += [", ".join(facts) + ".", ""]

    out += ["## Scores per split", ""]
    splits = metrics["splits"]
    out += _md_table(
        ["split", "n", *SPLIT_COLUMNS],
        [[s, r["n"], *(f"{r[c]:.4f}" for c in SPLIT_COLUMNS)] for s, r in splits.items()],
    )
    multi = [s for s, r in splits.items() if "f1_macro" in r]
    if multi:
        out += ["", "Averages over classes (multi-class):", ""]
        cols = [f"{m}_{a}" for m in ("precision", "recall", "f1") for a in AVERAGES]
        out += _md_table(
            ["split", *cols], [[s, *(f"{splits[s][c]:.4f}" for c in cols)] for s in multi]
        )
    out.append("")

    out += ["## Diagnosis", ""]
    human = _pct(diagnosis.human_error) if diagnosis.human_error is not None else "not given"
    out += [f"Human-level error (proxy for Bayes error): {human}.", ""]
    formulas = gap_formulas(diagnosis)
    out += _md_table(
        ["gap", "value", "computed as", ""],
        [
            [GAP_TITLES[g], _pct(v), formulas[g], "**largest**" if g == diagnosis.largest else ""]
            for g, v in diagnosis.gaps.items()
        ],
    )
    out += ["", f"**{diagnosis.verdict}**", ""]
    out += [f"- {r}" for r in diagnosis.remedies]
    out.append("")
    for note in diagnosis.notes:  # one quote block each, or Markdown runs them together
        out += [f"> Note: {note}", ""]

    out += ["## What to do, in order", ""]
    out += [
        "One knob per goal, in the course's order (orthogonalization): fix the first goal that "
        "is not met before turning the next knob.",
        "",
    ]
    gaps = diagnosis.gaps
    rows = []
    for i, (goal, gap, knobs) in enumerate(KNOBS, start=1):
        value = gaps.get(gap)
        size = _pct(value) if gap in gaps else "-"
        mark = "**work on this**" if gap == diagnosis.largest else ""
        title = GAP_TITLES[gap] if gap != "none" else "-"
        rows.append([f"{i}. {goal}", title, size, knobs, mark])
    out += _md_table(["goal", "gap", "size", "knobs", ""], rows)
    out.append("")

    if constraints or optimize:
        flat = flatten_metrics(metrics)
        out += ["## Selection rules", ""]
        if optimize:
            value = flat.get(optimize)
            shown = f"{value:.4g}" if value is not None else "not measured"
            out += [f"- optimizing: `{optimize}` = {shown}"]
        for c in constraints:
            value = flat.get(c.metric)
            verdict = "n/a" if value is None else ("met" if c.holds(value) else "**FAILED**")
            shown = f"{value:.4g}" if value is not None else "not measured"
            out += [f"- satisficing: `{c}`: {shown}, {verdict}"]
        out.append("")

    if "learning_curve" in images:
        out += [
            "## Learning curve",
            "",
            f"![train and dev cost per epoch]({images['learning_curve']})",
        ]
        out.append("")
    if "confusion_matrix" in images:
        out += ["## Confusion matrices", "", f"![confusion matrices]({images['confusion_matrix']})"]
        out += ["", "Rows are the true class, columns the predicted class.", ""]

    if "dev" in splits and "per_class" in splits["dev"]:
        out += ["## Per-class scores (dev)", ""]
        out += _md_table(
            ["class", "precision", "recall", "f1", "support"],
            [
                [c, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", s["support"]]
                for c, s in splits["dev"]["per_class"].items()
            ],
        )
        out.append("")

    if analysis:
        out += ["## Error analysis (dev)", ""]
        confused = analysis.get("most_confused") or []
        if confused:
            out += ["Most-confused class pairs (look at these examples first):", ""]
            out += _md_table(
                ["true", "predicted as", "count", "share of dev errors"],
                [
                    [p["true"], p["predicted"], p["count"], f"{100 * p['share']:.1f}%"]
                    for p in confused
                ],
            )
        else:
            out += ["No dev example is misclassified."]
        worst = analysis.get("highest_loss") or []
        if worst:
            out += ["", "Dev examples with the highest loss (the most confidently wrong):", ""]
            out += _md_table(
                ["dev index", "true", "predicted", "p(true)", "loss"],
                [
                    [
                        w["index"],
                        w["true"],
                        w["predicted"],
                        f"{w['p_true']:.3f}",
                        f"{w['loss']:.3f}",
                    ]
                    for w in worst
                ],
            )
        if "dev_examples" in images:
            out += ["", f"![highest-loss dev examples]({images['dev_examples']})"]
        out.append("")
        same = analysis.get("same_distribution")
        if same:
            out += ["## Dev and test distributions", ""]
            prefix = "**Warning:** " if same["differ"] else ""
            out += [prefix + same["message"], ""]
            names = list(splits.get("dev", {}).get("per_class") or []) or [
                str(i) for i in range(len(same["dev_labels"]))
            ]
            out += _md_table(
                ["label share", *names],
                [["dev", *same["dev_labels"]], ["test", *same["test_labels"]]],
            )
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_run_report(
    run_dir: Path,
    metrics: Mapping[str, Any],
    diagnosis: Diagnosis,
    *,
    settings: Mapping[str, Any] | None = None,
    analysis: Mapping[str, Any] | None = None,
    constraints: Sequence[Constraint] = (),
    optimize: str | None = None,
    logger: Any = None,
) -> dict[str, Path]:
    """Write ``diagnosis.json``, the figures and ``report.md``; send them to TensorBoard.

    Args:
        run_dir: The run folder.
        metrics: The content of ``metrics.json`` (with ``learning_curve`` when trained).
        diagnosis: The run's diagnosis.
        settings: The recipe's ``evaluation`` settings, stored in ``diagnosis.json``.
        analysis: From :func:`analyze_errors`.
        constraints: Satisficing constraints to check in the report.
        optimize: The optimizing metric to show in the report.
        logger: A ``TensorBoardLogger`` (or None): gets ``diagnosis/*`` scalars, the report as
            a text panel and the figures as images.

    Returns:
        ``{file key: path}`` of what was written.
    """
    from mlstrategy.reporting.plots import (
        confusion_matrix_figure,
        examples_figure,
        learning_curve_figure,
        save_figure,
    )

    analysis = dict(analysis or {})
    written: dict[str, Path] = {}
    figures = {}
    splits = metrics["splits"]
    matrices = {s: r["confusion_matrix"] for s, r in splits.items() if "confusion_matrix" in r}
    if matrices:
        first = next(iter(splits.values()))
        names = list(first.get("per_class") or []) or [
            str(i) for i in range(len(first["confusion_matrix"]))
        ]
        figures["confusion_matrix"] = confusion_matrix_figure(matrices, names)
    history = metrics.get("learning_curve") or []
    if history:
        figures["learning_curve"] = learning_curve_figure(history)
    examples = analysis.pop("highest_loss_x", None)
    if examples is not None:
        captions = [
            f"#{w['index']} {w['true']}->{w['predicted']}" for w in analysis.get("highest_loss", [])
        ]
        fig = examples_figure(examples, captions)
        if fig is not None:
            figures["dev_examples"] = fig
    for key, fig in figures.items():
        written[key] = save_figure(fig, run_dir / REPORT_FILES[key])
    images = {k: p.name for k, p in written.items()}

    payload = {**diagnosis.to_dict(), "settings": dict(settings or {}), **analysis}
    written["diagnosis"] = run_dir / REPORT_FILES["diagnosis"]
    write_json_atomic(written["diagnosis"], payload)
    report = render_report(metrics, diagnosis, analysis, constraints, optimize, images)
    written["report"] = run_dir / REPORT_FILES["report"]
    write_text_atomic(written["report"], report)

    experiment = getattr(logger, "experiment", None)
    if experiment is not None and hasattr(experiment, "add_text"):
        scalars = {f"diagnosis/{g}": v for g, v in diagnosis.gaps.items() if v is not None}
        logger.log_metrics(scalars, step=0)
        experiment.add_text("report", report, global_step=0)
        for key, fig in figures.items():
            experiment.add_figure(key, fig, global_step=0, close=False)
        experiment.flush()
    return written
