"""Built-in, offline data sources: each returns NumPy arrays, never downloads.

A source is a small class whose ``__init__`` arguments are the knobs a recipe can turn, so
``class_path: mlstrategy.data.Moons`` plus ``init_args`` in YAML is validated like any other
LightningCLI argument.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlstrategy.data.example_columns import encode_groups, encode_labels, example_weights


@dataclass
class Arrays:
    """Features and integer labels of one data set, plus an optional fixed test split.

    Attributes:
        x: Features, shape ``(m, *input_shape)``, float32.
        y: Labels in ``[0, num_classes)``, shape ``(m,)``, int64.
        class_names: One name per class.
        x_test: Features of the source's own test split, if it has one.
        y_test: Labels of the source's own test split.
        weights: Optional weight ``w_i >= 0`` of each example of ``x`` (the weighted error).
        groups: Optional group code ``0..G-1`` of each example of ``x`` (per-group errors).
        group_names: One name per group code.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str] = field(default_factory=list)
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    weights: np.ndarray | None = None
    groups: np.ndarray | None = None
    group_names: list[str] = field(default_factory=list)


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


@dataclass
class CsvTable:
    """A CSV file read as text: its header and its data rows, each with its line number.

    Attributes:
        path: The file, for messages.
        header: Column names, stripped of spaces.
        rows: Data rows, each as long as ``header``; blank lines are left out.
        lines: The line of the file each row starts on (1 = the header's first line).
    """

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def require(self, names: list[str], fix: str) -> None:
        """Refuse names that are not columns, listing the columns there are and ``fix``."""
        missing = [c for c in names if c not in self.header]
        if not missing:
            return
        hint = ""
        if len(self.header) == 1 and (";" in self.header[0] or "\t" in self.header[0]):
            sep = "';'" if ";" in self.header[0] else "a tab"
            hint = f" The header looks separated by {sep}; save the file with commas."
        raise ValueError(
            f"{self.path} has no column(s) {missing}; its columns are {self.header}.{hint} {fix}"
        )


def check_data_file(path_text: str, suffixes: tuple[str, ...], reader: str) -> Path:
    """The path of a user's data file, after checking it is a file with a suffix we read.

    A leading ``~`` is the home directory, as in a shell.
    """
    path = Path(path_text).expanduser()
    where = "`data.init_args.source.init_args.path`"
    if path.is_dir():
        raise ValueError(
            f"Data file {path_text!r} is a folder, not a file. Set {where} to the "
            f"{' or '.join(suffixes)} file itself."
        )
    if not path.is_file():
        raise ValueError(
            f"Data file {path_text!r} does not exist. Check {where} (relative paths are "
            "taken from the directory you run mlstrategy in)."
        )
    if path.suffix.lower() not in suffixes:
        raise ValueError(
            f"Data file {path_text!r} has suffix {path.suffix!r}; {reader} reads "
            f"{' or '.join(suffixes)}. Save your arrays with numpy.savez or as a CSV with a "
            "header row."
        )
    return path


def read_csv_table(path: Path) -> CsvTable:
    """Read a CSV with a header row, refusing odd files with the place and the fix.

    Blank lines are skipped anywhere. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is
    dropped. Refused, each with its own message: a file that is not UTF-8 text, an empty file,
    a header with no rows under it, a header cell with no name (trailing commas), a name used
    twice, and a row with more or fewer cells than the header.
    """
    import csv

    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            start = 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {err.start} cannot be read). Save it as "
            '"CSV UTF-8", or check that it is a CSV file at all.'
        ) from None
    except csv.Error as err:
        raise ValueError(
            f"{path} line {start} cannot be read as CSV ({err}). Check that it is a text CSV."
        ) from None
    if not rows:
        raise ValueError(f"{path} is empty; it needs a header row and one row per example.")
    header = [cell.strip() for cell in rows[0]]
    for i, name in enumerate(header):
        if not name:
            fix = (
                "trailing commas? Remove the comma at the end of each line, or name the column."
                if i == len(header) - 1
                else "give every column a name in the header row."
            )
            raise ValueError(f"{path} line {lines[0]}: column {i + 1} has no name: {fix}")
    for name in header:
        if header.count(name) > 1:
            places = [i + 1 for i, n in enumerate(header) if n == name]
            raise ValueError(
                f"{path} line {lines[0]}: the column name {name!r} is used by columns {places}; "
                "give each column its own name."
            )
    if len(rows) == 1:
        raise ValueError(
            f"{path} has a header row ({len(header)} columns) but no data rows; it needs one "
            "row per example under the header."
        )
    for row, line in zip(rows[1:], lines[1:], strict=True):
        if len(row) != len(header):
            hint = ""
            if len(row) == len(header) + 1 and not row[-1].strip():
                hint = " A trailing comma? Remove it, or add a column to the header."
            elif len(row) > len(header):
                hint = " A text cell with a comma in it must be in double quotes."
            raise ValueError(
                f"{path} line {line} has {len(row)} cells, the header has {len(header)}.{hint}"
            )
    return CsvTable(path=path, header=header, rows=rows[1:], lines=lines[1:])


class ArrayFile(ArraySource):
    """The user's own arrays from a ``.npz`` or ``.csv`` file.

    For ``.npz``, ``features`` and ``target`` name arrays in the archive (default ``X`` and
    ``y``). For ``.csv`` (header row required; blank lines are skipped), ``target`` names the
    label column and ``features`` the feature columns (default: every other column). Labels
    may be integers ``0..K-1`` or strings (mapped to classes in sorted order). The weight and
    group columns (arrays) are never features.

    Args:
        path: Path to the ``.npz`` or ``.csv`` file.
        target: Name of the label array (``.npz``) or column (``.csv``).
        features: Name of the feature array (``.npz``, one name) or feature columns (``.csv``).
        weight: Optional column (array) of example weights ``w_i >= 0`` for the weighted error
            ``sum_i w_i cost(y_i, yhat_i) / sum_i w_i`` (see ``evaluation.class_costs``);
            training is not weighted by it. null: every example weighs 1.
        group: Optional column (array) naming each example's group (e.g. a country): the
            report shows each group's error and ``{split}/error_group_mean``, their mean.
    """

    def __init__(
        self,
        path: str,
        target: str = "y",
        features: list[str] | None = None,
        weight: str | None = None,
        group: str | None = None,
    ) -> None:
        self.path = path
        self.target = target
        self.features = features
        self.weight = weight
        self.group = group

    def load(self, seed: int) -> Arrays:
        x, y, path, extra = self._read()
        arrays = Arrays(x, *encode_labels(y, path))  # y as classes 0..K-1, and their names
        if self.weight is not None:
            arrays.weights = example_weights(extra[self.weight], path, self.weight)
        if self.group is not None:
            arrays.groups, arrays.group_names = encode_groups(extra[self.group], path, self.group)
        return arrays

    def load_raw(self) -> tuple[np.ndarray, np.ndarray, Path]:
        """Features, the target as stored (a regression reads it as numbers) and the path."""
        return self._read()[:3]

    def _read(self) -> tuple[np.ndarray, np.ndarray, Path, dict[str, np.ndarray]]:
        path = check_data_file(self.path, (".npz", ".csv"), "ArrayFile")
        extra = [c for c in (self.weight, self.group) if c is not None]
        if self.target in extra:
            raise ValueError(
                f"{path}: the label column {self.target!r} is also the weight or group column; "
                "name a column of its own for `weight` and `group`."
            )
        load = self._load_npz if path.suffix.lower() == ".npz" else self._load_csv
        x, y, columns = load(path, extra)
        return x, y, path, columns

    def _load_npz(
        self, path: Path, extra: list[str]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        import zipfile

        feature_key = self.features[0] if self.features else "X"
        try:
            archive = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile):
            raise ValueError(
                f"{path} is not a NumPy .npz archive. Write it with numpy.savez(path, X=..., "
                "y=...), or give a .csv file."
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{path} holds one array (a .npy file), not an .npz archive of named arrays. "
                "Write it with numpy.savez(path, X=features, y=labels)."
            )
        with archive:
            keys = list(archive.keys())
            for key in (feature_key, self.target, *extra):
                if key not in keys:
                    raise ValueError(
                        f"{path} has no array named {key!r} (it has {keys}). Set `source."
                        "init_args.features: [NAME]` and `source.init_args.target: NAME` to the "
                        "names used in the file."
                    )
            x = _npz_array(archive, feature_key, path)
            y = _npz_array(archive, self.target, path)
            columns = {key: _npz_array(archive, key, path).reshape(-1) for key in extra}
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{path}: features {feature_key!r} are {x.dtype}, not numbers.")
        if x.ndim < 2:
            raise ValueError(
                f"{path}: features {feature_key!r} have shape {x.shape}, not (m, n) with one row "
                "per example. For one feature, save X[:, None]."
            )
        if y.ndim == 2 and y.shape[1] > 1:
            raise ValueError(
                f"{path}: labels {self.target!r} have shape {y.shape}; they need one class "
                "per example, shape (m,). For one-hot labels, save y.argmax(axis=1)."
            )
        if len(x) == 0:
            raise ValueError(f"{path}: features {feature_key!r} hold no examples (0 rows).")
        for key, values in columns.items():
            if len(values) != len(x):
                raise ValueError(f"{path}: {len(x)} examples but {len(values)} {key!r} values.")
        return x.astype(np.float32), y, columns

    def _load_csv(
        self, path: Path, extra: list[str]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        table = read_csv_table(path)
        table.require(
            [self.target, *(self.features or []), *extra],
            "Set `source.init_args.target` (label column) and `source.init_args.features` to "
            "columns of the file.",
        )
        if self.target in (self.features or []):
            raise ValueError(
                f"{path}: the label column {self.target!r} is also listed in `features`, which "
                "would hand the model its answer. Leave it out of `features`."
            )
        feature_cols = self.features or [c for c in table.header if c not in (self.target, *extra)]
        if not feature_cols:
            raise ValueError(
                f"{path} has only the label column {self.target!r}; it needs feature columns."
            )
        feature_idx = [table.header.index(c) for c in feature_cols]
        target_idx = table.header.index(self.target)
        x = np.empty((len(table.rows), len(feature_idx)), dtype=np.float32)
        for r, (row, line) in enumerate(zip(table.rows, table.lines, strict=True)):
            if not row[target_idx].strip():
                raise ValueError(
                    f"{path} line {line}: the label cell (column {self.target!r}) is empty; "
                    "every row needs a label. Fill it in or drop the row."
                )
            for c, i in enumerate(feature_idx):
                cell = row[i].strip()
                try:
                    x[r, c] = float(cell) if cell else np.nan
                except ValueError:
                    raise ValueError(
                        f"{path} line {line}, column {table.header[i]!r}: {cell!r} is not a "
                        "number. Features must be numeric; encode categories first or leave "
                        "the column out of `features`."
                    ) from None
        y = np.array([row[target_idx].strip() for row in table.rows])
        cells = {c: np.array([row[table.header.index(c)] for row in table.rows]) for c in extra}
        return x, y, cells


def _npz_array(archive: Any, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError:  # object arrays need pickle, which is never allowed here
        raise ValueError(
            f"{path}: array {key!r} holds Python objects (dtype=object), which are not loaded "
            "(they could run code). Save numeric arrays, e.g. numpy.savez(path, X=X.astype("
            "float), y=y.astype(int))."
        ) from None


SOURCES: dict[str, type[ArraySource]] = {
    cls.__name__: cls for cls in (BreastCancer, Digits, Moons, Flower, MNIST1D, ArrayFile)
}
