"""DeepNet against a float64 NumPy implementation of the course's forward and backward prop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mlstrategy.models import MLP, DeepNet
from mlstrategy.models.init import init_std, initialize

# ------------------------------------------------------------------ the course, in NumPy


def _g(name: str, Z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(0, Z)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, 0.01 * Z)
    if name == "tanh":
        return np.tanh(Z)
    return 1 / (1 + np.exp(-Z))


def _g_prime(name: str, Z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (Z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(Z > 0, 1.0, 0.01)
    if name == "tanh":
        return 1 - np.tanh(Z) ** 2
    s = 1 / (1 + np.exp(-Z))
    return s * (1 - s)


def course_cost_and_grads(X, Y, params, activation, lambd):
    """L-layer forward and backward propagation exactly as in the course's notebooks.

    X: (n_x, m); Y: (1, m) of 0/1 (sigmoid output) or (C, m) one-hot (softmax output);
    params: {"W1", "b1", ..., "WL", "bL"} with W[k] of shape (n[k], n[k-1]), b[k] (n[k], 1).
    """
    L = len(params) // 2
    m = X.shape[1]
    A, caches = X, []
    for k in range(1, L):
        Z = params[f"W{k}"] @ A + params[f"b{k}"]  # Z = W A + b
        caches.append((A, Z))
        A = _g(activation, Z)
    ZL = params[f"W{L}"] @ A + params[f"b{L}"]
    caches.append((A, ZL))
    if Y.shape[0] == 1:
        AL = 1 / (1 + np.exp(-ZL))
        cost = -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m
    else:
        AL = np.exp(ZL - ZL.max(0)) / np.exp(ZL - ZL.max(0)).sum(0)
        cost = -np.sum(Y * np.log(AL)) / m
    cost += lambd / (2 * m) * sum(np.sum(params[f"W{k}"] ** 2) for k in range(1, L + 1))

    grads = {}
    dZ = AL - Y  # dZ[L] = A[L] - Y, for both sigmoid + BCE and softmax + CE
    for k in range(L, 0, -1):
        A_prev, _ = caches[k - 1]
        W = params[f"W{k}"]
        grads[f"dW{k}"] = dZ @ A_prev.T / m + lambd / m * W  # dW = 1/m dZ A^T + lambda/m W
        grads[f"db{k}"] = dZ.sum(axis=1, keepdims=True) / m  # db = 1/m sum dZ
        if k > 1:
            dA_prev = W.T @ dZ  # dA[l-1] = W^T dZ
            dZ = dA_prev * _g_prime(activation, caches[k - 2][1])
    return cost, grads


def _linears(model: DeepNet) -> list[nn.Linear]:
    return [m for m in model.net.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("num_classes", [2, 3], ids=["sigmoid-output", "softmax-output"])
def test_cost_and_every_gradient_match_the_course_numpy_reference(activation, num_classes):
    rng = np.random.default_rng(0)
    n_x, m, lambd = 6, 11, 0.7
    X = rng.normal(size=(n_x, m))
    labels = rng.integers(0, num_classes, size=m)
    Y = labels[None, :].astype(np.float64) if num_classes == 2 else np.eye(num_classes)[labels].T

    model = DeepNet((n_x,), num_classes, layer_dims=[5, 4], activation=activation, l2_lambda=lambd)
    model = model.double()
    layers = _linears(model)
    assert len(layers) == 3  # a 3-layer net: two hidden layers and the output layer
    params = {}
    for k, layer in enumerate(layers, start=1):
        params[f"W{k}"] = layer.weight.detach().numpy().copy()
        params[f"b{k}"] = rng.normal(size=(layer.out_features, 1))  # nonzero b: test db fully
        with torch.no_grad():
            layer.bias.copy_(torch.from_numpy(params[f"b{k}"][:, 0]))

    # The training step is what Lightning calls: cross-entropy + L2 over the batch (m = len(y)).
    J = model.training_step((torch.from_numpy(X.T), torch.from_numpy(labels)), 0)
    J.backward()

    cost, grads = course_cost_and_grads(X, Y, params, activation, lambd)
    assert J.item() == pytest.approx(cost, abs=1e-8)
    for k, layer in enumerate(layers, start=1):
        np.testing.assert_allclose(layer.weight.grad.numpy(), grads[f"dW{k}"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(
            layer.bias.grad.numpy(), grads[f"db{k}"][:, 0], rtol=0, atol=1e-8
        )


def test_l2_penalty_covers_weights_only_not_biases_or_batch_norm():
    model = DeepNet((4,), 3, layer_dims=[5], batch_norm=True, l2_lambda=2.0)
    weights = [layer.weight for layer in _linears(model)]
    expected = 2.0 / (2 * 10) * sum(float((w.detach() ** 2).sum()) for w in weights)
    assert model.l2_penalty(10).item() == pytest.approx(expected, rel=1e-6)
    bn = next(m for m in model.net.modules() if isinstance(m, nn.BatchNorm1d))
    with torch.no_grad():  # gamma, beta and the output bias do not enter the penalty
        bn.weight.fill_(5.0)
        bn.bias.fill_(5.0)
        model.net.head.bias.fill_(5.0)
    assert model.l2_penalty(10).item() == pytest.approx(expected, rel=1e-6)


def test_l2_uses_the_training_set_size_for_m_with_mini_batches():
    model = DeepNet((3,), 2, layer_dims=[4], l2_lambda=1.0).double()
    model.train_size = 100  # set from the train loader when a Trainer starts training
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.tensor([0, 1] * 4)
    with torch.no_grad():
        J = model.training_step((x, y), 0)
        data_cost = model.cost(model(x), y)
    W = [layer.weight for layer in _linears(model)]
    expected = 1.0 / 200 * sum(float((w.detach() ** 2).sum()) for w in W)  # lambda/(2m), m = 100
    assert (J - data_cost).item() == pytest.approx(expected)


# ------------------------------------------------------------------------------- dropout
def test_inverted_dropout_keeps_the_expected_activation_and_is_off_in_eval():
    torch.manual_seed(0)
    net = MLP(3, [50], 2, keep_prob=0.8)
    hidden = net.features[1]  # LINEAR -> RELU -> DROPOUT
    x = torch.randn(1, 3).expand(20_000, 3)
    with torch.no_grad():
        hidden.eval()
        a = hidden(x[:1])  # dropout off: the plain activation
        hidden.train()
        dropped = hidden(x)
    active = a[0] > 0
    kept = (dropped[:, active] != 0).double().mean().item()
    assert kept == pytest.approx(0.8, abs=0.01)
    # Survivors are scaled by 1/keep_prob, so the mean over draws is the plain activation.
    np.testing.assert_allclose(dropped.mean(0).numpy(), a[0].numpy(), rtol=0.03, atol=1e-6)
    survivors = dropped != 0
    assert torch.allclose(dropped[survivors], (a.expand_as(dropped) / 0.8)[survivors])
    hidden.eval()
    assert torch.allclose(hidden(x[:5]), a.expand(5, -1), atol=1e-6)  # deterministic


def test_keep_prob_per_layer():
    net = MLP(3, [4, 4, 4], 2, keep_prob=[1.0, 0.5, 0.9])
    drops = [
        [m.p for m in layer.modules() if isinstance(m, nn.Dropout)] for layer in net.features[1:]
    ]
    assert drops == [[], [pytest.approx(0.5)], [pytest.approx(0.1)]]


# -------------------------------------------------------------------------- initialization
@pytest.mark.parametrize("init", ["he", "xavier", "small_random"])
def test_init_empirical_std_matches_the_formula_per_layer(init):
    torch.manual_seed(0)
    net = MLP(400, [300, 200], 100, init=init)
    for layer in (m for m in net.modules() if isinstance(m, nn.Linear)):
        n_prev = layer.in_features
        expected = {
            "he": math.sqrt(2 / n_prev),
            "xavier": math.sqrt(1 / n_prev),
            "small_random": 0.01,
        }
        assert layer.weight.std().item() == pytest.approx(expected[init], rel=0.03)
        assert abs(layer.weight.mean().item()) < 0.1 * expected[init]
        assert torch.count_nonzero(layer.bias) == 0


def test_zeros_init_keeps_the_hidden_units_of_a_layer_identical():
    torch.manual_seed(0)
    model = DeepNet((4,), 2, layer_dims=[6, 5], activation="sigmoid", init="zeros", optimizer="gd")
    model.hparams.learning_rate = 0.5
    optimizer = model.configure_optimizers()
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    for _ in range(20):
        optimizer.zero_grad()
        model.training_step((x, y), 0).backward()
        optimizer.step()
    hidden = _linears(model)[:2]
    for layer in hidden:
        W = layer.weight.detach()
        assert torch.count_nonzero(W) > 0  # the weights did move ...
        assert torch.allclose(W, W[:1].expand_as(W), atol=1e-7)  # ... but every unit alike
    a = model.net.forward_features(x)
    assert torch.allclose(a, a[:, :1].expand_as(a))


def test_he_init_of_a_layer_alone():
    layer = nn.Linear(50, 30)
    initialize(layer, "zeros")
    assert torch.count_nonzero(layer.weight) == 0
    assert init_std("he", 50) == pytest.approx(0.2)


# ------------------------------------------------------------------------------ batch norm
def test_batch_norm_uses_batch_statistics_in_train_and_running_statistics_in_eval():
    torch.manual_seed(0)
    net = MLP(3, [4], 2, batch_norm=True).double()
    linear, bn = net.features[1][0], net.features[1][1]
    assert linear.bias is None  # beta replaces b
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))  # gamma
        bn.bias.copy_(torch.tensor([0.0, -1.0, 1.0, 0.3]))  # beta
    x = torch.randn(16, 3, dtype=torch.float64) * 3 + 1
    Z = (x @ linear.weight.T).detach().numpy()
    gamma, beta, eps = bn.weight.detach().numpy(), bn.bias.detach().numpy(), bn.eps

    net.train()
    with torch.no_grad():
        out = bn(linear(x)).numpy()
    mu, var = Z.mean(0), Z.var(0)  # course: sigma^2 = 1/m sum (z - mu)^2
    np.testing.assert_allclose(out, gamma * (Z - mu) / np.sqrt(var + eps) + beta, atol=1e-10)
    # The running averages moved 10% of the way from (0, 1) to this batch's statistics
    # (torch keeps the unbiased variance for them).
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mu, atol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * Z.var(0, ddof=1), atol=1e-12)

    net.eval()
    with torch.no_grad():
        out_eval = bn(linear(x[:1])).numpy()
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    np.testing.assert_allclose(
        out_eval, gamma * (Z[:1] - rm) / np.sqrt(rv + eps) + beta, atol=1e-10
    )


# ---------------------------------------------------------------------- head and features
def test_features_head_and_reset_head():
    model = DeepNet((5,), 3, layer_dims=[7, 4])
    x = torch.randn(2, 5)
    a = model.net.forward_features(x)
    assert a.shape == (2, 4)
    assert torch.equal(model.net.forward_head(a), model.net(x))
    model.net.reset_head(6)
    assert model.net(x).shape == (2, 6)


# ----------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_prob": 0.0}, "keep_prob=0.0 must be in (0, 1]"),
        ({"keep_prob": 1.2}, "keep_prob=1.2 must be in (0, 1]"),
        ({"keep_prob": [0.5]}, "keep_prob=[0.5] has 1 values for 2 hidden layers"),
        ({"l2_lambda": -0.1}, "l2_lambda=-0.1 must be >= 0"),
        ({"learning_rate": -0.01}, "learning_rate=-0.01 must be > 0"),
        ({"activation": "softplus"}, "activation='softplus' is not one of"),
        ({"layer_dims": []}, "layer_dims=[] has no hidden layer"),
        ({"layer_dims": [4, 0]}, "layer_dims=[4, 0]"),
        ({"init": "orthogonal"}, "init='orthogonal' is not one of"),
        ({"lr_decay": "cosine"}, "lr_decay='cosine' is not one of"),
        ({"lr_decay": "exponential", "decay_rate": 1.5}, "decay_rate=1.5 must be in (0, 1]"),
        ({"decay_rate": 0.5}, "decay_rate=0.5 has no effect with lr_decay='none'"),
        ({"optimizer": "sgd"}, "optimizer='sgd' is not one of"),
    ],
)
def test_bad_values_fail_with_a_clear_message(kwargs, message):
    args = {"layer_dims": [4, 3], **kwargs}
    with pytest.raises(ValueError) as err:
        DeepNet((4,), 3, **args)
    assert message in str(err.value)
