"""SupervisedModule: the cost curve in checkpoints (old key too), the param_groups hook, and
ClassifierModule and MultiTaskNet as siblings on it."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mlstrategy.data import ArrayDataModule, Moons
from mlstrategy.models import (
    ClassifierModule,
    DeepNet,
    MultiTaskNet,
    SupervisedModule,
    TransferNet,
)


def _trainer(**settings) -> L.Trainer:
    """A Trainer that writes and prints nothing of its own (no logger, bar or summary)."""
    return L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, **settings
    )


def _fit(model: DeepNet, data: ArrayDataModule, tmp_path, epochs: int, ckpt=None) -> L.Trainer:
    trainer = _trainer(
        max_epochs=epochs, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)]
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return trainer


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # the resumed fit saves apart
def test_cost_curve_has_one_point_per_epoch_and_a_resumed_fit_continues_it(tmp_path):
    data = ArrayDataModule(Moons(n_samples=60), batch_size=16)
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    _fit(model, data, tmp_path, epochs=2)
    assert [p["epoch"] for p in model.cost_curve] == [0.0, 1.0]
    assert set(model.cost_curve[0]) == {"epoch", "cost/train", "cost/dev", "lr", "step_costs"}
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["cost_curve"] == model.cost_curve and "learning_curve" not in saved
    resumed = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    _fit(resumed, data, tmp_path / "resumed", epochs=3, ckpt=tmp_path / "last.ckpt")
    assert resumed.cost_curve[:2] == model.cost_curve
    assert [p["epoch"] for p in resumed.cost_curve] == [0.0, 1.0, 2.0]


class _BatchLosses(L.Callback):
    """The loss each training step returned, read after the step (the test's own sync)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.sizes: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        self.sizes.append(len(batch[1]))


def test_each_epoch_keeps_its_per_step_costs_and_their_weighted_mean_is_cost_train():
    data = ArrayDataModule(Moons(n_samples=100), batch_size=16)  # 60 train: 4 steps per epoch
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    seen = _BatchLosses()
    _trainer(max_epochs=2, enable_checkpointing=False, callbacks=[seen]).fit(model, datamodule=data)
    steps = [s for point in model.cost_curve for s in point["step_costs"]]
    assert steps == pytest.approx(seen.losses, abs=1e-6)
    for epoch, point in enumerate(model.cost_curve):
        costs = torch.tensor(point["step_costs"])
        sizes = torch.tensor(seen.sizes[4 * epoch : 4 * epoch + 4], dtype=torch.float32)
        assert len(costs) == 4
        assert float((costs * sizes).sum() / sizes.sum()) == pytest.approx(point["cost/train"])


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # the resumed fit saves apart
def test_an_old_checkpoints_open_epoch_sum_counts_once_and_dev_cost_covers_every_example(tmp_path):
    """Older mid-epoch checkpoints kept the open epoch's weighted cost sum and count under
    ``train_cost.mean_value`` / ``train_cost.weight``: such a checkpoint still loads, its sum
    is added into the resumed epoch's cost once (not again from the next checkpoint). The dev
    cost is the mean over every dev example."""
    data = ArrayDataModule(Moons(n_samples=100), batch_size=16)  # 60 train: 4 steps per epoch
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    _fit(model, data, tmp_path / "first", epochs=1)
    old = torch.load(tmp_path / "first" / "last.ckpt", weights_only=True)
    for key in ("pending_step_costs", "pending_l2_terms", "pending_train_cost"):
        old.pop(key)  # an old checkpoint had none of these
    old["state_dict"]["train_cost.mean_value"] = torch.tensor(3.0)
    old["state_dict"]["train_cost.weight"] = torch.tensor(10.0)
    torch.save(old, tmp_path / "old.ckpt")
    resumed = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    seen = _BatchLosses()
    second = ModelCheckpoint(dirpath=tmp_path / "second", save_last=True)
    trainer = _trainer(max_epochs=3, callbacks=[seen, second])
    trainer.fit(resumed, datamodule=data, ckpt_path=tmp_path / "old.ckpt", weights_only=True)
    sizes = torch.tensor(seen.sizes, dtype=torch.float32)
    steps = torch.tensor([s for point in resumed.cost_curve[1:] for s in point["step_costs"]])
    second, third = (float((steps[i : i + 4] * sizes[i : i + 4]).sum()) for i in (0, 4))
    assert resumed.cost_curve[1]["cost/train"] == pytest.approx((second + 3.0) / (60 + 10.0))
    assert resumed.cost_curve[2]["cost/train"] == pytest.approx(third / 60)  # counted once
    saved = torch.load(tmp_path / "second" / "last.ckpt", weights_only=True)["state_dict"]
    assert float(saved["train_cost.mean_value"]) == float(saved["train_cost.weight"]) == 0.0
    x_dev, y_dev = data.prepare()["dev"]
    assert len(y_dev) % 16  # a last dev batch smaller than the others, weighted by its size
    with torch.no_grad():
        logits = resumed(x_dev)  # one logit per example: Moons is binary
        dev = torch.nn.functional.binary_cross_entropy_with_logits(logits, y_dev.float())
    assert resumed.cost_curve[2]["cost/dev"] == pytest.approx(float(dev), rel=1e-5)


def _host_reads_during_fit(batch_size: int, monkeypatch) -> int:
    """How often a fit reads a tensor back to the host (``.item()``, ``.tolist()``)."""
    calls = {"n": 0}
    for name in ("item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            calls["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    data = ArrayDataModule(Moons(n_samples=200), batch_size=batch_size)
    # Plain gradient descent: torch's Adam reads its step counter with .item() on the CPU.
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], optimizer="gd")
    _trainer(max_epochs=2, enable_checkpointing=False, num_sanity_val_steps=0).fit(
        model, datamodule=data
    )
    monkeypatch.undo()
    assert sum(len(p["step_costs"]) for p in model.cost_curve) == 2 * -(-120 // batch_size)
    return calls["n"]


def test_recording_step_costs_adds_no_host_read_per_step(monkeypatch):
    # 120 training examples: 2 steps per epoch at batch 64, 15 at batch 8; same host reads.
    assert _host_reads_during_fit(8, monkeypatch) == _host_reads_during_fit(64, monkeypatch)


@pytest.mark.filterwarnings("ignore:The dirpath has changed", "ignore:Be aware that when using")
def test_a_fit_resumed_mid_epoch_keeps_the_steps_before_the_checkpoint(tmp_path):
    data = ArrayDataModule(Moons(n_samples=100), batch_size=16)  # 4 steps per epoch

    def fit(ckpt=None, every=None, where=tmp_path):
        L.seed_everything(0)
        model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
        saver = ModelCheckpoint(dirpath=where, every_n_train_steps=every, save_top_k=-1)
        _trainer(max_epochs=2, callbacks=[saver]).fit(
            model, datamodule=data, ckpt_path=ckpt, weights_only=True
        )
        return model

    reference = fit(every=3)
    resumed = fit(ckpt=tmp_path / "epoch=1-step=6.ckpt", where=tmp_path / "resumed")
    assert len(reference.cost_curve) == len(resumed.cost_curve) == 2
    for ours, theirs in zip(resumed.cost_curve, reference.cost_curve, strict=True):
        assert ours["step_costs"] == pytest.approx(theirs["step_costs"], abs=1e-6)
        assert ours["cost/train"] == pytest.approx(theirs["cost/train"], abs=1e-6)


def test_a_checkpoint_written_before_the_rename_still_gives_its_cost_curve():
    model = DeepNet((2,), 2, layer_dims=[3])
    points = [{"epoch": 0.0, "cost/train": 0.7, "cost/dev": 0.69, "lr": 0.01}]
    model.on_load_checkpoint({"learning_curve": points})
    model.on_fit_start()  # a fit from a checkpoint continues the curve it holds
    assert model.cost_curve == points


def test_default_param_groups_hold_every_parameter():
    model = DeepNet((3,), 3, layer_dims=[4], learning_rate=0.02)
    (group,) = model.configure_optimizers().param_groups
    assert group["lr"] == 0.02
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}


class _FastHead(DeepNet):
    """The output layer at 10x the rate: only the hook changes."""

    def param_groups(self):
        lr = self.hparams["learning_rate"]
        head = list(self.net.head.parameters())
        ids = {id(p) for p in head}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest, "lr": lr}, {"params": head, "lr": 10 * lr}]


def test_the_param_groups_hook_sets_the_optimizer_and_its_schedule():
    model = _FastHead((3,), 2, layer_dims=[4], learning_rate=0.01, lr_decay="exponential",
                      decay_rate=0.5)  # fmt: skip
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.1])
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.05])
    # TransferNet trains its head and backbone at two rates through this hook alone.
    assert "param_groups" in vars(TransferNet)
    assert not {"configure_optimizers", "l2_penalty"} & set(vars(TransferNet))


def test_classifier_and_multitask_net_are_siblings_on_one_base():
    assert issubclass(ClassifierModule, SupervisedModule)
    assert issubclass(MultiTaskNet, SupervisedModule)
    assert not issubclass(MultiTaskNet, ClassifierModule)
    net = MultiTaskNet((3,), {"a": {"kind": "binary"}}, layer_dims=[4])
    assert not hasattr(net, "num_classes")  # no placeholder class count
    assert "num_classes" in net.hparams and net.hparams["num_classes"] is None


def test_lightnings_dispatch_skips_the_empty_step_hooks_and_still_calls_overridden_ones():
    from lightning.pytorch.trainer import call

    class Counted(DeepNet):
        def on_after_backward(self) -> None:
            self.backwards += 1

    data = ArrayDataModule(Moons(n_samples=100), batch_size=16)  # 60 train: 4 steps per epoch
    model = Counted(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    model.backwards, model.ends = 0, []
    model.on_train_batch_end = lambda outputs, batch, batch_idx: model.ends.append(batch_idx)
    dispatched: list[str] = []
    real = call._call_lightning_module_hook

    def spy(trainer, hook_name, *args, **kwargs):
        fn = getattr(kwargs.get("pl_module") or trainer.lightning_module, hook_name)
        if callable(fn):
            dispatched.append(hook_name)
        return real(trainer, hook_name, *args, **kwargs)

    call._call_lightning_module_hook = spy
    try:
        _trainer(max_epochs=2, enable_checkpointing=False).fit(model, datamodule=data)
    finally:
        call._call_lightning_module_hook = real
    # The subclass's hook and the instance's own function ran on every step ...
    assert model.backwards == 8 and model.ends == [0, 1, 2, 3] * 2
    # ... while LightningModule's empty ones were never entered.
    for hook in ("on_train_batch_start", "on_before_zero_grad", "on_before_optimizer_step"):
        assert getattr(model, hook) is None and hook not in dispatched
    assert dispatched.count("on_after_backward") == 8
    assert dispatched.count("on_train_batch_end") == 8
    assert dispatched.count("optimizer_step") == 8


def test_the_fast_fx_name_attribute_leaves_modules_parameters_and_buffers_registered():
    model = DeepNet((2,), 2, layer_dims=[4])
    model._current_fx_name = "training_step"
    assert model._current_fx_name == "training_step" and "_current_fx_name" in vars(model)
    model.extra = torch.nn.Linear(2, 3)  # every other name still goes through nn.Module
    model.scale = torch.nn.Parameter(torch.ones(1))
    model.register_buffer("shift", torch.zeros(1))
    model.shift = torch.ones(1)
    state = model.state_dict()
    assert {"extra.weight", "scale", "shift"} <= set(state) and state["shift"].item() == 1.0
    assert "extra" not in vars(model) and "scale" not in vars(model)
