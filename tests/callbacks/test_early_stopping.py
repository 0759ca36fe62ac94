"""EarlyStopping hands back the weights of the epoch with the best logged dev cost."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mlstrategy.callbacks import EarlyStopping
from mlstrategy.data import ArrayDataModule, Moons
from mlstrategy.models import DeepNet


def _overfit(
    callback: EarlyStopping, max_epochs: int = 80
) -> tuple[L.Trainer, DeepNet, ArrayDataModule]:
    """A big net on 48 noisy training points: dev cost falls, then climbs."""
    L.seed_everything(0, verbose=False)
    data = ArrayDataModule(Moons(n_samples=80, noise=0.45), batch_size=None)
    model = DeepNet(
        data.input_shape,
        data.num_classes,
        layer_dims=[64, 64],
        optimizer="adam",
        learning_rate=0.05,
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    return trainer, model, data


def _dev_cost(model: DeepNet, data: ArrayDataModule) -> float:
    x, y = data.prepare()["dev"]
    model.eval()
    with torch.no_grad():
        return model.cost(model(x), y).item()


@pytest.mark.slow
def test_restored_weights_give_the_best_logged_dev_cost():
    callback = EarlyStopping(patience=5)
    trainer, model, data = _overfit(callback)
    dev = [row["cost/dev"] for row in model.cost_curve]
    best_epoch = min(range(len(dev)), key=dev.__getitem__)
    assert trainer.current_epoch < 80  # it did stop early ...
    assert dev[-1] > dev[best_epoch] + 1e-3  # ... after dev cost had risen
    assert callback.best_weights_epoch == best_epoch
    assert _dev_cost(model, data) == pytest.approx(dev[best_epoch], rel=1e-6)


@pytest.mark.slow
def test_without_restore_the_last_weights_stay():
    _, model, data = _overfit(EarlyStopping(patience=5, restore_best_weights=False))
    dev = [row["cost/dev"] for row in model.cost_curve]
    assert _dev_cost(model, data) == pytest.approx(dev[-1], rel=1e-6)
    assert dev[-1] > min(dev) + 1e-3


def test_defaults_watch_dev_cost_and_bad_values_fail():
    callback = EarlyStopping()
    assert (callback.monitor, callback.mode, callback.patience) == ("cost/dev", "min", 10)
    with pytest.raises(ValueError, match="patience=-1 must be >= 0"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match=r"min_delta=-0\.1 must be >= 0"):
        EarlyStopping(min_delta=-0.1)
