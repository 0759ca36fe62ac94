"""Logistic and softmax regression against the course's closed-form gradients (float64 NumPy)."""

import numpy as np
import pytest
import torch

from mlstrategy.models import LogisticRegression, SoftmaxRegression


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def test_logistic_regression_cost_and_gradients_match_the_course():
    rng = np.random.default_rng(0)
    n_x, m = 4, 7
    X = rng.normal(size=(n_x, m))  # course layout: one example per column
    Y = (rng.random((1, m)) > 0.5).astype(np.float64)
    w, b = rng.normal(size=(n_x, 1)), 0.3

    model = LogisticRegression(input_shape=(n_x,)).double()
    linear = model.net[1]
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.T))
        linear.bias.fill_(b)
    cost = model.cost(model(torch.from_numpy(X.T)), torch.from_numpy(Y[0]).long())
    cost.backward()

    A = _sigmoid(w.T @ X + b)
    J = -np.mean(Y * np.log(A) + (1 - Y) * np.log(1 - A))
    dw = X @ (A - Y).T / m  # dw = 1/m X (A - Y)^T
    db = np.sum(A - Y) / m  # db = 1/m sum(A - Y)
    assert cost.item() == pytest.approx(J, abs=1e-12)
    np.testing.assert_allclose(linear.weight.grad.numpy().T, dw, atol=1e-12)
    assert linear.bias.grad.item() == pytest.approx(db, abs=1e-12)


def test_logistic_regression_starts_at_zero_and_predicts_by_sign():
    model = LogisticRegression(input_shape=(3,))
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())
    logits = torch.tensor([-2.0, 0.5])
    assert model.predict_labels(logits).tolist() == [0, 1]
    proba = model.predict_proba(logits)
    assert proba.shape == (2, 2) and torch.allclose(proba.sum(1), torch.ones(2))


def test_softmax_regression_gradient_is_dz_equals_a_minus_y():
    rng = np.random.default_rng(1)
    n_x, m, C = 5, 6, 3
    X = rng.normal(size=(n_x, m))
    labels = rng.integers(0, C, size=m)
    Y = np.eye(C)[labels].T  # one-hot, shape (C, m)
    W, b = rng.normal(size=(C, n_x)), rng.normal(size=(C, 1))

    model = SoftmaxRegression(input_shape=(n_x,), num_classes=C).double()
    linear = model.net[1]
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(W))
        linear.bias.copy_(torch.from_numpy(b[:, 0]))
    cost = model.cost(model(torch.from_numpy(X.T)), torch.from_numpy(labels))
    cost.backward()

    Z = W @ X + b
    A = np.exp(Z - Z.max(0)) / np.exp(Z - Z.max(0)).sum(0)
    J = -np.sum(Y * np.log(A)) / m
    dZ = A - Y
    assert cost.item() == pytest.approx(J, abs=1e-12)
    np.testing.assert_allclose(linear.weight.grad.numpy(), dZ @ X.T / m, atol=1e-12)
    np.testing.assert_allclose(linear.bias.grad.numpy(), dZ.sum(1) / m, atol=1e-12)


def test_input_normalization_is_part_of_the_model_state():
    model = SoftmaxRegression(input_shape=(2,), num_classes=3)
    model.input_norm.fit(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
    state = model.state_dict()
    assert torch.equal(state["input_norm.mean"], torch.tensor([1.0, 20.0]))
    assert torch.equal(state["input_norm.std"], torch.tensor([1.0, 10.0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"num_classes": 10},
            "LogisticRegression is a binary classifier but the data has 10 classes",
        ),
        ({"learning_rate": -1.0}, r"learning_rate=-1.0 must be > 0"),
        ({"optimizer": "sgdx"}, r"optimizer='sgdx' is not one of"),
        ({"beta1": 1.0}, r"beta1=1.0 must be in \[0, 1\)"),
        ({"weight_decay": 0.1}, "applies to optimizer 'adamw' only"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LogisticRegression(input_shape=(3,), **kwargs)
