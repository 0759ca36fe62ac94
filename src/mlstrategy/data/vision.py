"""torchvision's image data sets as in-memory sources: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100.

Each source reads the files torchvision keeps under ``root`` (the same layout, so a folder
torchvision already filled is used as it is) and gives the images as ``uint8`` arrays
``(m, C, H, W)`` with the data set's own test split. :class:`~mlstrategy.data.ArrayDataModule`
keeps them ``uint8`` (a quarter of float32's memory, on the accelerator when one is used),
normalizes them per channel with statistics of the train split, and the model reads them as
``x / 255`` (see :class:`~mlstrategy.data.normalization.Standardize`).

Nothing downloads unless the recipe says ``download: true``; then torchvision's own download
code fetches the archives and checks their MD5 sums. CIFAR's "python version" files are
pickles: they are read with :func:`~mlstrategy.data.safe_pickle.load_arrays_pickle`, which
admits NumPy arrays and plain containers and nothing that could run code, whether or not the
files are the checksummed originals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from mlstrategy.data.safe_pickle import load_arrays_pickle
from mlstrategy.data.sources import Arrays, ArraySource

CifarLabels = Literal["fine", "coarse"]


class _TorchvisionSource(ArraySource):
    """The knobs every torchvision-backed source shares: where the files are, and whether to
    fetch them."""

    #: The data set's torchvision class name, and its name for people.
    _torchvision = ""
    _title = ""

    def __init__(self, root: str = "data", download: bool = False) -> None:
        self.root = root
        self.download = download

    def _dataset_class(self) -> Any:
        from torchvision import datasets

        return getattr(datasets, self._torchvision)

    def _root(self) -> Path:
        return Path(self.root).expanduser()

    def _not_found(self, folder: Path, missing: list[str]) -> FileNotFoundError:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        return FileNotFoundError(
            f"{self._title} is not in {folder} (missing: {shown}). Set `download: true` "
            f"(data.init_args.source.init_args.download; needs the internet once: torchvision "
            f"fetches the archives and checks their MD5 sums), or set `root:` (now "
            f"{self.root!r}) to the folder in which torchvision's files sit as "
            f"{folder.relative_to(self._root()).as_posix()}/ (relative paths are taken from the "
            "directory you run mlstrategy in)."
        )

    def _fetch(self, fetch: Any, folder: Path) -> None:
        """Run torchvision's download, turning its failures into one paragraph."""
        from urllib.error import URLError

        try:
            fetch()
        except (RuntimeError, URLError, OSError) as err:
            raise FileNotFoundError(
                f"Downloading {self._title} into {folder} failed ({err}). Check the internet "
                "connection (or proxy), or copy the data set's files there from a machine "
                "that has them and run again."
            ) from None


class _MnistLike(_TorchvisionSource):
    """28x28 grey images in the idx files of LeCun's MNIST: ``root/<Name>/raw/``."""

    _class_names: ClassVar[list[str]] = []

    def load(self, seed: int) -> Arrays:
        cls = self._dataset_class()
        raw = self._root() / cls.__name__ / "raw"
        # torchvision reads the decompressed idx files; its download keeps the .gz beside them.
        names = [os.path.splitext(name)[0] for name, _ in cls.resources]
        missing = self._decompress_gz(raw, names)
        if missing and self.download:
            self._fetch(lambda: cls(str(self._root()), train=True, download=True), raw)
            missing = [n for n in names if not (raw / n).is_file()]
        if missing:
            raise self._not_found(raw, missing)
        x, y = self._read(cls, train=True, raw=raw)
        x_test, y_test = self._read(cls, train=False, raw=raw)
        return Arrays(x=x, y=y, class_names=list(self._class_names), x_test=x_test, y_test=y_test)

    @staticmethod
    def _decompress_gz(raw: Path, names: list[str]) -> list[str]:
        """Decompress ``name.gz`` where only it is there (as torchvision's download would);
        the names still missing."""
        from torchvision.datasets.utils import extract_archive

        for name in names:
            gz = raw / f"{name}.gz"
            if not (raw / name).is_file() and gz.is_file():
                try:
                    extract_archive(str(gz), str(raw))
                except (OSError, EOFError) as err:
                    raise ValueError(
                        f"{gz} cannot be decompressed ({err}); delete it and fetch the data "
                        "set again (download: true)."
                    ) from None
        return [n for n in names if not (raw / n).is_file()]

    def _read(self, cls: Any, train: bool, raw: Path) -> tuple[np.ndarray, np.ndarray]:
        try:
            data = cls(str(self._root()), train=train, download=False)
        except (AssertionError, TypeError, ValueError, RuntimeError, KeyError) as err:
            split = "train" if train else "t10k"
            raise ValueError(
                f"The {split} idx files in {raw} cannot be read as {self._title} "
                f"({type(err).__name__}: {err}). Delete them and fetch the data set again "
                "(download: true)."
            ) from None
        images, labels = data.data.numpy(), data.targets.numpy()
        if len(images) != len(labels):
            raise ValueError(
                f"{raw}: the {'train' if train else 't10k'} files hold {len(images)} images "
                f"but {len(labels)} labels; fetch the data set again (download: true)."
            )
        return images[:, None, :, :], labels.astype(np.int64)


class MNIST(_MnistLike):
    """LeCun's handwritten digits: 60,000 train and 10,000 test images, 1x28x28, 10 classes.

    Read from ``root/MNIST/raw/`` (``train-images-idx3-ubyte`` and the other three idx files,
    decompressed or as the ``.gz`` files torchvision downloads) with torchvision's reader.

    Args:
        root: The folder that holds ``MNIST/`` (torchvision's ``root``).
        download: Fetch the files with torchvision when they are not there (needs the
            internet once; MD5-checked). False: never touch the network.
    """

    _torchvision = "MNIST"
    _title = "MNIST"
    _class_names: ClassVar[list[str]] = [str(d) for d in range(10)]


class FashionMNIST(_MnistLike):
    """Zalando's Fashion-MNIST: 60,000 train and 10,000 test images of clothes, 1x28x28,
    10 classes (T-shirt/top, Trouser, ..., Ankle boot).

    Read from ``root/FashionMNIST/raw/`` (MNIST's idx layout) with torchvision's reader.

    Args:
        root: The folder that holds ``FashionMNIST/`` (torchvision's ``root``).
        download: Fetch the files with torchvision when they are not there (needs the
            internet once; MD5-checked). False: never touch the network.
    """

    _torchvision = "FashionMNIST"
    _title = "Fashion-MNIST"
    _class_names: ClassVar[list[str]] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


class _Cifar(_TorchvisionSource):
    """32x32 colour images in the pickled batches of Krizhevsky's "python version"."""

    def _label_key(self) -> str:
        return "labels"

    def _names_key(self) -> str:
        return "label_names"

    def load(self, seed: int) -> Arrays:
        cls = self._dataset_class()
        folder = self._root() / cls.base_folder
        train_files = [name for name, _ in cls.train_list]
        test_files = [name for name, _ in cls.test_list]
        wanted = [*train_files, *test_files, cls.meta["filename"]]
        missing = [n for n in wanted if not (folder / n).is_file()]
        if missing and self.download:
            from torchvision.datasets.utils import download_and_extract_archive

            # What torchvision's CIFAR10.download does: fetch the archive, check its MD5, unpack.
            self._fetch(
                lambda: download_and_extract_archive(
                    cls.url, str(self._root()), filename=cls.filename, md5=cls.tgz_md5
                ),
                folder,
            )
            missing = [n for n in wanted if not (folder / n).is_file()]
        if missing:
            raise self._not_found(folder, missing)
        x, y = self._read_batches(folder, train_files)
        x_test, y_test = self._read_batches(folder, test_files)
        meta = load_arrays_pickle(folder / cls.meta["filename"])
        names = meta.get(self._names_key()) if isinstance(meta, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"{folder / cls.meta['filename']} has no list of class names under "
                f"{self._names_key()!r}; it is not {self._title}'s meta file. Fetch the data "
                "set again (download: true)."
            )
        return Arrays(x=x, y=y, class_names=names, x_test=x_test, y_test=y_test)

    def _read_batches(self, folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        key = self._label_key()
        for name in files:
            path = folder / name
            batch = load_arrays_pickle(path)
            data = batch.get("data") if isinstance(batch, dict) else None
            if (
                not isinstance(data, np.ndarray)
                or data.dtype != np.uint8
                or data.ndim != 2
                or data.shape[1] != 3 * 32 * 32
                or not isinstance(batch.get(key), list | np.ndarray)
                or len(batch[key]) != len(data)
            ):
                raise ValueError(
                    f"{path} is not a {self._title} batch: it needs 'data', uint8 of shape "
                    f"(n, 3072), and {key!r}, n labels. Fetch the data set again "
                    "(download: true)."
                )
            # Each row is the red plane, then green, then blue, each 32x32 row-major: CHW.
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[key], dtype=np.int64))
        return np.concatenate(images), np.concatenate(labels)


class CIFAR10(_Cifar):
    """Krizhevsky's CIFAR-10: 50,000 train and 10,000 test colour images, 3x32x32,
    10 classes (airplane, automobile, ..., truck).

    Read from ``root/cifar-10-batches-py/`` (``data_batch_1`` to ``data_batch_5``,
    ``test_batch``, ``batches.meta``: torchvision's layout), pickles read with a restricted
    unpickler that admits only arrays and plain containers.

    Args:
        root: The folder that holds ``cifar-10-batches-py/`` (torchvision's ``root``).
        download: Fetch and unpack the archive with torchvision when the files are not there
            (163 MB, needs the internet once; MD5-checked). False: never touch the network.
    """

    _torchvision = "CIFAR10"
    _title = "CIFAR-10"


class CIFAR100(_Cifar):
    """Krizhevsky's CIFAR-100: 50,000 train and 10,000 test colour images, 3x32x32, 100 fine
    classes in 20 coarse superclasses.

    Read from ``root/cifar-100-python/`` (``train``, ``test``, ``meta``: torchvision's layout),
    pickles read with a restricted unpickler that admits only arrays and plain containers.

    Args:
        root: The folder that holds ``cifar-100-python/`` (torchvision's ``root``).
        download: Fetch and unpack the archive with torchvision when the files are not there
            (161 MB, needs the internet once; MD5-checked). False: never touch the network.
        labels: ``fine`` (100 classes, e.g. ``maple_tree``) or ``coarse`` (20 superclasses,
            e.g. ``trees``).
    """

    _torchvision = "CIFAR100"
    _title = "CIFAR-100"

    def __init__(
        self, root: str = "data", download: bool = False, labels: CifarLabels = "fine"
    ) -> None:
        if labels not in ("fine", "coarse"):
            raise ValueError(f"labels={labels!r} is not one of ['fine', 'coarse'].")
        super().__init__(root, download)
        self.labels = labels

    def _label_key(self) -> str:
        return f"{self.labels}_labels"

    def _names_key(self) -> str:
        return f"{self.labels}_label_names"


# --------------------------------------------------------------------- files in the same layout
def write_cifar(
    root: str | Path, arrays: Arrays, kind: Literal["cifar10", "cifar100"] = "cifar10"
) -> Path:
    """Write ``arrays`` (``uint8`` ``(m, 3, 32, 32)``, with a test split) in CIFAR's "python
    version" layout under ``root``, as torchvision unpacks it; returns the folder.

    CIFAR-10: ``cifar-10-batches-py/data_batch_1..5`` (the train split in five parts),
    ``test_batch`` and ``batches.meta``; CIFAR-100: ``cifar-100-python/train``, ``test`` and
    ``meta`` (each class its own coarse label here). Each batch is a protocol-2 pickle of a
    dict (``data``: ``(n, 3072)`` ``uint8`` rows, red plane then green then blue), as the
    originals are. For tests and benchmarks that must not download.
    """
    if arrays.x_test is None or arrays.y_test is None:
        raise ValueError("write_cifar needs arrays with a test split (x_test, y_test).")
    cifar10 = kind == "cifar10"
    folder = Path(root) / ("cifar-10-batches-py" if cifar10 else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    names = arrays.class_names or [str(k) for k in range(int(arrays.y.max()) + 1)]

    def batch(x: np.ndarray, y: np.ndarray, label: str) -> dict[str, Any]:
        rows = np.ascontiguousarray(x, dtype=np.uint8).reshape(len(x), 3 * 32 * 32)
        labels = [int(v) for v in y]
        out: dict[str, Any] = {"batch_label": label, "data": rows}
        if cifar10:
            out["labels"] = labels
        else:
            out["fine_labels"] = out["coarse_labels"] = labels
        out["filenames"] = [f"image_{label}_{i}.png" for i in range(len(x))]
        return out

    parts = np.array_split(np.arange(len(arrays.x)), 5 if cifar10 else 1)
    train_names = [f"data_batch_{k + 1}" for k in range(5)] if cifar10 else ["train"]
    for name, rows in zip(train_names, parts, strict=True):
        _write_pickle(folder / name, batch(arrays.x[rows], arrays.y[rows], name))
    _write_pickle(
        folder / ("test_batch" if cifar10 else "test"),
        batch(arrays.x_test, arrays.y_test, "testing batch 1 of 1"),
    )
    if cifar10:
        meta = {"num_cases_per_batch": len(parts[0]), "label_names": names, "num_vis": 3072}
        _write_pickle(folder / "batches.meta", meta)
    else:
        _write_pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": names})
    return folder


def _write_pickle(path: Path, obj: Any) -> None:
    import pickle

    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_mnist(
    root: str | Path, arrays: Arrays, name: str = "MNIST", compress: bool = False
) -> Path:
    """Write ``arrays`` (``uint8`` ``(m, 1, 28, 28)``, with a test split) as the four idx files
    of ``root/<name>/raw/`` (``name``: ``MNIST`` or ``FashionMNIST``); returns that folder.

    The idx format (LeCun's): a big-endian magic number ``0x0803`` (unsigned bytes, 3 dims) or
    ``0x0801`` (labels, 1 dim), each dimension as a big-endian int32, then the bytes.
    ``compress`` writes only the ``.gz`` files, as they are downloaded.
    """
    import gzip

    if arrays.x_test is None or arrays.y_test is None:
        raise ValueError("write_mnist needs arrays with a test split (x_test, y_test).")
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (("train", arrays.x, arrays.y), ("t10k", arrays.x_test, arrays.y_test)):
        images = np.ascontiguousarray(x, dtype=np.uint8).reshape(len(x), *x.shape[-2:])
        files = {
            f"{prefix}-images-idx3-ubyte": _idx(images, 3),
            f"{prefix}-labels-idx1-ubyte": _idx(np.asarray(y, dtype=np.uint8), 1),
        }
        for file, data in files.items():
            if compress:
                (raw / f"{file}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / file).write_bytes(data)
    return raw


def _idx(array: np.ndarray, dims: int) -> bytes:
    header = (0x0800 + dims).to_bytes(4, "big")
    sizes = b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + sizes + array.tobytes()
