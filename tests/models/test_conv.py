"""ConvNet: shapes for sequences and images, the head interface, init, L2 and bad values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mlstrategy.models import CNN, ConvNet


def test_1d_sequences_and_2d_images():
    seq = ConvNet((1, 40), 10, channels=[4, 8], kernel_size=5)
    assert isinstance(seq.net.features[0], nn.Conv1d)
    assert seq(torch.randn(3, 1, 40)).shape == (3, 10)
    img = ConvNet((1, 8, 8), 2, channels=[4, 8])  # binary: one sigmoid output unit
    assert isinstance(img.net.features[0], nn.Conv2d)
    assert img(torch.randn(3, 1, 8, 8)).shape == (3,)


def test_same_padding_and_pooling_set_the_feature_size():
    net = CNN((2, 40), 3, channels=[4, 6], pool_sizes=[1, 2], global_pool="flatten")
    assert net.num_features == 6 * 20  # "same" convs keep the length; one pool halves it
    assert net.forward_features(torch.randn(5, 2, 40)).shape == (5, 120)
    net = CNN((1, 8, 8), 3, channels=[4, 6], pool_sizes=2, global_pool="flatten")
    assert net.num_features == 6 * 2 * 2
    net = CNN((1, 8, 8), 3, channels=[4, 6], hidden_dims=[9], global_pool="max")
    assert net.num_features == 9


def test_forward_features_then_head_is_forward_and_reset_head_makes_a_new_task():
    torch.manual_seed(0)
    model = ConvNet((1, 40), 10, channels=[4, 8], hidden_dims=[16])
    model.eval()
    x = torch.randn(4, 1, 40)
    a = model.net.forward_features(x)
    assert torch.equal(model.net.forward_head(a), model.net(x))
    features_before = {k: v.clone() for k, v in model.net.features.state_dict().items()}
    model.net.reset_head(3)
    assert model.net(x).shape == (4, 3)
    for k, v in model.net.features.state_dict().items():  # the reused part is untouched
        assert torch.equal(v, features_before[k])


def test_conv_he_init_uses_the_fan_in_of_one_output_unit():
    torch.manual_seed(0)
    net = CNN((16, 40), 2, channels=[64, 64], kernel_size=5, init="he")
    for conv in (m for m in net.modules() if isinstance(m, nn.Conv1d)):
        fan_in = conv.in_channels * conv.kernel_size[0]  # n[l-1] of one output unit
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        assert torch.count_nonzero(conv.bias) == 0


def test_conv_forward_matches_a_numpy_convolution():
    torch.manual_seed(0)
    net = CNN((2, 9), 3, channels=[3], kernel_size=3, pool_sizes=1, global_pool="avg").double()
    conv = net.features[0]
    x = torch.randn(4, 2, 9, dtype=torch.float64)
    W, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1)))
    # Z[c, t] = sum over input channels and the window of W * x + b (cross-correlation).
    Z = np.stack(
        [np.einsum("nck,ock->no", padded[:, :, t : t + 3], W) + b for t in range(9)], axis=-1
    )
    expected = np.maximum(Z, 0).mean(-1)  # relu, then global average pooling
    np.testing.assert_allclose(net.forward_features(x).detach().numpy(), expected, atol=1e-12)


def test_l2_covers_conv_and_dense_weights_but_not_biases_or_batch_norm():
    model = ConvNet((1, 12), 3, channels=[4], hidden_dims=[5], batch_norm=True, l2_lambda=3.0)
    weights = [m.weight for m in model.net.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    assert len(weights) == 3
    expected = 3.0 / (2 * 7) * sum(float((w.detach() ** 2).sum()) for w in weights)
    assert model.l2_penalty(7).item() == pytest.approx(expected, rel=1e-6)


def test_batch_norm_and_dropout_switches():
    net = CNN((1, 40), 10, channels=[4, 8], hidden_dims=[6], batch_norm=True, keep_prob=0.9)
    kinds = [type(m) for m in net.features]
    assert kinds.count(nn.BatchNorm1d) == 2 and kinds.count(nn.Dropout) == 2
    assert net.features[0].bias is None  # beta replaces b
    no_bn = CNN((1, 40), 10, channels=[4, 8])
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.Dropout)) for m in no_bn.modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (40,)}, "input_shape=(40,): a ConvNet takes (channels, length)"),
        ({"channels": []}, "channels=[] needs at least one conv block"),
        ({"pool_sizes": [2, 2, 2, 2, 2, 2, 2]}, "pool_sizes=[2, 2, 2, 2, 2, 2, 2] must be one"),
        ({"channels": [4] * 7}, "shrink input_shape=(1, 40) to nothing"),
        ({"keep_prob": 0.0}, "keep_prob=0.0 must be in (0, 1]"),
        ({"activation": "gelu"}, "activation='gelu' is not one of"),
        ({"pool": "min"}, "pool='min' is not one of"),
        ({"global_pool": "sum"}, "global_pool='sum' is not one of"),
        ({"kernel_size": 0}, "kernel_size=0 must be >= 1"),
        ({"l2_lambda": -1.0}, "l2_lambda=-1.0 must be >= 0"),
    ],
)
def test_bad_values_fail_with_a_clear_message(kwargs, message):
    args = {"input_shape": (1, 40), "num_classes": 10, "channels": [4, 8], **kwargs}
    with pytest.raises(ValueError) as err:
        ConvNet(**args)
    assert message in str(err.value)
