"""Babysitting one model (course 3's "pandas"): ``run --resume`` with changed hyperparameters.

Watch a run, stop it, change its learning rate (or its betas, epsilon, weight decay, decay
schedule, L2 strength, epochs), and resume: from the resumed epoch on, the run trains with the
new values. Lightning's restore alone would keep the old ones: the checkpoint's optimizer state
brings back its parameter groups (``lr``, ``betas``, ...) and the decay schedule's state its
constants and ``alpha0``, over what the new recipe built. :class:`ResumedHyperparameters`
writes the new values over them once that state is loaded, says so on the console and records
the change in the run folder's config history.

What cannot change in the middle of a run (the model, its architecture, the data, the
optimizer's class, the seed, the checkpoint rule) is refused by :func:`resume_changes` before
anything is written: start a new run for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from torch.optim.lr_scheduler import LambdaLR

from mlstrategy.io import write_text_atomic
from mlstrategy.models.optim import set_hyperparameters
from mlstrategy.models.schedules import retarget_learning_rate
from mlstrategy.run_folder import CONFIG_FILE, CONFIG_HISTORY_FILE

MODEL = "model.init_args."
# Written into the optimizer's parameter groups (optim.set_hyperparameters).
OPTIMIZER_KEYS = ("beta1", "beta2", "epsilon", "weight_decay")
# The rate and its decay (schedules.retarget_learning_rate).
RATE_KEYS = ("learning_rate", "lr_decay", "decay_rate", "decay_interval")
# The new model reads them itself: the checkpoint holds no state of theirs.
MODEL_KEYS = ("l2_lambda", "compile")
# Data-loading settings that change no example, split or batch of training.
LOADER_KEYS = ("eval_batch_size", "num_workers", "pin_memory", "persistent_workers")
APPLIED = (*RATE_KEYS, *OPTIMIZER_KEYS, *MODEL_KEYS)


@dataclass(frozen=True)
class Change:
    """One recipe key whose value a resume changes (``key`` dotted, as an override spells it)."""

    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


def current_config(cli: Any) -> dict[str, Any]:
    """The recipe as the run folder's ``config.yaml`` spells it (LightningCLI's own dump)."""
    return yaml.safe_load(cli.parser.dump(cli.config, skip_none=False)) or {}


def resume_changes(
    run_dir: Path, config: Mapping[str, Any], checkpoint: Mapping[str, Any], hparams: Mapping
) -> list[Change]:
    """What a resume changes, against the run's ``config.yaml`` and its checkpoint.

    The model's applicable keys are compared with the checkpoint's hyperparameters, the values
    its optimizer state was built with (``config.yaml`` may be newer: a resume that stopped
    before its first checkpoint); everything else with ``config.yaml``.

    Args:
        run_dir: The run folder being resumed.
        config: The recipe now (:func:`current_config`).
        checkpoint: Its ``last.ckpt``, loaded.
        hparams: The model's hyperparameters now.

    Raises:
        ValueError: a change a resumed run cannot apply; nothing was written.
    """
    saved = run_dir / CONFIG_FILE
    if saved.is_file():
        old = _flatten(yaml.safe_load(saved.read_text()) or {})
        new = _flatten(config)
    else:  # an older run folder: only the model can be compared
        theirs = checkpoint.get("hyper_parameters") or {}
        old = {MODEL + k: _plain(v) for k, v in theirs.items() if k in hparams}
        new = {MODEL + k: _plain(hparams[k]) for k in theirs if k in hparams}
    changes = {
        key: Change(key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if key != "config" and old.get(key) != new.get(key)
    }
    refused = [(c, why) for c in changes.values() if (why := _why_refused(c.key))]
    if refused:
        raise ValueError(_refusal(run_dir, refused))
    theirs = checkpoint.get("hyper_parameters") or {}
    for name in (n for n in APPLIED if n in theirs and n in hparams):
        changes.pop(MODEL + name, None)
        if _plain(theirs[name]) != _plain(hparams[name]):
            changes[MODEL + name] = Change(MODEL + name, _plain(theirs[name]), hparams[name])
    return sorted(changes.values(), key=lambda c: c.key)


def _why_refused(key: str) -> str | None:
    """Why ``key`` cannot change in the middle of a run, or None when it can."""
    leaf = key.rsplit(".", 1)[-1]
    if key == "model.class_path":
        return "another model: the checkpoint holds this one's weights"
    if key == MODEL + "optimizer":
        return "another optimizer class: the checkpoint's optimizer state belongs to the old one"
    if key.startswith("model."):
        if key.startswith(MODEL) and key.count(".") == 2 and leaf in APPLIED:
            return None
        return "the model's architecture or what it computes: the checkpoint holds its weights"
    if key.startswith("data."):
        if key.count(".") == 2 and leaf in LOADER_KEYS:
            return None
        return "the data: the model so far was fit on the old split, batches and normalization"
    if key == "seed_everything":
        return "the seed: the run's initial weights and example order came from the old one"
    if key in ("checkpoint.monitor", "checkpoint.mode"):
        return "the checkpoint rule: the best checkpoint so far was chosen by the old one"
    return None  # trainer (epochs, ...), evaluation, search: they act from now on


def _refusal(run_dir: Path, refused: list[tuple[Change, str]]) -> str:
    # Another class brings other arguments: its class_path says it all.
    classes = {c.key.rsplit(".", 1)[0] for c, _ in refused if c.key.endswith(".class_path")}
    refused = [
        (c, why)
        for c, why in refused
        if c.key.endswith(".class_path") or not any(c.key.startswith(f"{k}.") for k in classes)
    ]
    by_reason: dict[str, list[Change]] = {}
    for change, why in refused:
        by_reason.setdefault(why, []).append(change)
    shown = "; ".join(
        f"{', '.join(str(c) for c in group[:4])}{' and more' if len(group) > 4 else ''} ({why})"
        for why, group in by_reason.items()
    )
    these = "this change" if len(refused) == 1 else "these changes"
    applied = ", ".join((*RATE_KEYS, *OPTIMIZER_KEYS, *MODEL_KEYS))
    return (
        f"--resume cannot apply {these} to {run_dir}: {shown}. A resumed run continues the "
        f"checkpoint's model on the same data with the same optimizer; from the resumed epoch "
        f"it may change only model.init_args.{{{applied}}}, the trainer and evaluation "
        "sections, and data loading (eval_batch_size, num_workers). Start a new run for this "
        "(the same command without --resume), or resume with the old values. Nothing in "
        f"{run_dir} was changed."
    )


class ResumedHyperparameters(Callback):
    """Apply a resume's changed hyperparameters from the first epoch it trains.

    At that epoch's start (after Lightning restored the optimizer and the schedule from the
    checkpoint, and after the restored epoch, whose batches ran with the old values, ended)
    the new values go into the optimizer's parameter groups and its schedule; one line per
    change goes to the console and an entry to the run folder's ``config_history.yaml``.

    Args:
        changes: What :func:`resume_changes` found.
        run_dir: The run folder.
        checkpoint: The checkpoint resumed from (named in the history).
        console: Where the lines go.
    """

    def __init__(
        self, changes: list[Change], run_dir: Path, checkpoint: Path, console: Console
    ) -> None:
        self.changes = changes
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        self.console = console
        self.applied = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.applied:
            return
        self.applied = True
        unused = _apply(trainer, pl_module, {c.key: c for c in self.changes})
        epoch, step = trainer.current_epoch, trainer.global_step
        if not trainer.is_global_zero:
            return
        for change in self.changes:
            note = f" (not used by optimizer {pl_module.hparams['optimizer']!r})"
            self.console.print(
                f"changed on resume: {change}, from epoch {epoch} (step {step})"
                + (note if change.key in unused else ""),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        append_history(self.run_dir, self.checkpoint, epoch, step, self.changes)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.applied and trainer.is_global_zero:
            self.console.print(
                "[yellow]note:[/] the changed values were not applied: the run had no epoch "
                "left to train (raise --trainer.max_epochs to train on with them)."
            )


def _apply(trainer: L.Trainer, pl_module: L.LightningModule, changes: dict[str, Change]) -> set:
    """Write the changed values into the optimizers and schedules; the keys unused there."""
    hp = pl_module.hparams
    values = {k: changes[MODEL + k].new for k in OPTIMIZER_KEYS if MODEL + k in changes}
    rate = any(MODEL + k in changes for k in RATE_KEYS)
    old_lr = changes[MODEL + "learning_rate"].old if MODEL + "learning_rate" in changes else None
    unused: set[str] = set()
    for optimizer in trainer.optimizers:
        if values:
            unused |= {MODEL + k for k in set_hyperparameters(optimizer, hp["optimizer"], values)}
        if rate:
            scheduler = next(
                (
                    c.scheduler
                    for c in trainer.lr_scheduler_configs
                    if c.scheduler.optimizer is optimizer and isinstance(c.scheduler, LambdaLR)
                ),
                None,
            )
            ratio = 1.0 if old_lr is None else float(hp["learning_rate"]) / float(old_lr)
            retarget_learning_rate(
                optimizer,
                scheduler,
                ratio,
                hp["lr_decay"],
                hp["decay_rate"],
                hp["decay_interval"],
                trainer.current_epoch,
            )
    return unused


def append_history(
    run_dir: Path, checkpoint: Path, epoch: int, step: int, changes: list[Change]
) -> None:
    """Add one entry to the run folder's ``config_history.yaml`` (a list, oldest first)."""
    path = run_dir / CONFIG_HISTORY_FILE
    history = (yaml.safe_load(path.read_text()) or []) if path.is_file() else []
    try:
        where = str(Path(checkpoint).resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        where = str(checkpoint)
    history.append(
        {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed_from": where,
            "epoch": epoch,
            "step": step,
            "changes": [
                {"key": c.key, "old": _yaml_value(c.old), "new": _yaml_value(c.new)}
                for c in changes
            ],
        }
    )
    write_text_atomic(path, yaml.safe_dump(history, sort_keys=False))


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _plain(value)
    return flat


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _yaml_value(value: Any) -> Any:
    """``value`` as YAML's safe dumper takes it (numbers, text, lists, mappings)."""
    value = _plain(value)
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return repr(value)


def _show(value: Any) -> str:
    return "null" if value is None else str(value)
