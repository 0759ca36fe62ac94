"""Data augmentation: torchvision v2 transforms on train batches only."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from mlstrategy.data import ArrayDataModule, Digits, Moons
from mlstrategy.models import ConvNet, DeepNet


class _Spy(nn.Module):
    """Records the size of every batch it is given and the trainer stage it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return x


def _fit(data: ArrayDataModule, model: L.LightningModule, epochs: int) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    return trainer


def test_augment_sees_every_train_batch_and_no_dev_or_test_batch():
    spy = _Spy()
    data = ArrayDataModule(Moons(n_samples=60), batch_size=16, augment=[spy])
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4])
    trainer = _fit(data, model, epochs=2)
    assert spy.sizes == [16, 16, 4] * 2  # 36 train examples; dev (12) never passes through
    trainer.test(model, datamodule=data, verbose=False)
    trainer.validate(model, datamodule=data, verbose=False)
    assert len(spy.sizes) == 6
    assert data.hparams["augment"] == "[_Spy()]"  # text, so checkpoints stay weights-only


def test_a_v2_transform_moves_a_whole_batch_with_one_draw():
    torch.manual_seed(0)
    shift = v2.RandomCrop(size=(1, 40), padding=[4, 0], padding_mode="edge")
    x = torch.arange(40.0).expand(8, 1, 40)  # sequences (m, channels, length), as for MNIST-1D
    out = shift(x)
    offsets = out[:, 0, 20] - x[:, 0, 20]
    assert out.shape == x.shape
    assert torch.all(offsets == offsets[0]) and offsets.abs().max() <= 4  # one draw per batch
    assert set(out[0, 0].tolist()) <= set(range(40))  # edge padding repeats the end values


@pytest.mark.slow
def test_image_augmentation_trains_a_convnet_on_digits():
    L.seed_everything(0, verbose=False)
    # Small rotations only: per-pixel standardization would blow up ink translated onto the
    # border pixels, whose train-split standard deviation is near 0.
    augment = [v2.RandomAffine(degrees=10)]
    data = ArrayDataModule(Digits(flatten=False), batch_size=128, augment=augment)
    model = ConvNet(data.input_shape, data.num_classes, channels=[16, 32], learning_rate=0.01)
    _fit(data, model, epochs=3)
    x, y = data.prepare()["dev"]
    model.eval()
    with torch.no_grad():
        accuracy = (model.predict_labels(model(x)) == y).float().mean().item()
    assert accuracy > 0.6  # well above the 0.1 of chance after three epochs
