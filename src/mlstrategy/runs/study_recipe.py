"""How ``mlstrategy run`` runs a study recipe: parse it, build its study, give it a run folder.

A *study recipe* is a YAML file with a ``study:`` section naming a
:class:`~mlstrategy.pipeline.study.Study` class (``class_path`` + ``init_args``, checked like
any LightningCLI config) instead of ``model``/``data``/``trainer``, e.g.
``recipes/end_to_end/end_to_end_vs_pipeline.yaml``. ``mlstrategy run RECIPE`` runs it and
writes one run folder, ``logs/<recipe>/<timestamp>/``, holding ``config.yaml`` and what the
study writes (``FAILED`` with the reason if it fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from mlstrategy.pipeline.study import Study
from mlstrategy.pipeline.study_report import RESULTS_FILE
from mlstrategy.run_folder import CONFIG_FILE, REPORT_FILE, mark_failed, new_run_version, shown
from mlstrategy.runs.errors import user_message
from mlstrategy.runs.lightning_cli import quiet_lightning


def is_study_recipe(path: Path) -> bool:
    """True when the YAML file at ``path`` has a top-level ``study:`` section."""
    try:
        tree = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(tree, dict) and "study" in tree


def run_study_recipe(
    configs: Sequence[Path],
    overrides: Sequence[str],
    console: Console,
    logs_dir: Path,
    resume: str | None = None,
) -> dict[str, Any]:
    """Parse a study recipe (plus dotted overrides), run the study, write its run folder.

    Args:
        configs: The recipe files, later ones overriding earlier ones.
        overrides: ``--study.init_args.KEY=VALUE`` overrides.
        console: Where progress and tables are printed.
        logs_dir: The folder run folders go under (``logs``).
        resume: ``run --resume``'s value; a study has no checkpoint to resume, so any value
            is refused.

    Returns:
        The study's results (also in ``study.json`` in the run folder).

    Raises:
        ValueError: ``resume`` was given, or the recipe does not parse into a study (the
            message names the argument).
    """
    if resume is not None:
        raise ValueError(
            f"--resume={resume}: {configs[-1]} is a study recipe, which keeps no checkpoint to "
            "resume from; run it again without --resume."
        )
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="mlstrategy run", exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(Study, "study", required=True)
    args = [*(f"--config={c}" for c in configs), *overrides]
    try:
        config = parser.parse_args(args)
        study = parser.instantiate(config).study
    except Exception as err:  # jsonargparse's errors, and ValueErrors of the classes it builds
        raise ValueError(f"Study recipe {configs[-1]}: {user_message(err)}") from None
    name = Path(configs[-1]).stem
    run_dir = Path(logs_dir) / name / new_run_version(Path(logs_dir), name)
    where = shown(run_dir)
    console.print(f"[bold]study[/] {escape(str(configs[-1]))} -> {escape(str(where))}")
    (run_dir / CONFIG_FILE).write_text(parser.dump(config, skip_none=False))
    try:
        with quiet_lightning():  # the study's many small fits print their own lines
            results = study.run(run_dir, console)
    except BaseException as err:
        mark_failed(run_dir, err)
        console.print(
            f"[red]study failed[/]; {escape(str(where))} is incomplete (no {RESULTS_FILE})"
        )
        raise
    console.print(
        f"run folder: {where}  ·  report: {where / REPORT_FILE}  ·  tensorboard --logdir {where}",
        markup=False,
    )
    return results
