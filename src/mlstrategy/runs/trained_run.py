"""A finished run, loaded back to predict with or to analyse: its model and its data.

The model is rebuilt from the run's checkpoint (best, else last) through the one loader,
:func:`~mlstrategy.safety.load_checkpoint` (weights only, hyperparameters vetted), and only a
toolkit model class is built. Its input normalization (fit on the train split) comes with the
weights; the class names (and, for named columns, the feature and label columns) are the ones
its data module saved in the checkpoint. The data module is rebuilt from the run's
``config.yaml`` (vetted first) only where the run's own splits are needed (the test split, the
dev errors).

:func:`input_identities` names each example of a split the way every sheet does (the CSV
line, the source's row, the image file), and :func:`keep_filled` carries what a person wrote
into a sheet (tags, verdicts) over to the sheet written again.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlstrategy.data.sources import read_csv_table
from mlstrategy.evaluation.scoring import is_multitask
from mlstrategy.models.base import SupervisedModule
from mlstrategy.run_folder import CONFIG_FILE, find_run, load_metrics, run_checkpoint
from mlstrategy.safety import check_recipe, load_checkpoint

IMAGE_DATA = ("ImageFolderDataModule", "MismatchImageFolderDataModule")  # data on image files
_EVAL_OVERRIDES = (
    "--trainer.logger=false",  # no new run folder: nothing is trained
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.strategy=auto",
    "--trainer.enable_progress_bar=false",
)


@dataclass
class LoadedRun:
    """A finished run's model, ready to predict.

    Attributes:
        run_dir: The run folder.
        checkpoint: The checkpoint file the weights came from (best, else last).
        model: The model in eval mode on the CPU, with the checkpoint's weights.
        class_names: One name per class, or ``{task: names}`` for a multi-task run
            (regression tasks: empty).
        config: The run's ``config.yaml``, read as plain YAML (nothing built from it).
        metrics: The run's ``metrics.json``.
        data_state: What the run's data module saved in the checkpoint (its ``state_dict``:
            ``class_names``, ``feature_names`` and ``target`` where the data named them);
            empty for a checkpoint without it.
    """

    run_dir: Path
    checkpoint: Path
    model: Any
    class_names: Any
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    data_state: dict[str, Any] = field(default_factory=dict)

    @property
    def multitask(self) -> bool:
        """True for a multi-task model (one column group per task)."""
        return is_multitask(self.model)

    def source(self) -> tuple[str, dict[str, Any]]:
        """The class name and ``init_args`` of the data source the run trained on."""
        data = self.config.get("data") or {}
        source = (data.get("init_args") or {}).get("source") or {}
        if not isinstance(source, dict):
            return "", {}
        return str(source.get("class_path", "")).rsplit(".", 1)[-1], source.get("init_args") or {}

    def data_class(self) -> str:
        """The class name of the run's data module."""
        return str((self.config.get("data") or {}).get("class_path", "")).rsplit(".", 1)[-1]


def load_run(path: str | Path) -> LoadedRun:
    """Rebuild the model of the finished run ``path`` names (a run folder or a recipe's folder).

    Raises:
        ValueError: no such folder, no finished run, or a checkpoint that is not a toolkit
            model's.
        FileNotFoundError: the run has no checkpoint.
    """
    run_dir = find_run(path)
    metrics = load_metrics(run_dir)
    ckpt = run_checkpoint(run_dir)
    checkpoint = load_checkpoint(ckpt)
    model = _rebuild(checkpoint, ckpt)
    config_file = run_dir / CONFIG_FILE
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    names = _class_names(checkpoint, model, metrics)
    run = LoadedRun(run_dir, ckpt, model, names, config or {}, metrics)
    saved = checkpoint.get(run.data_class())  # Lightning keys it by the class's name
    run.data_state = dict(saved) if isinstance(saved, dict) else {}
    return run


def _rebuild(checkpoint: dict[str, Any], path: Path) -> SupervisedModule:
    """The toolkit model the checkpoint's hyperparameters name, with its weights."""
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = str(hparams.get("_class_path", ""))
    module_name, _, class_name = class_path.rpartition(".")
    cls = None
    if module_name.startswith("mlstrategy.models"):
        cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, SupervisedModule)):
        raise ValueError(
            f"{path} was not written by a toolkit model (its hyperparameters name "
            f"{class_path or 'no class'}); give a run folder that `mlstrategy run` wrote."
        )
    kwargs = {k: v for k, v in hparams.items() if not k.startswith("_")}
    if class_name == "TransferNet" and kwargs.get("backbone") != "checkpoint":
        # The architecture only: the weights come from the checkpoint, never downloaded again.
        kwargs.update(weights=None, weights_path=None, strategy="scratch")
    model = cls(**kwargs)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{path} does not fit its own {class_name}: {err}") from None
    return model.eval()


def _class_names(checkpoint: dict[str, Any], model: Any, metrics: dict[str, Any]) -> Any:
    """What the data module saved (``class_names``), else the names the scores carry."""
    dev = (metrics.get("splits") or {}).get("dev") or {}
    if is_multitask(model):
        rows = dev.get("tasks") or {}
        names: dict[str, list[str]] = {}
        for task in model.tasks:
            given = list((rows.get(task.name) or {}).get("per_class") or [])
            names[task.name] = (
                given
                if len(given) == task.num_classes
                else [str(k) for k in range(task.num_classes)]
            )
        return names
    saved = [v.get("class_names") for v in checkpoint.values() if isinstance(v, dict)]
    for found in [*saved, list(dev.get("per_class") or [])]:
        if found and len(found) == model.num_classes:
            return [str(c) for c in found]
    return [str(k) for k in range(model.num_classes)]


def run_datamodule(run: LoadedRun, overrides: Sequence[str] = ()) -> Any:
    """The run's data module, rebuilt from its ``config.yaml`` (vetted first), on the CPU.

    Raises:
        ValueError: the run folder has no ``config.yaml``, or its data cannot be read from
            here (a relative path taken from another working directory).
    """
    from mlstrategy.runs.lightning_cli import build_run

    config = run.run_dir / CONFIG_FILE
    if not config.is_file():
        raise ValueError(
            f"{run.run_dir} has no {CONFIG_FILE}, so its data cannot be rebuilt; give INPUT, "
            "or run the recipe again with `mlstrategy run`."
        )
    extra = list(overrides)
    if run.data_class() in IMAGE_DATA:
        extra.append("--data.init_args.num_workers=0")
    check_recipe([config], extra)
    cli = build_run([config], [*_EVAL_OVERRIDES, *extra])
    datamodule = cli.datamodule
    if hasattr(datamodule, "load_state_dict"):
        datamodule.load_state_dict({"class_names": run.class_names})
    return datamodule


def input_identities(datamodule: Any, split: str) -> list[str]:
    """What each example of ``split`` is in the data it came from, one name per example.

    The image file for an image folder; ``<name>.csv line N`` (the line of the file, 1 = the
    header) for a CSV; ``<name>.npz row N`` or ``<source> row N`` (0-based, in the source's
    arrays); ``<source> test row N`` for the source's own test split (rows of its ``x_test``);
    else ``<split> i``, the position in the split. The rows are the ones the data module's
    split used (``split_indices``), never traced again.
    """
    files = getattr(datamodule, "split_files", None)
    if callable(files):
        return [str(f) for f in files()[split][0]]
    splits = datamodule.prepare()
    rows = getattr(datamodule, "split_indices", {}).get(split)
    if rows is None or len(rows) != len(splits[split][1]):
        return [f"{split} {i}" for i in range(len(splits[split][1]))]
    source = datamodule.source
    if split == "test" and datamodule.source_test_split:
        return [f"{source!r} test row {r}" for r in rows.tolist()]
    path = Path(str(getattr(source, "path", ""))).expanduser()
    if path.suffix.lower() == ".csv" and path.is_file():
        lines = read_csv_table(path).lines
        return [f"{path.name} line {lines[r]}" for r in rows.tolist()]
    name = path.name if path.suffix.lower() == ".npz" else repr(source)
    return [f"{name} row {r}" for r in rows.tolist()]


def keep_filled(
    path: Path, rows: Sequence[dict[str, Any]], column: str, keys: Sequence[str], again: str
) -> int:
    """Carry the cells of ``column`` that a person filled in the sheet at ``path`` (an earlier
    write) into the new ``rows``, matched by ``keys`` and, where both sheets have it, by
    ``input`` (the same example). Rows without an old cell get ``""``.

    Args:
        path: The sheet about to be written again.
        rows: The new rows; ``row[column]`` is set on each.
        column: The hand-filled column (``tags``, ``verdict``).
        keys: The columns that identify a row, e.g. ``("task", "index")``.
        again: The command that writes the sheet, for the message.

    Returns:
        How many filled cells were carried over.

    Raises:
        ValueError: the old sheet cannot be read, or some filled cell has no row of the new
            sheet to go to (the model or the data changed): nothing is written then.
    """
    for row in rows:
        row[column] = ""
    if not path.is_file():
        return 0
    keep = f"Copy or rename {path} to keep what you wrote in it, then run `{again}` again."
    try:
        table = read_csv_table(path)
    except ValueError as err:
        raise ValueError(f"{path} is there but cannot be read ({err}) {keep}") from None
    if column not in table.header:
        return 0
    old = [dict(zip(table.header, r, strict=True)) for r in table.rows]
    filled = [r for r in old if r[column].strip()]
    new = {_key(r, keys): r for r in rows}
    lost: list[Mapping[str, str]] = []
    for r in filled:
        match = new.get(_key(r, keys))
        same = match is not None and ("input" not in r or str(match.get("input")) == r["input"])
        if match is None or not same:
            lost.append(r)
        else:
            match[column] = r[column]
    if lost:
        where = ", ".join(" ".join(f"{k} {r[k]}" for k in keys if r.get(k)) for r in lost[:3])
        raise ValueError(
            f"{path} has {len(lost)} filled {column!r} cell(s) (e.g. {where}) whose example is "
            f"not in the sheet written now, or is another one (the model or the data changed "
            f"since), so writing it again would erase them. {keep}"
        )
    return len(filled)


def _key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")).strip() for k in keys)
