"""The weighted error, the per-group errors and the class-weighted cost, against scikit-learn's
``sample_weight`` metrics, torch's ``CrossEntropyLoss(weight=...)`` and NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, zero_one_loss

from mlstrategy.evaluation.selection import check_metric_name, default_goal
from mlstrategy.evaluation.settings import EvaluationSettings
from mlstrategy.metrics.costs import check_class_costs, cost_matrix, weighted_error
from mlstrategy.metrics.weighted import WeightedConfusion, weighted_scores
from mlstrategy.models import LogisticRegression, SoftmaxRegression


@pytest.fixture
def predictions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three classes, 200 examples: true and predicted classes, weights and 4 groups."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    yhat = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    return y, yhat, rng.uniform(0, 5, 200), rng.integers(0, 4, 200)


def _scored(y, yhat, w, groups=None, num_groups=0, batch=37):
    """WeightedConfusion fed in batches, as the scorer feeds it."""
    metric = WeightedConfusion(3, num_groups)
    for s in range(0, len(y), batch):
        g = None if groups is None else torch.from_numpy(groups[s : s + batch])
        metric.update(
            torch.from_numpy(yhat[s : s + batch]),
            torch.from_numpy(y[s : s + batch]),
            torch.from_numpy(w[s : s + batch]),
            g,
        )
    return metric.compute()


def test_zero_one_weighted_error_is_sklearns_weighted_zero_one_loss(predictions):
    y, yhat, w, _ = predictions
    expected = zero_one_loss(y, yhat, sample_weight=w)
    assert weighted_error(y, yhat, w) == pytest.approx(expected)
    assert weighted_error(y, yhat) == pytest.approx(1 - accuracy_score(y, yhat))
    scalars, _ = weighted_scores(_scored(y, yhat, w), cost_matrix(None, 3))
    assert scalars["weighted_error"] == pytest.approx(expected)
    assert expected != pytest.approx(zero_one_loss(y, yhat))  # the weights change it


@pytest.mark.parametrize(
    "class_costs",
    [{"true": [1.0, 10.0, 2.0]}, {"predicted": [5.0, 1.0, 0.5]}, [[0, 1, 4], [2, 0, 1], [9, 3, 1]]],
)
def test_cost_weighted_error_is_the_weighted_confusion_matrix_times_the_costs(
    predictions, class_costs
):
    y, yhat, w, _ = predictions
    costs = cost_matrix(class_costs, 3)
    # The reference: scikit-learn's weighted confusion matrix, and a per-example NumPy sum.
    cm = confusion_matrix(y, yhat, sample_weight=w, labels=[0, 1, 2])
    expected = float((cm * costs).sum() / w.sum())
    by_example = sum(w[i] * costs[y[i], yhat[i]] for i in range(len(y))) / w.sum()
    assert expected == pytest.approx(by_example)
    assert weighted_error(y, yhat, w, costs) == pytest.approx(expected)
    scalars, details = weighted_scores(_scored(y, yhat, w), costs)
    assert scalars["weighted_error"] == pytest.approx(expected)
    # The ratio estimator's standard error, summed per example.
    c = costs[y, yhat]
    se = math.sqrt(float((w**2 * (c - expected) ** 2).sum())) / w.sum()
    assert details["standard_errors"]["weighted_error"] == pytest.approx(se)


def test_cost_shapes_read_as_the_documented_matrix():
    assert cost_matrix({"true": [1, 10]}, 2).tolist() == [[0, 1], [10, 0]]
    assert cost_matrix({"predicted": [1, 10]}, 2).tolist() == [[0, 10], [1, 0]]
    assert cost_matrix([[0, 2], [3, 1]], 2).tolist() == [[0, 2], [3, 1]]
    assert cost_matrix(None, 3).tolist() == (1 - np.eye(3)).tolist()


def test_unit_weights_and_zero_one_cost_give_the_binomial_standard_error(predictions):
    y, yhat, _, _ = predictions
    scalars, details = weighted_scores(_scored(y, yhat, np.ones(len(y))), cost_matrix(None, 3))
    e = scalars["weighted_error"]
    assert details["standard_errors"]["weighted_error"] == pytest.approx(
        math.sqrt(e * (1 - e) / len(y))
    )


def test_per_group_errors_and_their_unweighted_mean(predictions):
    y, yhat, w, groups = predictions
    names = ["fr", "in", "us", "zz"]
    scalars, details = weighted_scores(_scored(y, yhat, w, groups, 4), cost_matrix(None, 3), names)
    rates = [zero_one_loss(y[groups == g], yhat[groups == g]) for g in range(4)]
    for g, name in enumerate(names):
        assert details["groups"][name]["n"] == int((groups == g).sum())
        assert details["groups"][name]["error"] == pytest.approx(rates[g])
    assert scalars["error_group_mean"] == pytest.approx(np.mean(rates))
    # Unweighted by group size, and by the example weights: not the pooled error rate.
    assert scalars["error_group_mean"] != pytest.approx(zero_one_loss(y, yhat))


@pytest.mark.parametrize(
    "bad, says",
    [
        ({"true": [1, -1, 1]}, "costs must be finite and >= 0"),
        ({"rows": [1, 2]}, "exactly one key, true or predicted"),
        ([[0, 1, 2], [1, 0, 2]], "not a square cost matrix"),
        ({"true": [[1, 2], [3, 4]]}, "a flat list"),
    ],
)
def test_bad_class_costs_are_refused_naming_the_shapes(bad, says):
    with pytest.raises(ValueError, match=says) as err:
        check_class_costs(bad)
    assert "{true: [c_0" in str(err.value) or ">= 0" in str(err.value)
    with pytest.raises(ValueError, match=says):
        EvaluationSettings(class_costs=bad)


def test_class_costs_of_the_wrong_size_are_refused_with_the_class_count():
    with pytest.raises(ValueError, match="gives 2 costs per axis, but the data has 3 classes"):
        cost_matrix({"true": [1, 10]}, 3)
    with pytest.raises(ValueError, match="gives 3 costs per axis, but the data has 2 classes"):
        cost_matrix([[0, 1, 1], [1, 0, 1], [1, 1, 0]], 2)


def test_the_new_names_are_selectable_minimized_and_diagnosable():
    for name in ("dev/weighted_error", "test/error_group_mean", "train_dev/weighted_error"):
        check_metric_name(name, "evaluation.optimize")
        assert default_goal(name) == "min"
    settings = EvaluationSettings(
        optimize="dev/weighted_error", error_metric="weighted_error", human_error=3.0
    )
    settings.fit_model(regression=False)  # a cost above 1 is a valid human level here
    assert settings.to_dict()["error_metric"] == "weighted_error"
    with pytest.raises(ValueError, match="is a classifier's error; this run's model is a regr"):
        EvaluationSettings(error_metric="weighted_error").fit_model(regression=True)


def test_softmax_class_weights_cost_is_torchs_and_sklearns_weighted_log_loss():
    torch.manual_seed(0)
    z = torch.randn(50, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (50,))
    weights = [0.5, 4.0, 1.5]
    model = SoftmaxRegression(input_shape=(4,), num_classes=3, class_weights=weights)
    cost = model.cost(z, y).item()
    reference = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float64))
    assert cost == pytest.approx(reference(z, y).item())
    w_y = np.asarray(weights)[y.numpy()]
    p = torch.softmax(z, -1).numpy()
    assert cost == pytest.approx(log_loss(y.numpy(), p, sample_weight=w_y, labels=[0, 1, 2]))
    plain = SoftmaxRegression(input_shape=(4,), num_classes=3).cost(z, y).item()
    assert plain == pytest.approx(log_loss(y.numpy(), p, labels=[0, 1, 2]))
    assert cost != pytest.approx(plain)


def test_binary_class_weights_cost_is_sklearns_weighted_log_loss():
    torch.manual_seed(1)
    z = torch.randn(40, dtype=torch.float64)
    y = torch.randint(0, 2, (40,))
    model = LogisticRegression(input_shape=(3,), class_weights=[1.0, 10.0])
    p = torch.sigmoid(z).numpy()
    w_y = np.array([1.0, 10.0])[y.numpy()]
    assert model.cost(z, y).item() == pytest.approx(log_loss(y.numpy(), p, sample_weight=w_y))
    assert model.hparams["class_weights"] == [1.0, 10.0]  # rebuilt from a checkpoint


@pytest.mark.parametrize(
    "weights, says",
    [([1.0], "has 1 weights, but the data has 2 classes"), ([1.0, -2.0], "finite and >= 0")],
)
def test_bad_class_weights_are_refused(weights, says):
    with pytest.raises(ValueError, match=says):
        LogisticRegression(input_shape=(3,), class_weights=weights)
