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


def _fit(model: DeepNet, data: ArrayDataModule, tmp_path, epochs: int, ckpt=None) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)],
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return trainer


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # the resumed fit saves apart
def test_cost_curve_has_one_point_per_epoch_and_a_resumed_fit_continues_it(tmp_path):
    data = ArrayDataModule(Moons(n_samples=60), batch_size=16)
    model = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    _fit(model, data, tmp_path, epochs=2)
    assert [p["epoch"] for p in model.cost_curve] == [0.0, 1.0]
    assert set(model.cost_curve[0]) == {"epoch", "cost/train", "cost/dev", "lr"}
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["cost_curve"] == model.cost_curve and "learning_curve" not in saved
    resumed = DeepNet(data.input_shape, data.num_classes, layer_dims=[4], learning_rate=0.1)
    _fit(resumed, data, tmp_path / "resumed", epochs=3, ckpt=tmp_path / "last.ckpt")
    assert resumed.cost_curve[:2] == model.cost_curve
    assert [p["epoch"] for p in resumed.cost_curve] == [0.0, 1.0, 2.0]


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
