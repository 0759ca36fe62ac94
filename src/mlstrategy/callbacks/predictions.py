"""Write ``mlstrategy predict``'s class probabilities to a CSV file, one row per example."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


class PredictionsCSV(BasePredictionWriter):
    """``predictions.csv``: each example's ``file``, predicted ``class`` and its ``probability``.

    ``file`` is the image path when the data module lists its predict files (an
    :class:`~mlstrategy.data.ImageFolderDataModule` with ``predict_dir``), else the example's
    position in the predict split. Class names come from the data module (saved in the
    checkpoint). Models whose ``predict_step`` returns something other than a ``(m, C)``
    probability tensor (multi-task nets) are skipped. Rows are written batch by batch, so large
    folders never sit in memory.

    Args:
        path: The CSV file; null = ``predictions.csv`` in the trainer's log folder (the run folder
            of the checkpoint that ``mlstrategy predict --ckpt_path`` was given).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path) if path is not None else None
        self.written: Path | None = None
        self._rows = 0
        self._file: Any = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = 0
        path = self.path or Path(trainer.log_dir or ".") / "predictions.csv"
        if trainer.world_size > 1:  # each process predicts its share of the examples
            path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", newline="")
        csv.writer(self._file).writerow(["file", "class", "probability"])
        self.written = path

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
        probabilities = isinstance(prediction, torch.Tensor) and prediction.ndim == 2
        if self._file is None or not probabilities:
            return
        datamodule = getattr(trainer, "datamodule", None)
        files = list(getattr(datamodule, "predict_files", None) or [])
        names = list(getattr(datamodule, "class_names", None) or [])
        probability, label = prediction.float().max(dim=1)
        writer = csv.writer(self._file)
        for p, k in zip(probability.tolist(), label.tolist(), strict=True):
            where = str(files[self._rows]) if self._rows < len(files) else str(self._rows)
            writer.writerow([where, names[k] if k < len(names) else k, f"{p:.6f}"])
            self._rows += 1

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if self._rows:
            rank_zero_info(f"predictions: {self._rows} rows in {self.written}")
        elif self.written is not None:
            self.written.unlink(missing_ok=True)  # nothing this writer understands was predicted
            self.written = None
