"""Data with several labels per example, some of them missing: the input of a multi-task net.

Labels travel as one float matrix ``y`` of shape ``(m, L)``, one column per label, so the
in-memory batches still gather ``x`` and ``y`` with one index each. A missing label is ``-1``
in a column of class labels and ``NaN`` in a column of real numbers (regression targets); the
model's masked cost leaves both out (see :mod:`mlstrategy.models.multitask`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from mlstrategy.data.datamodule import SPLITS, ArrayDataModule, check_finite_features
from mlstrategy.data.mismatch import (
    check_target_in_train,
    count_origins,
    describe_origins,
    mismatch_splits,
    split_target,
    take_rows,
)
from mlstrategy.data.sources import check_data_file, read_csv_table
from mlstrategy.data.splits import stratified_split

MISSING_CLASS = -1.0  # a missing class label; a missing real-valued label is NaN


@dataclass
class LabelledArrays:
    """Features and a matrix of labels, one column per label, with missing entries.

    Attributes:
        x: Features, shape ``(m, *input_shape)``, float32.
        y: Labels, shape ``(m, L)``, float32. Class labels are ``0..K-1`` and ``-1`` when
            missing; real-valued labels are ``NaN`` when missing.
        label_names: One name per column of ``y``.
        class_names: ``{column: [class names]}`` for the columns of class labels; a column of
            real numbers has no entry (its number of classes is 0).
    """

    x: np.ndarray
    y: np.ndarray
    label_names: list[str]
    class_names: dict[str, list[str]] = field(default_factory=dict)


class MultiTaskSource:
    """Base class: a data set with several label columns, small enough to live in memory."""

    def load(self, seed: int) -> LabelledArrays:
        """Build or read the arrays; generated sources use ``seed``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class LabelsFile(MultiTaskSource):
    """The user's own CSV with several label columns; an empty cell is a missing label.

    A header row is required. ``labels`` names the label columns, ``features`` the feature
    columns (default: every other column). A label column whose present cells are all whole
    numbers ``>= 0`` holds class labels ``0..K-1``; one with other numbers holds real values
    (for a regression head); one with text holds classes named by the text, in sorted order.
    Features must be numbers in every row.

    Args:
        path: Path to the ``.csv`` file.
        labels: The label columns, e.g. ``[pedestrian, car, stop_sign]``.
        features: The feature columns; default every column that is not a label.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "d.csv")
        >>> _ = open(path, "w").write("a,b,car,size\\n1,2,1,0.5\\n3,4,,\\n")
        >>> arrays = LabelsFile(path, labels=["car", "size"]).load(0)
        >>> arrays.y.tolist()
        [[1.0, 0.5], [-1.0, nan]]
    """

    def __init__(self, path: str, labels: list[str], features: list[str] | None = None) -> None:
        if not labels:
            raise ValueError(
                "labels=[] names no label column; give the CSV's label columns, e.g. "
                "labels: ['pedestrian', 'car']."
            )
        self.path = path
        self.labels = list(labels)
        self.features = list(features) if features is not None else None

    def load(self, seed: int) -> LabelledArrays:
        path = check_data_file(self.path, (".csv",), "LabelsFile")
        table = read_csv_table(path)
        table.require(
            [*self.labels, *(self.features or [])],
            "Set `source.init_args.labels` and `source.init_args.features` to columns of the file.",
        )
        both = sorted(set(self.labels) & set(self.features or []))
        if both:
            raise ValueError(f"{path}: column(s) {both} are listed as both labels and features.")
        feature_cols = self.features or [c for c in table.header if c not in self.labels]
        if not feature_cols:
            raise ValueError(f"{path}: every column is a label; there are no features.")
        body = table.rows
        x = np.empty((len(body), len(feature_cols)), dtype=np.float32)
        for c, name in enumerate(feature_cols):
            i = table.header.index(name)
            for r, (row, line) in enumerate(zip(body, table.lines, strict=True)):
                cell = row[i].strip()
                try:
                    x[r, c] = float(cell)
                except ValueError:
                    raise ValueError(
                        f"{path} line {line}, feature column {name!r}: {cell!r} is not a "
                        "number. Features must be numbers in every row (impute empty cells); "
                        "only label cells may be empty."
                    ) from None
        y = np.empty((len(body), len(self.labels)), dtype=np.float32)
        class_names: dict[str, list[str]] = {}
        for c, name in enumerate(self.labels):
            cells = [row[table.header.index(name)].strip() for row in body]
            if not any(cells):
                raise ValueError(
                    f"{path}: label column {name!r} is empty in all {len(cells)} rows, so that "
                    "task has nothing to learn from. Fill in some of its labels or leave it out "
                    "of `labels`."
                )
            column, names = _encode_label_column(cells)
            y[:, c] = column
            if names is not None:
                class_names[name] = names
        return LabelledArrays(x=x, y=y, label_names=list(self.labels), class_names=class_names)


def _encode_label_column(cells: list[str]) -> tuple[np.ndarray, list[str] | None]:
    """One label column as floats, and its class names (None for real values).

    Empty cells are missing: ``-1`` among class labels, ``NaN`` among real values.
    """
    present = [c for c in cells if c]
    try:
        values = [float(c) for c in present]
    except ValueError:
        names = sorted(set(present))
        index = {n: k for k, n in enumerate(names)}
        column = np.array([index[c] if c else MISSING_CLASS for c in cells], dtype=np.float32)
        return column, names
    is_class = all(v >= 0 and v == round(v) for v in values)
    if is_class:
        k = max(2, int(max(values, default=1)) + 1)
        column = np.array([float(c) if c else MISSING_CLASS for c in cells], dtype=np.float32)
        return column, [str(j) for j in range(k)]
    return np.array([float(c) if c else np.nan for c in cells], dtype=np.float32), None


def check_labelled_arrays(arrays: LabelledArrays, source: Any) -> None:
    """Fail early, with the fix, on multi-task data that would train silently wrong."""
    x, y = arrays.x, arrays.y
    if y.ndim != 2:
        raise ValueError(f"{source!r}: labels must be a matrix (m, L), got shape {y.shape}.")
    if len(x) != len(y):
        raise ValueError(f"{source!r}: {len(x)} feature rows but {len(y)} label rows.")
    if y.shape[1] != len(arrays.label_names):
        raise ValueError(
            f"{source!r}: {y.shape[1]} label columns but {len(arrays.label_names)} label names."
        )
    if len(set(arrays.label_names)) != len(arrays.label_names):
        raise ValueError(f"{source!r}: label names repeat: {arrays.label_names}.")
    check_finite_features(x, f"{source!r}")  # only labels may be missing
    for j, name in enumerate(arrays.label_names):
        if name not in arrays.class_names:
            continue
        col = y[:, j]
        present = col[col != MISSING_CLASS]
        k = len(arrays.class_names[name])
        if (
            not np.isfinite(present).all()
            or (present != np.round(present)).any()
            or (present < 0).any()
            or (present >= k).any()
        ):
            raise ValueError(
                f"{source!r}: label column {name!r} holds class labels, which must be 0..{k - 1} "
                "or -1 when missing."
            )


class MultiTaskDataModule(ArrayDataModule):
    """Seeded splits of multi-task data, batched by whole-tensor indexing.

    Like :class:`~mlstrategy.data.ArrayDataModule` (normalization fit on train only,
    in-memory batches on the accelerator, train-only augmentation), but each example carries a
    row of labels ``y[i] = (y_1, ..., y_L)``, any of them missing. Splits are drawn at random
    (not stratified: there is no single label to stratify by).

    For the model, ``num_classes`` is ``{label column: number of classes}`` (0 for a column of
    real numbers); the CLI passes it to the model as it passes a single-task model its number
    of classes.

    Args:
        source: Where the examples come from, e.g. ``mlstrategy.data.StreetScenes`` or
            ``mlstrategy.data.LabelsFile``.
        dev_fraction: Fraction of the examples in the dev split, in (0, 1).
        test_fraction: Fraction in the test split, in (0, 1).
        train_dev_fraction: Fraction carved from the training distribution as a train-dev
            split, in [0, 1); 0 = none.
        train_size: Keep only this many (seeded, random) examples of the train split; null =
            all. Dev and test do not change, so runs with different ``train_size`` are scored
            on the same examples (a learning curve in data size).
        batch_size: Mini-batch size; null = the whole train split in one batch.
        eval_batch_size: Batch size for evaluation.
        normalize: Standardize inputs with statistics from the train split.
        seed: Seed of data generation, the split and the shuffle order.
        augment: Transforms applied to each training batch of inputs (see
            :class:`~mlstrategy.data.ArrayDataModule`); labels are left as they are.
    """

    def __init__(
        self,
        source: MultiTaskSource,
        dev_fraction: float = 0.2,
        test_fraction: float = 0.2,
        train_dev_fraction: float = 0.0,
        train_size: int | None = None,
        batch_size: int | None = 64,
        eval_batch_size: int = 4096,
        normalize: bool = True,
        seed: int = 0,
        augment: list[nn.Module] | None = None,
    ) -> None:
        if train_size is not None and train_size < 1:
            raise ValueError(f"train_size={train_size} must be >= 1, or null for the whole split.")
        super().__init__(
            source,  # type: ignore[arg-type]
            dev_fraction=dev_fraction,
            test_fraction=test_fraction,
            train_dev_fraction=train_dev_fraction,
            use_source_test_split=False,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            normalize=normalize,
            seed=seed,
            augment=augment,
        )
        self.hparams["train_size"] = train_size
        self.train_size = train_size
        self.label_names: list[str] = []
        self.label_classes: dict[str, list[str]] = {}

    def prepare(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Load, check and split the data once; returns ``{split: (x, y)}`` on the CPU."""
        if self._splits is None:
            arrays = cast(MultiTaskSource, self.source).load(self.seed)
            check_labelled_arrays(arrays, self.source)
            self.label_names = list(arrays.label_names)
            self.label_classes = {k: list(v) for k, v in arrays.class_names.items()}
            n = len(arrays.y)
            # stratified_split with one class: a seeded random split with the same checks of
            # the fractions and messages as single-task data.
            index = stratified_split(
                np.zeros(n, dtype=np.int64),
                dev_fraction=self.dev_fraction,
                test_fraction=self.test_fraction,
                train_dev_fraction=self.train_dev_fraction,
                seed=self.seed,
            )
            if self.train_size is not None:
                train = index["train"]
                if self.train_size > len(train):
                    raise ValueError(
                        f"train_size={self.train_size} but the train split has only {len(train)} "
                        "examples; lower train_size or generate more data."
                    )
                rng = np.random.default_rng(self.seed)
                index["train"] = np.sort(rng.choice(train, self.train_size, replace=False))
            # Each split's rows of the source, so reports can name an example's input.
            self.split_indices = {k: i for k, i in index.items() if k in SPLITS}
            self._splits = {
                k: (
                    torch.from_numpy(np.ascontiguousarray(arrays.x[i])),
                    torch.from_numpy(np.ascontiguousarray(arrays.y[i])),
                )
                for k, i in index.items()
                if k in SPLITS
            }
        return self._splits

    @property
    def num_classes(self) -> dict[str, int]:  # type: ignore[override]
        """``{label column: number of classes}``, 0 for a column of real numbers."""
        self.prepare()
        return {name: len(self.label_classes.get(name, [])) for name in self.label_names}

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "label_names": self.label_names}


class MismatchMultiTaskDataModule(MultiTaskDataModule):
    """Multi-task data from two distributions: dev and test from the ``target`` only.

    The course's setup with several labels per example, e.g. its autonomous-driving example:
    plenty of labelled street scenes from elsewhere (the *source*) and fewer from the car's
    own cameras (the *target*, what the system must work on). The splits are those of
    :class:`~mlstrategy.data.MismatchDataModule`: ``dev`` and ``test`` are ``dev_fraction`` and
    ``test_fraction`` of the target, seeded; the training mix is every source example plus
    ``target_in_train`` target examples; ``train_dev_fraction`` of the mix is held out as
    train-dev (stratified by source too), so ``dev - train-dev`` is each task's data mismatch.

    There is no single label to stratify by, so the splits are stratified on the first label
    column: its classes, with *missing* a stratum of its own (or, for a column of real
    numbers, whether the label is present); when a stratum is too small for that, on whether
    the first label is present; else at random. Missing labels stay missing (``-1``, ``NaN``)
    in every split, so the masked cost and the metrics leave them out as before.
    Normalization statistics come from the train split only (the mix), never dev or test.
    Both sources need the same label columns, with the same classes, and examples of one
    shape. No ``synthesis``: the synthesis transforms are for the single-task modules.

    Args:
        source: The multi-task data you have plenty of, e.g. ``mlstrategy.data.StreetScenes``.
        target: The distribution the system must work on, with the same label columns.
        target_in_train: Target examples added to training: a count, or a fraction of the
            target's examples; at most what dev and test leave.
        dev_fraction: Fraction of the target in the dev split, in (0, 1).
        test_fraction: Fraction of the target in the test split, in (0, 1).
        train_dev_fraction: Fraction of the training mix held out as train-dev, in [0, 1).
        batch_size: Mini-batch size; null = the whole train split in one batch.
        eval_batch_size: Batch size for evaluation.
        normalize: Standardize inputs with statistics from the train split (the mix).
        seed: Seed of data generation, the splits and the shuffle order.
        augment: Training-only augmentation, as in :class:`MultiTaskDataModule`.
    """

    def __init__(
        self,
        source: MultiTaskSource,
        target: MultiTaskSource,
        target_in_train: int | float = 0,
        dev_fraction: float = 0.2,
        test_fraction: float = 0.2,
        train_dev_fraction: float = 0.1,
        batch_size: int | None = 64,
        eval_batch_size: int = 4096,
        normalize: bool = True,
        seed: int = 0,
        augment: list[nn.Module] | None = None,
    ) -> None:
        super().__init__(
            source,
            dev_fraction=dev_fraction,
            test_fraction=test_fraction,
            train_dev_fraction=train_dev_fraction,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            normalize=normalize,
            seed=seed,
            augment=augment,
        )
        check_target_in_train(target_in_train)
        self.hparams["target"] = repr(target)
        self.target = target
        self.target_in_train = target_in_train
        self.origin: dict[str, np.ndarray] = {}
        self.rows: dict[str, np.ndarray] = {}
        self._target_left = 0

    def prepare(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Load and check both sources, and split them once; ``{split: (x, y)}`` on the CPU."""
        if self._splits is not None:
            return self._splits
        src = cast(MultiTaskSource, self.source).load(self.seed)
        tgt = self.target.load(self.seed)
        check_labelled_arrays(src, self.source)
        check_labelled_arrays(tgt, self.target)
        _check_same_tasks(src, tgt, repr(self.source), repr(self.target))
        self.label_names = list(src.label_names)
        self.label_classes = {k: list(v) for k, v in src.class_names.items()}
        source_key, target_key = self._strata(src, tgt)
        parts = split_target(
            target_key,
            dev_fraction=self.dev_fraction,
            test_fraction=self.test_fraction,
            target_in_train=self.target_in_train,
            seed=self.seed,
            target=repr(self.target),
        )
        self._target_left = len(parts["left"])
        self._splits = {}
        for split, (origin, rows) in mismatch_splits(
            source_key, target_key, parts, self.train_dev_fraction, self.seed
        ).items():
            self.origin[split], self.rows[split] = origin, rows
            x = take_rows(origin, rows, src.x, tgt.x, np.float32)
            y = take_rows(origin, rows, src.y, tgt.y, np.float32)
            self._splits[split] = (torch.from_numpy(x), torch.from_numpy(y))
        return self._splits

    def _strata(self, src: LabelledArrays, tgt: LabelledArrays) -> tuple[np.ndarray, np.ndarray]:
        """The source's and the target's strata: the first label column's classes (missing
        its own), else whether it is present, else one stratum (see the class docstring)."""
        first = src.label_names[0]
        keys = [
            _first_label_strata(src.y[:, 0], first in src.class_names),
            _first_label_strata(tgt.y[:, 0], first in src.class_names),
        ]
        candidates = [keys, [(~_missing(a.y[:, 0])).astype(np.int64) for a in (src, tgt)]]
        for key in candidates:
            try:
                stratified_split(
                    key[1], dev_fraction=self.dev_fraction, test_fraction=self.test_fraction
                )
            except ValueError:
                continue
            return key[0], key[1]
        return np.zeros(len(src.y), np.int64), np.zeros(len(tgt.y), np.int64)

    def split_origins(self) -> dict[str, dict[str, int]]:
        """Per split, how many examples came from the source and how many from the target."""
        self.prepare()
        return count_origins(self.origin)

    def describe_sources(self) -> dict[str, Any]:
        """Both sources and each split's origins, for the report's "Two distributions"."""
        out = describe_origins(repr(self.source), repr(self.target), self.split_origins())
        out.update(target_left=self._target_left, synthesis=None)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "origins": self.split_origins()}


def _missing(column: np.ndarray) -> np.ndarray:
    return np.isnan(column) | (column == MISSING_CLASS)


def _first_label_strata(column: np.ndarray, is_class: bool) -> np.ndarray:
    """Class ``k`` as stratum ``k + 1``, a missing label as 0; presence for real values."""
    if not is_class:
        return (~_missing(column)).astype(np.int64)
    return np.where(_missing(column), 0, column + 1).astype(np.int64)


def _check_same_tasks(src: LabelledArrays, tgt: LabelledArrays, source: str, target: str) -> None:
    """The target must have the source's label columns, each with the same classes, and
    examples of the same shape: one multi-task net reads both."""
    if src.label_names != tgt.label_names:
        raise ValueError(
            f"The source {source} has label columns {src.label_names} but the target {target} "
            f"has {tgt.label_names}: only the source has "
            f"{[c for c in src.label_names if c not in tgt.label_names]}, only the target has "
            f"{[c for c in tgt.label_names if c not in src.label_names]}. Both need the same "
            "label columns in the same order; rename or drop columns on one side."
        )
    for name in src.label_names:
        mine, theirs = src.class_names.get(name), tgt.class_names.get(name)
        if mine != theirs:
            raise ValueError(
                f"Label column {name!r} has classes {mine} in the source {source} but {theirs} "
                f"in the target {target} (None: real values). A label must mean the same on "
                "both sides; relabel the target."
            )
    if src.x.shape[1:] != tgt.x.shape[1:]:
        raise ValueError(
            f"The source {source} has examples of shape {src.x.shape[1:]} but the target "
            f"{target} {tgt.x.shape[1:]}: one model reads both, so they need the same shape."
        )
