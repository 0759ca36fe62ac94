"""Built-in, offline data sources: each returns NumPy arrays, never downloads.

A source is a small class whose ``__init__`` arguments are the knobs a recipe can turn, so
``class_path: mlstrategy.data.Moons`` plus ``init_args`` in YAML is validated like any other
LightningCLI argument.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Arrays:
    """Features and integer labels of one data set, plus an optional fixed test split.

    Attributes:
        x: Features, shape ``(m, *input_shape)``, float32.
        y: Labels in ``[0, num_classes)``, shape ``(m,)``, int64.
        class_names: One name per class.
        x_test: Features of the source's own test split, if it has one.
        y_test: Labels of the source's own test split.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str] = field(default_factory=list)
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


class ArraySource:
    """Base class: a data set small enough to live in memory as arrays."""

    def load(self, seed: int) -> Arrays:
        """Build or read the arrays; generated sources use ``seed``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class BreastCancer(ArraySource):
    """scikit-learn's Wisconsin breast cancer data: 569 examples, 30 features, binary.

    Label 1 is *malignant* here (scikit-learn codes it 0), so precision and recall are about
    finding the disease, the usual reading.
    """

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        return Arrays(
            x=data.data.astype(np.float32),
            y=(1 - data.target).astype(np.int64),
            class_names=["benign", "malignant"],
        )


class Digits(ArraySource):
    """scikit-learn's 8x8 handwritten digits: 1,797 examples, 10 classes.

    Args:
        flatten: Give 64 features per example (for MLPs and softmax regression); ``False``
            gives images of shape ``(1, 8, 8)`` for a ConvNet.
    """

    def __init__(self, flatten: bool = True) -> None:
        self.flatten = flatten

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = data.images.astype(np.float32)
        x = x.reshape(len(x), -1) if self.flatten else x[:, None, :, :]
        return Arrays(x=x, y=data.target.astype(np.int64), class_names=[str(d) for d in range(10)])


class Moons(ArraySource):
    """Two interleaving half circles (scikit-learn's ``make_moons``), seeded.

    Args:
        n_samples: Number of examples.
        noise: Standard deviation of the Gaussian noise added to the points.
    """

    def __init__(self, n_samples: int = 1000, noise: float = 0.2) -> None:
        if n_samples < 10:
            raise ValueError(f"Moons: n_samples={n_samples} is too small; use at least 10.")
        if noise < 0:
            raise ValueError(f"Moons: noise={noise} must be >= 0.")
        self.n_samples = n_samples
        self.noise = noise

    def load(self, seed: int) -> Arrays:
        from sklearn.datasets import make_moons

        x, y = make_moons(n_samples=self.n_samples, noise=self.noise, random_state=seed)
        return Arrays(x=x.astype(np.float32), y=y.astype(np.int64), class_names=["0", "1"])


class Flower(ArraySource):
    """The course's planar "flower" data (week 3): two classes as petals, not linearly separable.

    Same construction as the course's ``load_planar_dataset`` (``a = 4`` petals radius,
    ``r = a sin(4t) + noise``), seeded by the data module's seed rather than ``np.random.seed(1)``.

    Args:
        n_samples: Number of examples (split evenly between the classes).
        noise: Standard deviation of the noise on the angle and the radius.
    """

    def __init__(self, n_samples: int = 400, noise: float = 0.2) -> None:
        if n_samples < 10:
            raise ValueError(f"Flower: n_samples={n_samples} is too small; use at least 10.")
        if noise < 0:
            raise ValueError(f"Flower: noise={noise} must be >= 0.")
        self.n_samples = n_samples
        self.noise = noise

    def load(self, seed: int) -> Arrays:
        rng = np.random.default_rng(seed)
        per_class = self.n_samples // 2
        a = 4.0  # maximum ray of the flower
        xs, ys = [], []
        for j in range(2):
            t = (
                np.linspace(j * 3.12, (j + 1) * 3.12, per_class)
                + rng.normal(size=per_class) * self.noise
            )
            r = a * np.sin(4 * t) + rng.normal(size=per_class) * self.noise
            xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
            ys.append(np.full(per_class, j))
        return Arrays(
            x=np.concatenate(xs).astype(np.float32),
            y=np.concatenate(ys).astype(np.int64),
            class_names=["red", "blue"],
        )


class MNIST1D(ArraySource):
    """MNIST-1D (Greydanus 2020): 10 digit templates as length-40 signals, built locally.

    Uses ``mnist1d.data.make_dataset`` (never ``get_dataset``, which downloads). That function
    reseeds NumPy's and Python's global generators; their states are restored afterwards so it
    does not disturb the rest of the run.

    Args:
        num_samples: Examples generated in all; ``train_split`` of them form the source's train
            split, the rest its own test split (used as the test split when the data module's
            ``use_source_test_split`` is true).
        train_split: Fraction of ``num_samples`` in the source's train split.
        as_sequence: Give shape ``(1, 40)`` (channels, length) for a 1-D ConvNet instead of 40
            flat features.
    """

    def __init__(
        self, num_samples: int = 5000, train_split: float = 0.8, as_sequence: bool = False
    ) -> None:
        if num_samples < 100:
            raise ValueError(f"MNIST1D: num_samples={num_samples} is too small; use at least 100.")
        if not 0 < train_split < 1:
            raise ValueError(f"MNIST1D: train_split={train_split} must be in (0, 1).")
        self.num_samples = num_samples
        self.train_split = train_split
        self.as_sequence = as_sequence

    def load(self, seed: int) -> Arrays:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = self.num_samples
        args.train_split = self.train_split
        args.seed = seed
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            data = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)

        def shape(x: np.ndarray) -> np.ndarray:
            x = x.astype(np.float32)
            return x[:, None, :] if self.as_sequence else x

        return Arrays(
            x=shape(data["x"]),
            y=data["y"].astype(np.int64),
            class_names=[str(d) for d in range(10)],
            x_test=shape(data["x_test"]),
            y_test=data["y_test"].astype(np.int64),
        )


class ArrayFile(ArraySource):
    """The user's own arrays from a ``.npz`` or ``.csv`` file.

    For ``.npz``, ``features`` and ``target`` name arrays in the archive (default ``X`` and
    ``y``). For ``.csv`` (header row required), ``target`` names the label column and
    ``features`` the feature columns (default: every other column). Labels may be integers
    ``0..K-1`` or strings (mapped to classes in sorted order).

    Args:
        path: Path to the ``.npz`` or ``.csv`` file.
        target: Name of the label array (``.npz``) or column (``.csv``).
        features: Name of the feature array (``.npz``, one name) or feature columns (``.csv``).
    """

    def __init__(self, path: str, target: str = "y", features: list[str] | None = None) -> None:
        self.path = path
        self.target = target
        self.features = features

    def load(self, seed: int) -> Arrays:
        path = Path(self.path)
        if not path.is_file():
            raise ValueError(
                f"Data file {str(path)!r} does not exist. Check `data.init_args.source.init_args."
                "path` (relative paths are taken from the directory you run mlstrategy in)."
            )
        suffix = path.suffix.lower()
        if suffix == ".npz":
            x, y = self._load_npz(path)
        elif suffix == ".csv":
            x, y = self._load_csv(path)
        else:
            raise ValueError(
                f"Data file {str(path)!r} has suffix {suffix!r}; ArrayFile reads .npz or .csv. "
                "Save your arrays with numpy.savez or as a CSV with a header row."
            )
        y, class_names = _encode_labels(y, path)
        return Arrays(x=x, y=y, class_names=class_names)

    def _load_npz(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        feature_key = self.features[0] if self.features else "X"
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            for key in (feature_key, self.target):
                if key not in keys:
                    raise ValueError(
                        f"{path} has no array named {key!r} (it has {keys}). Set "
                        "`source.init_args.features: [NAME]` and `source.init_args.target: NAME` "
                        "to the names used in the file."
                    )
            x, y = archive[feature_key], archive[self.target]
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{path}: features {feature_key!r} are {x.dtype}, not numbers.")
        return x.astype(np.float32), y

    def _load_csv(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        import csv

        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if len(rows) < 2:
            raise ValueError(
                f"{path} has no data rows; it needs a header row and one row per example."
            )
        header, body = rows[0], rows[1:]
        wanted = [self.target, *(self.features or [])]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ValueError(
                f"{path} has no column(s) {missing}; its columns are {header}. Set "
                "`source.init_args.target` (label column) and `source.init_args.features` to "
                "columns of the file."
            )
        feature_cols = self.features or [c for c in header if c != self.target]
        feature_idx = [header.index(c) for c in feature_cols]
        target_idx = header.index(self.target)
        x = np.empty((len(body), len(feature_idx)), dtype=np.float32)
        for r, row in enumerate(body):
            if len(row) != len(header):
                raise ValueError(
                    f"{path} line {r + 2} has {len(row)} cells, the header has {len(header)}."
                )
            for c, i in enumerate(feature_idx):
                cell = row[i].strip()
                try:
                    x[r, c] = float(cell) if cell else np.nan
                except ValueError:
                    raise ValueError(
                        f"{path} line {r + 2}, column {header[i]!r}: {cell!r} is not a number. "
                        "Features must be numeric; encode categories first or leave the column "
                        "out of `features`."
                    ) from None
        y = np.array([row[target_idx].strip() for row in body])
        return x, y


def _encode_labels(y: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """Map labels to ``0..K-1``: integer labels are kept, strings become sorted classes."""
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind in "US":  # strings from a CSV: numeric if they all parse
        try:
            y = y.astype(np.float64)
        except ValueError:
            names = sorted(set(y.tolist()))
            if "" in names:
                raise ValueError(
                    f"{path}: some labels are empty; every row needs a label."
                ) from None
            return np.searchsorted(names, y).astype(np.int64), names
    y = y.astype(np.float64)
    if np.isnan(y).any():
        raise ValueError(f"{path}: {int(np.isnan(y).sum())} labels are missing (NaN or empty).")
    if (y != np.round(y)).any() or (y < 0).any():
        bad = y[(y != np.round(y)) | (y < 0)][:3].tolist()
        raise ValueError(
            f"{path}: labels out of range, e.g. {bad}. Class labels must be integers 0..K-1 "
            "(or strings, mapped to classes in sorted order)."
        )
    y_int = y.astype(np.int64)
    return y_int, [str(k) for k in range(int(y_int.max()) + 1)]


SOURCES: dict[str, type[ArraySource]] = {
    cls.__name__: cls for cls in (BreastCancer, Digits, Moons, Flower, MNIST1D, ArrayFile)
}
