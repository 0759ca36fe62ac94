"""The domain classifier (adversarial validation): it sees shifts that keep every mean, and
stays quiet on one distribution; its place next to the mean check."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlstrategy.evaluation.distributions import compare_distributions, domain_classifier

N, D = 200, 6


def _correlated(rng: np.random.Generator, n: int) -> np.ndarray:
    cov = np.eye(D)
    cov[0, 1] = cov[1, 0] = 0.9
    return rng.multivariate_normal(np.zeros(D), cov, n)


def _shifted(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two samples with exactly the same mean (0) in every feature."""
    rng = np.random.default_rng(seed)
    if kind == "variance":  # every feature twice as spread out
        a, b = rng.normal(size=(N, D)), 2.0 * rng.normal(size=(N, D))
    else:
        # A 90-degree rotation of the first two features: their correlation flips sign, every
        # feature keeps its mean (0) and its variance (1).
        a, b = _correlated(rng, N), _correlated(rng, N)
        b[:, :2] = b[:, :2] @ np.array([[0.0, 1.0], [-1.0, 0.0]])
    return a - a.mean(axis=0), b - b.mean(axis=0)


@pytest.mark.parametrize("kind", ["variance", "rotation"])
def test_a_shift_that_keeps_every_mean_is_flagged_with_auc_above_08(kind):
    a, b = _shifted(kind, seed=0)
    np.testing.assert_allclose(a.mean(axis=0), b.mean(axis=0), atol=1e-12)
    found = domain_classifier(a, b)
    assert found["differ"] and found["auc"] > 0.8, found
    low, high = found["auc_interval"]
    assert low <= found["auc"] <= high and low > 0.5
    # The mean check alone does not see it; next to it, the domain classifier does.
    y = np.arange(N) % 2
    out = compare_distributions((a, y), (b, y), 2)
    assert out["features_p"] > 0.01
    assert out["differ"] and "a domain classifier tells dev from test apart" in out["message"]
    assert out["domain"]["dev_test"]["auc"] == found["auc"]


@pytest.mark.slow
def test_one_distribution_is_not_flagged_in_at_least_19_of_20_seeds():
    flagged = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        found = domain_classifier(rng.normal(size=(N, D)), rng.normal(size=(N, D)), seed=seed)
        flagged.append(found["differ"])
    assert sum(flagged) <= 1, flagged


def test_each_folds_auc_is_sklearns_on_its_held_out_rows():
    # A perfect separation: every fold's AUC is 1 and the p-value tiny.
    rng = np.random.default_rng(3)
    found = domain_classifier(rng.normal(size=(60, 2)), 10 + rng.normal(size=(60, 2)))
    assert found["fold_aucs"] == [1.0] * 5 and found["p_value"] < 1e-6
    assert roc_auc_score([0, 1], [0.2, 0.9]) == 1.0  # the scorer it reports


def test_too_few_rows_are_skipped_with_the_reason():
    found = domain_classifier(np.zeros((4, 3)), np.ones((30, 3)))
    assert found["auc"] is None and not found["differ"]
    assert "too few rows" in found["skipped"]


def test_train_vs_dev_is_reported_but_never_a_warning():
    rng = np.random.default_rng(0)
    dev, test = rng.normal(size=(150, 4)), rng.normal(size=(150, 4))
    train = 3.0 * rng.normal(size=(400, 4))  # another source: wider spread, same means
    y = np.arange(150) % 2
    out = compare_distributions((dev, y), (test, y), 2, train_x=train)
    assert not out["differ"]
    assert out["domain"]["train_dev"]["differ"] and out["domain"]["train_dev"]["auc"] > 0.8
    assert "Train vs dev: a domain classifier tells train from dev apart" in out["message"]
    assert out["message"].startswith("Dev and test are consistent with one distribution")
