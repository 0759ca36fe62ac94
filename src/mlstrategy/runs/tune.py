"""Hyperparameter search as the course teaches it: random, on log scales, coarse to fine, on dev.

``tune(recipe, trials)`` turns a recipe's ``search:`` section into an Optuna study in
``logs/tune/<study>/``. Each trial is an ordinary run (:func:`~mlstrategy.runs.run.run_recipe`)
in ``trial_NNN/`` of the study folder, with the sampled values as overrides; its objective is
the recipe's ``evaluation.optimize`` on dev, its ``satisfy`` constraints decide feasibility, and
a pruner (median by default) reads its dev cost every epoch. ``--trials N`` is the study's
budget in all: the same command run again (after a kill, or on another machine sharing the
storage) continues the study until N trials have run. ``refine(study_dir)`` starts a child
study with the ranges narrowed around the best trials.

The chosen trial is the best feasible one on dev. Every trial trains and is scored with its
test split withheld (:mod:`mlstrategy.runs.tune_test`), so no trial's run folder holds a test
score; once the study has chosen, the chosen trial alone is scored on test, once, into the
study folder's ``test.json`` and report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console

from mlstrategy.evaluation.selection import Selection
from mlstrategy.io import write_json_atomic
from mlstrategy.run_folder import (
    CONFIG_FILE,
    LOGS_DIR,
    TUNE_DIR,
    TUNE_STUDY_FILE,
)
from mlstrategy.runs.compare import Rules
from mlstrategy.runs.lightning_cli import parse_recipe, quiet_lightning
from mlstrategy.runs.recipes import one_recipe, recipe_configs
from mlstrategy.runs.run import run_recipe
from mlstrategy.runs.search_space import SearchSpace, config_keys, override
from mlstrategy.runs.tune_pruning import pruning_override, register, unregister
from mlstrategy.runs.tune_setup import (
    PRUNERS,
    SAMPLERS,
    StudySetup,
    check_choice,
    load_setup,
    make_pruner,
    make_sampler,
    one_process,
    rules_of,
    trial_line,
)
from mlstrategy.runs.tune_storage import (
    INTERRUPTED_ATTR,
    WORKER_ATTR,
    open_storage,
    reclaim_dead_trials,
    storage_url,
    worker_id,
)
from mlstrategy.runs.tune_test import chosen_test_scores, withhold_test
from mlstrategy.runs.tune_trials import (
    SURPLUS_ATTR,
    TrialRecord,
    best_recipe_path,
    check_rules,
    choose,
    dev_scores,
    to_record,
    violations,
    write_best_recipe,
    write_trial_hparams,
)

# Trials print one line each under the study's progress bar instead of Lightning's own bars.
_QUIET = ("--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false")
_FAILED_IN_A_ROW = 3  # a worker whose first trials all fail stops: the recipe is broken


@dataclass
class TuneResult:
    """A finished (or continued) tune.

    Attributes:
        study_dir: The study folder.
        setup: What the study is.
        records: Its trials (those that ran), by number; parents: the parent stages' trials.
        selection: The trials compared on dev (None: no trial completed).
        best: The chosen trial (None: no trial met every constraint).
        test: The chosen trial's test scores, scored once after choosing (None: see
            test_note).
        test_note: Why there are no test scores (its run folder is on another machine, the
            data has no test split).
        best_recipe: ``<study>_best.yaml`` (:func:`~mlstrategy.runs.tune_trials.best_recipe_path`),
            or None without a chosen trial.
        report: ``report.md``.
    """

    study_dir: Path
    setup: StudySetup
    records: list[TrialRecord]
    parents: list[TrialRecord] = field(default_factory=list)
    selection: Selection | None = None
    best: TrialRecord | None = None
    test: dict[str, Any] | None = None
    test_note: str | None = None
    best_recipe: Path | None = None
    report: Path | None = None

    @property
    def epochs_saved(self) -> int:
        """Epochs the pruner spared, over this stage's trials."""
        return sum(r.epochs_saved for r in self.records)


TrialCallback = Callable[[TrialRecord, "TrialRecord | None", int, int], None]


def tune(
    recipe: Path,
    trials: int,
    overrides: Sequence[str] = (),
    sampler: str = "random",
    pruner: str = "median",
    storage: str | None = None,
    study: str | None = None,
    logs_dir: Path = Path(LOGS_DIR),
    console: Console | None = None,
    on_trial: TrialCallback | None = None,
    seed: int = 0,
) -> TuneResult:
    """Search a recipe's ``search:`` ranges with ``trials`` trials in all (see module doc).

    Args:
        recipe: A recipe file with a ``search:`` section.
        trials: The study's budget, counted over every run of the command and every worker.
        overrides: Dotted overrides applied to every trial (``--trainer.max_epochs=3``).
        sampler: ``random`` (the course's advice) or ``tpe``.
        pruner: ``median`` (Optuna's MedianPruner on the dev cost per epoch) or ``none``.
        storage: ``journal:PATH``, an RDB URL, or None for SQLite in the study folder.
        study: The study's name (workers sharing a storage give the same); default: the
            recipe's name. The study folder is ``logs_dir/tune/<study>``.
        logs_dir: The logs root.
        console: Where each trial's line goes.
        on_trial: Called after each trial this process ran with (record, best so far, trials
            finished, budget): the CLI's progress bar.
        seed: The sampler's seed.

    Raises:
        ValueError: bad input (see :class:`~mlstrategy.runs.search_space.SearchSpace`,
            :func:`~mlstrategy.runs.tune_storage.storage_url`), or settings that differ from
            the study already in that folder.
    """
    path = one_recipe(str(recipe), "tune", "recipes/tune/mlp.yaml")
    check_choice("--sampler", sampler, SAMPLERS)
    check_choice("--pruner", pruner, PRUNERS)
    configs = recipe_configs(path)[0]
    name = study or path.stem
    study_dir = logs_dir / TUNE_DIR / name
    with quiet_lightning():
        config = parse_recipe(configs, overrides)
    setup = StudySetup(
        name=name,
        storage=storage_url(storage, study_dir),
        configs=[str(c) for c in configs],
        overrides=list(overrides),
        search=dict(config.get("search") or {}),
        sampler=sampler,
        pruner=pruner,
        seed=seed,
    )
    return run_study(setup, study_dir, trials, console, on_trial)


def refine(
    study_dir: Path,
    trials: int,
    top: int | None = None,
    storage: str | None = None,
    console: Console | None = None,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Coarse to fine: a child study of ``study_dir`` whose ranges span its best trials.

    The child lives beside the parent, ``<study>-refine/``, records its parent, and runs the
    same recipe and overrides; run again, it continues.

    Args:
        study_dir: A study folder ``tune`` wrote.
        trials: The child's budget.
        top: How many of the parent's best feasible trials to narrow around (default: a
            quarter of them, at least 3).
        storage: The child's storage (default: SQLite in its own folder).
        console: Where each trial's line goes.
        on_trial: As for :func:`tune`.
    """
    setup = load_setup(study_dir)
    child_dir = study_dir.parent / f"{setup.name}-refine"
    if (child_dir / TUNE_STUDY_FILE).is_file():
        return run_study(load_setup(child_dir), child_dir, trials, console, on_trial)
    parent = study_records(setup)
    rules, goal = rules_of(parse_recipe([Path(c) for c in setup.configs], setup.overrides))
    selection = choose(parent, rules, goal)
    feasible = [c for c in selection.candidates if c.eligible] if selection else []
    keep = top or max(3, len(feasible) // 4)
    by_name = {r.name: r for r in parent}
    best = [by_name[c.name].params for c in feasible[:keep]]
    narrowed = SearchSpace(setup.search).narrowed(best)
    child = replace(
        setup,
        name=child_dir.name,
        storage=storage_url(storage, child_dir),
        search=narrowed.to_section(),
        parent=str(study_dir),
        stage=setup.stage + 1,
    )
    return run_study(child, child_dir, trials, console, on_trial)


def continue_study(
    study_dir: Path,
    trials: int,
    console: Console | None = None,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Run the study in ``study_dir`` on to ``trials`` trials (``tune STUDY_DIR``)."""
    return run_study(load_setup(study_dir), study_dir, trials, console, on_trial)


def study_records(setup: StudySetup) -> list[TrialRecord]:
    """Every trial of a study that ran, by number."""
    study = optuna.load_study(study_name=setup.name, storage=open_storage(setup.storage))
    found = (to_record(t, setup.stage) for t in study.get_trials(deepcopy=False))
    return [r for r in found if r is not None]


def run_study(
    setup: StudySetup,
    study_dir: Path,
    trials: int,
    console: Console | None = None,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Run ``setup``'s study to ``trials`` trials in ``study_dir``, then write its report."""
    from mlstrategy.safety import check_recipe

    if trials < 1:
        raise ValueError(f"--trials {trials}: a study needs at least 1 trial.")
    configs = [Path(c) for c in setup.configs]
    # A recorded recipe is vetted like a given one, and so is the search space read back from
    # study.json (its choices become every trial's overrides).
    check_recipe(configs, [*setup.overrides, "--search=" + json.dumps(setup.search)])
    with quiet_lightning():
        config = parse_recipe(configs, setup.overrides)
        rules, goal = rules_of(config)
        check_rules(rules)
        space = SearchSpace(setup.search, config_keys(config))
        pinned = one_process(config.get("trainer") or {}, [k.key for k in space.keys])
        # Every searched key takes a value of its range's type, before any trial runs.
        parse_recipe(configs, [*setup.overrides, *space.overrides(space.example())])
        for key, choice in space.quoted_choices():
            _check_reads_back(configs, setup.overrides, key, choice)
        study = _open_study(setup, study_dir, goal)
        # Each trial in one process (a machine's GPUs serve one worker each); not recorded in
        # study.json, so the same command continues the study on any machine.
        trial_setup = replace(setup, overrides=[*setup.overrides, *pinned])
        _optimize(study, trial_setup, space, rules, config, study_dir, trials, console, on_trial)
    return _finish(setup, study_dir, rules, goal)


def _check_reads_back(
    configs: Sequence[Path], overrides: Sequence[str], key: str, choice: str
) -> None:
    """A string choice YAML would read as another type reaches the recipe as written."""
    value: Any = parse_recipe(configs, [*overrides, override(key, choice)])
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value != choice:
        raise ValueError(
            f"search: {key} choice {choice!r} reaches the recipe as {value!r} (YAML reads it as "
            "another type, and this parameter keeps the quotes that would stop it). Choose a "
            "value YAML reads as text (not null, true, a number, [..] or 'a: b'), or set it in "
            "the recipe instead of searching it."
        )


def _open_study(setup: StudySetup, study_dir: Path, goal: str) -> optuna.Study:
    storage = open_storage(setup.storage)  # unreachable: fails before the folder is made
    recorded = study_dir / TUNE_STUDY_FILE
    if recorded.is_file():
        before = load_setup(study_dir)
        same = ("configs", "overrides", "search", "storage")
        changed = [k for k in same if getattr(before, k) != getattr(setup, k)]
        if changed:
            raise ValueError(
                f"{study_dir} already holds the study {before.name!r} with other "
                f"{', '.join(changed)}; run the same command to continue it, or give this one "
                "another name with --study NAME."
            )
    else:
        study_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(recorded, asdict(setup))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=setup.name,
        storage=storage,
        sampler=make_sampler(setup.sampler, setup.seed),
        pruner=make_pruner(setup.pruner),
        direction="maximize" if goal == "max" else "minimize",
        load_if_exists=True,
    )


def _optimize(
    study: optuna.Study,
    setup: StudySetup,
    space: SearchSpace,
    rules: Rules,
    config: dict[str, Any],
    study_dir: Path,
    trials: int,
    console: Console | None,
    on_trial: TrialCallback | None,
) -> None:
    console = console or Console()
    reclaim_dead_trials(study)
    max_epochs = (config.get("trainer") or {}).get("max_epochs")
    failed: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        if len([t for t in _counted(study) if t.number < trial.number]) >= trials:
            trial.set_user_attr(SURPLUS_ATTR, True)  # another worker filled the budget
            study.stop()
            raise optuna.TrialPruned("the study's budget was reached by other workers")
        trial.set_user_attr(WORKER_ATTR, worker_id())
        sampled = {name: r.suggest(trial, name) for name, r in space.params().items()}
        values = space.values(sampled)
        trial.set_user_attr("values", values)
        trial.set_user_attr("max_epochs", values.get("trainer.max_epochs", max_epochs))
        return _run_trial(trial, setup, space, sampled, rules, study_dir, failed, console)

    def after(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        record = to_record(frozen, setup.stage)
        counted = _counted(study)
        done = [t for t in counted if t.state.is_finished()]
        if len(counted) >= trials:
            study.stop()
        if record is not None:
            write_trial_hparams(study_dir, record)
            console.print(trial_line(record, rules), markup=False, highlight=False)
            if on_trial is not None:
                best = _best_so_far(study, setup, rules)
                on_trial(record, best, len(done), trials)
        if len(failed) >= _FAILED_IN_A_ROW and not any(
            t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
        ):
            study.stop()

    if len(_counted(study)) < trials:
        study.optimize(objective, callbacks=[after], gc_after_trial=False)
    if len(failed) >= _FAILED_IN_A_ROW and not any(
        t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
    ):
        raise ValueError(
            f"The first {len(failed)} trials all failed, so the study stopped. The last one: "
            f"{failed[-1]}"
        )


def _run_trial(
    trial: optuna.Trial,
    setup: StudySetup,
    space: SearchSpace,
    sampled: dict[str, Any],
    rules: Rules,
    study_dir: Path,
    failed: list[str],
    console: Console,
) -> float:
    key = register(trial)
    logs = study_dir / f"trial_{trial.number:03d}"
    overrides = [*setup.overrides, *_QUIET, *space.overrides(sampled)]
    if setup.pruner != "none":
        overrides.append(pruning_override(key))
    configs = [Path(c) for c in setup.configs]
    try:
        hook = withhold_test(console)  # a trial never sees test: dev chooses
        result = run_recipe(configs, overrides, Console(quiet=True), logs_dir=logs, before_fit=hook)
    except optuna.TrialPruned:
        _record_folder(trial, logs)
        raise
    except KeyboardInterrupt:
        trial.set_user_attr(INTERRUPTED_ATTR, True)
        raise
    except Exception as err:  # a NaN, a value the model refuses: this trial fails, not the study
        _record_folder(trial, logs)
        reason = f"{type(err).__name__}: {err}".strip().splitlines()[0]
        trial.set_user_attr("error", reason)
        failed.append(reason)
        return math.nan
    finally:
        unregister(key)
    metrics = dev_scores(result.metrics)
    failures, amounts = violations(rules, metrics)
    trial.set_user_attr("metrics", metrics)
    trial.set_user_attr("failures", failures)
    trial.set_user_attr("constraints", amounts)
    trial.set_user_attr("run_dir", str(result.run_dir))
    trial.set_user_attr("epochs", int(result.metrics.get("epochs", 0)))
    trial.set_user_attr("config", (result.run_dir / CONFIG_FILE).read_text())
    value = metrics.get(rules.optimize)
    if value is None or math.isnan(value):
        trial.set_user_attr("error", f"no finite {rules.optimize} on dev")
        return math.nan
    return float(value)


def _record_folder(trial: optuna.Trial, logs: Path) -> None:
    folders = sorted(p for p in logs.glob("*/*") if p.is_dir())
    if folders:
        trial.set_user_attr("run_dir", str(folders[-1]))


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count against the budget: all but interrupted and surplus ones."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if not t.user_attrs.get(INTERRUPTED_ATTR) and not t.user_attrs.get(SURPLUS_ATTR)
    ]


def _best_so_far(study: optuna.Study, setup: StudySetup, rules: Rules) -> TrialRecord | None:
    records = [to_record(t, setup.stage) for t in study.get_trials(deepcopy=False)]
    goal = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
    selection = choose([r for r in records if r is not None], rules, goal)
    if selection is None or selection.winner is None:
        return None
    return next(r for r in records if r is not None and r.name == selection.winner)


def _finish(setup: StudySetup, study_dir: Path, rules: Rules, goal: str) -> TuneResult:
    from mlstrategy.reporting.tune_report import write_tune_report

    result = TuneResult(study_dir, setup, study_records(setup), _parent_records(setup))
    result.selection = choose(result.records, rules, goal)
    if result.selection is not None and result.selection.winner is not None:
        result.best = next(r for r in result.records if r.name == result.selection.winner)
        result.best_recipe = _write_best(setup, study_dir, result.best, rules)
        # Only now, after choosing on dev: the chosen trial's test split, scored once.
        test = chosen_test_scores(study_dir, result.best.name, result.best.run_dir)
        result.test, result.test_note = test.scores, test.note
    result.report = write_tune_report(study_dir, result, rules)
    return result


def _write_best(setup: StudySetup, study_dir: Path, best: TrialRecord, rules: Rules) -> Path:
    study = optuna.load_study(study_name=setup.name, storage=open_storage(setup.storage))
    config = study.trials[best.number].user_attrs["config"]
    path = best_recipe_path(study_dir)
    header = (
        f"The chosen trial of the study {setup.name!r} ({best.name}, {rules.optimize}="
        f"{best.value:.6g} on dev), from {study_dir}.\n"
        f"Values chosen: {json.dumps(best.values)}\n"
        f"mlstrategy run {path} trains it again (same seed, same dev scores on the CPU)."
    )
    return write_best_recipe(path, config, header)


def _parent_records(setup: StudySetup) -> list[TrialRecord]:
    records: list[TrialRecord] = []
    parent = setup.parent
    while parent:
        parent_setup = load_setup(Path(parent))
        records = study_records(parent_setup) + records
        parent = parent_setup.parent
    return records
