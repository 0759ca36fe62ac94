"""Data with a numeric target: the sources of a regression and their data module.

- :class:`Diabetes`: scikit-learn's diabetes data (ships with the package, no download).
- :class:`NoisyCurve`: a generated 1-D curve with Gaussian noise of a known size, the course's
  picture of bias: a straight line underfits it, a deep net follows it down to the noise.
- :class:`~mlstrategy.data.ArrayFile` (a user's CSV or npz) read with a numeric target.

:class:`RegressionDataModule` splits, batches and normalizes them like
:class:`~mlstrategy.data.ArrayDataModule` does class labels, and fits the target's mean and
standard deviation on the train split for the model to learn a standardized target.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlstrategy.data.datamodule import (
    ArrayDataModule,
    NormalizeMode,
    check_finite_features,
    source_columns,
)
from mlstrategy.data.sources import ArrayFile, Arrays, ArraySource


class Diabetes(ArraySource):
    """scikit-learn's diabetes data: 442 patients, 10 baseline features, and a quantitative
    measure of disease progression one year later (25 to 346), the target.

    The features are scikit-learn's (each column centred and scaled by ``sqrt(m)`` times its
    standard deviation); the data module standardizes them again on the train split.
    """

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import load_diabetes

        data = load_diabetes()
        return Arrays(x=data.data.astype(np.float32), y=data.target.astype(np.float32))


class NoisyCurve(ArraySource):
    """``y = sin(3 x) + x / 2 + noise`` on ``x`` uniform in ``[-2, 2]``, seeded.

    The noise is Gaussian with standard deviation ``noise``: no model can predict it, so the
    best possible RMSE (Bayes error) is ``noise``, the value for ``evaluation.human_error``.
    The best straight line leaves the wiggle of ``sin(3 x)`` unexplained (RMSE near 0.7 with
    the default noise): avoidable bias.

    Args:
        n_samples: Number of examples.
        noise: Standard deviation of the noise on ``y``, >= 0.
    """

    def __init__(self, n_samples: int = 1000, noise: float = 0.2) -> None:
        if n_samples < 10:
            raise ValueError(f"NoisyCurve: n_samples={n_samples} is too small; use at least 10.")
        if not noise >= 0:
            raise ValueError(f"NoisyCurve: noise={noise} must be >= 0 (the noise's std).")
        self.n_samples = n_samples
        self.noise = noise

    @staticmethod
    def curve(x: np.ndarray) -> np.ndarray:
        """The noiseless curve ``f(x) = sin(3 x) + x / 2``."""
        return np.sin(3 * x) + x / 2

    def load(self, seed: int) -> Arrays:
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2.0, 2.0, size=(self.n_samples, 1))
        y = self.curve(x[:, 0]) + rng.normal(scale=self.noise, size=self.n_samples)
        return Arrays(x=x.astype(np.float32), y=y.astype(np.float32))


def numeric_target(y: np.ndarray, where: str, column: str) -> np.ndarray:
    """The target as float32 numbers; ``ValueError`` naming the column for anything else.

    Args:
        y: The target as stored (numbers, or text from a CSV).
        where: The file, for the message.
        column: The target's column (CSV) or array (npz) name.

    Example:
        >>> numeric_target(np.array(["1.5", "2"]), "f.csv", "price").tolist()
        [1.5, 2.0]
        >>> numeric_target(np.array(["1.5", "cheap"]), "f.csv", "price")
        Traceback (most recent call last):
        ...
        ValueError: f.csv: the target column 'price' holds 'cheap' (row 1, from 0), which is not a \
number. A regression needs a numeric target; for class labels use \
mlstrategy.data.ArrayDataModule with a classifier, or set `source.init_args.target` to a \
numeric column.
    """
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind in "US":
        for i, cell in enumerate(y.tolist()):
            try:
                float(cell)
            except ValueError:
                raise ValueError(
                    f"{where}: the target column {column!r} holds {cell!r} (row {i}, from 0), "
                    "which is not a number. A regression needs a numeric target; for class "
                    "labels use mlstrategy.data.ArrayDataModule with a classifier, or set "
                    "`source.init_args.target` to a numeric column."
                ) from None
    elif not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(
            f"{where}: the target {column!r} is {y.dtype}, not numbers; a regression needs a "
            "numeric target."
        )
    return y.astype(np.float64).astype(np.float32)


def check_targets(y: np.ndarray, where: str) -> None:
    """Refuse NaN or infinite targets, naming the first examples and the fix."""
    bad = ~np.isfinite(y)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(
            f"{where}: {int(bad.sum())} target value(s) are NaN or infinite (rows "
            f"{rows}{'...' if bad.sum() > 5 else ''}, from 0). A regression trains on every "
            "example's target: drop those rows, or fill them in, before training."
        )


class RegressionDataModule(ArrayDataModule):
    """Seeded random splits of an in-memory data set with a numeric target.

    Everything :class:`~mlstrategy.data.ArrayDataModule` does (train / train-dev / dev / test
    fractions, a source's own test split, whole-tensor batches, input standardization from the
    train split, augmentation), for a real-valued target: the splits are random (there are no
    classes to stratify by), ``num_classes`` is 0 (the toolkit's mark for real values, which
    a regressor checks), and :meth:`target_normalizer` gives the train split's target mean and
    standard deviation. An :class:`~mlstrategy.data.ArrayFile` source is read with a numeric
    target: a non-numeric or missing target is refused with the column's name.

    Args:
        source: Where the examples come from, e.g. ``mlstrategy.data.Diabetes``.
        dev_fraction: Fraction of the examples in the dev split, in (0, 1).
        test_fraction: Fraction in the test split, in [0, 1); 0 = no test split. Ignored when
            the source has its own test split and ``use_source_test_split`` is true.
        train_dev_fraction: Fraction carved from the training distribution as a train-dev
            split, in [0, 1); 0 = none.
        use_source_test_split: Use the source's own test split, if it has one, as the test
            split.
        batch_size: Mini-batch size; null = the whole train split in one batch.
        eval_batch_size: Batch size for evaluation.
        normalize: Standardize inputs with statistics from the train split (see
            :class:`~mlstrategy.data.ArrayDataModule`); the target is standardized by the model
            with :meth:`target_normalizer`.
        seed: Seed of data generation, the split and the shuffle order.
        augment: Training-only input augmentation, as in
            :class:`~mlstrategy.data.ArrayDataModule`; targets are left as they are.
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
        super().__init__(
            source,
            dev_fraction=dev_fraction,
            test_fraction=test_fraction,
            train_dev_fraction=train_dev_fraction,
            use_source_test_split=use_source_test_split,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            normalize=normalize,
            seed=seed,
            augment=augment,
        )

    def prepare(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Load, check and split the data once; returns ``{split: (x, y)}`` on the CPU, ``y``
        float32 of shape ``(m,)``."""
        if self._splits is None:
            arrays = self._load()
            # ArrayDataModule's seeded split (fractions checked, each split's rows kept in
            # split_indices) with every example in one stratum; the targets go back by row.
            test = None if arrays.y_test is None else np.zeros(len(arrays.y_test), np.int64)
            one = np.zeros(len(arrays.y), np.int64)
            splits = self._split(Arrays(arrays.x, one, [], arrays.x_test, test))

            def target(split: str) -> torch.Tensor:
                own = split == "test" and self.source_test_split and arrays.y_test is not None
                y = arrays.y_test if own else arrays.y
                assert y is not None
                return torch.from_numpy(y[self.split_indices[split]])

            self._splits = {k: (x, target(k)) for k, (x, _) in splits.items()}
            self.feature_names, self.target_column = source_columns(self.source)
        return self._splits

    def _load(self) -> Arrays:
        source = self.source
        if isinstance(source, ArrayFile):
            x, raw, path = source.load_raw()
            arrays = Arrays(x=x, y=numeric_target(raw, str(path), source.target))
        else:
            arrays = source.load(self.seed)
        pairs = [("", arrays.x, arrays.y)]
        if arrays.x_test is not None and arrays.y_test is not None:
            pairs.append((" (its test split)", arrays.x_test, arrays.y_test))
        for part, x, y in pairs:
            where = f"{source!r}{part}"
            y = np.asarray(y)
            if y.ndim != 1 or len(x) != len(y):
                raise ValueError(
                    f"{where}: {len(x)} feature rows but target of shape {y.shape}; a "
                    "regression needs one number per example, shape (m,)."
                )
            check_finite_features(x, where)
            check_targets(y, where)
        arrays.y = np.asarray(arrays.y, dtype=np.float32)
        if arrays.y_test is not None:
            arrays.y_test = np.asarray(arrays.y_test, dtype=np.float32)
        return arrays

    @property
    def num_classes(self) -> int:
        """0: the target is a real number, not a class (what a regressor expects)."""
        self.prepare()
        return 0

    def target_normalizer(self) -> tuple[float, float]:
        """``(mu_y, sigma_y)`` of the train split's target (``sigma_y`` 1 for a constant)."""
        y = self.prepare()["train"][1].double()
        std = float(y.std(correction=0))
        return float(y.mean()), std if std > 1e-12 else 1.0
