"""Image folders from two distributions (MismatchImageFolderDataModule): dev and test hold only
target images, splits disjoint and seeded, normalization from the training mix, artificial data
synthesis of the source images (with the small-pool warning), and a missing target_root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlstrategy.data import (
    DigitImages,
    MismatchImageFolderDataModule,
    Shift,
    TargetContrast,
    TargetNoise,
)
from mlstrategy.data.images import read_image, write_image_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """A clean source (15 8x8 digits per class) and a dim, grey target (10 per class)."""
    tmp = tmp_path_factory.mktemp("mismatch_images")
    arrays = DigitImages(size=8, classes=[0, 1]).load(0)
    source = write_image_folder(arrays, tmp / "web", 15)
    arrays.x = arrays.x * 0.5 + 0.3  # the phone's picture: 50% contrast on a grey background
    target = write_image_folder(arrays, tmp / "app", 10)
    return source, target


def _module(folders: tuple[Path, Path], **kwargs) -> MismatchImageFolderDataModule:
    source, target = folders
    args = {
        "target_in_train": 4, "dev_fraction": 0.25, "test_fraction": 0.25,
        "train_dev_fraction": 0.2, "image_size": 8, "resize_size": 8, "num_workers": 0,
        "batch_size": 64, "augment": False, **kwargs,
    }  # fmt: skip
    return MismatchImageFolderDataModule(str(source), str(target), **args)


def _stack(files: list[Path]) -> torch.Tensor:
    return torch.stack([read_image(f).float() / 255 for f in files])


def test_dev_and_test_hold_only_target_images_and_splits_are_disjoint_and_seeded(folders):
    _, target = folders
    dm = _module(folders)
    files = dm.split_files()
    assert list(files) == ["train", "train_dev", "dev", "test"]
    for split in ("dev", "test"):
        assert all(f.is_relative_to(target) for f in files[split][0])
        assert set(dm.origin[split]) == {"target"}
    assert dm.split_origins()["dev"] == {"source": 0, "target": 5}
    every = [f for split in files.values() for f in split[0]]
    assert len(every) == len(set(every)) == 30 + 20 - (20 - 4 - 10)  # 6 target images unused
    mix = files["train"][0] + files["train_dev"][0]
    assert sum(f.is_relative_to(target) for f in mix) == 4
    again, other = _module(folders).split_files(), _module(folders, seed=1).split_files()
    assert all(again[s][0] == files[s][0] for s in files)
    assert other["dev"][0] != files["dev"][0]


def test_normalization_comes_from_the_training_mix_only(folders):
    dm = _module(folders, target_in_train=0)
    norm = dm.input_normalizer(max_images=1000)
    assert norm is not None
    train = _stack(dm.split_files()["train"][0]).double()
    np.testing.assert_allclose(norm.mean[:, 0, 0], train.mean(dim=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(norm.std[:, 0, 0], train.std(dim=(0, 2, 3), correction=0), atol=1e-6)
    dev = _stack(dm.split_files()["dev"][0])
    assert float(dev.mean()) > float(norm.mean.mean()) + 0.1  # the grey target is not in it


@pytest.mark.slow
def test_synthesis_makes_source_images_look_like_the_target_and_leaves_target_images(folders):
    synthesis = [Shift(pixels=0.5), TargetContrast(), TargetNoise(clips=50, std=0.02)]
    dm = _module(folders, synthesis=synthesis, seed=0)
    files, _ = dm.split_files()["train"]
    is_source = dm.origin["train"] == "source"
    torch.manual_seed(0)
    loader = dm.train_dataloader()
    assert len(next(iter(loader))[0]) == len(files)
    train = loader.dataset  # the loader's images in split order (the loader shuffles them)
    x = torch.stack([train[i][0] for i in range(len(files))])
    plain = _stack(files)
    assert torch.allclose(x[~is_source], plain[~is_source], atol=1e-6)  # target images as is
    assert not torch.allclose(x[is_source], plain[is_source], atol=0.05)
    # Fitted on the target's images outside dev and test: the source now has their brightness.
    target_mean = float(_stack(dm._fit_files).mean())
    assert abs(float(x[is_source].mean()) - target_mean) < 0.05
    assert abs(float(plain[is_source].mean()) - target_mean) > 0.1
    # Train and train-dev are scored on one fixed, seeded synthesized copy; dev never changes.
    first = next(iter(dm.eval_dataloader("train_dev")))[0]
    assert torch.equal(first, next(iter(dm.eval_dataloader("train_dev")))[0])
    assert not torch.equal(first, _stack(dm.split_files()["train_dev"][0]))
    dev_files = dm.split_files()["dev"][0]
    assert torch.allclose(next(iter(dm.eval_dataloader("dev")))[0], _stack(dev_files), atol=1e-6)
    # The normalization is fit on the synthesized mix, as the model sees it.
    norm = dm.input_normalizer(max_images=1000)
    assert norm is not None
    seen = torch.stack([dm.synthesized_images("train")[i][0] for i in range(len(files))])
    np.testing.assert_allclose(norm.mean[:, 0, 0], seen.double().mean(dim=(0, 2, 3)), atol=1e-6)


def test_the_pool_warning_fires_on_a_tiny_image_pool(folders):
    dm = _module(folders, synthesis=[TargetContrast(), TargetNoise(clips=2)])
    report = dm.describe_sources()["synthesis"]
    assert report["synthesized"] == dm.split_origins()["train"]["source"] == 24
    pools = {row["transform"]: row["pool"] for row in report["transforms"]}
    assert pools == {"TargetContrast": 10, "TargetNoise": 2}  # the 20 - 10 outside dev, test
    (warning,) = report["warnings"]  # 2 clips for 24 images; 10 statistics are enough
    assert warning.startswith("TargetNoise draws from 2 distinct noise clips for 24 synthesized")
    capped = _module(folders, synthesis=[TargetContrast()], synthesis_fit_images=2)
    (warning,) = capped.describe_sources()["synthesis"]["warnings"]
    assert "TargetContrast draws from 2 distinct target image statistics" in warning


def test_a_missing_target_root_is_named_with_the_fix(folders, tmp_path):
    source, _ = folders
    missing = tmp_path / "no_such_app_images"
    dm = MismatchImageFolderDataModule(str(source), str(missing), image_size=8, resize_size=8)
    with pytest.raises(ValueError) as err:
        dm.split_files()
    message = str(err.value)
    assert message.startswith(f"target_root={str(missing)!r} is not a folder.")
    assert f"root={str(source)!r}" in message and "only the source has" not in message
    with pytest.raises(ValueError, match=r"synthesis_probability=0 must be in \(0, 1\]"):
        _module(folders, synthesis=[TargetContrast()], synthesis_probability=0)
