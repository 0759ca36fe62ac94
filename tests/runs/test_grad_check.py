"""Gradient checking: a healthy network passes, a broken backward pass is caught, per layer."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from conftest import write_recipe
from mlstrategy.cli import main
from mlstrategy.models import DeepNet
from mlstrategy.runs.grad_check import band, check_gradients

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class _DoubledGradient(torch.autograd.Function):
    """The identity, whose backward returns twice the true gradient (a planted bug)."""

    @staticmethod
    def forward(ctx, w):  # type: ignore[no-untyped-def]
        return w.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        return 2 * grad


class _BrokenLinear(nn.Linear):
    """A linear layer whose weight gradient comes back doubled (its bias is right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, _DoubledGradient.apply(self.weight), self.bias)


def _batch(n_x: int = 5, m: int = 16, classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(m, n_x, generator=generator), torch.arange(m) % classes


def test_a_deep_net_with_l2_dropout_and_batch_norm_checks_great():
    torch.manual_seed(0)
    model = DeepNet((5,), 3, layer_dims=[7, 6], keep_prob=0.5, batch_norm=True, l2_lambda=0.3)
    x, y = _batch(classes=3)
    checks = check_gradients(model, x, y)
    # Every module that owns parameters: 2 x (Linear, BatchNorm1d), then the head.
    assert [c.kind for c in checks] == ["Linear", "BatchNorm1d"] * 2 + ["Linear"]
    assert [c.checked for c in checks] == [35, 14, 42, 12, 21]
    assert all(c.difference < 1e-7 and c.verdict == "great" for c in checks)
    assert all(c.grad_norm > 0 for c in checks)
    # The model itself stays float32 (the check ran on a float64 copy).
    assert next(model.parameters()).dtype == torch.float32


def test_the_l2_term_is_in_the_checked_cost():
    """Against the closed form: lambda/(2m) ||W||^2 adds lambda/m W to dJ/dW (not to db)."""
    torch.manual_seed(0)
    model = DeepNet((5,), 2, layer_dims=[4], l2_lambda=2.0)
    x, y = _batch()
    (_, head) = check_gradients(model, x, y)
    net = DeepNet((5,), 2, layer_dims=[4]).double()
    net.load_state_dict(model.state_dict())
    w, b = net.net.head.weight, net.net.head.bias
    g_w, g_b = torch.autograd.grad(net.cost(net(x.double()), y), [w, b])
    expected = torch.cat([(g_w + 2.0 / 16 * w).view(-1), g_b]).detach()
    assert head.grad_norm == pytest.approx(float(expected.norm()), rel=1e-12)
    assert head.approx_norm == pytest.approx(float(expected.norm()), rel=1e-6)
    assert head.difference < 1e-7


def test_a_doubled_backward_is_wrong_in_that_layer_only():
    torch.manual_seed(0)
    model = DeepNet((5,), 2, layer_dims=[6, 4])
    broken = _BrokenLinear(6, 4)
    broken.load_state_dict(model.net.features[2][0].state_dict())
    model.net.features[2][0] = broken
    x, y = _batch()
    checks = {c.layer: c for c in check_gradients(model, x, y)}
    assert checks["net.features.2.0"].verdict == "wrong"
    # Backprop's weight gradient is 2 g and the numerical one g; the bias is right, so the
    # difference is |g_W| / (|(2 g_W, g_b)| + |(g_W, g_b)|), about 1/3.
    assert 0.2 < checks["net.features.2.0"].difference < 0.34
    assert checks["net.features.1.0"].verdict == "great"
    assert checks["net.head"].verdict == "great"


def test_a_sample_of_coordinates_is_seeded_and_capped():
    torch.manual_seed(0)
    model = DeepNet((5,), 2, layer_dims=[30])
    x, y = _batch()
    first = check_gradients(model, x, y, max_coords=10, seed=3)
    again = check_gradients(model, x, y, max_coords=10, seed=3)
    assert [c.checked for c in first] == [10, 10] and [c.size for c in first] == [180, 31]
    assert [c.grad_norm for c in first] == [c.grad_norm for c in again]
    assert all(c.verdict == "great" for c in first)


def test_bands_and_bad_arguments():
    assert [band(d) for d in (0.0, 5e-8, 5e-6, 5e-4, 5e-3, float("nan"))] == [
        "great",
        "great",
        "look closer",
        "suspicious",
        "wrong",
        "wrong",
    ]
    model = DeepNet((5,), 2, layer_dims=[3])
    x, y = _batch()
    with pytest.raises(ValueError, match="epsilon"):
        check_gradients(model, x, y, epsilon=0)
    with pytest.raises(ValueError, match="max_coords"):
        check_gradients(model, x, y, max_coords=0)
    with pytest.raises(ValueError, match="no cost"):
        check_gradients(nn.Linear(5, 1), x, y)


_BROKEN_MODULE = """
    import torch
    from torch import nn
    from mlstrategy.models import DeepNet

    class _Doubled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            return w.clone()

        @staticmethod
        def backward(ctx, grad):
            return 2 * grad

    class _Broken(nn.Linear):
        def forward(self, x):
            return nn.functional.linear(x, _Doubled.apply(self.weight), self.bias)

    class BrokenHeadNet(DeepNet):
        def __init__(self, input_shape: tuple, num_classes: int, layer_dims: list = [6]):
            super().__init__(input_shape, num_classes, layer_dims=layer_dims)
            head = self.net.head
            self.net.head = _Broken(head.in_features, head.out_features)
            self.net.head.load_state_dict(head.state_dict())
"""


def _recipe(path, model):
    rng = np.random.default_rng(0)
    np.savez(path.parent / "d.npz", X=rng.normal(size=(60, 3)), y=np.arange(60) % 2)
    source = {"class_path": "mlstrategy.data.ArrayFile", "init_args": {"path": "d.npz"}}
    data = {"class_path": "mlstrategy.data.ArrayDataModule", "init_args": {"source": source}}
    return write_recipe(path, model, data)


@pytest.mark.slow
def test_the_cli_prints_the_table_and_exits_1_on_a_broken_backward(in_tmp, capsys, monkeypatch):
    (in_tmp / "brokennet.py").write_text(textwrap.dedent(_BROKEN_MODULE))
    monkeypatch.syspath_prepend(str(in_tmp))
    monkeypatch.delitem(sys.modules, "brokennet", raising=False)
    healthy = _recipe(in_tmp / "ok.yaml", {"class_path": "mlstrategy.models.DeepNet"})
    assert main(["grad-check", str(healthy), "--model.init_args.l2_lambda=0.5", *QUIET]) == 0
    out = capsys.readouterr().out
    assert "net.head" in out and "great" in out and "L2 lambda=0.5" in out and "ok:" in out
    broken = _recipe(in_tmp / "broken.yaml", {"class_path": "brokennet.BrokenHeadNet"})
    argv = ["grad-check", str(broken), "--allow-module", "brokennet", *QUIET]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "wrong" in out and "net.head" in out and "net.features.1.0" in out
    # Without --allow-module the foreign class is refused before it is imported.
    assert main(["grad-check", str(broken), *QUIET]) == 2
    # Nothing is trained, so no run folder is left behind.
    assert not (in_tmp / "logs").exists()
