"""Learning curves over training-set size: subsets, sizes, and the reading of the curve."""

from __future__ import annotations

import numpy as np
import pytest

from mlstrategy.evaluation.learning_curve import (
    CurvePoint,
    nested_subset,
    parse_sizes,
    what_more_data_buys,
)


def test_nested_subsets_keep_class_proportions_and_grow_by_adding():
    y = np.repeat([0, 1, 2], [600, 300, 100])
    previous: set[int] = set()
    for fraction in (0.1, 0.25, 0.5, 1.0):
        idx = nested_subset(y, fraction, seed=3)
        assert len(idx) == round(fraction * len(y))
        share = np.bincount(y[idx], minlength=3) / len(idx)
        np.testing.assert_allclose(share, [0.6, 0.3, 0.1], atol=0.01)
        assert previous <= set(idx.tolist())
        previous = set(idx.tolist())
    assert previous == set(range(len(y)))
    # Another seed draws other examples.
    assert set(nested_subset(y, 0.1, seed=4)) != set(nested_subset(y, 0.1, seed=3))


@pytest.mark.parametrize("text", ["0.5", "0,1", "0.5,1.5", "a,b", ""])
def test_bad_sizes_are_clear_errors(text):
    with pytest.raises(ValueError, match="two or more fractions"):
        parse_sizes(text)


def _curve(*rows):
    return [CurvePoint(f, m, tr, dv) for f, m, tr, dv in rows]


def test_falling_dev_error_above_training_error_means_more_data_helps():
    r = what_more_data_buys(_curve((0.5, 500, 0.0, 0.20), (1.0, 1000, 0.01, 0.14)), 0.02)
    assert r["verdict"] == "more_data_helps"
    assert r["dev_drop"] == pytest.approx(0.06) and r["gap"] == pytest.approx(0.13)
    assert "fell 6.0 points from m=500 to m=1000" in r["message"]


def test_training_error_above_human_level_means_bias_first():
    r = what_more_data_buys(_curve((0.5, 500, 0.25, 0.30), (1.0, 1000, 0.27, 0.29)), 0.05)
    assert r["verdict"] == "high_bias"
    assert "22.0 points above it" in r["message"]


def test_flat_dev_error_means_data_buys_little():
    r = what_more_data_buys(_curve((0.5, 500, 0.05, 0.09), (1.0, 1000, 0.05, 0.09)), 0.05)
    assert r["verdict"] == "flat"
    with pytest.raises(ValueError, match="at least two"):
        what_more_data_buys(_curve((1.0, 10, 0.1, 0.1)))
