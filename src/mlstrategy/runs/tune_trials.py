"""A tune's trials as the toolkit reads them: records, the choice on dev, the best recipe,
HParams.

Each trial records on the Optuna study (user attributes, so workers on other machines see them)
its recipe values, its dev and train scores (never test), whether it meets the recipe's
``satisfy`` constraints, its run folder and its resolved config. The best trial is the best
*feasible* one on ``evaluation.optimize`` (:func:`mlstrategy.evaluation.selection.select`, the
rule ``compare`` uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial, TrialState

from mlstrategy.evaluation.selection import Selection, flatten_metrics, parse_constraint, select
from mlstrategy.io import write_text_atomic
from mlstrategy.run_folder import TUNE_BEST_RECIPE, TUNE_HPARAMS_DIR
from mlstrategy.runs.compare import Rules
from mlstrategy.runs.tune_pruning import PRUNED_AT_ATTR
from mlstrategy.runs.tune_storage import INTERRUPTED_ATTR

SURPLUS_ATTR = "surplus"  # asked after the budget was reached by another worker: never run
_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


@dataclass
class TrialRecord:
    """One trial of a study.

    Attributes:
        number: Optuna's trial number.
        state: ``complete``, ``pruned``, ``failed``, ``running`` or ``waiting``.
        params: The sampled parameters by Optuna name (``KEY:1-beta`` holds ``1 - beta``).
        values: ``{recipe key: value}`` the trial ran with.
        value: The objective (``evaluation.optimize`` on dev), or None.
        metrics: Its train and dev scores, flattened (``dev/error``, ``train/f1``, ...).
        failures: The ``satisfy`` constraints it misses.
        run_dir: Its run folder (on the machine that ran it).
        epochs: Epochs trained; max_epochs: epochs the recipe asked for.
        pruned_at: The epoch after which it was pruned.
        error: Why it failed.
        stage: 1 for a study, 2 for its refined child, ...
    """

    number: int
    state: str
    params: dict[str, Any]
    values: dict[str, Any]
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    run_dir: str | None = None
    epochs: int | None = None
    max_epochs: int | None = None
    pruned_at: int | None = None
    error: str | None = None
    stage: int = 1

    @property
    def name(self) -> str:
        """How the trial is shown: ``trial 7`` (``2:trial 7`` in a refined stage)."""
        return f"trial {self.number}" if self.stage == 1 else f"{self.stage}:trial {self.number}"

    @property
    def feasible(self) -> bool:
        """Complete, scored, and meeting every constraint."""
        return self.state == "complete" and self.value is not None and not self.failures

    @property
    def epochs_saved(self) -> int:
        """Epochs the pruner spared this trial."""
        if self.state != "pruned" or self.pruned_at is None or self.max_epochs is None:
            return 0
        return max(0, self.max_epochs - (self.pruned_at + 1))


def dev_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """A run's selectable numbers without any test score (tuning never sees test).

    Example:
        >>> dev_scores({"params": 3, "splits": {"dev": {"error": 0.1}, "test": {"error": 0.2}}})
        {'params': 3.0, 'dev/error': 0.1}
    """
    return {k: v for k, v in flatten_metrics(metrics).items() if not k.startswith("test/")}


def check_rules(rules: Rules) -> None:
    """Refuse rules that would choose on the test split.

    Example:
        >>> check_rules(Rules(optimize="test/f1"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: evaluation.optimize=test/f1: a search chooses on the dev set only...
    """
    metrics = [("evaluation.optimize", rules.optimize)]
    metrics += [("evaluation.satisfy", parse_constraint(c).metric) for c in rules.satisfy]
    for where, metric in metrics:
        if metric.startswith("test/"):
            raise ValueError(
                f"{where}={metric}: a search chooses on the dev set only, and test is scored "
                f"once, for the chosen trial. Use {metric.replace('test/', 'dev/', 1)} instead."
            )


def violations(rules: Rules, metrics: dict[str, float]) -> tuple[list[str], list[float]]:
    """The constraints ``metrics`` misses, as text, and Optuna's constraint values (<= 0 holds).

    Example:
        >>> violations(Rules(satisfy=("latency_ms<=5",)), {"latency_ms": 7.0})
        (['latency_ms<=5 (7)'], [2.0])
    """
    failures: list[str] = []
    amounts: list[float] = []
    for text in rules.satisfy:
        c = parse_constraint(text)
        value = metrics.get(c.metric)
        if value is None or math.isnan(value):
            failures.append(f"{c} (no {c.metric})")
            amounts.append(1.0)
            continue
        holds = c.holds(value)
        if not holds:
            failures.append(f"{c} ({value:.4g})")
        gap = value - c.threshold if c.op in ("<=", "<") else c.threshold - value
        amounts.append(0.0 if holds else max(abs(gap), 1e-12))
    return failures, amounts


def to_record(trial: FrozenTrial, stage: int = 1) -> TrialRecord | None:
    """The record of a trial, or None for one that never ran (interrupted, surplus)."""
    attrs = trial.user_attrs
    if attrs.get(INTERRUPTED_ATTR) or attrs.get(SURPLUS_ATTR):
        return None
    value = trial.value if trial.state == TrialState.COMPLETE else None
    return TrialRecord(
        number=trial.number,
        state=_STATES.get(trial.state, str(trial.state)),
        params=dict(trial.params),
        values=dict(attrs.get("values") or {}),
        value=None if value is None or math.isnan(value) else float(value),
        metrics=dict(attrs.get("metrics") or {}),
        failures=list(attrs.get("failures") or []),
        run_dir=attrs.get("run_dir"),
        epochs=attrs.get("epochs"),
        max_epochs=attrs.get("max_epochs"),
        pruned_at=attrs.get(PRUNED_AT_ATTR),
        error=attrs.get("error"),
        stage=stage,
    )


def choose(records: Sequence[TrialRecord], rules: Rules, goal: str) -> Selection | None:
    """The trials compared on dev by the recipe's rules (the winner: best feasible), or None
    when no trial completed."""
    done = {r.name: r.metrics for r in records if r.state == "complete" and r.metrics}
    if not done:
        return None
    return select(done, rules.optimize, list(rules.satisfy), goal=goal)  # type: ignore[arg-type]


def best_recipe_path(study_dir: Path) -> Path:
    """Where a study writes its best recipe: ``<study>_best.yaml`` in the study folder.

    ``mlstrategy run`` names a run folder by the recipe file's name, so the study's name in
    it gives each study's best recipe its own folder of runs (``logs/mlp_best/``) instead of
    one ``logs/best/`` that every study's chosen trial would share.

    Example:
        >>> best_recipe_path(Path("logs/tune/mlp-refine")).as_posix()
        'logs/tune/mlp-refine/mlp-refine_best.yaml'
    """
    return study_dir / f"{study_dir.name}_{TUNE_BEST_RECIPE}"


def best_recipe(config_text: str, header: str) -> str:
    """The best recipe (:func:`best_recipe_path`): the chosen trial's resolved config, a
    complete recipe that ``mlstrategy run`` reproduces, without the ``search:`` section or the
    tune's pruning callback."""
    config = yaml.safe_load(config_text) or {}
    config.pop("search", None)
    trainer = config.get("trainer") or {}
    callbacks = [
        c
        for c in trainer.get("callbacks") or []
        if not str((c or {}).get("class_path", "")).endswith("DevCostPruning")
    ]
    if "callbacks" in trainer:
        trainer["callbacks"] = callbacks or None
    body = yaml.safe_dump(config, sort_keys=False)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + body


def write_best_recipe(path: Path, config_text: str, header: str) -> Path:
    """Write :func:`best_recipe` to ``path`` (atomically)."""
    write_text_atomic(path, best_recipe(config_text, header))
    return path


def write_trial_hparams(study_dir: Path, record: TrialRecord) -> None:
    """TensorBoard's HParams row of one trial under ``study_dir/hparams/trial_NNN``: the
    sampled recipe values and the dev scores (no ``hp_metric`` placeholder, no test score)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    hp: dict[str, Any] = {"state": record.state, "stage": record.stage}
    for key, value in record.values.items():
        hp[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    metrics = {
        f"tune/{k}": v
        for k, v in record.metrics.items()
        if k.startswith("dev/") and k.count("/") == 1 and isinstance(v, float)
    }
    if record.value is not None:
        metrics["tune/objective"] = record.value
    folder = study_dir / TUNE_HPARAMS_DIR / f"stage{record.stage}_trial_{record.number:03d}"
    with SummaryWriter(log_dir=str(folder)) as writer:
        exp, ssi, sei = hparams(hp, metrics)
        writer.file_writer.add_summary(exp)
        writer.file_writer.add_summary(ssi)
        writer.file_writer.add_summary(sei)
        for name, value in metrics.items():
            writer.add_scalar(name, value)
