import math
import random
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from conftest import write_recipe
from mlstrategy.callbacks.guards import NonFiniteError, NonFiniteGuard, RNGState
from mlstrategy.cli import main
from mlstrategy.data import ArrayDataModule
from mlstrategy.run_folder import FAILED_FILE


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


def _diverging_run(in_tmp, capsys, model: dict, data: dict) -> tuple[Path, str]:
    """Run a recipe through the CLI that must stop on a non-finite value: its run folder and
    the one line the user sees."""
    recipe = write_recipe(in_tmp / "diverge.yaml", model, data, {"max_epochs": 30})
    assert main(["run", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "training stopped:" in err
    (run_dir,) = (in_tmp / "logs" / "diverge").iterdir()
    return run_dir, " ".join(err.split())  # the console wraps long lines


def _checkpoints_left(run_dir: Path) -> list[Path]:
    """Every checkpoint in the run folder, each checked: finite weights, finite monitored score."""
    paths = sorted(run_dir.rglob("*.ckpt"))
    for path in paths:
        checkpoint = torch.load(path, weights_only=True)
        for name, value in checkpoint["state_dict"].items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), (path.name, name)
        states = [s for k, s in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint")]
        assert states, path
        for state in states:
            for key in ("best_model_score", "current_score"):
                if state[key] is not None:
                    assert math.isfinite(float(state[key])), (path.name, key, state[key])
    return paths


def test_absurd_learning_rate_leaves_no_checkpoint_and_says_to_lower_it(in_tmp, capsys):
    # lr = 1e38: one step makes the weights about 3.8e37, finite, but the dev cost NaN. Before,
    # best.ckpt was written with those weights and best_model_score=inf.
    run_dir, err = _diverging_run(
        in_tmp,
        capsys,
        {
            "class_path": "mlstrategy.models.LogisticRegression",
            "init_args": {"optimizer": "gd", "learning_rate": 1e38},
        },
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.BreastCancer"},
                "batch_size": None,
            },
        },
    )
    assert _checkpoints_left(run_dir) == []
    assert "cost/dev=nan at epoch 0" in err
    assert "No checkpoint was written" in err and "learning_rate=1e+37" in err
    assert "last good checkpoint" not in err
    failed = (run_dir / FAILED_FILE).read_text()
    assert "NonFiniteError" in failed and "No checkpoint was written" in failed


@pytest.mark.slow
def test_divergence_after_good_epochs_names_the_last_good_checkpoint(in_tmp, capsys):
    # Plain gradient descent at alpha = 100 on a ReLU net: the dev cost grows about 10^4 per
    # epoch from epoch 1 and overflows at epoch 8 (measured), after seven finite epochs.
    run_dir, err = _diverging_run(
        in_tmp,
        capsys,
        {
            "class_path": "mlstrategy.models.DeepNet",
            "init_args": {"layer_dims": [16], "optimizer": "gd", "learning_rate": 100.0},
        },
        {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {"class_path": "mlstrategy.data.BreastCancer"},
                "batch_size": None,
            },
        },
    )
    left = _checkpoints_left(run_dir)
    assert [p.name for p in left] == ["best.ckpt", "last.ckpt"]
    match = re.search(r"The last good checkpoint is (\S+?\.ckpt) \(epoch (\d+)\)", err)
    assert match, err
    named, saved_epoch = Path(match.group(1)), int(match.group(2))
    assert named.is_file() and named.name == "last.ckpt"
    stopped_at = int(re.search(r"at epoch (\d+)", err).group(1))
    assert stopped_at >= 2  # a divergence after good epochs, not at the first
    # Lightning writes last.ckpt with each new best; the epoch named is the one it holds.
    assert torch.load(named, weights_only=True)["epoch"] == saved_epoch < stopped_at
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    (state,) = [s for k, s in best["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert f"cost/dev={float(state['best_model_score']):.4g}" in err


def _guarded_step(guard, trainer, model, optimizer, cost):
    """One step as Lightning runs it: the cost, gradients, the guard's hook, the update."""
    guard.on_before_backward(trainer, model, cost)
    guard.on_before_optimizer_step(trainer, model, optimizer)
    optimizer.step()


def test_guard_skips_a_nan_cost_step_on_the_device_and_stops_at_the_next_check():
    from mlstrategy.models import LogisticRegression

    guard = NonFiniteGuard()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    model = LogisticRegression((3,), learning_rate=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for p in model.parameters():
        p.grad = torch.full_like(p, float("nan"))
    _guarded_step(guard, trainer, model, optimizer, torch.tensor(float("nan")))
    # No exception yet (that would be a host sync); the update was skipped on the device.
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(NonFiniteError, match=r"cost became nan at epoch 0, step 0;.*=0\.05"):
        guard.check(trainer, model)
    guard.check(trainer, model)  # each step is reported once


def test_guard_names_a_non_finite_gradient_and_fused_adam_skips_the_step_exactly():
    from mlstrategy.models import LogisticRegression

    guard = NonFiniteGuard()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    model = LogisticRegression((3,), learning_rate=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    _guarded_step(guard, trainer, model, optimizer, torch.tensor(0.5))
    guard.check(trainer, model)  # a finite step: nothing to say
    state = {k: v.clone() for k, v in optimizer.state_dict()["state"][0].items()}
    weights = [p.detach().clone() for p in model.parameters()]
    next(iter(model.parameters())).grad[0] = float("inf")
    _guarded_step(guard, trainer, model, optimizer, torch.tensor(0.5))
    # Weights, moments and the step count are those before the skipped step.
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(value, state[key]), key
    with pytest.raises(NonFiniteError, match=r"A gradient became non-finite .* step 0;"):
        guard.check(trainer, model)


@pytest.mark.slow
def test_a_nan_mid_epoch_is_skipped_named_at_its_step_and_leaves_good_checkpoints(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from mlstrategy.data import BreastCancer
    from mlstrategy.models import LogisticRegression

    class NanAtStep(LogisticRegression):
        def training_step(self, batch, batch_idx):
            cost = super().training_step(batch, batch_idx)
            return cost * float("nan") if self.global_step == 12 else cost

        def on_train_batch_end(self, outputs, batch, batch_idx):
            seen.append(self.global_step)

    seen = []
    L.seed_everything(0)
    model = NanAtStep(input_shape=(30,), optimizer="gd", learning_rate=0.1)
    data = ArrayDataModule(BreastCancer(), batch_size=64)  # 341 train examples: 6 steps
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="cost/dev", save_last=True)
    trainer = L.Trainer(
        max_epochs=4,
        callbacks=[NonFiniteGuard(), checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(NonFiniteError, match=r"cost became nan at epoch 2, step 12;") as err:
        trainer.fit(model, datamodule=data)
    assert seen[-1] == 18  # it trained to the end of epoch 2, then stopped
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert "The last good checkpoint is" in str(err.value) and "(epoch 1)" in str(err.value)
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 1


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


def _fp16_fit(model_class, init_scale: float):
    from lightning.pytorch.plugins.precision import MixedPrecision

    from mlstrategy.data import Digits

    L.seed_everything(0)
    model = model_class(input_shape=(64,), num_classes=10, layer_dims=[32], learning_rate=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        callbacks=[NonFiniteGuard()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=ArrayDataModule(Digits(), batch_size=64))
    return model, scaler


def test_under_float16s_grad_scaler_overflow_is_the_scalers_and_a_nan_cost_the_guards():
    from mlstrategy.models import DeepNet

    # A scale of 2^40 overflows float16 gradients: GradScaler skips those steps and halves its
    # scale until they fit; that is routine, not a divergence, and training goes on.
    model, scaler = _fp16_fit(DeepNet, 2.0**40)
    assert scaler.get_scale() < 2.0**40
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.cost_curve[-1]["cost/train"] < model.cost_curve[0]["cost/train"]

    class NanCost(DeepNet):
        def training_step(self, batch, batch_idx):
            cost = super().training_step(batch, batch_idx)
            return cost * float("nan") if self.global_step == 3 else cost

    with pytest.raises(NonFiniteError, match=r"cost became nan at epoch 0, step 3;"):
        _fp16_fit(NanCost, 2.0**8)


def test_under_float16_gradients_that_stay_non_finite_stop_the_run_instead_of_stalling():
    from mlstrategy.models import DeepNet

    class NanGradients(DeepNet):
        """A finite cost whose every gradient is NaN: GradScaler skips each step and halves
        its scale, and without the guard the run would go on, learning nothing."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            for p in self.net.parameters():
                p.register_hook(lambda g: g * float("nan"))

    # From 2^8, 17 skipped steps an epoch: 2^-9 after epoch 0 (still going), 2^-26 after
    # epoch 1, below the guard's 2^-24.
    with pytest.raises(NonFiniteError) as raised:
        _fp16_fit(NanGradients, 2.0**8)
    message = str(raised.value)
    assert "GradScaler skipped step after step and its scale fell to 1.49e-08 at epoch 1" in message
    assert "this epoch was not saved" in message


def _nan_cost_at_step_3_fit(module: L.LightningModule) -> None:
    from mlstrategy.data import Digits

    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[NonFiniteGuard()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(NonFiniteError, match=r"cost became nan at epoch 0, step 3;"):
        trainer.fit(module, datamodule=ArrayDataModule(Digits(), batch_size=64))


def test_the_guard_sees_each_loss_of_a_toolkit_module_and_of_any_other_module():
    from mlstrategy.models import DeepNet

    class Toolkit(DeepNet):
        def training_step(self, batch, batch_idx):
            assert isinstance(self.guard_losses, list)  # handed over for the fit
            cost = super().training_step(batch, batch_idx)
            return cost * float("nan") if self.global_step == 3 else cost

    class Plain(L.LightningModule):
        """Not the toolkit's: its losses reach the guard through the callback's own hook."""

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(64, 10)

        def training_step(self, batch, batch_idx):
            x, y = batch
            cost = torch.nn.functional.cross_entropy(self.net(x), y)
            return cost * float("nan") if self.global_step == 3 else cost

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    toolkit = Toolkit(input_shape=(64,), num_classes=10, layer_dims=[8])
    before = {k: v.clone() for k, v in toolkit.state_dict().items()}
    _nan_cost_at_step_3_fit(toolkit)
    assert toolkit.guard_losses is None  # taken back when the fit ended
    # Steps 0-2 trained; step 3's update was skipped, so every weight is finite and moved.
    after = toolkit.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert not torch.equal(before["net.head.weight"], after["net.head.weight"])
    _nan_cost_at_step_3_fit(Plain())
