"""GradualUnfreezing: blocks unfreeze from the top on schedule; groups join the lr schedule."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn

from mlstrategy.callbacks import GradualUnfreezing
from mlstrategy.data import ArrayDataModule, DigitImages
from mlstrategy.models import ConvNet, TransferNet

SHAPE = (3, 8, 8)
LR, RATIO, DECAY = 0.02, 0.1, 0.5


def _source(path: Path) -> Path:
    torch.manual_seed(0)
    model = ConvNet(SHAPE, 4, channels=[4, 6], batch_norm=True, global_pool="flatten")
    hparams = {**dict(model.hparams), "_class_path": "mlstrategy.models.ConvNet"}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    return path


def _gradual(tmp_path: Path, every: int = 2) -> TransferNet:
    return TransferNet(
        SHAPE,
        3,
        backbone="checkpoint",
        checkpoint=str(_source(tmp_path / "source.ckpt")),
        strategy="gradual",
        unfreeze_every=every,
        backbone_lr_ratio=RATIO,
        learning_rate=LR,
        lr_decay="exponential",
        decay_rate=DECAY,
    )


def _data() -> ArrayDataModule:
    source = DigitImages(size=8, classes=[5, 6, 7], labels_per_class=8)
    return ArrayDataModule(source, dev_fraction=0.25, batch_size=8, seed=0)


class _Record(Callback):
    """Per epoch, after the epoch's unfreezing: group names and rates, trainable blocks, modes."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx:
            return
        net = pl_module.net
        (optimizer,) = trainer.optimizers
        self.epochs.append(
            {
                "groups": {g["name"]: g["lr"] for g in optimizer.param_groups},
                "trainable": [net.block_trainable(i) for i in range(len(net.blocks))],
                "bn_training": [
                    m.training for m in net.features.modules() if isinstance(m, nn.BatchNorm2d)
                ],
                "block0": net.blocks[0][0].weight.detach().clone(),
            }
        )


def _trainer(epochs: int, *callbacks: Callback, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
        **kwargs,
    )


def test_blocks_unfreeze_from_the_top_on_schedule_and_join_the_lr_schedule(tmp_path):
    model = _gradual(tmp_path, every=2)
    record = _Record()
    _trainer(6, record, enable_checkpointing=False).fit(model, _data())
    head = [LR * DECAY**e for e in range(6)]
    expected_groups = [
        {"head": head[0]},
        {"head": head[1]},
        {"head": head[2], "block1": RATIO * head[2]},  # the top block at epoch 2
        {"head": head[3], "block1": RATIO * head[3]},
        {"head": head[4], "block1": RATIO * head[4], "block0": RATIO * head[4]},
        {"head": head[5], "block1": RATIO * head[5], "block0": RATIO * head[5]},
    ]
    for epoch, (seen, want) in enumerate(zip(record.epochs, expected_groups, strict=True)):
        assert seen["groups"].keys() == want.keys(), epoch
        for name, lr in want.items():
            assert seen["groups"][name] == pytest.approx(lr), (epoch, name)
    trainable = [e["trainable"] for e in record.epochs]
    assert trainable == [[False, False]] * 2 + [[False, True]] * 2 + [[True, True]] * 2
    # Frozen blocks' batch norm stays in eval mode (bn of block 0 first), unfrozen ones train.
    bn = [e["bn_training"] for e in record.epochs]
    assert bn == [[False, False]] * 2 + [[False, True]] * 2 + [[True, True]] * 2
    # Block 0 does not move while frozen (epochs 0-3), then does.
    first = record.epochs[0]["block0"]
    assert all(torch.equal(e["block0"], first) for e in record.epochs[:5])
    assert not torch.equal(model.net.blocks[0][0].weight, first)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
def test_resumed_run_gets_its_groups_schedule_and_unfrozen_blocks_back(tmp_path):
    L.seed_everything(0)
    whole = _gradual(tmp_path, every=1)
    _trainer(4, enable_checkpointing=False, deterministic=True).fit(whole, _data())

    L.seed_everything(0)
    first = _gradual(tmp_path, every=1)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(2, checkpoint, deterministic=True).fit(first, _data())
    resumed = _gradual(tmp_path, every=1)
    record = _Record()
    _trainer(4, record, deterministic=True, enable_checkpointing=False).fit(
        resumed, _data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt", weights_only=True
    )
    assert record.epochs[0]["groups"] == pytest.approx(
        {"head": LR * DECAY**2, "block1": RATIO * LR * DECAY**2, "block0": RATIO * LR * DECAY**2}
    )
    assert record.epochs[0]["trainable"] == [True, True]
    for key, value in whole.state_dict().items():
        assert torch.allclose(resumed.state_dict()[key], value, atol=1e-6), key


def test_testing_after_the_fit_leaves_the_blocks_as_they_ended(tmp_path):
    model = _gradual(tmp_path, every=1)
    data = _data()
    trainer = _trainer(2, enable_checkpointing=False)
    trainer.fit(model, data)
    assert [model.net.block_trainable(i) for i in range(2)] == [False, True]
    trainer.test(model, data, verbose=False)
    assert [model.net.block_trainable(i) for i in range(2)] == [False, True]


def test_bad_values_and_modules_without_blocks():
    with pytest.raises(ValueError, match=r"every=0 must be a whole number of epochs >= 1"):
        GradualUnfreezing(every=0)
    with pytest.raises(ValueError, match=r"backbone_lr_ratio=0 must be in \(0, 1\]"):
        GradualUnfreezing(backbone_lr_ratio=0)
    with pytest.raises(ValueError, match=r"ConvNet.net to have `blocks`"):
        GradualUnfreezing().freeze_before_training(ConvNet(SHAPE, 3, channels=[4]))
