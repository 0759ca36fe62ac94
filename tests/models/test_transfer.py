"""TransferNet: backbones from a toolkit run, torchvision's registry and local files; strategies."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from mlstrategy.data import ArrayDataModule, DigitImages
from mlstrategy.models import ConvNet, TransferNet
from mlstrategy.models.backbones import load_backbone_state, toolkit_blocks, torchvision_backbone
from mlstrategy.run_folder import run_checkpoint
from mlstrategy.safety import UnsafeError

SHAPE = (3, 8, 8)
IMAGENET_MEAN = (0.485, 0.456, 0.406)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _source_checkpoint(path: Path, seed: int = 0) -> tuple[Path, ConvNet]:
    """A ConvNet checkpoint as `mlstrategy run` writes it, with distinctive weights, batch-norm
    statistics and input normalization."""
    torch.manual_seed(seed)
    model = ConvNet(SHAPE, 4, channels=[4, 6], batch_norm=True, global_pool="flatten")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
        model.input_norm.mean.fill_(0.3)
        model.input_norm.std.fill_(2.0)
    hparams = {**dict(model.hparams), "_class_path": "mlstrategy.models.ConvNet"}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    return path, model


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, ConvNet]:
    return _source_checkpoint(tmp_path / "source.ckpt")


def _transfer(ckpt: Path, strategy: str = "freeze", **kwargs) -> TransferNet:
    return TransferNet(
        SHAPE, 3, backbone="checkpoint", checkpoint=str(ckpt), strategy=strategy, **kwargs
    )


def _tiny_data() -> ArrayDataModule:
    source = DigitImages(size=8, classes=[5, 6, 7], labels_per_class=12)
    return ArrayDataModule(source, dev_fraction=0.25, batch_size=8, seed=0)


def _trainer(epochs: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


# ------------------------------------------------------------------ toolkit checkpoint backbone
def test_checkpoint_backbone_has_the_source_weights_and_a_new_head(source):
    ckpt, src = source
    model = _transfer(ckpt, "finetune")
    assert model.net.features.state_dict().keys() == src.net.features.state_dict().keys()
    for k, v in src.net.features.state_dict().items():
        assert torch.equal(model.net.features.state_dict()[k], v), k
    assert model.net.head.out_features == 3  # sized for the target task, not the source's 4
    # The backbone's preprocessing (the source task's normalization) comes with it.
    assert torch.all(model.input_norm.mean == 0.3) and torch.all(model.input_norm.std == 2.0)
    assert model(torch.zeros(2, *SHAPE)).shape == (2, 3)


def test_scratch_has_the_same_architecture_with_fresh_weights(source):
    ckpt, src = source
    model = _transfer(ckpt, "scratch")
    shapes = {k: v.shape for k, v in model.net.features.state_dict().items()}
    assert shapes == {k: v.shape for k, v in src.net.features.state_dict().items()}
    conv = model.net.features[0].weight
    assert not torch.equal(conv, src.net.features[0].weight)
    assert torch.all(model.input_norm.mean == 0) and not model.backbone_norm


def test_checkpoint_is_found_from_a_run_folder_or_the_folder_of_a_recipes_runs(tmp_path):
    older = tmp_path / "logs/transfer/0_pretrain/20250101-000000"
    newer = tmp_path / "logs/transfer/0_pretrain/20250102-000000"
    unfinished = tmp_path / "logs/transfer/0_pretrain/20250103-000000"
    for run in (older, newer, unfinished):
        _source_checkpoint(run / "checkpoints/best.ckpt")
    for run in (older, newer):
        (run / "metrics.json").write_text("{}")
    folder = tmp_path / "logs/transfer/0_pretrain"
    assert run_checkpoint(folder) == newer / "checkpoints/best.ckpt"
    assert run_checkpoint(older) == older / "checkpoints/best.ckpt"
    with pytest.raises(FileNotFoundError, match=r"mlstrategy run recipes/transfer/"):
        run_checkpoint(tmp_path / "logs/transfer/nothing")
    empty = tmp_path / "logs/empty/run"
    empty.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no finished run"):
        run_checkpoint(empty.parent)
    # TransferNet takes the folder of runs and transfers from its latest finished run.
    model = _transfer(folder, "freeze")
    assert model.backbone_source.endswith(str(newer / "checkpoints/best.ckpt"))


def test_checkpoint_of_another_input_shape_is_refused(source):
    ckpt, _ = source
    with pytest.raises(ValueError, match=r"shape \(3, 8, 8\); this data gives \(3, 16, 16\)"):
        TransferNet((3, 16, 16), 3, backbone="checkpoint", checkpoint=str(ckpt))


def test_checkpoint_of_foreign_code_is_refused_before_building_it(tmp_path):
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "os.system"}}, crafted)
    with pytest.raises(UnsafeError, match=r"os\.system"):
        _transfer(crafted)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": 1}}, plain)
    with pytest.raises(ValueError, match="not written by a toolkit model run"):
        _transfer(plain)


def test_toolkit_blocks_group_each_conv_with_its_batch_norm():
    net = ConvNet(SHAPE, 3, channels=[4, 6], batch_norm=True).net
    blocks = toolkit_blocks(net.features)
    assert [type(b[0]).__name__ for b in blocks] == ["Conv2d", "Conv2d"]
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in b) for b in blocks)


# ----------------------------------------------------------------------------------- strategies
def test_freeze_keeps_backbone_weights_and_batch_norm_statistics_bit_identical(source):
    torch.manual_seed(0)
    ckpt, _ = source
    model = _transfer(ckpt, "freeze", learning_rate=0.05)
    before = {k: v.clone() for k, v in model.net.features.state_dict().items()}
    head_before = model.net.head.weight.detach().clone()
    model.train()  # what a training loop calls: frozen batch norm must stay in eval mode
    norms = [m for m in model.net.features.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 2 and not any(m.training for m in norms)
    assert model.net.head.training
    _trainer(3).fit(model, _tiny_data())
    after = model.net.features.state_dict()
    assert any("running_mean" in k for k in before)
    for k, v in before.items():  # weights, running_mean, running_var, num_batches_tracked
        assert torch.equal(after[k], v), k
    assert not torch.equal(model.net.head.weight, head_before)  # the head did learn
    # The source task's normalization survived setup (the data module offers its own).
    assert torch.all(model.input_norm.mean == 0.3)


def test_optimizer_groups_per_strategy(source):
    ckpt, _ = source
    total = {id(p) for p in _transfer(ckpt).parameters()}
    for strategy, backbone_lr in (("finetune", 0.02 * 0.25), ("scratch", 0.02)):
        model = _transfer(ckpt, strategy, learning_rate=0.02, backbone_lr_ratio=0.25)
        optimizer = model.configure_optimizers()
        groups = {g["name"]: g for g in optimizer.param_groups}
        assert groups["head"]["lr"] == 0.02
        assert groups["backbone"]["lr"] == pytest.approx(backbone_lr)
        head = {id(p) for p in model.net.head.parameters()}
        assert {id(p) for p in groups["head"]["params"]} == head
        assert len({id(p) for g in groups.values() for p in g["params"]}) == len(total)
    for strategy in ("freeze", "gradual"):
        model = _transfer(ckpt, strategy, learning_rate=0.02)
        (group,) = model.configure_optimizers().param_groups
        assert group["name"] == "head" and len(group["params"]) == 2  # W and b


def test_finetune_with_lr_decay_keeps_the_ratio_each_epoch(source):
    ckpt, _ = source
    model = _transfer(ckpt, "finetune", learning_rate=0.02, backbone_lr_ratio=0.1,
                      lr_decay="exponential", decay_rate=0.5)  # fmt: skip
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    for epoch in range(3):
        head, backbone = (g["lr"] for g in optimizer.param_groups)
        assert head == pytest.approx(0.02 * 0.5**epoch)
        assert backbone == pytest.approx(0.1 * head)
        optimizer.step()
        scheduler.step()


def test_l2_counts_only_weights_that_train(source):
    ckpt, _ = source
    model = _transfer(ckpt, "freeze", l2_lambda=1.0)
    expected = model.net.head.weight.pow(2).sum() / (2 * 10)
    assert torch.allclose(model.l2_penalty(10), expected)


def test_gradual_adds_its_callback_and_others_do_not(source):
    ckpt, _ = source
    norms, closer, callback = _transfer(ckpt, "gradual", unfreeze_every=3).configure_callbacks()
    assert type(callback).__name__ == "GradualUnfreezing" and callback.every == 3
    # Every strategy logs the gradient norms per layer and closes its TensorBoard sub-runs
    # on a failure, as the other models do.
    own = ["GradientNorms", "CloseSubRunsOnFailure"]
    assert [type(norms).__name__, type(closer).__name__] == own
    assert [type(c).__name__ for c in _transfer(ckpt, "finetune").configure_callbacks()] == own


# ------------------------------------------------------------------------- torchvision weights
@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache in tmp_path, and no network: any download attempt fails."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    return cache


def _published(name: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """A randomly initialized torchvision model's state dict, standing in for the real weights."""
    from torchvision.models import get_model

    torch.manual_seed(seed)
    return get_model(name, weights=None).state_dict()


def _assert_backbone_equals(model: TransferNet, state: dict[str, torch.Tensor], head: str):
    own = model.net.features.state_dict()
    kept = {k: v for k, v in state.items() if not k.startswith(head)}
    assert own.keys() == kept.keys()
    for k, v in kept.items():
        assert torch.equal(own[k], v), k


@pytest.mark.parametrize(
    ("name", "filename", "head"),
    [
        pytest.param("resnet18", "resnet18-f37072fd.pth", "fc.", marks=pytest.mark.slow),
        ("mobilenet_v3_small", "mobilenet_v3_small-047dcff4.pth", "classifier.3."),
        pytest.param(
            "efficientnet_b0",
            "efficientnet_b0_rwightman-7f5810bc.pth",
            "classifier.1.",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_default_weights_come_from_the_torch_hub_cache(hub, name, filename, head):
    state = _published(name)
    torch.save(state, hub / filename)
    model = TransferNet((3, 32, 32), 5, backbone=name, weights="DEFAULT", strategy="freeze")
    _assert_backbone_equals(model, state, head)
    assert model.net.head.out_features == 5
    # The weights' own preprocessing: ImageNet's mean, per channel.
    assert model.input_norm.mean[:, 0, 0].tolist() == pytest.approx(IMAGENET_MEAN)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 5)


def test_default_weights_offline_and_not_cached_say_where_to_put_them(hub):
    with pytest.raises(FileNotFoundError, match=r"resnet18-f37072fd\.pth.*weights_path"):
        TransferNet((3, 32, 32), 5, backbone="resnet18", weights="DEFAULT")


def test_a_pickle_in_the_hub_cache_that_runs_code_is_refused(hub, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"conv1.weight": _Evil(marker)}, hub / "resnet18-f37072fd.pth")
    with pytest.raises(UnsafeError, match="refused"):
        TransferNet((3, 32, 32), 5, backbone="resnet18", weights="DEFAULT")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_loads_exactly_those_weights(tmp_path, suffix):
    state = _published("mobilenet_v3_small", seed=2)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    model = TransferNet(
        (3, 32, 32), 4, backbone="mobilenet_v3_small", weights_path=str(path), strategy="finetune"
    )
    _assert_backbone_equals(model, state, "classifier.3.")


def test_weights_that_do_not_fit_list_missing_unexpected_and_mismatched_keys(tmp_path):
    model, _, _ = torchvision_backbone("mobilenet_v3_small")
    state = dict(model.state_dict())
    state.pop("features.0.0.weight")
    state["extra.weight"] = torch.zeros(1)
    state["features.1.block.0.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(ValueError) as err:
        load_backbone_state(model, state, "w.pth")
    message = str(err.value)
    assert "1 missing keys: features.0.0.weight" in message
    assert "1 unexpected keys: extra.weight" in message
    assert "features.1.block.0.0.weight: file (2, 2), model (16, 1, 3, 3)" in message
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.bias": torch.zeros(64)}, path)
    with pytest.raises(ValueError, match=r"missing keys: .*unexpected keys: bn1\.bias"):
        TransferNet((3, 32, 32), 4, backbone="mobilenet_v3_small", weights_path=str(path))


def test_weights_file_missing_or_malicious_is_refused_and_runs_nothing(tmp_path):
    def build(path: Path) -> TransferNet:
        return TransferNet((3, 32, 32), 4, backbone="mobilenet_v3_small", weights_path=str(path))

    with pytest.raises(FileNotFoundError, match="does not exist"):
        build(tmp_path / "no.pth")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.0.weight": _Evil(marker)}, evil)
    with pytest.raises(UnsafeError, match="nothing from it was executed"):
        build(evil)
    assert not marker.exists()
    notes = tmp_path / "notes.pth"
    torch.save({"features.0.0.weight": "not a tensor"}, notes)
    with pytest.raises(ValueError, match=r"not a state dict of tensors: \['features.0.0.weight'\]"):
        build(notes)


def test_torchvision_blocks_cover_the_backbone_bottom_to_top():
    model, width, blocks = torchvision_backbone("resnet18")
    assert width == 512 and blocks[-1] == [model.layer4] and blocks[0] == [model.conv1, model.bn1]
    _, width, blocks = torchvision_backbone("mobilenet_v3_small")
    assert width == 1024 and len(blocks) == 14  # 13 feature stages + the pretrained dense layer


# ---------------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "thaw"}, r"strategy='thaw' is not one of \['freeze', 'finetune'"),
        ({"backbone": "vgg16"}, r"backbone='vgg16' is not one of \['resnet18'"),
        ({"strategy": "scratch", "backbone_lr_ratio": 2.0}, r"backbone_lr_ratio=2.0 .*\(0, 1\]"),
        ({"strategy": "scratch", "unfreeze_every": 0}, r"unfreeze_every=0 must be"),
        ({"weights": "IMAGENET9K"}, r"weights='IMAGENET9K' is not one of .*'DEFAULT'"),
        ({"strategy": "freeze"}, r"strategy='freeze' starts from pretrained weights"),
        ({"weights": "DEFAULT", "weights_path": "w.pth"}, r"two sources"),
        ({"checkpoint": "logs/x"}, r"checkpoint='logs/x' is read with backbone='checkpoint'"),
        ({"backbone": "checkpoint"}, r"backbone='checkpoint' needs checkpoint"),
        (
            {"backbone": "checkpoint", "checkpoint": "c.ckpt", "weights": "DEFAULT"},
            r"weights='DEFAULT' applies to torchvision backbones",
        ),
    ],
)
def test_bad_values_name_the_argument_and_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransferNet((3, 32, 32), 4, **kwargs)


def test_torchvision_backbones_need_rgb_images():
    with pytest.raises(ValueError, match=r"input_shape=\(1, 8, 8\): resnet18 takes RGB"):
        TransferNet((1, 8, 8), 4, backbone="resnet18", strategy="scratch")


def test_frozen_blocks_stay_frozen_after_sync_batch_norm_swaps_the_modules(source):
    ckpt, _ = source
    model = nn.SyncBatchNorm.convert_sync_batchnorm(_transfer(ckpt, "freeze"))  # DDP's swap
    norms = [m for m in model.net.features.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert len(norms) == 2 and all(any(m is n for b in model.net.blocks for m in b) for n in norms)
    model.train()
    assert not any(m.training for m in norms)
    assert not any(p.requires_grad for p in model.net.features.parameters())
