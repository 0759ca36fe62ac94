"""A tune's settings: what a study is (``study.json``), how its recipe is parsed and checked
without building anything, and the sampler and pruner it uses."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import optuna

from mlstrategy.evaluation.selection import default_goal
from mlstrategy.run_folder import TUNE_STUDY_FILE
from mlstrategy.runs.compare import GoalName, Rules
from mlstrategy.runs.lightning_cli import PLACEMENT, placed_trainer
from mlstrategy.runs.tune_trials import TrialRecord

SAMPLERS = ("random", "tpe")
PRUNERS = ("median", "none")


@dataclass
class StudySetup:
    """What a study is, as ``study.json`` records it (written once, when the study starts).

    Attributes:
        name: The Optuna study name (``--study``; default: the recipe's name).
        storage: The storage URL (``journal:PATH``, ``sqlite:///...``, a database URL).
        configs: The recipe's files, base first.
        overrides: The overrides applied to every trial.
        search: The ``search:`` section (a refined study's narrowed one).
        sampler: ``random`` or ``tpe``.
        pruner: ``median`` or ``none``.
        seed: The sampler's seed (random: trial k's values depend on (seed, k) only).
        parent: The study folder this one refines, if any.
        stage: 1, or one more than the parent's.
    """

    name: str
    storage: str
    configs: list[str]
    overrides: list[str]
    search: dict[str, Any]
    sampler: str = "random"
    pruner: str = "median"
    seed: int = 0
    parent: str | None = None
    stage: int = 1


def load_setup(study_dir: Path) -> StudySetup:
    """The study a folder holds.

    Raises:
        ValueError: the folder holds no ``study.json``.
    """
    path = study_dir / TUNE_STUDY_FILE
    if not path.is_file():
        raise ValueError(
            f"{study_dir} is not a study folder (no {TUNE_STUDY_FILE}). Give a folder that "
            "`mlstrategy tune RECIPE` wrote, e.g. logs/tune/mlp, or a recipe with a search: "
            "section."
        )
    return StudySetup(**json.loads(path.read_text()))


def rules_of(config: dict[str, Any]) -> tuple[Rules, str]:
    evaluation = config.get("evaluation") or {}
    optimize = str(evaluation.get("optimize") or "dev/f1")
    given = str(evaluation.get("goal") or "auto")
    satisfy = tuple(str(c) for c in evaluation.get("satisfy") or ())
    rules = Rules(optimize, cast(GoalName, given), satisfy)
    return rules, default_goal(optimize) if given == "auto" else given


_SIDE_BY_SIDE = (
    "Optuna runs trials side by side instead: drop --trainer.devices / --trainer.num_nodes (and "
    "devices, num_nodes from the recipe) and start one worker per GPU, all sharing one storage, "
    "e.g. `CUDA_VISIBLE_DEVICES=0 mlstrategy tune RECIPE --storage journal:study.log &` and "
    "`CUDA_VISIBLE_DEVICES=1 mlstrategy tune RECIPE --storage journal:study.log`."
)


def one_process(trainer: dict[str, Any], searched: Sequence[str] = ()) -> tuple[str, ...]:
    """The overrides that keep every trial in one process: none, or ``--trainer.devices=1``
    for a trainer left at ``devices: auto`` on a machine with several GPUs.

    Optuna runs trials side by side rather than each across processes: a study uses several
    GPUs through one worker per GPU, all sharing its storage.

    Args:
        trainer: The recipe's trainer section, overrides applied.
        searched: The recipe keys the search samples.

    Raises:
        ValueError: the recipe, its overrides, its search or the launch (``WORLD_SIZE`` above
            1, as torchrun sets it) ask for several processes.
    """
    placed = [k for k in searched if k.removeprefix("trainer.") in PLACEMENT]
    if placed:
        raise ValueError(
            f"tune trains each trial in one process on the device the recipe names, so the "
            f"search cannot sample {', '.join(placed)}: remove it from search: and set it in "
            "the recipe."
        )
    world = os.environ.get("WORLD_SIZE", "1")
    if world.strip() not in ("", "1"):
        raise ValueError(
            f"tune trains each trial in one process, and it was launched as one of {world} "
            f"(WORLD_SIZE={world}: torchrun, or another launcher). {_SIDE_BY_SIDE}"
        )
    built = placed_trainer(trainer)
    if built.world_size == 1:
        return ()
    if built.num_nodes == 1 and str(trainer.get("devices") or "auto") == "auto":
        return ("--trainer.devices=1",)
    raise ValueError(
        f"tune trains each trial in one process, and this one asks for {built.world_size} "
        f"({built.num_nodes} node(s) of {built.num_devices} device(s)). {_SIDE_BY_SIDE}"
    )


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # The constraints decide feasibility for TPE too (values <= 0 hold).
        return optuna.samplers.TPESampler(
            constraints_func=lambda t: t.user_attrs.get("constraints") or [0.0]
        )
    return TrialSeededRandomSampler(seed)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "none":
        return optuna.pruners.NopPruner()
    # Five trials run whole before any is judged; none is judged on its first 3 epochs,
    # where the cost still depends mostly on the learning rate's first steps.
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


class TrialSeededRandomSampler(optuna.samplers.RandomSampler):
    """Random sampling where trial k's values depend only on (seed, k): a study reruns the
    same, and workers sharing a study (who get different trial numbers) never repeat a point.

    Args:
        seed: The study's seed.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.seed = seed

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._rng.rng.seed([self.seed, trial.number])


def check_choice(flag: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{flag} {value!r}: use one of {', '.join(allowed)}.")


def trial_line(record: TrialRecord, rules: Rules) -> str:
    values = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in record.values.items())
    if record.state == "complete":
        outcome = f"{rules.optimize}={record.value:.4g}" if record.value is not None else "no value"
        if record.failures:
            outcome += f" (infeasible: {'; '.join(record.failures)})"
    elif record.state == "pruned":
        outcome = f"pruned after epoch {record.pruned_at}"
    else:
        outcome = f"{record.state}: {record.error or ''}".rstrip(": ")
    return f"{record.name}: {values} -> {outcome}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
