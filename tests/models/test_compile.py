"""`compile: true` on every model: forward runs through the compiled network (real
torch.compile, CPU), the cost is the one of the plain model, checkpoints keep their keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlstrategy.models import (
    ConvNet,
    DeepNet,
    Head,
    LogisticRegression,
    MultiTaskNet,
    SoftmaxRegression,
    TransferNet,
)

IMAGES = (3, 8, 8)


def _source_checkpoint(path: Path) -> str:
    """A tiny ConvNet checkpoint, as `mlstrategy run` writes it: TransferNet's backbone."""
    model = ConvNet(IMAGES, 4, channels=[4], global_pool="avg")
    hparams = {**dict(model.hparams), "_class_path": "mlstrategy.models.ConvNet"}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    return str(path)


def _build(name: str, tmp_path: Path, **kwargs) -> torch.nn.Module:
    if name == "LogisticRegression":
        return LogisticRegression((5,), **kwargs)
    if name == "SoftmaxRegression":
        return SoftmaxRegression((5,), 3, **kwargs)
    if name == "DeepNet":
        return DeepNet((5,), 3, layer_dims=[6, 4], **kwargs)
    if name == "ConvNet":
        return ConvNet(IMAGES, 3, channels=[4], **kwargs)
    if name == "TransferNet":
        backbone = _source_checkpoint(tmp_path / "source.ckpt")
        return TransferNet(IMAGES, 3, backbone="checkpoint", checkpoint=backbone, **kwargs)
    heads = {"car": Head("binary"), "size": Head("regression")}
    return MultiTaskNet((5,), heads, layer_dims=[6], **kwargs)


# name -> (input shape, labels of four examples)
MODELS: dict[str, tuple[tuple[int, ...], torch.Tensor]] = {
    "LogisticRegression": ((5,), torch.tensor([0, 1, 1, 0])),
    "SoftmaxRegression": ((5,), torch.tensor([0, 1, 2, 1])),
    "DeepNet": ((5,), torch.tensor([2, 0, 1, 1])),
    "ConvNet": (IMAGES, torch.tensor([0, 2, 1, 0])),
    "TransferNet": (IMAGES, torch.tensor([1, 1, 0, 2])),
    # A binary column with one missing label, a regression column with one missing value.
    "MultiTaskNet": ((5,), torch.tensor([[1, 0.5], [0, float("nan")], [-1, 1.5], [1, -0.2]])),
}


def _records_compiling(model: torch.nn.Module) -> list[bool]:
    """Whether each call of ``model.net`` ran inside torch.compile (a forward pre-hook, which
    dynamo traces along with the network)."""
    seen: list[bool] = []
    model.net.register_forward_pre_hook(
        lambda module, args: seen.append(torch.compiler.is_compiling())
    )
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_compile_runs_forward_through_the_compiled_network_with_the_same_cost(name, tmp_path):
    shape, y = MODELS[name]
    torch.manual_seed(0)
    plain = _build(name, tmp_path)
    compiled = _build(name, tmp_path, compile=True)
    compiled.load_state_dict(plain.state_dict())
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints interchange
    plain.eval()
    compiled.eval()
    compiled.configure_model()
    net = compiled.__dict__["_compiled_net"]
    compiled.configure_model()  # Lightning may call it again: still one compiled network
    assert compiled.__dict__["_compiled_net"] is net
    assert (
        isinstance(net, torch._dynamo.eval_frame.OptimizedModule) and net._orig_mod is compiled.net
    )

    plain_calls, compiled_calls = _records_compiling(plain), _records_compiling(compiled)
    x = torch.randn(len(y), *shape)
    with torch.no_grad():
        cost, outputs, _ = compiled.model_step((x, y))
        expected, expected_outputs, _ = plain.model_step((x, y))
    assert compiled_calls == [True] and plain_calls == [False]
    assert torch.isfinite(cost)
    assert cost.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    if isinstance(outputs, dict):
        for head, out in outputs.items():
            torch.testing.assert_close(out, expected_outputs[head], rtol=1e-5, atol=1e-6)
    else:
        torch.testing.assert_close(outputs, expected_outputs, rtol=1e-5, atol=1e-6)


def test_without_compile_nothing_is_compiled():
    model = DeepNet((4,), 3, layer_dims=[5])
    model.configure_model()
    assert "_compiled_net" not in model.__dict__
    calls = _records_compiling(model)
    model(torch.zeros(2, 4))
    assert calls == [False]
