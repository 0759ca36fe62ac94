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
