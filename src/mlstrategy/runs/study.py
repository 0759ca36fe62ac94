"""A study: every recipe of a folder run in name order, then compared by the recipes' rules."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mlstrategy.reporting.curves import write_study_curves
from mlstrategy.reporting.mismatch import write_mismatch_study
from mlstrategy.run_folder import LOGS_DIR
from mlstrategy.runs.compare import Comparison, compare_runs, recorded_rules
from mlstrategy.runs.errors import user_message
from mlstrategy.runs.lightning_cli import parse_recipe, quiet_lightning
from mlstrategy.runs.run import RunResult, run_recipe


@dataclass
class StudyResult:
    """The runs of a study and their comparison.

    Attributes:
        logs_dir: The study's folder of runs, ``logs/<study>``.
        runs: Every run, in the order they ran.
        comparison: The runs compared by the first recipe's rules.
    """

    logs_dir: Path
    runs: list[RunResult]
    comparison: Comparison


def run_study(
    folder: Path,
    recipes: Sequence[Sequence[Path]],
    overrides: Sequence[str] = (),
    console: Console | None = None,
    on_run: Callable[[RunResult], None] | None = None,
    logs_dir: Path = Path(LOGS_DIR),
) -> StudyResult:
    """Run each recipe of a study folder into ``logs/<study>/``, then compare them.

    Args:
        folder: The study folder (its name names the study).
        recipes: Each recipe's config files, from
            :func:`~mlstrategy.runs.recipes.recipe_configs`.
        overrides: Dotted overrides applied to every recipe.
        console: Where progress lines go.
        on_run: Called with each finished run (the CLI prints its scores).
        logs_dir: The logs root.

    Returns:
        The runs and their comparison.

    Raises:
        ValueError: some recipe (with the overrides) does not parse; nothing is trained then.
    """
    _check_recipes(folder, recipes, overrides)
    # A study's runs share one folder, so `compare logs/<study>` and TensorBoard see just them.
    study_logs = logs_dir / folder.resolve().name
    results = []
    for configs in recipes:
        result = run_recipe(configs, overrides, console, logs_dir=study_logs)
        if on_run is not None:
            on_run(result)
        results.append(result)
    writer = _after_rank_zero_wrote()
    run_dirs = [r.run_dir for r in results]
    comparison = compare_runs(run_dirs, recorded_rules(run_dirs))
    if not writer:
        return StudyResult(study_logs, results, comparison)
    # Runs on two distributions (a source and a target): their five errors side by side.
    names = [comparison.names.get(r.run_dir, r.run_dir.parent.name) for r in results]
    runs = [(n, r.diagnosis, r.analysis) for n, r in zip(names, results, strict=True)]
    written = write_mismatch_study(study_logs, runs)
    if written and console is not None:
        console.print(
            f"two distributions: {written['report']} and {written['figure']}", markup=False
        )
    # Every run's cost per epoch and per step on one chart, and each layer's gradient norm.
    curves = write_study_curves(study_logs, dict(zip(names, run_dirs, strict=True)))
    if curves and console is not None:
        console.print(f"training curves: {curves['report']}", markup=False)
    return StudyResult(study_logs, results, comparison)


def _check_recipes(
    folder: Path, recipes: Sequence[Sequence[Path]], overrides: Sequence[str]
) -> None:
    """Parse every recipe of the study before the first fit: a typo in the last recipe fails
    the study before any training, as it fails a single recipe, instead of after the others
    trained."""
    bad: list[tuple[Path, BaseException]] = []
    for configs in recipes:
        try:
            with quiet_lightning():
                parse_recipe(configs, overrides)
        except (ValueError, argparse.ArgumentError) as err:
            bad.append((configs[-1], err))
    if not bad:
        return
    messages = {user_message(err) for _, err in bad}
    if len(bad) == len(recipes) and len(messages) == 1:
        raise bad[0][1]  # every recipe alike: the command line's mistake (--humen-error), once
    listed = "\n".join(f"  - {recipe}: {user_message(err)}" for recipe, err in bad)
    raise ValueError(
        f"The study {folder} has {len(bad)} recipe(s) that do not parse, so nothing was "
        f"trained:\n{listed}\nFix each one (or move it out of the folder), then run the "
        "study again."
    )


def _after_rank_zero_wrote() -> bool:
    """Whether this process writes the study's own files: True in a plain run; in a
    distributed one (the runs trained with ``strategy: ddp``), True on rank 0 only, once every
    process has got here. Rank 0 writes each run's ``metrics.json`` after the other processes
    have scored it, so without the wait they would compare runs that have not finished yet.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return True
    dist.barrier()
    return dist.get_rank() == 0
