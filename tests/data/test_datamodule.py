import numpy as np
import pytest
import torch

from mlstrategy.data import ArrayDataModule, ArrayFile, BreastCancer, Digits


def test_normalization_statistics_come_from_train_only():
    dm = ArrayDataModule(BreastCancer(), dev_fraction=0.2, test_fraction=0.2, seed=0)
    splits = dm.prepare()
    train_x = splits["train"][0].double().numpy()
    all_x = np.concatenate([x.double().numpy() for x, _ in splits.values()])
    norm = dm.input_normalizer()
    assert norm is not None
    np.testing.assert_allclose(norm.mean.numpy(), train_x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), train_x.std(axis=0), rtol=1e-4)
    assert not np.allclose(norm.mean.numpy(), all_x.mean(axis=0), rtol=1e-3)
    # Applied to every split: train becomes exactly standard, dev only approximately.
    z_train = norm(splits["train"][0]).double()
    np.testing.assert_allclose(z_train.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(z_train.std(0, correction=0).numpy(), 1, atol=1e-4)
    z_dev = norm(splits["dev"][0]).double()
    assert 1e-3 < z_dev.mean(0).abs().max() < 1.0


def test_constant_features_stay_finite():
    dm = ArrayDataModule(Digits(), seed=0)  # corner pixels are always 0
    norm = dm.input_normalizer()
    assert norm is not None
    assert torch.isfinite(norm(dm.prepare()["dev"][0])).all()


def test_sizes_and_train_dev_split():
    dm = ArrayDataModule(
        BreastCancer(), dev_fraction=0.2, test_fraction=0.2, train_dev_fraction=0.1
    )
    assert dm.split_names == ["train", "train_dev", "dev", "test"]
    assert dm.input_shape == (30,) and dm.num_classes == 2
    assert sum(len(y) for _, y in dm.prepare().values()) == 569
    assert dm.input_normalizer() is not None
    assert ArrayDataModule(BreastCancer(), normalize=False).input_normalizer() is None


def test_nan_features_are_refused_with_the_fix(tmp_path):
    x = np.ones((30, 2), dtype=np.float32)
    x[4, 1] = np.nan
    np.savez(tmp_path / "d.npz", X=x, y=np.arange(30) % 2)
    dm = ArrayDataModule(ArrayFile(str(tmp_path / "d.npz")))
    with pytest.raises(
        ValueError, match=r"1 example\(s\) have NaN or infinite features \(rows \[4\]\).*Impute"
    ):
        dm.prepare()


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size=0 must be >= 1"):
        ArrayDataModule(BreastCancer(), batch_size=0)


def test_the_splits_move_to_the_device_once_and_later_stages_reuse_them():
    import lightning as L

    from mlstrategy.models import LogisticRegression

    dm = ArrayDataModule(BreastCancer(), batch_size=64, seed=0)
    model = LogisticRegression(dm.input_shape, learning_rate=0.1)
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    copies = []
    for stage in (trainer.fit, trainer.validate, trainer.test):
        stage(model, datamodule=dm, **({} if stage == trainer.fit else {"verbose": False}))
        copies.append(dm._on_device)
    # The first setup made the device copy; validate and test gathered from the same one (on
    # the CPU `.to` returns the tensor itself, so the mapping's identity is what tells).
    assert copies[0] is copies[1] is copies[2]
    assert set(copies[0]) == {"train", "dev", "test"}
