"""GradientNorms: each layer's gradient norm per epoch, equal to torch's own norm of the
layer's gradients, logged to TensorBoard, with no host read per step."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlstrategy.callbacks.gradients import GradientNorms, layer_groups
from mlstrategy.data import ArrayDataModule, Digits, Moons
from mlstrategy.models import ConvNet, DeepNet


class _Grads(L.Callback):
    """A copy of every gradient just before the optimizer step (the test's reference)."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grads = {n: p.grad.clone() for n, p in pl_module.net.named_parameters()}


def _one_step(tmp_path, model, data):
    seen = _Grads()
    L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        logger=TensorBoardLogger(str(tmp_path), name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[seen],
    ).fit(model, datamodule=data)
    (norms,) = next(c for c in model.trainer.callbacks if isinstance(c, GradientNorms)).history
    return norms, seen.grads


def test_one_step_layer_norms_equal_torchs_vector_norm_of_each_layers_grads(tmp_path):
    data = ArrayDataModule(Digits(), batch_size=64, seed=0)
    torch.manual_seed(0)
    model = DeepNet((64,), 10, layer_dims=[16, 8], batch_norm=True, activation="sigmoid")
    norms, grads = _one_step(tmp_path, model, data)
    # The course's layers: W[1] with batch norm's gamma[1] and beta[1] (no bias), ...
    layers = {
        "layer_1": ["features.1.0.weight", "features.1.1.weight", "features.1.1.bias"],
        "layer_2": ["features.2.0.weight", "features.2.1.weight", "features.2.1.bias"],
        "layer_3": ["head.weight", "head.bias"],
    }
    assert set(norms) == {"epoch", *layers}
    for layer, names in layers.items():
        flat = torch.cat([grads[n].flatten() for n in names])
        assert norms[layer] == pytest.approx(float(torch.linalg.vector_norm(flat)), rel=1e-5)
    # The same values reach TensorBoard, per epoch.
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    for layer in layers:
        (event,) = events.Scalars(f"grad_norm/{layer}")
        assert event.step == 0
        assert event.value == pytest.approx(norms[layer], rel=1e-6)


def test_conv_layers_take_their_batch_norm_and_the_epoch_value_is_the_rms_over_steps(tmp_path):
    groups = layer_groups(ConvNet((1, 12), 3, channels=[4, 6], batch_norm=True).net)
    assert [(name, [tuple(p.shape) for p in params]) for name, params in groups] == [
        ("layer_1", [(4, 1, 3), (4,), (4,)]),
        ("layer_2", [(6, 4, 3), (6,), (6,)]),
        ("layer_3", [(3, 6), (3,)]),
    ]
    # Over several steps: sqrt(mean over steps of ||grad||^2), recomputed here from each step.
    data = ArrayDataModule(Moons(n_samples=100), batch_size=16, seed=0)
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    steps: list[dict[str, float]] = []

    class _PerStep(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            groups = layer_groups(pl_module.net)
            steps.append(
                {n: float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ps])))
                 for n, ps in groups}
            )  # fmt: skip

    L.Trainer(
        max_epochs=1,
        logger=TensorBoardLogger(str(tmp_path), name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        callbacks=[_PerStep()],
    ).fit(model, datamodule=data)
    (norms,) = next(c for c in model.trainer.callbacks if isinstance(c, GradientNorms)).history
    assert len(steps) == 4
    for layer in ("layer_1", "layer_2"):
        rms = (sum(s[layer] ** 2 for s in steps) / len(steps)) ** 0.5
        assert norms[layer] == pytest.approx(rms, rel=1e-5)


def test_without_a_logger_it_does_nothing(tmp_path):
    data = ArrayDataModule(Moons(n_samples=60), batch_size=16, seed=0)
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4])
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    (callback,) = [c for c in trainer.callbacks if isinstance(c, GradientNorms)]
    assert callback.history == []
    assert callback.on_before_optimizer_step is None  # Lightning skips it each step
    # The same callback in a fit with a logger is active again.
    logged = L.Trainer(max_epochs=1, logger=CSVLogger(tmp_path), callbacks=[callback],
                       enable_checkpointing=False, enable_progress_bar=False,
                       enable_model_summary=False)  # fmt: skip
    logged.fit(model, datamodule=data)
    assert callable(callback.on_before_optimizer_step)
    assert [h["epoch"] for h in callback.history] == [0.0] and "layer_1" in callback.history[0]


_SYNCING = ("item", "__bool__", "__float__", "__int__", "tolist")


def test_logging_grad_norms_adds_no_host_read_per_step(tmp_path, monkeypatch):
    """Syncing calls inside training steps, with and without the callback (both with a
    logger): the same count however many steps."""
    counts = {"n": 0}
    active = {"on": False}

    class _Window(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            active["on"] = True

        def on_train_batch_end(self, *args) -> None:
            active["on"] = False

    for name in _SYNCING:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            counts["n"] += active["on"]
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    data = ArrayDataModule(Moons(n_samples=200), batch_size=8, seed=0)
    torch.manual_seed(0)
    template = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], optimizer="gd")

    def fit(with_norms: bool) -> int:
        counts["n"] = 0
        model = copy.deepcopy(template)
        if not with_norms:
            model.configure_callbacks = lambda: []  # type: ignore[method-assign]
        L.Trainer(
            max_epochs=2,
            logger=TensorBoardLogger(str(tmp_path), name=str(with_norms), version=""),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[_Window()],
        ).fit(model, datamodule=data)
        return counts["n"]

    assert fit(True) == fit(False) == 0
