"""Optimizers and learning-rate decay against the course's update rules and formulas."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch

from mlstrategy.data import ArrayDataModule, Moons
from mlstrategy.models import DeepNet
from mlstrategy.models.optim import Momentum, build_optimizer
from mlstrategy.models.schedules import LearningRateDecay, build_lr_decay, decay_factor


def _run(optimizer: torch.optim.Optimizer, w: torch.nn.Parameter, grads: np.ndarray) -> np.ndarray:
    """Apply the given gradients one step at a time; return W after each step."""
    out = []
    for g in grads:
        optimizer.zero_grad()
        w.grad = torch.from_numpy(g.copy())
        optimizer.step()
        out.append(w.detach().numpy().copy())
    return np.array(out)


@pytest.fixture
def grads() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 3))


W0 = np.array([0.5, -1.0, 2.0])


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.from_numpy(W0.copy()))


def test_gd_is_w_minus_alpha_dw(grads):
    w = _param()
    got = _run(build_optimizer("gd", [w], learning_rate=0.1), w, grads)
    np.testing.assert_allclose(got, W0 - 0.1 * np.cumsum(grads, axis=0), atol=1e-12)


def test_momentum_starts_v_at_zero_like_the_course(grads):
    w = _param()
    got = _run(build_optimizer("momentum", [w], learning_rate=0.1, beta1=0.9), w, grads)
    W, v, expected = W0.copy(), np.zeros(3), []
    for g in grads:
        v = 0.9 * v + 0.1 * g  # v = beta v + (1 - beta) dW, v = 0 at the start
        W = W - 0.1 * v
        expected.append(W)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # torch's own SGD starts v at the first gradient: a first step 10x the course's.
    w2 = _param()
    torch_sgd = torch.optim.SGD([w2], lr=0.1, momentum=0.9, dampening=0.9)
    first = _run(torch_sgd, w2, grads[:1])[0]
    np.testing.assert_allclose(W0 - first, 10 * (W0 - expected[0]), atol=1e-12)


def test_momentum_buffers_start_at_zero_for_groups_added_later():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    opt = Momentum([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert torch.equal(opt.state[b]["momentum_buffer"], torch.zeros(3))
    b.grad = torch.ones(3)
    opt.step()
    assert torch.allclose(b.detach(), torch.full((3,), 1 - 0.01 * 0.1))


def test_rmsprop_matches_the_course(grads):
    w = _param()
    opt = build_optimizer("rmsprop", [w], learning_rate=0.01, beta2=0.9, epsilon=1e-8)
    got = _run(opt, w, grads)
    W, s, expected = W0.copy(), np.zeros(3), []
    for g in grads:
        s = 0.9 * s + 0.1 * g**2  # s = beta2 s + (1 - beta2) dW^2
        W = W - 0.01 * g / (np.sqrt(s) + 1e-8)
        expected.append(W)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_adam_defaults_match_torch_adam_and_the_course(grads):
    w = _param()
    got = _run(build_optimizer("adam", [w], learning_rate=0.01), w, grads)
    w_ref = _param()
    ref = _run(torch.optim.Adam([w_ref], lr=0.01, betas=(0.9, 0.999), eps=1e-8), w_ref, grads)
    np.testing.assert_array_equal(got, ref)
    W, v, s, expected = W0.copy(), np.zeros(3), np.zeros(3), []
    for t, g in enumerate(grads, start=1):
        v = 0.9 * v + 0.1 * g
        s = 0.999 * s + 0.001 * g**2
        v_hat, s_hat = v / (1 - 0.9**t), s / (1 - 0.999**t)  # bias correction
        W = W - 0.01 * v_hat / (np.sqrt(s_hat) + 1e-8)
        expected.append(W)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_weight_decay_is_only_for_adamw():
    w = _param()
    with pytest.raises(ValueError, match=r"weight_decay=0\.1 applies to optimizer 'adamw' only"):
        build_optimizer("adam", [w], learning_rate=0.01, weight_decay=0.1)
    assert type(build_optimizer("adamw", [w], 0.01, weight_decay=0.1)).__name__ == "AdamW"


# ------------------------------------------------------------------------------ schedules
FORMULAS = {
    "inverse_time": lambda k: 1 / (1 + 0.5 * k),
    "exponential": lambda k: 0.5**k,
    "inverse_sqrt": lambda k: 0.5 / math.sqrt(k + 1),
    "step": lambda k: 1 / (1 + 0.5 * (k // 3)),
}


@pytest.mark.parametrize("schedule", list(FORMULAS))
def test_each_schedule_equals_its_formula(schedule):
    for k in range(12):
        assert decay_factor(schedule, k, 0.5, decay_interval=3) == pytest.approx(
            FORMULAS[schedule](k), rel=1e-12
        )


def test_schedule_defaults_are_the_course_examples():
    assert decay_factor("exponential", 2) == pytest.approx(0.95**2)
    assert decay_factor("inverse_time", 1) == pytest.approx(0.5)
    assert decay_factor("none", 7) == 1.0
    assert build_lr_decay(torch.optim.SGD([_param()], lr=1.0), "none") is None


def test_scheduler_state_is_plain_numbers_for_weights_only_checkpoints():
    opt = torch.optim.SGD([_param()], lr=0.2)
    scheduler = build_lr_decay(opt, "step", 1.0, decay_interval=2)
    for _ in range(5):
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 / (1 + 2))
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [{"schedule": "step", "decay_rate": 1.0, "decay_interval": 2}]
    assert isinstance(scheduler.lr_lambdas[0], LearningRateDecay)


# ----------------------------------------------------------------- inside a Lightning fit
def _fit(batch_size: int | None, epochs: int, **model_kwargs) -> tuple[L.Trainer, DeepNet]:
    data = ArrayDataModule(Moons(n_samples=60), batch_size=batch_size, test_fraction=0.2)
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], **model_kwargs)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    return trainer, model


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [(None, 1), (16, 3), (1, 36)])
def test_batch_minibatch_and_stochastic_gd_step_counts(batch_size, steps_per_epoch):
    # 60 examples, 20% dev and 20% test: 36 in train.
    trainer, model = _fit(batch_size, epochs=3, optimizer="gd", learning_rate=0.1)
    assert model.train_size == 36  # also the m of the L2 term
    assert trainer.global_step == 3 * steps_per_epoch


@pytest.mark.parametrize("schedule", list(FORMULAS))
def test_logged_learning_rate_each_epoch_equals_the_formula(schedule):
    _, model = _fit(
        None,
        epochs=7,
        optimizer="gd",
        learning_rate=0.2,
        lr_decay=schedule,
        decay_rate=0.5,
        decay_interval=3,
    )
    logged = [row["lr"] for row in model.cost_curve]
    assert logged == pytest.approx([0.2 * FORMULAS[schedule](k) for k in range(7)], rel=1e-9)


@pytest.mark.parametrize("name", ["gd", "momentum", "adam", "adamw"])
def test_cpu_and_cuda_parameters_get_torchs_fused_kernel_with_the_same_updates(name, grads):
    """One fused call updates every parameter; the weights equal torch's per-tensor loop's."""
    w = torch.nn.Parameter(torch.from_numpy(W0.astype(np.float32)))
    fused = build_optimizer(name, [w], learning_rate=0.01)
    assert fused.defaults["fused"] is True
    w_ref = torch.nn.Parameter(torch.from_numpy(W0.astype(np.float32)))
    loop = build_optimizer(name, [w_ref], learning_rate=0.01)
    loop.defaults["fused"] = loop.param_groups[0]["fused"] = None  # torch's default path
    steps = grads.astype(np.float32)
    np.testing.assert_allclose(_run(fused, w, steps), _run(loop, w_ref, steps), rtol=1e-6)
    # Elsewhere (here a parameter on the meta device) torch's default is kept.
    meta = torch.nn.Parameter(torch.zeros(3, device="meta"))
    assert build_optimizer(name, [{"params": [meta]}], learning_rate=0.01).defaults["fused"] is None


def test_rmsprop_has_no_fused_kernel_and_keeps_torchs_default():
    opt = build_optimizer("rmsprop", [_param()], learning_rate=0.01)
    assert "fused" not in opt.defaults


@pytest.mark.parametrize("name", ["rmsprop", "adam", "adamw"])
def test_a_step_on_cpu_parameters_asks_no_accelerator_question(name, grads, monkeypatch):
    """torch's Adam, AdamW and RMSprop ask whether an accelerator is available at every step
    (under Lightning, NVML is loaded again each time on a machine without a GPU); on CPU
    parameters the toolkit's do not, and their updates equal torch's own classes'."""
    asked = []
    real = torch.accelerator.current_accelerator

    def counting(*args, **kwargs):
        asked.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.accelerator, "current_accelerator", counting)
    w = torch.nn.Parameter(torch.from_numpy(W0.astype(np.float32)))
    ours = build_optimizer(name, [w], learning_rate=0.01)
    assert isinstance(
        ours,
        {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[
            name
        ],
    )
    steps = grads.astype(np.float32)
    updated = _run(ours, w, steps)
    assert asked == []
    w_ref = torch.nn.Parameter(torch.from_numpy(W0.astype(np.float32)))
    torch_class = type(ours).__mro__[2]  # the torch class it extends
    same = ("lr", "betas", "eps", "alpha", "weight_decay", "fused")
    reference = torch_class([w_ref], **{k: v for k, v in ours.defaults.items() if k in same})
    np.testing.assert_allclose(updated, _run(reference, w_ref, steps), rtol=1e-7)
    assert len(asked) >= len(steps)  # torch's own class asks at every step
    # Parameters elsewhere keep torch's check.
    asked.clear()
    meta = build_optimizer(name, [torch.nn.Parameter(torch.zeros(2, device="meta"))], 0.01)
    meta._accelerator_graph_capture_health_check()
    assert asked  # torch's check ran
