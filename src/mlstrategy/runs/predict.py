"""``mlstrategy predict RUN_DIR [INPUT]``: a finished run's model on new data, as a CSV.

The model is rebuilt from the run's best checkpoint (vetted, weights only, through
:func:`~mlstrategy.safety.load_checkpoint`), with the input normalization fit on its train split
(buffers in the checkpoint) and the class names its data module saved. INPUT is:

- a ``.csv`` with the training feature columns, by name and in the training order (other
  columns may sit anywhere and are ignored; an ``id`` column names the rows);
- an ``.npz`` with the features array (``X``, or the name the run's ``ArrayFile`` used);
- a folder of images, for a run on an image folder;
- nothing: the run's own test split.

The output has an ``id``, the ``predicted`` class, one ``p_<class>`` column per class and, where
the input has labels (the training label column, the test split, images in class folders),
``true`` and ``correct``. A multi-task run gets one such group per task, its columns prefixed
with the task name. The layout is :mod:`mlstrategy.callbacks.predictions`' (LightningCLI's
``predict`` verb writes the same one). A regressor's output is ``id``, ``predicted`` and, with
labels, ``true``: numbers in the target's units (its standardization undone).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlstrategy.callbacks.predictions import prediction_columns, write_predictions_csv
from mlstrategy.data.sources import check_data_file, read_csv_table
from mlstrategy.evaluation.scoring import is_multitask, is_regressor
from mlstrategy.run_folder import PREDICTIONS_FILE
from mlstrategy.runs.trained_run import IMAGE_DATA, LoadedRun, load_run, run_datamodule

_BATCH = 1024


# ------------------------------------------------------------------------------------ inputs
@dataclass
class Inputs:
    """The examples to predict, with their ids and, when known, their labels.

    Attributes:
        batches: ``(x, y)`` batches of raw (unnormalized) examples; ``y`` is None without
            labels.
        ids: One id per example.
        labelled: Whether any label is known.
    """

    batches: Any
    ids: list[str]
    labelled: bool


def read_inputs(run: LoadedRun, given: str | None) -> Inputs:
    """The examples ``given`` names (a CSV, an npz, an image folder), or the test split.

    Raises:
        ValueError: a file that does not fit the run (missing or reordered columns, another
            shape, unknown labels), naming what is wrong.
    """
    if given is None:
        return _test_split(run)
    path = Path(given).expanduser()
    if path.is_dir():
        return _image_folder(run, path)
    if not path.exists():
        raise ValueError(
            f"INPUT {given!r} does not exist{_did_you_mean(path)}. Give the .csv, .npz or image "
            "folder to predict on (a relative path is taken from the directory you run "
            "mlstrategy in), or no INPUT for the run's own test split."
        )
    path = check_data_file(str(path), (".csv", ".npz"), "mlstrategy predict")
    if path.suffix.lower() == ".npz":
        x, labels, ids = _read_npz(run, path)
    else:
        x, labels, ids = _read_csv(run, path)
    y = _encode(run, labels, path) if labels else None
    tensor = torch.from_numpy(x)
    return Inputs([(tensor, y)], ids, y is not None)


def _did_you_mean(path: Path) -> str:
    """``" (did you mean 'new.csv'?)"`` for a misspelt name next to the file meant, else ``""``."""
    import difflib

    folder = path.parent
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    close = difflib.get_close_matches(path.name, names, n=1)
    return f" (did you mean {str(folder / close[0])!r}?)" if close else ""


def feature_columns(run: LoadedRun) -> tuple[list[str] | None, list[str]]:
    """The training feature columns (None where the data had no column names) and the label
    columns a CSV may carry.

    They are the ones the run's data module saved in its checkpoint at training time. Only a
    checkpoint from before they were saved falls back to the recipe's ``features`` or the
    training CSV's header as it is on disk now, with a warning (a file exported again with its
    columns in another order would swap features silently).
    """
    saved = run.data_state.get("feature_names")
    if saved:
        target = run.data_state.get("target")
        return [str(c) for c in saved], [str(target)] if target else []
    kind, args = run.source()
    if kind == "ArrayFile":
        labels = [str(args.get("target") or "y")]
    elif kind == "LabelsFile":
        labels = [str(c) for c in args.get("labels") or []]
    elif kind == "BreastCancer":
        from sklearn.datasets import load_breast_cancer

        return [str(c) for c in load_breast_cancer().feature_names], ["target"]
    else:
        return None, ["target"]
    if args.get("features"):
        return [str(c) for c in args["features"]], labels
    train = Path(str(args.get("path", ""))).expanduser()
    if train.suffix.lower() != ".csv":
        return None, labels
    if not train.is_file():
        raise ValueError(
            f"The run trained on {train}, which is not there any more, so the feature columns "
            "of your CSV cannot be checked by name. Run from the folder you trained in, or "
            "give an .npz with the features array."
        )
    warnings.warn(
        f"{run.checkpoint} does not record the feature columns it was trained on (it was "
        f"written before they were saved), so the CSV is checked against the header of {train} "
        "as it is now; if that file was written again with its columns in another order, the "
        "features are swapped. Train the run again to record them.",
        UserWarning,
        stacklevel=2,
    )
    return [c for c in read_csv_table(train).header if c not in labels], labels


def _read_csv(run: LoadedRun, path: Path) -> tuple[np.ndarray, dict[str, list[str]], list[str]]:
    features, label_cols = feature_columns(run)
    if features is None:
        raise ValueError(
            f"The run trained on {run.source()[0] or 'data'} without column names, so a CSV "
            "cannot be checked against it. Give an .npz with X of shape (m, "
            f"{', '.join(map(str, run.model.input_shape))})."
        )
    table = read_csv_table(path)
    table.require(features, f"The model was trained on the columns {features}, in that order.")
    where = [table.header.index(c) for c in features]
    for k in range(1, len(where)):
        if where[k] < where[k - 1]:
            raise ValueError(
                f"{path}: column {features[k]!r} comes before {features[k - 1]!r}, but the "
                f"model was trained on the columns in the order {features}. Reorder the "
                "columns (other columns may stay anywhere)."
            )
    x = np.empty((len(table.rows), len(features)), dtype=np.float32)
    for r, (row, line) in enumerate(zip(table.rows, table.lines, strict=True)):
        for c, i in enumerate(where):
            try:
                x[r, c] = float(row[i])
            except ValueError:
                raise ValueError(
                    f"{path} line {line}, column {table.header[i]!r}: {row[i]!r} is not a "
                    "number. Every feature cell needs a number (impute empty ones)."
                ) from None
    labels = {
        c: [row[table.header.index(c)].strip() for row in table.rows]
        for c in label_cols
        if c in table.header
    }
    ids = (
        [row[table.header.index("id")].strip() for row in table.rows]
        if "id" in table.header and "id" not in features
        else [str(r) for r in range(len(table.rows))]
    )
    return _shaped(run, x, path), labels, ids


def _shaped(run: LoadedRun, x: np.ndarray, path: Path) -> np.ndarray:
    shape = tuple(run.model.input_shape)
    if x.shape[1:] == shape:
        return x
    if int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return x.reshape(len(x), *shape)
    raise ValueError(
        f"{path}: examples of shape {x.shape[1:]}, but the model was trained on inputs of "
        f"shape {shape}."
    )


def _read_npz(run: LoadedRun, path: Path) -> tuple[np.ndarray, dict[str, list[str]], list[str]]:
    import zipfile

    kind, args = run.source()
    key = str((args.get("features") or ["X"])[0]) if kind == "ArrayFile" else "X"
    target = str(args.get("target") or "y") if kind == "ArrayFile" else "y"
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise ValueError(
            f"{path} is not a NumPy .npz archive (numpy.savez(path, X=...))."
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} holds one array, not an .npz archive: use numpy.savez(path, X=x)."
        )
    with archive:
        if key not in archive:
            raise ValueError(
                f"{path} has no array {key!r} (it has {list(archive.keys())}); save the "
                f"features as numpy.savez(path, {key}=features)."
            )
        try:
            raw = np.asarray(archive[key])
            # uint8 images stay uint8: the model's input normalization reads them as x / 255,
            # as in training (data/vision.py).
            x = raw if raw.dtype == np.uint8 else np.asarray(raw, dtype=np.float32)
            y = np.asarray(archive[target]).reshape(-1) if target in archive else None
        except ValueError:
            raise ValueError(f"{path}: arrays must be numbers, not Python objects.") from None
    if x.ndim < 2 or not np.isfinite(x).all():
        raise ValueError(f"{path}: {key!r} needs one finite row per example, shape (m, ...).")
    labels = {target: [str(v) for v in y.tolist()]} if y is not None else {}
    return _shaped(run, x, path), labels, [str(r) for r in range(len(x))]


def _encode(run: LoadedRun, labels: dict[str, list[str]], path: Path) -> torch.Tensor:
    """Label cells as the model's label indices: ``(m,)`` (-1 = none) or ``(m, L)`` per task."""
    if not run.multitask:
        (column, cells), *_ = labels.items()
        if is_regressor(run.model):  # numbers in the target's units (empty: unknown)
            return torch.tensor([_number(c, column, path) for c in cells])
        return torch.tensor([_label_index(c, run.class_names, column, path) for c in cells])
    m = len(next(iter(labels.values())))
    y = torch.full((m, len(run.model.label_names)), float("nan"))
    for task in run.model.tasks:
        column_cells = labels.get(task.name)
        if column_cells is None:
            continue
        for r, cell in enumerate(column_cells):
            if task.kind == "regression":
                y[r, task.column] = float(cell) if cell else float("nan")
            else:
                y[r, task.column] = _label_index(cell, run.class_names[task.name], task.name, path)
    return y


def _number(cell: str, column: str, path: Path) -> float:
    try:
        return float(cell) if cell.strip() else float("nan")
    except ValueError:
        raise ValueError(
            f"{path}, column {column!r}: {cell!r} is not a number; the run is a regression, "
            "so its target column holds numbers. Leave the cell empty for an unknown target."
        ) from None


def _label_index(cell: str, names: list[str], column: str, path: Path) -> int:
    if not cell:
        return -1
    if cell in names:
        return names.index(cell)
    with_ints = cell.lstrip("-").isdigit() and names == [str(k) for k in range(len(names))]
    if with_ints and 0 <= int(cell) < len(names):
        return int(cell)
    raise ValueError(
        f"{path}, column {column!r}: the label {cell!r} is not one of the classes the run "
        f"trained on {names}. Leave the cell empty for an unlabelled row."
    )


def _test_split(run: LoadedRun) -> Inputs:
    datamodule = run_datamodule(run)
    if "test" not in datamodule.split_names:
        raise ValueError(f"The run {run.run_dir} has no test split; give INPUT to predict on.")
    if callable(getattr(datamodule, "split_files", None)):
        ids = [str(f) for f in datamodule.split_files()["test"][0]]
    else:
        ids = [str(i) for i in range(len(datamodule.prepare()["test"][1]))]
    return Inputs(datamodule.eval_dataloader("test"), ids, True)


def _image_folder(run: LoadedRun, folder: Path) -> Inputs:
    if run.data_class() not in IMAGE_DATA:
        raise ValueError(
            f"{folder} is a folder; a folder of images is read for a run on an image folder "
            f"({' or '.join(IMAGE_DATA)}), and this run trained on "
            f"{run.data_class() or 'other data'}. "
            "Give a .csv or .npz file."
        )
    datamodule = run_datamodule(run, [f"--data.init_args.predict_dir={folder}"])
    loader = datamodule.predict_dataloader()
    files = list(datamodule.predict_files)
    # Images kept in class folders (as in the training layout) carry their label.
    known = [
        run.class_names.index(f.parent.name) if f.parent.name in run.class_names else -1
        for f in files
    ]
    labels = torch.tensor(known)
    batches = [(x, labels[i : i + len(x)]) for i, (x, _) in _offsets(loader)]
    return Inputs(batches, [str(f) for f in files], bool((labels >= 0).any()))


def _offsets(loader: Any) -> Any:
    start = 0
    for batch in loader:
        yield start, batch
        start += len(batch[0])


# ----------------------------------------------------------------------------- predicting
@torch.no_grad()
def probabilities(model: Any, x: torch.Tensor) -> Any:
    """Class probabilities of raw examples ``x`` (the model normalizes them): ``(m, C)``, or
    for a multi-task model ``{task: (m, C)}`` (a regression task: its values, ``(m,)``)."""
    model.eval()
    parts = []
    for start in range(0, len(x), _BATCH):
        outputs = model(x[start : start + _BATCH])
        if not is_multitask(model):
            parts.append({"": model.predict_proba(outputs)})
            continue
        per_task = {}
        for task in model.tasks:
            z = model.task_outputs(outputs)[task.name].float()
            if task.kind == "multiclass":
                per_task[task.name] = torch.softmax(z, dim=-1)
            elif task.kind == "regression":
                per_task[task.name] = z
            else:
                p = torch.sigmoid(z)
                per_task[task.name] = torch.stack([1 - p, p], dim=-1)
        parts.append(per_task)
    joined = {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}
    return joined.get("", joined)


@dataclass
class Predictions:
    """What ``predict`` wrote.

    Attributes:
        path: The CSV file.
        header: Its columns.
        rows: Its rows (as written, text).
    """

    path: Path
    header: list[str]
    rows: list[list[str]]


def predict_run(
    run_path: str | Path, given: str | None = None, output: str | None = None
) -> Predictions:
    """Predict with a finished run and write the CSV (see the module docstring).

    Args:
        run_path: A run folder, or a recipe's folder (its latest finished run).
        given: A ``.csv``, an ``.npz`` or an image folder; None = the run's test split.
        output: Where the CSV goes: a file, or an existing folder (the default name in it);
            default ``predictions.csv`` (test split) or ``predictions_<input name>.csv`` in
            the run folder.
    """
    run = load_run(run_path)
    path = _output_path(run.run_dir, given, output)
    inputs = read_inputs(run, given)
    groups: dict[str, list[Any]] = {}
    truths: list[Any] = []
    for x, y in inputs.batches:
        out = probabilities(run.model, x.cpu())
        for key, value in out.items() if isinstance(out, dict) else [("", out)]:
            groups.setdefault(key, []).append(value)
        truths.append(y)
    merged = {k: torch.cat(v) for k, v in groups.items()}
    labels = torch.cat(truths) if inputs.labelled and all(t is not None for t in truths) else None
    header, rows = _table(run, merged, labels, inputs.ids)
    write_predictions_csv(path, header, rows)
    return Predictions(path, header, rows)


def _output_path(run_dir: Path, given: str | None, output: str | None) -> Path:
    """Where the CSV goes: ``output`` (a file, or a folder that gets the default name), else
    the default name in the run folder. Checked before predicting.

    Raises:
        ValueError: ``output`` names a file in a folder that does not exist (or is a file).
    """
    stem = Path(PREDICTIONS_FILE)
    name = stem.name if given is None else f"{stem.stem}_{Path(given).stem}{stem.suffix}"
    if output is None:
        return run_dir / name
    path = Path(output).expanduser()
    if path.is_dir():
        return path / name
    folder = path if output.endswith(("/", "\\")) else path.parent  # "out/": a folder
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        fix = "" if folder.exists() else f" (`mkdir -p {folder}` creates it)"
        raise ValueError(
            f"--output {output!r}: the folder {str(folder)!r} {what}. Give a CSV file in an "
            f"existing folder{fix}, or an existing folder, which gets {name}."
        )
    return path


def _table(
    run: LoadedRun, out: dict[str, torch.Tensor], labels: torch.Tensor | None, ids: list[str]
) -> tuple[list[str], list[list[str]]]:
    header = ["id"]
    columns: list[list[str]] = [list(ids)]
    tasks = run.model.tasks if run.multitask else [None]
    for task in tasks:
        key = "" if task is None else task.name
        prefix = "" if task is None else f"{task.name}_"
        names = run.class_names if task is None else run.class_names[task.name]
        y = None if labels is None else (labels if task is None else labels[:, task.column])
        if (task.kind if task is not None else None) == "regression" or (
            task is None and is_regressor(run.model)
        ):  # numbers in the target's units
            header += [f"{prefix}predicted", *([f"{prefix}true"] if y is not None else [])]
            columns.append([f"{v:.8g}" for v in out[key].tolist()])
            if y is not None:
                columns.append(["" if np.isnan(v) else f"{v:.8g}" for v in y.tolist()])
            continue
        names_here, cells = prediction_columns(out[key], names, y, prefix)
        header += names_here
        columns += cells
    return header, [list(r) for r in zip(*columns, strict=True)]
