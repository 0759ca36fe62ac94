import re

import numpy as np
import pytest

from mlstrategy.data import stratified_split


@pytest.fixture
def labels() -> np.ndarray:
    # 3 unbalanced classes: 60 / 30 / 10 examples.
    return np.repeat([0, 1, 2], [60, 30, 10])


def test_splits_are_disjoint_and_cover_every_example(labels):
    parts = stratified_split(
        labels, dev_fraction=0.2, test_fraction=0.2, train_dev_fraction=0.1, seed=3
    )
    assert list(parts) == ["train", "train_dev", "dev", "test"]
    joined = np.concatenate(list(parts.values()))
    assert len(joined) == len(labels)
    assert set(joined.tolist()) == set(range(len(labels)))
    assert [len(p) for p in parts.values()] == [50, 10, 20, 20]


def test_splits_keep_class_proportions(labels):
    parts = stratified_split(labels, dev_fraction=0.2, test_fraction=0.2, seed=0)
    overall = np.bincount(labels) / len(labels)
    for name, idx in parts.items():
        share = np.bincount(labels[idx], minlength=3) / len(idx)
        # Each class within one example of its overall share.
        assert np.all(np.abs(share - overall) <= 1 / len(idx) + 1e-9), name


def test_same_seed_same_split_other_seed_other_split(labels):
    a = stratified_split(labels, dev_fraction=0.2, test_fraction=0.2, seed=7)
    b = stratified_split(labels, dev_fraction=0.2, test_fraction=0.2, seed=7)
    c = stratified_split(labels, dev_fraction=0.2, test_fraction=0.2, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_no_test_split_when_source_has_its_own(labels):
    parts = stratified_split(labels, dev_fraction=0.25, test_fraction=None, seed=0)
    assert list(parts) == ["train", "dev"]
    assert len(parts["dev"]) == 25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dev_fraction": 0.0, "test_fraction": 0.2}, "dev_fraction=0.0 is outside (0, 1)"),
        (
            {"dev_fraction": 0.2, "test_fraction": 1.5},
            "test_fraction=1.5 is outside [0, 1) (0 = no test split)",
        ),
        (
            {"dev_fraction": 0.2, "test_fraction": 0.2, "train_dev_fraction": -0.1},
            "train_dev_fraction=-0.1",
        ),
        ({"dev_fraction": 0.5, "test_fraction": 0.5}, "add up to 1"),
        ({"dev_fraction": 0.01, "test_fraction": 0.2}, "dev split would hold 1 of 100"),
    ],
)
def test_bad_fractions_name_the_problem(labels, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        stratified_split(labels, seed=0, **kwargs)
