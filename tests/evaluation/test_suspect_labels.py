"""Suspect labels: confident learning's ranking against a loop-by-loop NumPy reference,
out-of-sample probabilities, and the issue's test: 5% of digits' labels flipped at random,
70% or more of the top 5% of suspects are flipped ones, on each of 3 seeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlstrategy.evaluation.suspect_labels import (
    out_of_sample_proba,
    rank_suspects,
    stratified_folds,
)


def _reference(proba: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class thresholds and confident-joint off-diagonals, one example at a time
    (Northcutt et al. 2021, eq. 2: t_j = mean of p(j) over examples labelled j; an example
    counts for the likeliest class j with p(j) >= t_j)."""
    m, k = proba.shape
    t = np.array([proba[labels == j, j].mean() for j in range(k)])
    issue = np.zeros(m, dtype=bool)
    for i in range(m):
        candidates = [j for j in range(k) if proba[i, j] >= t[j]]
        if candidates:
            best = max(candidates, key=lambda j: proba[i, j])
            issue[i] = best != labels[i]
    return t, issue


def test_ranking_and_confident_issues_match_the_reference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    proba = rng.dirichlet(np.ones(4), 300)
    proba[np.arange(300), labels] += 1.0  # the model mostly agrees with the labels
    proba /= proba.sum(axis=1, keepdims=True)
    wrong = rng.choice(300, 20, replace=False)  # 20 labels the model disagrees with
    labels[wrong] = (labels[wrong] + 1) % 4
    ranking = rank_suspects(proba, labels)
    t, issue = _reference(proba, labels)
    np.testing.assert_allclose(ranking.thresholds, t)
    np.testing.assert_array_equal(ranking.confident_issue, issue)
    given = proba[np.arange(300), labels]
    np.testing.assert_array_equal(ranking.order, np.argsort(given, kind="stable"))
    assert ranking.estimated_issues == issue.sum() > 0


def test_every_example_is_scored_by_a_fit_that_never_saw_it():
    labels = np.repeat([0, 1, 2], 20)
    seen: list[np.ndarray] = []

    def fit_predict(train: np.ndarray, held: np.ndarray) -> np.ndarray:
        assert not set(train) & set(held)
        seen.append(held)
        # The share of each class in the fold it trained on: stratified, so 1/3 each.
        shares = np.bincount(labels[train], minlength=3) / len(train)
        return np.tile(shares, (len(held), 1))

    proba = out_of_sample_proba(fit_predict, labels, 3, folds=4)
    assert sorted(np.concatenate(seen).tolist()) == list(range(60))
    np.testing.assert_allclose(proba, 1 / 3)


@pytest.mark.parametrize(
    ("labels", "folds", "match"),
    [
        (np.array([0, 1] * 5), 1, "at least 2 folds"),
        (np.array([0] * 9 + [1] * 2), 3, "rarest class has only 2"),
    ],
)
def test_impossible_folds_are_refused(labels, folds, match):
    with pytest.raises(ValueError, match=match):
        stratified_folds(labels, folds)


def _flipped_digits(tmp_path: Path, seed: int) -> tuple[Path, np.ndarray, np.ndarray]:
    """Digits with 5% of the labels flipped to another class at random; a softmax-regression
    recipe on them (batch gradient descent, 30 epochs: fast and a fair model)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < 0.05
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    data = tmp_path / "digits.npz"
    np.savez(data, X=x.astype(np.float32), y=noisy)
    recipe = {
        "model": {
            "class_path": "mlstrategy.models.SoftmaxRegression",
            "init_args": {"optimizer": "adam", "learning_rate": 0.1},
        },
        "data": {
            "class_path": "mlstrategy.data.ArrayDataModule",
            "init_args": {
                "source": {
                    "class_path": "mlstrategy.data.ArrayFile",
                    "init_args": {"path": str(data)},
                },
                "batch_size": None,
                "seed": seed,
            },
        },
        "trainer": {"max_epochs": 30, "num_sanity_val_steps": 0},
    }
    path = tmp_path / "flipped.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path, noisy, flip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_most_of_the_top_5_percent_of_suspects_are_flipped_labels(tmp_path, seed, capsys):
    from mlstrategy.data.splits import stratified_split
    from mlstrategy.runs.suspects import find_suspects

    recipe, noisy, flip = _flipped_digits(tmp_path, seed)
    found = find_suspects([recipe], folds=5, seed=seed)
    # Where each ranked example sits in the file: the data module's own split, retraced.
    index = stratified_split(noisy, dev_fraction=0.2, test_fraction=0.2, seed=seed)
    rows = [int(index[r["split"]][r["index"]]) for r in found.rows]
    assert [r["input"] for r in found.rows] == [f"digits.npz row {i}" for i in rows]
    assert sorted(rows) == sorted(np.concatenate([index["train"], index["dev"]]).tolist())
    top = found.rows[: math.ceil(0.05 * len(found.rows))]
    precision = float(np.mean(flip[rows[: len(top)]]))
    assert capsys.readouterr().out.count("fold ") == 5  # a progress line per fold
    with capsys.disabled():  # for the record (pytest -s)
        print(f"\nseed {seed}: {precision:.3f} of the top {len(top)} suspects are flipped")
    assert precision >= 0.7
