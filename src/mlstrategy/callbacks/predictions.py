"""The predictions CSV: one layout, written by ``mlstrategy predict RUN_DIR`` and by LightningCLI's
``mlstrategy predict --config ... --ckpt_path ...`` (through :class:`PredictionsCSV`).

Its columns are an ``id``, the ``predicted`` class name, one ``p_<class>`` column per class
and, where the examples carry labels, ``true`` and ``correct`` (:func:`prediction_columns`);
a multi-task run gets one such group per task, prefixed with the task's name. A regressor's
are ``id``, ``predicted`` and, with labels, ``true``: numbers in the target's units
(:func:`value_columns`). The file is replaced atomically (:func:`write_predictions_csv`), so
a reader never sees half of it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from mlstrategy.io import write_text_atomic
from mlstrategy.run_folder import LIGHTNING_PREDICTIONS_FILE


def prediction_columns(
    p: torch.Tensor, names: Sequence[str], y: torch.Tensor | None = None, prefix: str = ""
) -> tuple[list[str], list[list[str]]]:
    """A classifier's columns of the predictions CSV: its header and its columns of cells.

    Args:
        p: Class probabilities, ``(m, C)``.
        names: One name per class.
        y: Label indices, ``(m,)``; -1 or NaN where unknown (empty ``true`` and ``correct``
            cells); None = no labels, no ``true`` and ``correct`` columns.
        prefix: Put before every column name (a multi-task run's ``<task>_``).

    Example:
        >>> header, cols = prediction_columns(torch.tensor([[0.25, 0.75], [0.875, 0.125]]),
        ...                                   ["cat", "dog"], torch.tensor([1, -1]))
        >>> header
        ['predicted', 'p_cat', 'p_dog', 'true', 'correct']
        >>> [list(r) for r in zip(*cols)]
        [['dog', '0.25', '0.75', 'dog', 'true'], ['cat', '0.875', '0.125', '', '']]
    """
    predicted = p.argmax(dim=1).tolist()
    header = [f"{prefix}predicted", *(f"{prefix}p_{c}" for c in names)]
    columns = [[names[k] for k in predicted]]
    columns += [[f"{v:.8g}" for v in p[:, c].tolist()] for c in range(p.shape[1])]
    if y is not None:
        known = [int(v) if v == v and v >= 0 else -1 for v in y.tolist()]
        header += [f"{prefix}true", f"{prefix}correct"]
        columns.append([names[k] if k >= 0 else "" for k in known])
        columns.append(
            ["" if k < 0 else str(k == q).lower() for k, q in zip(known, predicted, strict=True)]
        )
    return header, columns


def value_columns(
    values: torch.Tensor, y: torch.Tensor | None = None, prefix: str = ""
) -> tuple[list[str], list[list[str]]]:
    """A regressor's columns of the predictions CSV: ``predicted`` and, with labels, ``true``
    (an unknown target, NaN, is an empty cell).

    Example:
        >>> value_columns(torch.tensor([1.5, 2.0]), torch.tensor([1.0, float("nan")]))
        (['predicted', 'true'], [['1.5', '2'], ['1', '']])
    """
    header = [f"{prefix}predicted"]
    columns = [[f"{v:.8g}" for v in values.tolist()]]
    if y is not None:
        header.append(f"{prefix}true")
        columns.append(["" if v != v else f"{v:.8g}" for v in y.float().tolist()])
    return header, columns


def write_predictions_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """Replace ``path`` with the CSV of ``header`` and ``rows``, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())
    return path


class PredictionsCSV(BasePredictionWriter):
    """LightningCLI's ``predict`` verb writes the predictions CSV (see the module docstring).

    ``id`` is the image path when the data module lists its predict files (an
    :class:`~mlstrategy.data.ImageFolderDataModule` with ``predict_dir``), else the example's
    position in the predict split. Class names come from the data module (saved in the
    checkpoint). ``true`` and ``correct`` are there when the predict batches carry labels
    (e.g. the test split of an :class:`~mlstrategy.data.ArrayDataModule`; images of
    ``predict_dir`` have none). A regressor's ``(m,)`` values get :func:`value_columns`; models
    whose ``predict_step`` returns something other than an ``(m, C)`` probability tensor
    (multi-task nets) are skipped. The file is written once, at
    the end, atomically.

    Args:
        path: The CSV file; null = ``lightning_predictions.csv`` in the trainer's log folder
            (the run folder of the checkpoint that ``mlstrategy predict --ckpt_path`` was
            given). ``mlstrategy predict RUN_DIR`` writes ``predictions.csv`` there itself.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path) if path is not None else None
        self.written: Path | None = None
        self._p: list[torch.Tensor] = []
        self._y: list[torch.Tensor | None] = []

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._p, self._y, self.written = [], [], None

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        values = getattr(pl_module, "regression", False) is True  # (m,) values, target units
        if not (isinstance(prediction, torch.Tensor) and prediction.ndim == (1 if values else 2)):
            return
        self._p.append(prediction.detach().float().cpu())
        y = batch[1] if isinstance(batch, (tuple, list)) and len(batch) > 1 else None
        labelled = isinstance(y, torch.Tensor) and y.ndim == 1 and len(y) == len(prediction)
        self._y.append(y.detach().cpu() if isinstance(y, torch.Tensor) and labelled else None)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._p:
            return  # nothing this writer understands was predicted
        p = torch.cat(self._p)
        known = [t for t in self._y if t is not None]
        y = torch.cat(known) if len(known) == len(self._y) else None
        datamodule = getattr(trainer, "datamodule", None)
        files = [str(f) for f in getattr(datamodule, "predict_files", None) or []]
        ids = files if len(files) == len(p) else [str(i) for i in range(len(p))]
        if p.ndim == 1:  # a regressor's
            header, columns = value_columns(p, y)
        else:
            if y is not None and not bool((y >= 0).any()):
                y = None  # unlabelled examples (-1): no true and correct columns
            names = [str(c) for c in getattr(datamodule, "class_names", None) or []]
            if len(names) != p.shape[1]:
                names = [str(k) for k in range(p.shape[1])]
            header, columns = prediction_columns(p, names, y)
        path = self.path or Path(trainer.log_dir or ".") / LIGHTNING_PREDICTIONS_FILE
        if trainer.world_size > 1:  # each process predicts its share of the examples
            path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        rows = [list(r) for r in zip(ids, *columns, strict=True)]
        self.written = write_predictions_csv(path, ["id", *header], rows)
        self._p, self._y = [], []
        rank_zero_info(f"predictions: {len(rows)} rows in {self.written}")
