"""A training step of the toolkit waits on the host no more often than Lightning's own.

Host-device synchronizations are counted as the Python calls that make them (``Tensor.item``,
``__bool__``, ``__float__``, ``__int__``, ``tolist``), monkeypatched with counters, over the
training steps of a few epochs (from each epoch's start to its validation; validation and the
epoch's end are the checks' natural places to sync). On the CPU nothing waits, but the same
calls on a GPU would each stall the queue.
"""

from __future__ import annotations

import copy
from collections import Counter

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from mlstrategy.callbacks.early_stopping import EarlyStopping
from mlstrategy.callbacks.guards import NonFiniteGuard, RNGState
from mlstrategy.data import ArrayDataModule, Digits
from mlstrategy.models import DeepNet

_SYNCING = ("item", "__bool__", "__float__", "__int__", "tolist")


class _StepWindow(Callback):
    """Counts the syncing calls made between an epoch's start and its validation (or end)."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts, self.active, self.steps = counts, False, 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.active = True

    def on_train_batch_end(self, *args: object) -> None:
        self.steps += 1

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.active = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.active = False


@pytest.fixture
def sync_counts(monkeypatch):
    """``(counts, window)``: every syncing call made while ``window.active``."""
    counts: Counter[str] = Counter()
    window = _StepWindow(counts)
    for name in _SYNCING:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            if window.active:
                counts[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts, window


class _Bare(L.LightningModule):
    """What a user would write in Lightning: the same net, cost and optimizer, nothing else."""

    def __init__(self, net: torch.nn.Module, norm: torch.nn.Module, lr: float) -> None:
        super().__init__()
        self.net, self.norm, self.lr = net, norm, lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(self.norm(x)), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)


def _per_step(model, data, callbacks, window, counts, tmp_path) -> float:
    counts.clear()
    window.steps = 0
    L.Trainer(
        max_epochs=3,
        callbacks=[window, *callbacks],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    ).fit(model, datamodule=data)
    assert window.steps > 30
    return sum(counts.values()) / window.steps


def test_a_toolkit_step_syncs_no_more_than_a_bare_lightning_step(sync_counts, tmp_path):
    counts, window = sync_counts
    data = ArrayDataModule(Digits(), dev_fraction=0.1, batch_size=64, seed=0)
    torch.manual_seed(0)
    template = DeepNet((64,), 10, layer_dims=[128, 64], optimizer="adam", learning_rate=0.001)
    template.input_norm.load_state_dict(data.input_normalizer().state_dict())
    bare = _Bare(copy.deepcopy(template.net), copy.deepcopy(template.input_norm), 0.001)
    bare_rate = _per_step(bare, data, [], window, counts, tmp_path)
    bare_counts = dict(counts)
    callbacks = [
        NonFiniteGuard(),
        RNGState(),
        EarlyStopping(patience=5),
        ModelCheckpoint(dirpath=tmp_path, monitor="cost/dev", save_last=True),
    ]
    toolkit_rate = _per_step(copy.deepcopy(template), data, callbacks, window, counts, tmp_path)
    print(f"syncs per step: bare {bare_rate:.2f} {bare_counts}, toolkit {toolkit_rate:.2f}")
    assert toolkit_rate <= bare_rate, (dict(counts), bare_counts)
    # The toolkit's fused Adam reads no step count on the host (torch's default Adam reads
    # each parameter's, the bare module's 6 per step), and its guard and bookkeeping none.
    assert toolkit_rate == 0, dict(counts)
