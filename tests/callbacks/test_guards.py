import random

import lightning as L
import numpy as np
import pytest
import torch

from mlstrategy.callbacks.guards import NonFiniteError, NonFiniteGuard, RNGState
from mlstrategy.data import ArrayDataModule, BreastCancer
from mlstrategy.models import LogisticRegression


def test_rng_state_round_trips_every_generator():
    cb = RNGState()
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    state = cb.state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    cb.load_state_dict(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    # It survives the weights_only loader used for checkpoints.
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    cb.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])


def test_absurd_learning_rate_stops_and_saves_no_non_finite_weights(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    model = LogisticRegression(input_shape=(30,), optimizer="gd", learning_rate=1e38)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="cost/dev", save_last=True)
    trainer = L.Trainer(
        max_epochs=50,
        callbacks=[NonFiniteGuard(), checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    dm = ArrayDataModule(BreastCancer(), batch_size=None, normalize=False)
    with pytest.raises(
        NonFiniteError, match=r"non-finite|became (nan|inf).*learning rate too high"
    ):
        trainer.fit(model, datamodule=dm)
    for path in tmp_path.glob("*.ckpt"):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values())


def test_guard_stops_on_a_nan_cost_before_backward():
    guard = NonFiniteGuard()

    class FakeTrainer:
        current_epoch, global_step = 2, 17

    with pytest.raises(NonFiniteError, match="at epoch 2, step 17"):
        guard.on_before_backward(FakeTrainer(), None, torch.tensor(float("nan")))
    guard.on_before_backward(FakeTrainer(), None, torch.tensor(0.5))


def _fit(tmp_path, max_epochs, ckpt_path=None, every=None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from mlstrategy.models import DeepNet

    L.seed_everything(0)
    model = DeepNet(input_shape=(64,), num_classes=10, layer_dims=[16], keep_prob=0.7)
    callbacks = [RNGState()]
    if every:
        callbacks.append(
            ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=every, save_top_k=-1)
        )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=bool(every),
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
    )
    from mlstrategy.data import Digits

    trainer.fit(model, datamodule=ArrayDataModule(Digits(), batch_size=64), ckpt_path=ckpt_path)
    return model


def test_resume_from_a_mid_epoch_checkpoint_matches_an_uninterrupted_fit(tmp_path):
    reference = _fit(tmp_path, max_epochs=2, every=5)
    # 17 batches per epoch: step 20 is 3 batches into the second epoch.
    mid = tmp_path / "epoch=1-step=20.ckpt"
    assert mid.is_file()
    resumed = _fit(tmp_path / "resumed", max_epochs=2, ckpt_path=mid)
    for (name, a), b in zip(
        reference.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
