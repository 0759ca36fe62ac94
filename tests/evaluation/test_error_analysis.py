"""Error analysis (confused pairs, highest-loss examples) and the dev/test distribution check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from mlstrategy.evaluation.error_analysis import (
    compare_distributions,
    example_losses,
    highest_loss,
    most_confused,
)
from mlstrategy.models import LogisticRegression, SoftmaxRegression


def test_most_confused_orders_off_diagonal_cells_and_shares():
    cm = [[50, 2, 7], [0, 40, 1], [3, 0, 30]]
    pairs = most_confused(cm, ["a", "b", "c"], k=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("a", "c", 7),
        ("c", "a", 3),
        ("a", "b", 2),
    ]
    assert pairs[0]["share"] == pytest.approx(7 / 13, abs=1e-4)
    assert most_confused([[3, 0], [0, 4]], ["x", "y"]) == []


@pytest.mark.parametrize("num_classes", [2, 4])
def test_example_losses_match_scikit_learn_log_loss(num_classes):
    torch.manual_seed(0)
    model = (
        LogisticRegression(input_shape=(3,))
        if num_classes == 2
        else SoftmaxRegression(input_shape=(3,), num_classes=num_classes)
    )
    for p in model.net.parameters():  # the models start at zero; any weights will do
        torch.nn.init.normal_(p)
    x = torch.randn(40, 3)
    y = torch.arange(40) % num_classes
    model.train()
    losses, preds, p_true = example_losses(model, x, y, batch_size=16)
    assert model.training  # mode restored
    with torch.no_grad():
        proba = model.predict_proba(model(x)).numpy()
    expected = log_loss(y.numpy(), proba, labels=list(range(num_classes)))
    assert losses.mean().item() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_array_equal(preds.numpy(), proba.argmax(1))
    np.testing.assert_allclose(p_true.numpy(), proba[np.arange(40), y.numpy()], rtol=1e-6)


def test_highest_loss_lists_the_worst_first():
    losses = torch.tensor([0.1, 3.0, 0.5, 2.0])
    rows = highest_loss(
        losses,
        torch.tensor([0, 0, 1, 0]),
        torch.tensor([0.9, 0.05, 0.6, 0.13]),
        torch.tensor([0, 1, 1, 1]),
        ["no", "yes"],
        k=2,
    )
    assert [r["index"] for r in rows] == [1, 3]
    assert rows[0] == {"index": 1, "true": "yes", "predicted": "no", "p_true": 0.05, "loss": 3.0}


def test_same_distribution_passes_for_a_random_split():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(1000, 5)), rng.integers(0, 3, 1000)
    out = compare_distributions((x[:500], y[:500]), (x[500:], y[500:]), 3)
    assert not out["differ"]
    assert out["labels_p"] > 0.01 and out["features_p"] > 0.01
    assert len(out["dev_labels"]) == 3 and sum(out["dev_labels"]) == pytest.approx(1, abs=1e-3)


def test_different_label_mix_is_flagged():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 2))
    y_dev = (rng.random(300) < 0.5).astype(int)
    y_test = (rng.random(300) < 0.8).astype(int)
    out = compare_distributions((x[:300], y_dev), (x[300:], y_test), 2)
    assert out["differ"] and out["labels_p"] < 0.01
    assert "label proportions differ" in out["message"]


def test_shifted_feature_is_flagged_and_named():
    rng = np.random.default_rng(3)
    x_dev, x_test = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    x_test[:, 2] += 0.5
    y = np.arange(300) % 2
    out = compare_distributions((x_dev, y), (x_test, y), 2)
    assert out["differ"] and out["worst_feature"] == 2
    assert "feature 2" in out["message"] and "one distribution" in out["message"]


def test_constant_features_do_not_divide_by_zero():
    x = np.zeros((20, 3))
    y = np.arange(20) % 2
    out = compare_distributions((x[:10], y[:10]), (x[10:], y[10:]), 2)
    assert not out["differ"] and out["worst_feature_z"] == 0.0


def test_analyze_errors_returns_nothing_for_a_multitask_model():
    from mlstrategy.data import MultiTaskDataModule, StreetScenes
    from mlstrategy.evaluation.error_analysis import analyze_errors
    from mlstrategy.models import Head, MultiTaskNet

    data = MultiTaskDataModule(StreetScenes(n_samples=40, image_size=16), seed=0)
    data.prepare()
    net = MultiTaskNet(data.input_shape, {"car": Head()}, num_classes=data.num_classes)
    splits = {"dev": {"n": 8, "tasks": {"car": {"kind": "binary", "n": 5}}}}
    assert analyze_errors(net, data, splits) == {}
    assert analyze_errors(net, data, {}) == {}  # from the labels alone: one column per task
