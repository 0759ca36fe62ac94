"""The DataModule for data sets that fit in memory."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import nn

from mlstrategy.data.augment import per_example
from mlstrategy.data.batches import InMemoryBatches
from mlstrategy.data.example_columns import split_columns
from mlstrategy.data.normalization import Standardize
from mlstrategy.data.sources import Arrays, ArraySource
from mlstrategy.data.splits import stratified_split

SPLITS = ("train", "train_dev", "dev", "test")
NormalizeMode = Literal["per_feature", "per_channel"]


class ArrayDataModule(L.LightningDataModule):
    """Seeded, stratified splits of an in-memory data set, batched by whole-tensor indexing.

    The data is loaded, checked and split the first time it is needed (the CLI reads
    ``input_shape`` and ``num_classes`` to size the model, so a bad file fails before any
    training starts). Normalization statistics are fit on the train split only; the model
    applies them (see :class:`~mlstrategy.data.normalization.Standardize`), so they are saved
    with it.

    Args:
        source: Where the examples come from, e.g. ``mlstrategy.data.BreastCancer``.
        dev_fraction: Fraction of the examples in the dev split, in (0, 1).
        test_fraction: Fraction in the test split, in [0, 1); 0 = no test split (train and
            dev only: the dev error then is the only estimate, and an optimistic one, since dev
            chose the model). Ignored when the source has its own test split and
            ``use_source_test_split`` is true.
        train_dev_fraction: Fraction carved from the training distribution as a train-dev
            split (measures data mismatch), in [0, 1); 0 = none.
        use_source_test_split: Use the source's own test split (MNIST-1D has one) as the test
            split; dev and train-dev are then carved from the source's train split.
        batch_size: Mini-batch size; null = the whole train split in one batch (batch gradient
            descent); 1 = stochastic gradient descent.
        eval_batch_size: Batch size for evaluation (no gradients, so it can be large).
        normalize: Standardize inputs with statistics from the train split: ``per_feature``
            (a mean and std per input: per pixel for images), ``per_channel`` (one pair per
            channel, over every position) or ``false``. ``true`` is ``per_channel`` for
            ``uint8`` images (the torchvision sources, e.g. ``mlstrategy.data.CIFAR10``) and
            ``per_feature`` otherwise.
        seed: Seed of data generation, the split and the shuffle order.
        augment: Data augmentation for the train batches only, e.g. ``[{class_path:
            torchvision.transforms.v2.RandomAffine, init_args: {degrees: 10}}]``: transforms
            applied in order to each training batch of raw inputs (before normalization), on
            the device the batch is on, each example with its own random draw (see
            :mod:`mlstrategy.data.augment`): ``mlstrategy.data.RandomCropPerExample`` and
            ``HorizontalFlipPerExample`` draw per example in whole-batch operations (fast);
            any other module, e.g. a torchvision v2 transform (which draws once per call), is
            called once per example (a Python loop on the device); wrap it in
            ``mlstrategy.data.WholeBatch`` for one draw per batch. Dev, test and evaluation
            batches are never augmented. Per-feature normalization
            standardizes each pixel on its own, so a translation that moves ink onto border
            pixels (train std near 0) makes huge inputs: for such images set ``normalize:
            per_channel``.
    """

    def __init__(
        self,
        source: ArraySource,
        dev_fraction: float = 0.2,
        test_fraction: float = 0.2,
        train_dev_fraction: float = 0.0,
        use_source_test_split: bool = True,
        batch_size: int | None = 64,
        eval_batch_size: int = 4096,
        normalize: bool | NormalizeMode = True,
        seed: int = 0,
        augment: list[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if batch_size is not None and batch_size < 1:
            raise ValueError(
                f"batch_size={batch_size} must be >= 1 (1 = stochastic gradient descent), or "
                "null for the whole train split (batch gradient descent)."
            )
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size={eval_batch_size} must be >= 1.")
        if normalize not in (True, False, "per_feature", "per_channel"):
            raise ValueError(
                f"normalize={normalize!r} is not one of [true, false, 'per_feature', "
                "'per_channel']."
            )
        self.save_hyperparameters(ignore=["source", "augment"])
        self.hparams["source"] = repr(source)
        # Kept as text: checkpoints must load with weights_only=True, which refuses objects.
        self.hparams["augment"] = repr(augment) if augment else None
        self.augment = nn.Sequential(*per_example(augment)) if augment else None
        self.source = source
        self.dev_fraction = dev_fraction
        self.test_fraction = test_fraction
        self.train_dev_fraction = train_dev_fraction
        self.use_source_test_split = use_source_test_split
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.normalize = normalize
        self.seed = seed
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.class_names: list[str] = []
        # Which rows of the source each split holds (see :meth:`_split`), and the source's
        # feature columns and label column where it names them (saved in the checkpoint).
        self.split_indices: dict[str, np.ndarray] = {}
        self.source_test_split = False
        self.feature_names: list[str] | None = None
        self.target_column: str | None = None
        # Each split's rows of the source's optional weight and group columns, for the scorer
        # (weighted_error, per-group errors): {split: {"weight": w, "group": codes}}.
        self.example_columns: dict[str, dict[str, Any]] = {}
        self.group_names: list[str] = []

    # ----------------------------------------------------------------- loading and splitting
    def prepare(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Load, check and split the data once; returns ``{split: (x, y)}`` on the CPU."""
        if self._splits is None:
            arrays = self.source.load(self.seed)
            check_arrays(arrays, self.source)
            self._splits = self._split(arrays)
            self.feature_names, self.target_column = source_columns(self.source)
            top = max(int(y.max()) for _, y in self._splits.values()) + 1
            self.class_names = arrays.class_names or [str(k) for k in range(top)]
        return self._splits

    def _split(self, arrays: Arrays) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The splits, keeping in :attr:`split_indices` each split's rows of ``arrays.x``; with
        the source's own test split (:attr:`source_test_split`), the test rows are numbered
        in the source's ``x_test`` instead."""
        own_test = self.use_source_test_split and arrays.x_test is not None
        index = stratified_split(
            arrays.y,
            dev_fraction=self.dev_fraction,
            test_fraction=None if own_test else self.test_fraction,
            train_dev_fraction=self.train_dev_fraction,
            seed=self.seed,
        )
        splits = {
            k: (torch.from_numpy(arrays.x[i]), torch.from_numpy(arrays.y[i]))
            for k, i in index.items()
        }
        if own_test:
            assert arrays.x_test is not None and arrays.y_test is not None
            splits["test"] = (torch.from_numpy(arrays.x_test), torch.from_numpy(arrays.y_test))
            index["test"] = np.arange(len(arrays.y_test))
        self.split_indices = {k: index[k] for k in SPLITS if k in index}
        self.source_test_split = own_test
        columns = {"weight": arrays.weights, "group": arrays.groups}
        # The source's own test split has no weight or group columns.
        rows = {k: i for k, i in index.items() if not (own_test and k == "test")}
        self.example_columns = split_columns(columns, rows)
        self.group_names = list(arrays.group_names)
        return {k: splits[k] for k in SPLITS if k in splits}

    @property
    def split_names(self) -> list[str]:
        """Names of the splits this module makes, in order (train, [train_dev], dev, test)."""
        return list(self.prepare())

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(30,)`` or ``(1, 8, 8)``."""
        return tuple(self.prepare()["train"][0].shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are ``0..num_classes-1``)."""
        self.prepare()
        return len(self.class_names)

    def input_normalizer(self) -> Standardize | None:
        """A :class:`Standardize` fit on the train split, or None when ``normalize`` is false."""
        if not self.normalize:
            return None
        x = self._normalizer_inputs()
        per_channel = self.normalize == "per_channel" or (
            self.normalize is True and x.dtype == torch.uint8
        )
        norm = Standardize(self.input_shape)
        norm.fit(x, per_channel=per_channel)
        return norm

    def _normalizer_inputs(self) -> torch.Tensor:
        """The inputs :meth:`input_normalizer` fits on: the train split's."""
        return self.prepare()["train"][0]

    # ----------------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str) -> None:
        device = (
            self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        )
        # In-memory data moves to the accelerator once; batches are then gathered on it. Later
        # stages (test, validate, predict, scoring) on the same device reuse that copy.
        if getattr(self, "_device", None) == device:
            return
        splits = self.prepare()
        self._on_device = {k: (x.to(device), y.to(device)) for k, (x, y) in splits.items()}
        self._device = device

    def _batches(self, split: str, train: bool = False) -> InMemoryBatches:
        kwargs = self._batch_kwargs(train, split)
        return InMemoryBatches(*self._on_device[split], **kwargs)

    def _batch_kwargs(self, train: bool, split: str) -> dict[str, Any]:
        """:class:`InMemoryBatches`' settings for training or evaluation batches on this
        process; moves the splits to the device first if :meth:`setup` has not run."""
        if not hasattr(self, "_on_device"):
            self.setup("fit")
        rank, world = (0, 1)
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        return {
            "batch_size": self.batch_size if train else self.eval_batch_size,
            "shuffle": train,
            "seed": self.seed,
            "rank": rank,
            "world_size": world,
            "name": f"the {split} split",
        }

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.augment is None or self.trainer is None or not self.trainer.training:
            return batch
        x, y = batch
        return self.augment(x), y

    def train_dataloader(self) -> InMemoryBatches:
        return self._batches("train", train=True)

    def val_dataloader(self) -> InMemoryBatches:
        return self._batches("dev")

    def test_dataloader(self) -> InMemoryBatches:
        return self._batches("test")

    def predict_dataloader(self) -> InMemoryBatches:
        return self._batches("test")

    def eval_dataloader(self, split: str) -> InMemoryBatches:
        """Batches of any split in order, unshuffled, for evaluation (e.g. train in eval mode)."""
        if split not in self.prepare():
            raise ValueError(f"No {split!r} split; this data module has {self.split_names}.")
        return self._batches(split)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"seed": self.seed, "class_names": self.class_names}
        if self.feature_names is not None:  # what `mlstrategy predict` checks a CSV against
            state.update(feature_names=self.feature_names, target=self.target_column)
        return state


def source_columns(source: ArraySource) -> tuple[list[str] | None, str | None]:
    """The feature columns and the label column of a source that names them (an
    :class:`~mlstrategy.data.ArrayFile` CSV, :class:`~mlstrategy.data.BreastCancer`), else
    ``(None, None)``. Read once the source has loaded (the CSV was checked then)."""
    import csv
    from pathlib import Path

    from mlstrategy.data.sources import ArrayFile, BreastCancer

    if isinstance(source, BreastCancer):
        from sklearn.datasets import load_breast_cancer

        return [str(c) for c in load_breast_cancer().feature_names], "target"
    if not isinstance(source, ArrayFile) or Path(source.path).suffix.lower() != ".csv":
        return None, None
    if source.features:
        return [str(c) for c in source.features], source.target
    with Path(source.path).expanduser().open(newline="", encoding="utf-8-sig") as f:
        header = next(row for row in csv.reader(f) if any(cell.strip() for cell in row))
    left_out = (source.target, source.weight, source.group)  # never features
    return [c.strip() for c in header if c.strip() not in left_out], source.target


def check_finite_features(x: np.ndarray, where: str) -> None:
    """Refuse NaN or infinite features, naming the first rows and the fix."""
    if not np.issubdtype(x.dtype, np.inexact):
        return  # integers (uint8 images) are always finite
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(
            f"{where}: {int(bad.sum())} example(s) have NaN or infinite features "
            f"(rows {rows}{'...' if bad.sum() > 5 else ''}). Impute them (e.g. "
            "sklearn.impute.SimpleImputer) or drop those rows before training."
        )


def check_arrays(arrays: Arrays, source: ArraySource) -> None:
    """Refuse arrays that would train silently wrong (the checks :meth:`ArrayDataModule.prepare`
    runs on its source), naming the source and the fix; other data modules reuse them."""
    pairs = [("", arrays.x, arrays.y)]
    if arrays.x_test is not None and arrays.y_test is not None:
        pairs.append((" (its test split)", arrays.x_test, arrays.y_test))
    for where, x, y in pairs:
        if len(x) != len(y):
            raise ValueError(f"{source!r}{where}: {len(x)} feature rows but {len(y)} labels.")
        check_finite_features(x, f"{source!r}{where}")
        if y.ndim != 1 or (len(y) and (y.min() < 0)):
            raise ValueError(
                f"{source!r}{where}: labels must be one integer per example in 0..K-1."
            )
    if arrays.class_names and int(arrays.y.max()) >= len(arrays.class_names):
        raise ValueError(
            f"{source!r}: label {int(arrays.y.max())} is out of range for "
            f"{len(arrays.class_names)} classes {arrays.class_names}."
        )
    if len(np.unique(arrays.y)) < 2:
        raise ValueError(
            f"{source!r}: all labels are the same; a classifier needs at least 2 classes."
        )
