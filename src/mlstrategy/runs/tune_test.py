"""The test split of a tune: withheld from every trial, scored once for the chosen trial.

A search chooses on dev only (course week 1: dev to choose, test for an unbiased estimate of
the chosen one). So every trial trains and is scored with its data module's test split taken
out (:func:`withhold_test`, a ``before_fit`` hook of
:func:`~mlstrategy.runs.run.run_recipe`): its ``metrics.json``, report and TensorBoard hold
train, [train-dev] and dev alone. Once the study has chosen, :func:`chosen_test_scores`
rebuilds the chosen trial's model (its best checkpoint) and data from its run folder, scores
the test split, and keeps the scores in the study folder's ``test.json``; a rerun that finds
them scored for the same trial reads them instead of scoring again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mlstrategy.io import write_json_atomic
from mlstrategy.run_folder import TUNE_TEST_FILE

TEST = "test"


@dataclass
class ChosenTest:
    """The chosen trial's test scores, or why there are none.

    Attributes:
        scores: The test split's scalars (``error``, ``accuracy``, ``f1``, ``loss``, ``n``,
            ...), or None.
        note: Why there are no scores (None when there are).
    """

    scores: dict[str, Any] | None = None
    note: str | None = None


def withhold_test(console: Console | None = None) -> Callable[[Any], None]:
    """A ``before_fit`` hook that removes the test split from a data module, so that a trial
    is neither scored nor reported on test.

    The toolkit's data modules hand back their cached splits (``prepare()`` of in-memory data,
    ``split_files()`` of image folders), so removing ``test`` there is what ``setup()``, the
    scoring and the error analysis see. A data module that keeps no such splits is left as it
    is, with a note: the tune still never reads its test scores.
    """

    def apply(datamodule: Any) -> None:
        for reader in ("prepare", "split_files"):
            read = getattr(datamodule, reader, None)
            splits = read() if callable(read) else None
            if isinstance(splits, dict):
                splits.pop(TEST, None)
                return
        if console is not None:
            console.print(
                f"[yellow]note:[/] {type(datamodule).__name__} keeps no splits the tune can "
                "withhold test from (prepare() or split_files()), so its trials score test "
                "too; the study never reads those scores."
            )

    return apply


def chosen_test_scores(study_dir: Path, trial: str, run_dir: str | None) -> ChosenTest:
    """Score the chosen trial on test once, and keep the scores in ``study_dir/test.json``.

    Args:
        study_dir: The study folder.
        trial: The chosen trial's name (``trial 7``, ``2:trial 3``).
        run_dir: Its run folder (on the machine that ran it), or None.

    Returns:
        The scores, read back when ``test.json`` holds them for this trial and run folder,
        else scored now; or a note saying why there are none (the run folder is on another
        machine, the data has no test split).
    """
    if run_dir is None or not Path(run_dir).is_dir():
        return ChosenTest(note="the chosen trial's run folder is on the machine that ran it")
    path = study_dir / TUNE_TEST_FILE
    key = {"trial": trial, "run_dir": str(run_dir)}
    if path.is_file():
        saved = json.loads(path.read_text())
        if {k: saved.get(k) for k in key} == key:
            return ChosenTest(_scalars(saved["test"]))
    scored = score_test(Path(run_dir))
    if scored is None:
        return ChosenTest(note="the recipe's data has no test split")
    write_json_atomic(path, {**key, "checkpoint": scored.pop("checkpoint"), TEST: scored})
    return ChosenTest(_scalars(scored))


def score_test(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's test split, scored with its best checkpoint (else its last) on a quiet
    Trainer: the recipe's accelerator where this machine has it, else the CPU.

    Returns:
        The test row of :func:`~mlstrategy.evaluation.scoring.evaluate_splits` with the
        ``checkpoint`` scored, or None when the run's data has no test split.
    """
    import lightning as L

    from mlstrategy.evaluation.scoring import evaluate_splits
    from mlstrategy.runs.lightning_cli import quiet_lightning
    from mlstrategy.runs.trained_run import load_run, run_datamodule

    run = load_run(run_dir)
    with quiet_lightning():
        datamodule = run_datamodule(run)
        if TEST not in datamodule.split_names:
            return None
        trainer = L.Trainer(
            accelerator=_accelerator(run.config),
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        # The model already holds the checkpoint's weights (loaded weights-only by load_run).
        costs = (run.config.get("evaluation") or {}).get("class_costs")
        row = evaluate_splits(
            trainer, run.model, datamodule, ckpt_path=None, only=[TEST], class_costs=costs
        )[TEST]
    return {**row, "checkpoint": str(run.checkpoint)}


def _accelerator(config: dict[str, Any]) -> str:
    """The recipe's accelerator where this machine has it, else ``cpu``.

    Example:
        >>> _accelerator({"trainer": {"accelerator": "cpu"}})
        'cpu'
    """
    from lightning.pytorch.accelerators import AcceleratorRegistry

    wanted = str((config.get("trainer") or {}).get("accelerator") or "auto")
    if wanted in ("auto", "cpu"):
        return wanted
    name = "cuda" if wanted == "gpu" else wanted
    if name in AcceleratorRegistry and AcceleratorRegistry.get(name).is_available():
        return name
    return "cpu"


def _scalars(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "checkpoint"}
