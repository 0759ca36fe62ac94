"""TensorBoard's train and dev sub-runs: the two splits' cost on one chart, the way Keras
writes its ``train/`` and ``validation/`` folders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L

from mlstrategy.callbacks.lean import LeanCallback


class CostSubRuns:
    """Event writers for ``<log_dir>/train`` and ``<log_dir>/dev`` beside each TensorBoard
    logger's own events.

    TensorBoard names a folder of events inside a run ``<run>/train``: a run of its own, with
    its own colour and line. So one tag (``cost``) written into both folders is one chart in
    the Scalars tab, with the train and dev lines of every run in the log folder on it (the
    run selector's regex filters them, e.g. ``/dev`` for every run's dev cost).

    The caller writes on global rank 0 only (the other ranks' loggers write nothing either).
    Each epoch is flushed, so a run that is killed keeps every epoch it finished.
    """

    def __init__(self) -> None:
        self._writers: dict[tuple[str, str], Any] = {}

    def write(
        self, loggers: Sequence[Any], run: str, tag: str, points: Iterable[tuple[int, float]]
    ) -> None:
        """Add ``(step, value)`` points of ``tag`` to sub-run ``run`` of each TensorBoard
        logger in ``loggers``."""
        points = list(points)
        for writer in self._for(loggers, run):
            for step, value in points:
                writer.add_scalar(tag, value, global_step=step)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _for(self, loggers: Sequence[Any], run: str) -> list[Any]:
        from lightning.pytorch.loggers import TensorBoardLogger
        from torch.utils.tensorboard import SummaryWriter

        writers = []
        for logger in loggers:
            if not isinstance(logger, TensorBoardLogger):
                continue
            key = (str(logger.log_dir), run)
            if key not in self._writers:
                self._writers[key] = SummaryWriter(log_dir=str(Path(logger.log_dir) / run))
            writers.append(self._writers[key])
        return writers


class CloseSubRunsOnFailure(LeanCallback):
    """Close a toolkit module's sub-run writers when its fit fails or is interrupted.

    Lightning calls no module hook then (``on_fit_end``, which closes them, is skipped), so
    each writer would stay open until the process exits: a live writer thread per sub-run,
    still running as an interrupted ``mlstrategy run`` shuts down. Every other hook is
    skipped (:class:`~mlstrategy.callbacks.lean.LeanCallback`): nothing per step.
    """

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        sub_runs = getattr(pl_module, "_sub_runs", None)
        if isinstance(sub_runs, CostSubRuns):
            sub_runs.close()


def is_tensorboard(logger: Any) -> bool:
    """True for a Lightning ``TensorBoardLogger`` (its costs go to the sub-runs)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return isinstance(logger, TensorBoardLogger)
