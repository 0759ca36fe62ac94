"""Image data: DigitImages (offline RGB digits) and ImageFolderDataModule (folders per class)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from mlstrategy.data import DigitImages, ImageFolderDataModule
from mlstrategy.data.images import read_image, write_image_folder


# ----------------------------------------------------------------------------------- DigitImages
def test_digit_images_are_the_digits_upsampled_in_three_equal_channels():
    digits = load_digits()
    arrays = DigitImages(size=8, channels=3).load(seed=0)
    assert arrays.x.shape == (1797, 3, 8, 8) and arrays.x.dtype == np.float32
    np.testing.assert_allclose(arrays.x[:, 0], digits.images / 16.0, rtol=1e-6)
    assert np.array_equal(arrays.x[:, 0], arrays.x[:, 2])
    big = DigitImages(size=32, channels=1).load(seed=0)
    assert big.x.shape == (1797, 1, 32, 32)
    assert big.x.min() >= 0.0 and big.x.max() <= 1.0
    # Bilinear upsampling keeps each image's mean ink within a few percent.
    np.testing.assert_allclose(big.x.mean(axis=(1, 2, 3)), arrays.x.mean(axis=(1, 2, 3)), atol=0.02)


def test_classes_are_relabelled_and_few_labels_leave_the_rest_as_test():
    digits = load_digits()
    arrays = DigitImages(size=8, classes=[7, 5], labels_per_class=6).load(seed=3)
    assert arrays.class_names == ["5", "7"]
    assert np.bincount(arrays.y).tolist() == [6, 6]
    assert arrays.x_test is not None and arrays.y_test is not None
    in_task = int(np.isin(digits.target, [5, 7]).sum())
    assert len(arrays.y) + len(arrays.y_test) == in_task
    # Label 0 is digit 5: its images are digit-5 images.
    fives = {img.tobytes() for img in (digits.images[digits.target == 5] / 16).astype(np.float32)}
    assert all(img[0].tobytes() in fives for img in arrays.x[arrays.y == 0])
    again = DigitImages(size=8, classes=[7, 5], labels_per_class=6).load(seed=3)
    assert np.array_equal(again.x, arrays.x)
    other = DigitImages(size=8, classes=[7, 5], labels_per_class=6).load(seed=4)
    assert not np.array_equal(other.x, arrays.x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 4}, r"size=4 must be >= 8"),
        ({"channels": 2}, r"channels=2 must be 1 or 3"),
        ({"classes": [3]}, r"classes=\[3\] must be at least two distinct digits"),
        ({"classes": [3, 12]}, r"classes=\[3, 12\]"),
        ({"labels_per_class": 1}, r"labels_per_class=1 must be >= 2"),
    ],
)
def test_digit_images_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DigitImages(**kwargs)


def test_too_many_labels_per_class_leaves_no_test_examples():
    with pytest.raises(ValueError, match="leaves no test examples of digit"):
        DigitImages(classes=[0, 1], labels_per_class=500).load(0)


# --------------------------------------------------------------------------------- image folders
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 PNG images of each of three digits, 12x12, one folder per class."""
    arrays = DigitImages(size=12, classes=[1, 2, 3]).load(0)
    return write_image_folder(arrays, tmp_path_factory.mktemp("digits"), limit_per_class=10)


def test_written_images_read_back_as_the_arrays(tmp_path):
    arrays = DigitImages(size=12, classes=[1, 2]).load(0)
    root = write_image_folder(arrays, tmp_path, limit_per_class=1)
    image = read_image(root / "1" / "00000.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 12, 12)
    expected = torch.from_numpy(arrays.x[np.flatnonzero(arrays.y == 0)[0]])
    assert torch.allclose(image.float() / 255, expected, atol=1 / 255)


def test_class_folders_are_split_stratified_and_sized(folder):
    dm = ImageFolderDataModule(
        str(folder), image_size=8, resize_size=12, dev_fraction=0.2, test_fraction=0.2
    )
    assert dm.class_names == [] and dm.num_classes == 3 and dm.class_names == ["1", "2", "3"]
    splits = dm.split_files()
    assert list(splits) == ["train", "dev", "test"]
    assert [len(splits[s][0]) for s in splits] == [18, 6, 6]
    for _files, labels in splits.values():
        assert np.bincount(labels).tolist() == [len(labels) // 3] * 3
    every = [f for files, _ in splits.values() for f in files]
    assert len(set(every)) == 30
    assert dm.input_shape == (3, 8, 8)
    x, y = next(iter(dm.eval_dataloader("dev")))
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    assert y.tolist() == splits["dev"][1]


def test_split_folders_are_used_and_missing_ones_carved_from_train(tmp_path, folder):
    import shutil

    for split in ("train", "val"):
        shutil.copytree(folder, tmp_path / split)
    dm = ImageFolderDataModule(str(tmp_path), image_size=12, test_fraction=0.3)
    splits = dm.split_files()
    assert list(splits) == ["train", "dev", "test"]
    assert len(splits["dev"][0]) == 30  # the whole val/ folder
    assert [len(splits["train"][0]), len(splits["test"][0])] == [21, 9]
    (tmp_path / "test" / "9").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"test/9 is a class the train images do not have"):
        ImageFolderDataModule(str(tmp_path)).split_files()


def test_augmentation_is_for_training_only(folder):
    dm = ImageFolderDataModule(str(folder), image_size=10, resize_size=12)
    image = read_image(next((folder / "1").iterdir()))
    evaluated = [dm.eval_transform()(image) for _ in range(3)]
    assert all(torch.equal(e, evaluated[0]) for e in evaluated)
    torch.manual_seed(0)
    trained = [dm.train_transform()(image) for _ in range(6)]
    assert all(t.shape == (3, 10, 10) for t in trained)
    assert any(not torch.equal(t, trained[0]) for t in trained)
    plain = ImageFolderDataModule(str(folder), image_size=10, resize_size=12, augment=False)
    assert torch.equal(plain.train_transform()(image), evaluated[0])


def test_workers_decode_the_same_batches_and_pin_memory_on_cuda(folder):
    dm = ImageFolderDataModule(str(folder), image_size=8, resize_size=12, num_workers=0)
    in_main = [x for x, _ in dm.eval_dataloader("train")]
    dm.num_workers = 2
    loader = dm.eval_dataloader("train")
    assert loader.num_workers == 2 and not loader.pin_memory
    assert all(torch.equal(a, b) for (a, _), b in zip(loader, in_main, strict=True))
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert dm.train_dataloader().pin_memory and dm.train_dataloader().persistent_workers


def test_more_workers_than_cpus_are_capped_once_with_a_notice(folder, caplog):
    import logging
    import warnings

    from mlstrategy.data.workers import usable_cpus

    cpus = usable_cpus()
    dm = ImageFolderDataModule(str(folder), image_size=8, resize_size=12, num_workers=cpus + 6)
    with caplog.at_level(logging.INFO), warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "suggested max number of worker" warning
        loaders = [dm.train_dataloader(), dm.eval_dataloader("dev"), dm.eval_dataloader("dev")]
        batches = [x for x, _ in loaders[1]]
    assert [loader.num_workers for loader in loaders] == [cpus] * 3
    notices = [r.getMessage() for r in caplog.records if "CPUs this process" in r.getMessage()]
    assert notices == [
        f"num_workers={cpus + 6} is more than the {cpus} CPUs this process may use: the image "
        f"loaders use {cpus} workers (set data.init_args.num_workers to {cpus} or fewer to match)."
    ]
    in_main = ImageFolderDataModule(str(folder), image_size=8, resize_size=12, num_workers=0)
    expected = [x for x, _ in in_main.eval_dataloader("dev")]
    assert all(torch.equal(a, b) for a, b in zip(batches, expected, strict=True))


def test_input_normalizer_holds_per_channel_statistics_of_train_images(folder):
    dm = ImageFolderDataModule(str(folder), image_size=8, resize_size=12, num_workers=0)
    norm = dm.input_normalizer()
    assert norm is not None and norm.mean.shape == (3, 8, 8)
    x = torch.cat([x for x, _ in dm.eval_dataloader("train")])
    expected = x.mean(dim=(0, 2, 3))
    assert torch.allclose(norm.mean[:, 0, 0], expected, atol=1e-6)
    assert torch.allclose(norm.std[:, 3, 5], x.std(dim=(0, 2, 3), correction=0), atol=1e-6)
    dm.normalize = False
    assert dm.input_normalizer() is None


def test_preprocessing_of_torchvision_weights_sets_the_sizes(folder):
    dm = ImageFolderDataModule(str(folder), preprocessing="EfficientNet_B0_Weights.DEFAULT")
    assert (dm.image_size, dm.resize_size, dm.interpolation.value) == (224, 256, "bicubic")
    smaller = ImageFolderDataModule(
        str(folder), image_size=64, preprocessing="ResNet18_Weights.DEFAULT"
    )
    assert (smaller.image_size, smaller.resize_size) == (64, 256)
    with pytest.raises(ValueError, match=r"preprocessing='ResNet18' is not torchvision weights"):
        ImageFolderDataModule(str(folder), preprocessing="ResNet18")


def test_predict_dir_lists_every_image_in_order(folder):
    dm = ImageFolderDataModule(
        str(folder), image_size=8, resize_size=12, num_workers=0, predict_dir=str(folder / "2")
    )
    (x, y), *_ = list(dm.predict_dataloader())
    assert dm.predict_files == sorted((folder / "2").iterdir())
    assert x.shape == (10, 3, 8, 8) and y.tolist() == [-1] * 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"batch_size=0 must be >= 1"),
        ({"num_workers": -1}, r"num_workers=-1 must be >= 0"),
        ({"image_size": 64, "resize_size": 32}, r"need 1 <= image_size <= resize_size"),
    ],
)
def test_image_folder_bad_values(folder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageFolderDataModule(str(folder), **kwargs)


def test_not_a_folder_or_one_class_only(tmp_path):
    with pytest.raises(ValueError, match=r"is not a folder"):
        ImageFolderDataModule(str(tmp_path / "nope")).split_files()
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match=r"1 class folder\(s\) \['cats'\]"):
        ImageFolderDataModule(str(tmp_path)).split_files()
