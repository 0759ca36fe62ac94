"""Standard errors of error rates and the smallest difference a dev set detects, against SciPy
and a simulation of two models scored on dev sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, norm

from mlstrategy.evaluation.diagnosis import diagnose_splits
from mlstrategy.evaluation.sampling import (
    detectable_difference,
    errors_differ,
    examples_needed,
    split_sampling,
    standard_error,
)
from mlstrategy.runs.compare import dev_set_warning


def _pooled_z(e1: float, e2: float, n: int) -> float:
    pooled = (e1 + e2) / 2
    return abs(e1 - e2) / math.sqrt(pooled * (1 - pooled) * 2 / n)


@pytest.mark.parametrize(("error", "n"), [(0.1, 100), (0.0088, 114), (0.35, 2_000)])
def test_standard_error_is_the_binomial_one(error, n):
    assert standard_error(error, n) == pytest.approx(binom(n, error).std() / n)


@pytest.mark.parametrize(("error", "n"), [(0.0, 100), (0.05, 114), (0.3, 1_000), (0.001, 10_000)])
def test_at_the_detectable_difference_the_z_test_just_rejects_at_95_percent(error, n):
    d = detectable_difference(error, n)
    z = _pooled_z(error, error + d, n)
    assert 2 * norm.sf(z) == pytest.approx(0.05, rel=1e-9)
    assert errors_differ(error, error + 1.01 * d, n, n)
    assert not errors_differ(error, error + 0.99 * d, n, n)


def test_for_large_dev_sets_it_is_the_half_width_196_sqrt_2e1me_over_n():
    e, n = 0.05, 100_000
    assert detectable_difference(e, n) == pytest.approx(1.96 * math.sqrt(2 * e * (1 - e) / n), 0.01)


def test_machine_learning_yearnings_10000_examples_detect_about_a_tenth_of_a_percent():
    # True at low error rates; at 10% error the same 10,000 examples detect ~0.85 points.
    assert detectable_difference(0.001, 10_000) == pytest.approx(0.0011, abs=5e-5)
    assert detectable_difference(0.10, 10_000) == pytest.approx(0.0085, abs=2e-4)
    assert 10_000 < examples_needed(0.001, 0.001) < 12_000


@pytest.mark.parametrize(("d", "e"), [(0.001, 0.001), (0.02, 0.1), (0.05, 0.0)])
def test_examples_needed_inverts_detectable_difference(d, e):
    n = examples_needed(d, e)
    assert detectable_difference(e, n) <= d < detectable_difference(e, n - 1)


def test_simulated_models_equal_error_5_percent_alarms_and_the_detectable_gap_half_the_time():
    # Two models scored on independent dev sets of n: with equal true error the test says
    # "differ" ~5% of the time; with a true gap of the detectable difference, about half.
    rng = np.random.default_rng(0)
    e, n, trials = 0.08, 500, 20_000
    d = detectable_difference(e, n)
    a = rng.binomial(n, e, trials) / n
    same = rng.binomial(n, e, trials) / n
    worse = rng.binomial(n, e + d, trials) / n
    alarms = np.mean([errors_differ(x, y, n, n) for x, y in zip(a, same, strict=True)])
    power = np.mean([errors_differ(x, y, n, n) for x, y in zip(a, worse, strict=True)])
    assert 0.035 < alarms < 0.065
    assert 0.42 < power < 0.58


def test_split_sampling_skips_splits_without_an_error_rate():
    out = split_sampling({"dev": {"n": 400, "error": 0.05}, "r": {"n": 9, "error": None}})
    assert list(out) == ["dev"]
    assert out["dev"]["standard_error"] == pytest.approx(math.sqrt(0.05 * 0.95 / 400), abs=1e-6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: standard_error(0.1, 0), "at least one example"),
        (lambda: detectable_difference(1.5, 10), "not an error rate"),
        (lambda: examples_needed(0.0, 0.1), "difference=0.0"),
        (lambda: detectable_difference(0.1, 10, confidence=1.0), "confidence"),
    ],
)
def test_bad_arguments_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_the_diagnosis_records_each_splits_standard_error_and_what_dev_can_detect():
    splits = {
        "train": {"n": 341, "error": 0.0117},
        "dev": {"n": 114, "error": 0.0088},
        "test": {"n": 114, "error": 0.0351},
    }
    d = diagnose_splits(splits, human_error=0.0)
    assert set(d.sampling) == {"train", "dev", "test"}
    dev = d.to_dict()["sampling"]["dev"]
    assert dev["detectable_difference"] == pytest.approx(detectable_difference(0.0088, 114), 1e-5)
    (note,) = [n for n in d.notes if n.startswith("The dev set (n=114)")]
    assert f"{100 * dev['detectable_difference']:.2f} points" in note
    # It is where the test just rejects (about 50% power), not a difference the dev set is
    # sure to detect: the note says so.
    assert "would be significant at 95%" in note and "two-sided" in note
    assert "about half the time" in note and "told apart" not in note


def test_compare_warns_only_when_the_dev_set_cannot_separate_the_top_two():
    from mlstrategy.evaluation.selection import select

    close = {"a": {"dev/f1": 0.9, "dev/error": 0.10, "dev/n": 100.0}}
    close["b"] = {"dev/f1": 0.88, "dev/error": 0.12, "dev/n": 100.0}
    warning = dev_set_warning(select(close, "dev/f1"))
    assert warning is not None
    assert "a and b have dev errors 10.00% and 12.00%" in warning
    assert "judged on dev/error" in warning
    assert f"{100 * detectable_difference(0.10, 100):.2f} points" in warning
    far = {**close, "b": {"dev/f1": 0.6, "dev/error": 0.40, "dev/n": 100.0}}
    assert dev_set_warning(select(far, "dev/f1")) is None
    # Only eligible runs count: with b failing its constraint there is nothing to separate.
    assert dev_set_warning(select(close, "dev/f1", ["dev/f1>=0.89"])) is None
