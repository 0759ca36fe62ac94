"""``mlstrategy diagnose RUN_DIR``: re-print a finished run's scores and diagnosis."""

from __future__ import annotations

import argparse

from rich.console import Console

DIAGNOSE_HELP = """\
Re-print the scores and the diagnosis of a finished run (one that `mlstrategy run` wrote).

RUN_DIR is a run folder, logs/<recipe>/<timestamp>, or a recipe's folder, logs/<recipe>, for
its latest finished run. The diagnosis uses the human-level error the recipe gave
(evaluation.human_error) unless --human-error overrides it:

  avoidable bias     = train error - human-level error
  variance           = train-dev error - train error   (dev - train without a train-dev split)
  data mismatch      = dev error - train-dev error
  overfitting to dev = test error - dev error

The largest gap is named with the course's remedies. The full report, with the confusion
matrix, cost curve and error analysis, is report.md in the run folder.
"""


def main(argv: list[str], console: Console) -> int:
    """Print the scores and the diagnosis of the run folder named on the command line."""
    from mlstrategy.evaluation.diagnosis import diagnose_run
    from mlstrategy.evaluation.human_level import parse_human_error_option
    from mlstrategy.evaluation.multitask import diagnose_tasks, is_multitask_run
    from mlstrategy.reporting.tables import diagnosis_renderable, summary_table
    from mlstrategy.reporting.tasks import task_renderable
    from mlstrategy.run_folder import REPORT_FILE, find_run, load_metrics, load_settings

    parser = argparse.ArgumentParser(
        prog="mlstrategy diagnose",
        description=DIAGNOSE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a recipe's folder")
    parser.add_argument(
        "--human-error",
        default=None,
        help="human-level error: a fraction for a classifier (5%% -> 0.05), in the target's "
        "units for a regressor (an RMSE, or the recipe's error_metric), or the course's "
        "levels, typical=0.03,expert=0.01,team=0.005 (the lowest is the proxy); default: the "
        "recipe's",
    )
    args = parser.parse_args(argv)
    run_dir = find_run(args.run_dir)
    metrics = load_metrics(run_dir)
    recorded = load_settings(run_dir)
    human_error = (
        parse_human_error_option(args.human_error)
        if args.human_error is not None
        else recorded.get("human_levels") or recorded.get("human_error")
    )
    splits = metrics["splits"]
    # Diagnosed before anything is printed: a bad --human-error (1.5 for a classifier) is
    # one error line, not a score table and then an error.
    tasks = diagnose_tasks(splits, human_error) if is_multitask_run(splits) else None
    diagnosis = diagnose_run(splits, human_error, recorded.get("error_metric"))
    console.print(summary_table(metrics, title=f"{metrics.get('recipe', run_dir)}  ({run_dir})"))
    if tasks is not None:
        console.print(task_renderable(splits, tasks))
    if isinstance(diagnosis, str):
        console.print(f"diagnosis skipped: {diagnosis}.", markup=False)
    else:
        console.print(diagnosis_renderable(diagnosis))
    report = run_dir / REPORT_FILE
    if report.is_file():
        console.print(f"full report: {report}", markup=False)
    return 0
