"""torchvision's image data sets from tiny files in their real layouts: read, normalized per
channel, kept uint8, augmented per example; nothing downloads."""

from __future__ import annotations

import socket
from urllib.error import URLError

import lightning as L
import numpy as np
import pytest
import torch

from mlstrategy.data import (
    CIFAR10,
    CIFAR100,
    MNIST,
    ArrayDataModule,
    Digits,
    FashionMNIST,
    HorizontalFlipPerExample,
    RandomCropPerExample,
)
from mlstrategy.data.sources import Arrays
from mlstrategy.data.vision import write_cifar, write_mnist
from mlstrategy.models import ConvNet


def _images(shape: tuple[int, ...], m: int = 200, m_test: int = 40, seed: int = 0) -> Arrays:
    """Random uint8 images with a different brightness per channel (so per-channel statistics
    differ from the global ones), 10 balanced classes."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.3, 1.0, shape[0]).reshape(1, -1, *[1] * (len(shape) - 1))

    def draw(n: int) -> np.ndarray:
        return (rng.integers(0, 256, (n, *shape)) * scale).astype(np.uint8)

    names = [f"class{k}" for k in range(10)]
    return Arrays(draw(m), np.arange(m) % 10, names, draw(m_test), np.arange(m_test) % 10)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a socket connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    arrays = _images((3, 32, 32))
    write_cifar(root, arrays, "cifar10")
    write_cifar(root, _images((3, 32, 32), seed=1), "cifar100")
    return root, arrays


# ------------------------------------------------------------------------- reading the files
def test_cifar10_reads_its_batches_as_torchvision_does(cifar_root, monkeypatch, no_network):
    root, written = cifar_root
    got = CIFAR10(str(root), download=True).load(0)  # files there: download is a no-op
    assert got.x.dtype == np.uint8 and got.x.shape == (200, 3, 32, 32)
    np.testing.assert_array_equal(got.x, written.x)
    np.testing.assert_array_equal(got.y, written.y)
    np.testing.assert_array_equal(got.x_test, written.x_test)
    assert got.class_names == written.class_names
    # torchvision's own reader (its MD5 check passed by hand: these are not the originals)
    # sees the same images, in its HWC order: the layout is the real one.
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    theirs = tv_cifar.CIFAR10(str(root), train=True)
    np.testing.assert_array_equal(theirs.data, got.x.transpose(0, 2, 3, 1))
    assert theirs.targets == got.y.tolist() and theirs.classes == got.class_names


def test_cifar100_fine_and_coarse_labels(cifar_root, monkeypatch):
    root, _ = cifar_root
    fine = CIFAR100(str(root)).load(0)
    coarse = CIFAR100(str(root), labels="coarse").load(0)
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    theirs = tv_cifar.CIFAR100(str(root), train=False)
    np.testing.assert_array_equal(theirs.data, fine.x_test.transpose(0, 2, 3, 1))
    assert theirs.targets == fine.y_test.tolist()
    np.testing.assert_array_equal(coarse.y, fine.y)  # the fake gives each class its own
    with pytest.raises(ValueError, match="labels='medium' is not one of"):
        CIFAR100(str(root), labels="medium")  # type: ignore[arg-type]


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("source", [MNIST, FashionMNIST])
def test_mnist_and_fashion_read_raw_or_gz_idx_files(tmp_path, source, compress, no_network):
    written = _images((1, 28, 28), m=60, m_test=20)
    raw = write_mnist(tmp_path, written, source.__name__, compress=compress)
    got = source(str(tmp_path)).load(0)
    np.testing.assert_array_equal(got.x, written.x)
    np.testing.assert_array_equal(got.y, written.y)
    np.testing.assert_array_equal(got.x_test, written.x_test)
    assert got.x.dtype == np.uint8 and got.x.shape == (60, 1, 28, 28)
    assert (raw / "train-images-idx3-ubyte").is_file()  # decompressed, as torchvision does
    names = got.class_names
    assert names[0] == ("0" if source is MNIST else "T-shirt/top") and len(names) == 10


@pytest.mark.parametrize(
    ("source", "where"),
    [
        (CIFAR10, "cifar-10-batches-py"),
        (CIFAR100, "cifar-100-python"),
        (MNIST, "MNIST/raw"),
        (FashionMNIST, "FashionMNIST/raw"),
    ],
)
def test_missing_files_name_where_it_looked_and_how_to_fix_it(tmp_path, source, where, no_network):
    with pytest.raises(FileNotFoundError) as info:
        source(str(tmp_path / "empty")).load(0)
    message = str(info.value)
    assert f"{tmp_path / 'empty' / where}" in message
    assert "download: true" in message and "root:" in message


def test_download_true_runs_torchvisions_checked_download_and_its_failure_is_one_paragraph(
    tmp_path, monkeypatch
):
    import torchvision.datasets.utils as tv_utils

    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        calls.append((url, filename, md5))
        write_cifar(download_root, _images((3, 32, 32)))  # what unpacking the archive leaves

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    got = CIFAR10(str(tmp_path), download=True).load(0)
    assert len(got.x) == 200
    from torchvision.datasets import CIFAR10 as TV

    assert calls == [(TV.url, TV.filename, TV.tgz_md5)]  # torchvision's URL and MD5

    def offline(*args, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match=r"Downloading CIFAR-100 into .* failed"):
        CIFAR100(str(tmp_path), download=True).load(0)


def test_a_batch_in_another_layout_is_refused(cifar_root, tmp_path):
    import pickle

    folder = write_cifar(tmp_path, _images((3, 32, 32)))
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8)}))
    with pytest.raises(ValueError, match=r"data_batch_3 is not a CIFAR-10 batch"):
        CIFAR10(str(tmp_path)).load(0)


# ------------------------------------------------------------------- in the data module
def test_per_channel_statistics_come_from_the_train_split_and_images_stay_uint8(cifar_root):
    root, written = cifar_root
    dm = ArrayDataModule(CIFAR10(str(root)), dev_fraction=0.2, seed=0)
    splits = dm.prepare()
    assert all(x.dtype == torch.uint8 for x, _ in splits.values())
    # The uint8 images round-trip: train + dev are the written train images, test is test.
    both = torch.cat([splits["train"][0], splits["dev"][0]]).numpy()
    assert sorted(map(bytes, both)) == sorted(map(bytes, written.x))
    np.testing.assert_array_equal(splits["test"][0].numpy(), written.x_test)

    norm = dm.input_normalizer()
    assert norm is not None
    train = splits["train"][0].numpy() / 255.0
    mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3))
    np.testing.assert_allclose(
        norm.mean.numpy(), np.broadcast_to(mean[:, None, None], (3, 32, 32)), rtol=1e-6
    )
    np.testing.assert_allclose(
        norm.std.numpy(), np.broadcast_to(std[:, None, None], (3, 32, 32)), rtol=1e-6
    )
    assert not np.allclose(mean, train.mean(), rtol=0.05)  # channels differ: per channel indeed
    all_x = np.concatenate([x.numpy() for x, _ in splits.values()]) / 255.0
    assert not np.allclose(mean, all_x.mean(axis=(0, 2, 3)), rtol=1e-4)  # train only
    z = norm(splits["train"][0]).double()  # uint8 in, x / 255 standardized
    np.testing.assert_allclose(z.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(dim=(0, 2, 3), correction=0).numpy(), 1, atol=1e-6)
    batch_x, _ = next(iter(dm.train_dataloader()))
    assert batch_x.dtype == torch.uint8


def test_normalize_per_channel_for_float_images_and_bad_values():
    dm = ArrayDataModule(Digits(flatten=False), normalize="per_channel", seed=0)
    norm = dm.input_normalizer()
    x = dm.prepare()["train"][0].double().numpy()
    assert norm is not None
    np.testing.assert_allclose(norm.mean.numpy(), x.mean(), rtol=1e-6)
    np.testing.assert_allclose(norm.std.numpy(), x.std(), rtol=1e-6)
    per_feature = ArrayDataModule(Digits(flatten=False), seed=0).input_normalizer()
    assert per_feature is not None and not torch.allclose(per_feature.mean, norm.mean)
    with pytest.raises(ValueError, match="normalize='per_image' is not one of"):
        ArrayDataModule(Digits(), normalize="per_image")  # type: ignore[arg-type]


def test_the_model_keeps_the_per_channel_statistics_and_reads_uint8_as_x_over_255(
    cifar_root, tmp_path
):
    root, _ = cifar_root
    dm = ArrayDataModule(CIFAR10(str(root)), dev_fraction=0.2, batch_size=64, seed=0)
    model = ConvNet(dm.input_shape, dm.num_classes, channels=[4], batch_norm=True)
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    state = torch.load(tmp_path / "m.ckpt", weights_only=True)["state_dict"]
    expected = dm.input_normalizer()
    assert expected is not None
    torch.testing.assert_close(state["input_norm.mean"], expected.mean)
    torch.testing.assert_close(state["input_norm.std"], expected.std)
    x = dm.prepare()["test"][0][:8]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.float() / 255))


# ------------------------------------------------------------------------------ augmentation
def _two_same_images(m: int = 64) -> torch.Tensor:
    image = torch.from_numpy(_images((3, 32, 32), m=1, m_test=1).x)
    return image.expand(m, 3, 32, 32).contiguous()


@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_each_example_is_cropped_from_its_padded_self_at_its_own_offset(mode):
    torch.manual_seed(0)
    x = _two_same_images()
    out = RandomCropPerExample(padding=4, padding_mode=mode, fill=7)(x)
    assert out.shape == x.shape and out.dtype == torch.uint8
    numpy_mode = {"reflect": "reflect", "edge": "edge", "constant": "constant"}[mode]
    extra = {"constant_values": 7} if mode == "constant" else {}
    padded = np.pad(x[0].numpy(), ((0, 0), (4, 4), (4, 4)), mode=numpy_mode, **extra)
    windows = {(i, j): padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)}
    offsets = []
    for example in out.numpy():
        found = [k for k, w in windows.items() if np.array_equal(w, example)]
        assert found, "an output is not a window of the padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 20  # 64 identical inputs, many different shifts: one draw each


def test_flip_mirrors_some_examples_and_leaves_the_others():
    torch.manual_seed(0)
    x = _two_same_images()
    out = HorizontalFlipPerExample()(x)
    assert out.shape == x.shape and out.dtype == torch.uint8
    flipped = torch.tensor([torch.equal(o, x[0].flip(-1)) for o in out])
    kept = torch.tensor([torch.equal(o, x[0]) for o in out])
    assert bool((flipped | kept).all()) and 10 < int(flipped.sum()) < 54
    assert torch.equal(HorizontalFlipPerExample(p=0.0)(x), x)


def test_two_identical_examples_in_one_batch_are_augmented_differently(cifar_root):
    root, _ = cifar_root
    augment = [RandomCropPerExample(padding=4), HorizontalFlipPerExample()]
    dm = ArrayDataModule(CIFAR10(str(root)), batch_size=64, augment=augment, seed=0)

    class _Training:  # what on_after_batch_transfer reads of the trainer
        training = True

    dm.trainer = _Training()  # type: ignore[assignment]
    torch.manual_seed(0)
    x = _two_same_images(2)
    out, _ = dm.on_after_batch_transfer((x, torch.zeros(2, dtype=torch.long)), 0)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert not torch.equal(out[0], out[1])


def test_bad_augmentation_settings_are_refused():
    with pytest.raises(ValueError, match="padding=-1 must be"):
        RandomCropPerExample(padding=-1)
    with pytest.raises(ValueError, match="padding_mode='wrap' is not one of"):
        RandomCropPerExample(padding_mode="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs inputs wider than 4"):
        RandomCropPerExample(padding=4)(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"p=1\.5 must be a probability"):
        HorizontalFlipPerExample(p=1.5)
