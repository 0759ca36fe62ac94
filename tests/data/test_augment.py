"""Data augmentation on train batches only, with a random draw per example: the vectorized
per-example modules, any other module called once per example, and image folders."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from mlstrategy.data import (
    ArrayDataModule,
    Digits,
    HorizontalFlipPerExample,
    ImageFolderDataModule,
    Moons,
    PerExample,
    RandomCropPerExample,
    WholeBatch,
)
from mlstrategy.data.images import write_image_folder
from mlstrategy.data.sources import Arrays, ArraySource
from mlstrategy.models import ConvNet, DeepNet


class _Spy(nn.Module):
    """Records the size of every batch it is given (given whole batches: it draws nothing)."""

    draws_per_example = True

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


class _Copies(ArraySource):
    """``n`` copies of one 8x8 digit (labels alternate, so there are two classes)."""

    def __init__(self, n: int = 40) -> None:
        self.n = n

    def load(self, seed: int) -> Arrays:
        digit = Digits(flatten=False).load(seed).x[:1]
        y = (np.arange(self.n) % 2).astype(np.int64)
        return Arrays(x=np.repeat(digit, self.n, axis=0), y=y, class_names=["a", "b"])


def _distinct(x: torch.Tensor) -> int:
    return len({tuple(row.flatten().tolist()) for row in x})


@pytest.mark.parametrize(
    "augment",
    [
        [v2.RandomAffine(degrees=0, translate=(0.25, 0.25))],
        [v2.RandomErasing(p=1.0, scale=(0.1, 0.3), value=0)],
        [RandomCropPerExample(padding=2, padding_mode="constant")],
        [HorizontalFlipPerExample(), RandomCropPerExample(padding=1, padding_mode="edge")],
    ],
    ids=["v2.RandomAffine", "v2.RandomErasing", "RandomCropPerExample", "flip+crop"],
)
def test_identical_examples_in_one_batch_get_their_own_draws(augment):
    torch.manual_seed(0)
    data = ArrayDataModule(_Copies(), batch_size=16, augment=augment, normalize=False)
    x, _ = next(iter(data.train_dataloader()))
    assert _distinct(x) == 1  # the batch holds 16 copies of one image
    out = data.augment(x)
    assert out.shape == x.shape
    assert _distinct(out) > 4  # each copy drew its own shift, erasing or flip
    # Vectorized modules are kept as they are; any other is called once per example.
    for used, given in zip(data.augment, augment, strict=True):
        mine = type(given).__module__.startswith("mlstrategy")
        assert type(used) is (type(given) if mine else PerExample)


def test_whole_batch_keeps_one_draw_per_batch_and_per_example_calls_once_per_example():
    torch.manual_seed(0)
    shift = v2.RandomAffine(degrees=0, translate=(0.25, 0.25))
    data = ArrayDataModule(_Copies(), batch_size=16, augment=[WholeBatch(shift)])
    x, _ = next(iter(data.train_dataloader()))
    assert _distinct(data.augment(x)) == 1  # every copy moved alike
    spy = _Spy()
    spy.draws_per_example = False  # an unknown module: wrapped
    data = ArrayDataModule(_Copies(), batch_size=16, augment=[spy])
    data.augment(next(iter(data.train_dataloader()))[0])
    assert spy.sizes == [1] * 16


def test_image_folders_augment_each_image_with_its_own_draw(tmp_path):
    # Workers decode and augment one image at a time, so each gets its own draw already.
    arrays = _Copies(16).load(0)
    arrays.x = np.repeat(arrays.x, 3, axis=1) / 16.0
    root = write_image_folder(arrays, tmp_path / "same")
    torch.manual_seed(0)
    data = ImageFolderDataModule(
        str(root), image_size=8, resize_size=8, num_workers=0, batch_size=8,
        dev_fraction=0.25, test_fraction=0.25,
        augment=[v2.RandomAffine(degrees=0, translate=(0.25, 0.25))],
    )  # fmt: skip
    x, _ = next(iter(data.train_dataloader()))
    assert len(x) == 8 and _distinct(x) > 3
    assert _distinct(next(iter(data.eval_dataloader("train")))[0]) == 1  # unaugmented


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_gaussian_blur_per_example_equals_torchvision_with_each_examples_sigma(dtype, kernel_size):
    from torchvision.transforms.v2 import functional as F

    from mlstrategy.data import GaussianBlurPerExample

    torch.manual_seed(0)
    x = (torch.rand(4, 3, 9, 7) * 255).to(dtype)
    for sigma in (0.4, 1.3):
        ours = GaussianBlurPerExample(kernel_size, sigma=sigma)(x)
        theirs = F.gaussian_blur(x, [kernel_size, kernel_size], [sigma, sigma])
        assert ours.dtype == dtype and ours.shape == x.shape
        assert torch.allclose(
            ours.float(), theirs.float(), atol=1 if dtype == torch.uint8 else 1e-4
        )


def test_gaussian_blur_per_example_draws_a_sigma_per_example():
    from mlstrategy.data import GaussianBlurPerExample

    torch.manual_seed(1)
    x = torch.rand(1, 1, 8, 8).expand(6, 1, 8, 8).contiguous()  # six identical images
    out = GaussianBlurPerExample(3, sigma=(0.2, 2.0))(x)
    distinct = {tuple(o.flatten().round(decimals=5).tolist()) for o in out}
    assert len(distinct) == 6
    with pytest.raises(ValueError, match="odd"):
        GaussianBlurPerExample(4)
    with pytest.raises(ValueError, match="sigma"):
        GaussianBlurPerExample(3, sigma=(2.0, 1.0))
