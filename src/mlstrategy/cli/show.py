"""What the verbs print: a finished run, and a comparison of runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from mlstrategy.runs.compare import Comparison
    from mlstrategy.runs.run import RunResult


def print_run(result: RunResult, console: Console) -> None:
    """A run's scores per split, per task for a multi-task run, its diagnosis and where it is."""
    from mlstrategy.reporting.tables import diagnosis_renderable, summary_table
    from mlstrategy.reporting.tasks import task_renderable
    from mlstrategy.run_folder import REPORT_FILE

    metrics, run_dir = result.metrics, result.run_dir
    title = f"{metrics['recipe']}  ({metrics['fit_seconds']:.1f} s fit)"
    console.print(summary_table(metrics, title=title))
    print_sampling(result.splits, console)
    if result.task_diagnoses:
        console.print(task_renderable(result.splits, result.task_diagnoses))
    if isinstance(result.diagnosis, str):
        console.print(f"diagnosis skipped: {result.diagnosis}.", markup=False)
    else:
        console.print(diagnosis_renderable(result.diagnosis))
    same = result.analysis.get("same_distribution") or {}
    if same.get("differ"):
        console.print(f"[bold yellow]warning:[/] {escape(same['message'])}")
    console.print(
        f"run folder: {run_dir}  ·  report: {run_dir / REPORT_FILE}  ·  "
        f"tensorboard --logdir {run_dir.parent.parent}",
        markup=False,
    )


def print_sampling(splits: dict, console: Console) -> None:
    """One line: each split's error with its binomial standard error, and the smallest
    difference in dev error two models need for this dev set to tell them apart at 95%."""
    from mlstrategy.evaluation.sampling import split_sampling

    sampling = split_sampling(splits)
    if not sampling:
        return
    parts = [
        f"{split} {100 * r['error']:.2f}% ± {100 * r['standard_error']:.2f}"
        for split, r in sampling.items()
    ]
    line = "error ± standard error: " + ", ".join(parts)
    if "dev" in sampling:
        dev = sampling["dev"]
        line += (
            f"  ·  dev (n={dev['n']:,}): a difference of "
            f"{100 * dev['detectable_difference']:.2f} points would be significant at 95%"
        )
    console.print(line, highlight=False)


def print_comparison(comparison: Comparison, console: Console, title: str | None = None) -> None:
    """The comparison table (the winner marked), the per-task table of multi-task runs, and
    the winner with its test error, or why there is none."""
    from mlstrategy.reporting.tables import compare_table
    from mlstrategy.reporting.tasks import task_comparison_table

    rules, selection = comparison.rules, comparison.selection
    if rules.note:
        console.print(f"[yellow]note:[/] {escape(rules.note)}")
    text = f"optimize {rules.optimize} ({selection.goal})"
    if selection.constraints:
        text += ", satisfy " + ", ".join(str(c) for c in selection.constraints)
    # The rules on their own line: as a table title they would wrap to the table's width.
    console.print(f"[bold]{escape(title or 'comparison')}[/]: {escape(text)}", highlight=False)
    console.print(compare_table(selection, columns=[*comparison.columns, "params"]))
    for warning in comparison.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    # Multi-task runs: each task's F1 side by side (the table is empty for other runs).
    per_task = task_comparison_table(comparison.metrics)
    if len(per_task.columns) > 1:  # a column per multi-task run; none in other studies
        console.print(per_task)
    if selection.winner is None:
        console.print(
            "[bold red]no winner:[/] no run meets every satisficing constraint. Relax a "
            "constraint, or train a model that meets them (e.g. a smaller one for latency)."
        )
        return
    from mlstrategy.evaluation.selection import flatten_metrics

    values = flatten_metrics(comparison.metrics[selection.winner])
    # The test split was not used to choose, so its error is an unbiased estimate.
    test = f", test/error = {values['test/error']:.4g}" if "test/error" in values else ""
    console.print(
        f"[bold green]winner:[/] {escape(selection.winner)} ({rules.optimize} = "
        f"{values[rules.optimize]:.4g}{test})  ·  {escape(str(comparison.winner_dir))}"
    )
