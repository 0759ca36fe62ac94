"""The console during a run: a progress bar that says what it is doing and fits 80 columns,
and a model summary of the network's layers.

:class:`RunProgressBar` is Lightning's ``RichProgressBar`` with shorter words: ``epoch 3/200``
(counted from 1), ``dev cost`` while validating, ``scoring dev`` / ``scoring test`` while a
split is scored, the batch count and the elapsed time, and the costs as one short
``cost: train 0.0608, dev 0.0392``. No ``it/s`` (it reads ``0.00it/s`` on a one-step epoch) and
no ``v_num`` (the run folder says which version it is).

:class:`NetworkSummary` lists the layers that hold the parameters (torchmetrics objects, which
hold running sums, are left out) and one line of totals, instead of Lightning's summary with
its FLOPs and train/eval mode counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar

_SPLIT_ORDER = ("train", "train_dev", "dev", "test")


def _short(value: Any) -> str:
    """A number in at most 3 significant digits.

    Example:
        >>> _short(0.0608123), _short(12.0), _short("x")
        ('0.0608', '12', 'x')
    """
    return f"{value:.3g}" if isinstance(value, (int, float)) else str(value)


def short_metrics(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The progress bar's metrics: ``v_num`` dropped, ``group/part`` pairs joined into one
    entry per group (``{"cost": "train 0.061, dev 0.039"}``), numbers in 4 digits.

    Example:
        >>> short_metrics({"v_num": 3, "cost/dev": 0.0392, "cost/train": 0.0608123, "lr": 0.5})
        {'cost': 'train 0.0608, dev 0.0392', 'lr': '0.5'}
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, value in metrics.items():
        if name == "v_num":
            continue
        group, _, part = name.partition("/")
        groups.setdefault(group, []).append((part, _short(value)))

    def order(item: tuple[str, str]) -> int:  # train before dev, as the course reads them
        return _SPLIT_ORDER.index(item[0]) if item[0] in _SPLIT_ORDER else len(_SPLIT_ORDER)

    return {
        group: ", ".join(
            f"{part} {value}" if part else value for part, value in sorted(parts, key=order)
        )
        for group, parts in groups.items()
    }


class RunProgressBar(RichProgressBar):
    """Lightning's rich progress bar in the toolkit's words, narrow enough for 80 columns.

    The split being scored is read from the trainer's scorer callback (any callback with a
    ``split`` name, as :class:`~mlstrategy.evaluation.scoring.SplitScorer` has).
    """

    @property
    def sanity_check_description(self) -> str:
        return "sanity check"

    @property
    def validation_description(self) -> str:
        return "dev cost"

    @property
    def test_description(self) -> str:
        trainer = getattr(self, "_trainer", None)
        callbacks = getattr(trainer, "callbacks", None) or []
        splits = [c.split for c in callbacks if isinstance(getattr(c, "split", None), str)]
        return f"scoring {splits[-1]}" if splits else "scoring"

    @property
    def predict_description(self) -> str:
        return "predicting"

    def _get_train_description(self, current_epoch: int) -> str:
        total = self.trainer.max_epochs
        counted = f"/{total}" if total is not None and total > 0 else ""
        return f"epoch {current_epoch + 1}{counted}"

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return dict(short_metrics(super().get_metrics(trainer, pl_module)))

    def configure_columns(self, trainer: L.Trainer) -> list:
        from lightning.pytorch.callbacks.progress.rich_progress import (
            BatchesProcessedColumn,
            CustomBarColumn,
        )
        from rich.progress import TextColumn, TimeElapsedColumn

        return [
            TextColumn("[progress.description]{task.description}"),
            CustomBarColumn(
                bar_width=20,
                complete_style=self.theme.progress_bar,
                finished_style=self.theme.progress_bar_finished,
                pulse_style=self.theme.progress_bar_pulse,
            ),
            BatchesProcessedColumn(style=self.theme.batch_progress),
            TimeElapsedColumn(),
        ]


def network_rows(model: Any, max_depth: int = 4) -> list[tuple[str, str, int]]:
    """``(name, type, parameters)`` of the model's parts and of the layers inside them: each
    direct child, then the leaf layers (a deeper block is one row at ``max_depth``), without
    torchmetrics objects (and what they hold) or modules that say ``in_summary = False``
    (bookkeeping that holds no layer).

    Example:
        >>> import torch
        >>> from torchmetrics import MeanMetric
        >>> model = torch.nn.Module()
        >>> model.cost = MeanMetric()
        >>> block = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
        >>> model.net = torch.nn.Sequential(block, torch.nn.Linear(2, 1))
        >>> for row in network_rows(model):
        ...     print(row)
        ('net', 'Sequential', 11)
        ('net.0.0', 'Linear', 8)
        ('net.0.1', 'ReLU', 0)
        ('net.1', 'Linear', 3)
    """
    from torchmetrics import Metric

    rows: list[tuple[str, str, int]] = []
    skipped: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name == s or name.startswith(f"{s}.") for s in skipped):
            continue
        depth = name.count(".") + 1
        bookkeeping = isinstance(module, Metric) or getattr(module, "in_summary", True) is False
        if bookkeeping or depth > max_depth:
            skipped.append(name)
            continue
        leaf = next(module.children(), None) is None
        if depth == 1 or leaf or depth == max_depth:
            params = sum(p.numel() for p in module.parameters())
            rows.append((name, type(module).__name__, params))
    return rows


class NetworkSummary(ModelSummary):
    """The network's layers and parameter counts, printed once when a fit starts.

    Args:
        max_depth: How deep to list nested layers (a deeper block is one row).
    """

    def __init__(self, max_depth: int = 4) -> None:
        super().__init__(max_depth=max_depth)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        from rich import get_console
        from rich.table import Table

        table = Table(title=type(pl_module).__name__, title_justify="left")
        table.add_column("layer", no_wrap=True)
        table.add_column("type", no_wrap=True)
        table.add_column("params", justify="right", no_wrap=True)
        for name, kind, params in network_rows(pl_module, self._max_depth):
            table.add_row(name, kind, f"{params:,}")
        total = sum(p.numel() for p in pl_module.parameters())
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        console = get_console()
        console.print(table)
        console.print(f"{total:,} parameters ({trainable:,} trainable)", highlight=False)
