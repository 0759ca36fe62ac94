"""The diagnosis arithmetic on hand-made error values, one test per branch."""

from __future__ import annotations

import pytest

from mlstrategy.evaluation.diagnosis import REMEDIES, diagnose, diagnose_splits


def test_avoidable_bias_largest():
    # Ng's example: human 1%, train 8%, dev 10% -> focus on bias.
    d = diagnose(train_error=0.08, dev_error=0.10, test_error=0.105, human_error=0.01)
    assert d.avoidable_bias == pytest.approx(0.07)
    assert d.variance == pytest.approx(0.02)
    assert d.data_mismatch is None
    assert d.dev_overfitting == pytest.approx(0.005)
    assert d.largest == "avoidable_bias"
    assert d.remedies == REMEDIES["avoidable_bias"]
    assert any("bigger network" in r for r in d.remedies)
    assert "avoidable bias (7.00 points)" in d.verdict


def test_variance_largest_without_train_dev_is_dev_minus_train():
    # Ng's example: human 7.5%, train 8%, dev 10% -> focus on variance.
    d = diagnose(train_error=0.08, dev_error=0.10, human_error=0.075)
    assert d.avoidable_bias == pytest.approx(0.005)
    assert d.variance == pytest.approx(0.02)
    assert d.largest == "variance"
    assert any("Regularize" in r for r in d.remedies)
    assert any("train-dev" in n for n in d.notes)


def test_variance_largest_with_train_dev_is_train_dev_minus_train():
    d = diagnose(train_error=0.01, dev_error=0.10, train_dev_error=0.09, human_error=0.0)
    assert d.variance == pytest.approx(0.08)
    assert d.data_mismatch == pytest.approx(0.01)
    assert d.largest == "variance"
    assert not any("train-dev" in n for n in d.notes)


def test_data_mismatch_largest():
    # Ng's example: train 1%, train-dev 1.5%, dev 10%.
    d = diagnose(train_error=0.01, dev_error=0.10, train_dev_error=0.015, human_error=0.0)
    assert d.variance == pytest.approx(0.005)
    assert d.data_mismatch == pytest.approx(0.085)
    assert d.largest == "data_mismatch"
    assert any("error analysis" in r for r in d.remedies)


def test_dev_overfitting_largest():
    d = diagnose(0.02, 0.03, test_error=0.09, train_dev_error=0.025, human_error=0.01)
    assert d.dev_overfitting == pytest.approx(0.06)
    assert d.largest == "dev_overfitting"
    assert d.remedies == ("Get a bigger dev set.",)


def test_no_human_error_uses_zero_and_says_so():
    d = diagnose(train_error=0.15, dev_error=0.16)
    assert d.human_error is None
    assert d.avoidable_bias == pytest.approx(0.15)
    assert d.largest == "avoidable_bias"
    assert any("No human_error given" in n for n in d.notes)


def test_no_positive_gap_is_none():
    d = diagnose(train_error=0.05, dev_error=0.05, test_error=0.04, human_error=0.05)
    assert d.largest == "none"
    assert "cost function" in d.remedies[0]
    assert "No gap is positive" in d.verdict


def test_ties_go_to_the_earlier_goal():
    d = diagnose(train_error=0.06, dev_error=0.11, human_error=0.01)
    assert d.avoidable_bias == pytest.approx(d.variance)
    assert d.largest == "avoidable_bias"


def test_noise_note_when_the_largest_gap_is_within_two_standard_errors():
    sizes = {"train": 80, "dev": 50, "test": 50}
    small = diagnose(0.10, 0.12, 0.12, human_error=0.09, split_sizes=sizes)
    assert small.largest == "variance"
    assert any("sampling noise" in n for n in small.notes)
    big = {"train": 100_000, "dev": 100_000, "test": 100_000}
    clear = diagnose(0.10, 0.12, 0.12, human_error=0.09, split_sizes=big)
    assert not any("sampling noise" in n for n in clear.notes)


def test_diagnose_splits_reads_metrics_json_rows():
    splits = {
        "train": {"error": 0.01, "n": 100},
        "train_dev": {"error": 0.02, "n": 50},
        "dev": {"error": 0.2, "n": 50},
        "test": {"error": 0.21, "n": 50},
    }
    d = diagnose_splits(splits, human_error=0.005)
    assert d.largest == "data_mismatch"
    assert d.train_dev_error == 0.02 and d.test_error == 0.21
    as_dict = d.to_dict()
    assert as_dict["largest"] == "data_mismatch"
    assert as_dict["data_mismatch"] == pytest.approx(0.18)
    assert isinstance(as_dict["remedies"], list) and as_dict["verdict"].startswith("The largest")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_error": 1.5, "dev_error": 0.1}, "train_error=1.5 is not an error rate"),
        ({"train_error": 0.1, "dev_error": 0.1, "human_error": 5}, "human_error=5"),
    ],
)
def test_bad_error_rates_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        diagnose(**kwargs)


def test_diagnose_splits_needs_train_and_dev():
    with pytest.raises(ValueError, match=r"split\(s\) \['dev'\]"):
        diagnose_splits({"train": {"error": 0.1}})
