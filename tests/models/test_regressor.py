"""Regressors: the course's linear-regression gradients, convergence to the normal equations,
target standardization undone at prediction, and the deep and conv regressors' switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression as SkLinearRegression

from mlstrategy.models import ConvRegressor, DeepRegressor, LinearRegression


def _standardized_diabetes() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_diabetes(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()


def test_linear_regression_gradients_are_the_course_closed_form():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(50, 4)))
    y = torch.from_numpy(rng.normal(size=50))
    model = LinearRegression((4,)).double()
    with torch.no_grad():  # away from the zero start, so dw is not the trivial one
        model.net[1].weight.copy_(torch.from_numpy(rng.normal(size=(1, 4))))
        model.net[1].bias.fill_(0.3)
    model.cost(model(x), y).backward()
    # Course notation: X is (n_x, m), y_hat - y is (1, m).
    X = x.numpy().T
    w = model.net[1].weight.detach().numpy().reshape(-1)
    residual = (w @ X + 0.3 - y.numpy())[None, :]
    dw = (X @ residual.T).reshape(-1) / 50
    db = residual.sum() / 50
    np.testing.assert_allclose(model.net[1].weight.grad.numpy().reshape(-1), dw, rtol=1e-12)
    np.testing.assert_allclose(model.net[1].bias.grad.item(), db, rtol=1e-12)
    # And the cost is J = 1/(2m) sum (y_hat - y)^2.
    j = float(model.cost(model(x), y).detach())
    assert j == pytest.approx((residual**2).sum() / (2 * 50), rel=1e-12)


@pytest.mark.slow
def test_batch_gradient_descent_on_diabetes_reaches_the_normal_equations():
    x, y = _standardized_diabetes()
    reference = SkLinearRegression().fit(x, y)  # the normal equations' least squares
    # alpha just under 2 / lambda_max = 2 / 4.02 of X^T X / m; the slowest direction
    # (lambda_min = 0.0086) then shrinks by (1 - 0.49 * 0.0086) a step: ~1e-5 after 2,500.
    model = LinearRegression((10,), optimizer="gd", learning_rate=0.49).double()
    (optimizer,) = [model.configure_optimizers()]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(2500):  # batch GD: one step per pass over all 442 examples
        optimizer.zero_grad()
        model.cost(model(xt), yt).backward()
        optimizer.step()
    w = model.net[1].weight.detach().numpy().reshape(-1)
    np.testing.assert_allclose(w, reference.coef_, atol=1e-4)
    assert abs(model.net[1].bias.item() - reference.intercept_) < 1e-4


def test_coefficients_undo_both_standardizations():
    x, y = load_diabetes(return_X_y=True)
    model = LinearRegression((10,)).double()
    xt = torch.from_numpy(x)
    model.input_norm.fit(xt)
    model.target_mean.fill_(float(y.mean()))
    model.target_std.fill_(float(y.std()))
    xs, ys = _standardized_diabetes()
    fit = SkLinearRegression().fit(xs, ys)
    with torch.no_grad():
        model.net[1].weight.copy_(torch.from_numpy(fit.coef_[None, :]))
        model.net[1].bias.fill_(float(fit.intercept_))
    raw = SkLinearRegression().fit(x, y)
    w, b = model.coefficients()
    np.testing.assert_allclose(w.numpy(), raw.coef_, rtol=1e-6)
    assert float(b) == pytest.approx(raw.intercept_, rel=1e-6)
    # predict_values is the same line, in y's units.
    pred = model.predict_values(model(xt)).detach().numpy()
    np.testing.assert_allclose(pred, raw.predict(x), rtol=1e-6)


def test_target_standardization_is_learned_in_z_units_and_undone_at_prediction():
    model = LinearRegression((1,))
    model.target_mean.fill_(100.0)
    model.target_std.fill_(20.0)
    with torch.no_grad():
        model.net[1].bias.fill_(0.5)  # y_hat' = 0.5 standard deviations above the mean
    x = torch.zeros(3, 1)
    assert model.predict_values(model(x)).tolist() == [110.0, 110.0, 110.0]
    assert model.predict_step(x, 0).tolist() == [110.0, 110.0, 110.0]
    # The cost compares in standardized units: y = 110 is exactly the prediction.
    assert float(model.cost(model(x), torch.full((3,), 110.0)).detach()) == 0.0
    out = model.test_step((x, torch.tensor([110.0, 90.0, 130.0])), 0)
    assert out["preds"].tolist() == [110.0, 110.0, 110.0]
    # The statistics are buffers: they travel in the checkpoint.
    state = model.state_dict()
    assert float(state["target_mean"]) == 100.0 and float(state["target_std"]) == 20.0


def test_deep_and_conv_regressors_keep_the_course_switches():
    deep = DeepRegressor((3,), layer_dims=[8, 4], keep_prob=0.5, batch_norm=True, l2_lambda=0.1)
    assert deep(torch.zeros(5, 3)).shape == (5,)
    layers = [type(m).__name__ for m in deep.net.modules()]
    assert "BatchNorm1d" in layers and "Dropout" in layers
    assert deep.net.head.out_features == 1
    assert float(deep.l2_penalty(10)) > 0
    conv = ConvRegressor((1, 16), channels=[4], hidden_dims=[8], batch_norm=True)
    assert conv(torch.zeros(2, 1, 16)).shape == (2,)


def test_a_regressor_refuses_class_labels():
    with pytest.raises(ValueError, match="predicts a real number, but the data has 3 classes"):
        DeepRegressor((3,), num_classes=3)


def test_a_classifier_refuses_real_valued_targets():
    from mlstrategy.models import DeepNet

    with pytest.raises(ValueError, match="DeepNet is a classifier, but the data's target is real"):
        DeepNet((3,), num_classes=0)
