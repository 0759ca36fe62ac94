"""What evaluation asks of a data module, whether its splits are tensors in memory or image
files on disk.

:class:`EvaluationData` is the one interface error analysis, the dev/test distribution check,
the error sheet and the learning curve read splits through. An
:class:`~mlstrategy.data.ImageFolderDataModule` implements it itself (each image decoded when
asked for, with the evaluation transforms); :func:`evaluation_data` wraps any data module that
keeps its splits in memory (``prepare()`` returns ``{split: (x, y)}``, as
:class:`~mlstrategy.data.ArrayDataModule` and its subclasses) in :class:`InMemorySplits`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor


@runtime_checkable
class EvaluationData(Protocol):
    """A data module's splits as evaluation reads them: in order, never augmented."""

    @property
    def class_names(self) -> list[str]:
        """One name per class (may be empty before the data is read)."""
        ...

    @property
    def split_names(self) -> list[str]:
        """The splits, in order: train, [train_dev], dev, [test]."""
        ...

    def eval_dataloader(self, split: str) -> Iterable[tuple[Tensor, Tensor]]:
        """``(x, y)`` batches of ``split`` in order, unshuffled and unaugmented, as the model
        sees them before its own normalization."""
        ...

    def split_labels(self, split: str) -> Tensor:
        """The labels of ``split``, in order (one row per example; a column per task for a
        multi-task data module)."""
        ...

    def split_size(self, split: str) -> int:
        """How many examples ``split`` holds."""
        ...

    def split_examples(self, split: str, rows: Sequence[int]) -> Tensor:
        """The inputs at positions ``rows`` of ``split``, stacked, as :meth:`eval_dataloader`
        gives them (for a contact sheet, or a sample of the train split)."""
        ...

    def example_files(self, split: str) -> list[Path] | None:
        """The file each example of ``split`` was read from, or None for in-memory data."""
        ...

    def distribution_features(self, x: Tensor) -> np.ndarray:
        """What the dev/test distribution check compares of a batch of inputs, one row per
        example: the raw features of in-memory data, a summary of decoded images."""
        ...

    @property
    def distribution_feature_names(self) -> list[str] | None:
        """One name per column of :meth:`distribution_features`, or None (their index)."""
        ...

    def keep_train(self, rows: np.ndarray) -> None:
        """Keep only the examples at positions ``rows`` of the train split (before fitting:
        what the training loop and the train-only normalization statistics then see)."""
        ...


class InMemorySplits:
    """:class:`EvaluationData` over a data module whose ``prepare()`` returns its cached
    ``{split: (x, y)}`` tensors on the CPU.

    Example:
        >>> class Data:
        ...     class_names = ["a", "b"]
        ...     def prepare(self):
        ...         return {"train": (torch.arange(6.0)[:, None], torch.tensor([0, 1] * 3))}
        >>> data = InMemorySplits(Data())
        >>> data.split_size("train"), data.split_examples("train", [4, 1]).ravel().tolist()
        (6, [4.0, 1.0])
    """

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule

    def _splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        splits: dict[str, tuple[Tensor, Tensor]] = self.datamodule.prepare()
        return splits

    def _pair(self, split: str) -> tuple[Tensor, Tensor]:
        splits = self._splits()
        if split not in splits:
            raise ValueError(f"No {split!r} split; this data module has {list(splits)}.")
        return splits[split]

    @property
    def class_names(self) -> list[str]:
        self._splits()  # prepare() sets the class names
        return list(getattr(self.datamodule, "class_names", None) or [])

    @property
    def split_names(self) -> list[str]:
        return list(self._splits())

    def eval_dataloader(self, split: str) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self._pair(split)
        size = int(getattr(self.datamodule, "eval_batch_size", 4096) or 4096)
        for start in range(0, len(y), size):
            yield x[start : start + size], y[start : start + size]

    def split_labels(self, split: str) -> Tensor:
        return self._pair(split)[1]

    def split_size(self, split: str) -> int:
        return len(self._pair(split)[1])

    def split_examples(self, split: str, rows: Sequence[int]) -> Tensor:
        return self._pair(split)[0][torch.as_tensor(list(rows), dtype=torch.long)]

    def example_files(self, split: str) -> list[Path] | None:
        return None

    def distribution_features(self, x: Tensor) -> np.ndarray:
        return x.numpy()

    @property
    def distribution_feature_names(self) -> list[str] | None:
        return None

    def keep_train(self, rows: np.ndarray) -> None:
        splits = self._splits()
        x, y = splits["train"]
        keep = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        # prepare() hands back its cached splits, so the subset is what setup() and the
        # train-only normalization statistics see; the rows each split came from follow.
        splits["train"] = (x[keep], y[keep])
        indices = getattr(self.datamodule, "split_indices", None)
        if isinstance(indices, dict) and len(indices.get("train", ())) == len(y):
            indices["train"] = np.asarray(indices["train"])[np.asarray(rows)]


_MEMBERS = tuple(
    name
    for name in EvaluationData.__dict__
    if not name.startswith("_") and name != "class_names"  # an attribute of the instance
)


def evaluation_data(datamodule: Any) -> EvaluationData | None:
    """The data module as :class:`EvaluationData`: itself when it implements it, an
    :class:`InMemorySplits` over it when it keeps its splits in memory (``prepare()``), else
    None (a data module evaluation cannot read split by split)."""
    # Read on the class, not the instance: a property such as split_names would read the data.
    if all(hasattr(type(datamodule), name) for name in _MEMBERS):
        found: EvaluationData = datamodule
        return found
    if callable(getattr(datamodule, "prepare", None)):
        return InMemorySplits(datamodule)
    return None
