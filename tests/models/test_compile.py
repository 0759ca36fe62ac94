import torch

from mlstrategy.models import DeepNet


def test_compile_wraps_the_network_without_changing_checkpoint_keys(monkeypatch):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return lambda x: module(x) * 0 + 7.0  # recognisable output: proves forward uses it

    monkeypatch.setattr(torch, "compile", fake_compile)
    plain = DeepNet((4,), 3, layer_dims=[5])
    model = DeepNet((4,), 3, layer_dims=[5], compile=True)
    model.configure_model()
    model.configure_model()  # idempotent: Lightning may call it again
    assert compiled == [model.net]
    assert torch.equal(model(torch.zeros(2, 4)), torch.full((2, 3), 7.0))
    assert list(model.state_dict()) == list(plain.state_dict())


def test_compile_is_used_by_the_multitask_forward(monkeypatch):
    from mlstrategy.models import Head, MultiTaskNet

    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return lambda x: {k: v * 0 + 7.0 for k, v in module(x).items()}

    monkeypatch.setattr(torch, "compile", fake_compile)
    heads = {"a": Head("binary"), "b": Head("regression")}
    plain = MultiTaskNet((4,), heads, layer_dims=[5])
    model = MultiTaskNet((4,), heads, layer_dims=[5], compile=True)
    model.configure_model()
    assert compiled == [model.net]
    out = model(torch.zeros(2, 4))
    assert torch.equal(out["a"], torch.full((2,), 7.0))  # binary logits squeezed as always
    assert torch.equal(out["b"], torch.full((2, 1), 7.0))
    assert list(model.state_dict()) == list(plain.state_dict())
