"""Suspect labels: the examples whose given label the model, trained without them, finds least
likely (the course's "cleaning up incorrectly labeled data").

The probabilities must be *out of sample*: a model that trained on an example has partly
memorised its label, right or wrong. :func:`out_of_sample_proba` fits once per fold of a
stratified k-fold split and predicts the fold it left out, so every example is scored by a
model that never saw it. :func:`rank_suspects` then follows confident learning (Northcutt,
Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021),
written here from the paper (the cleanlab package is AGPL):

- *self-confidence* ``p(given label)`` ranks the examples, least likely first;
- per-class thresholds ``t_j`` = the mean ``p(j)`` over the examples labelled ``j`` (how sure
  the model typically is of that class);
- an example is a *confident label issue* when some other class ``j`` reaches its threshold,
  ``p(j) >= t_j``, and the likeliest such class is not the given one: the confident joint's
  off-diagonal. Their count estimates how many labels are wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def check_folds(folds: int) -> None:
    """Refuse fewer than 2 folds, with the fix.

    Example:
        >>> check_folds(1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --folds 1: cross-validation needs at least 2 folds ...
    """
    if folds < 2:
        raise ValueError(
            f"--folds {folds}: cross-validation needs at least 2 folds (each example is scored "
            "by a model trained on the others); 5 is usual, 10 for small data."
        )


def stratified_folds(
    labels: np.ndarray, folds: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train indices, held-out indices)`` of each of ``folds`` stratified folds.

    Raises:
        ValueError: fewer than 2 folds, or more folds than examples of the rarest class.

    Example:
        >>> parts = stratified_folds(np.array([0, 1] * 5), 5)
        >>> held = np.concatenate([held for _, held in parts])
        >>> len(parts), sorted(held.tolist()) == list(range(10))
        (5, True)
    """
    from sklearn.model_selection import StratifiedKFold

    check_folds(folds)
    present = np.bincount(labels)
    rarest = int(present[present > 0].min()) if present.any() else 0
    if rarest < folds:
        raise ValueError(
            f"--folds {folds}: the rarest class has only {rarest} example(s) in train and dev, "
            f"so {folds} stratified folds cannot each hold one; use --folds {max(2, rarest)} or "
            "fewer."
        )
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels)
    return [(train, held) for train, held in split]


def out_of_sample_proba(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    labels: np.ndarray,
    num_classes: int,
    folds: int = 5,
    seed: int = 0,
    on_fold: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Class probabilities of every example from a model fitted without it (k-fold).

    Args:
        fit_predict: ``(train indices, held-out indices) -> probabilities`` of the held-out
            examples, shape ``(len(held), num_classes)``: fit a fresh model on the first,
            predict the second.
        labels: The given labels, ``0..num_classes-1``.
        num_classes: Number of classes.
        folds: Number of stratified folds.
        seed: Seed of the fold assignment.
        on_fold: Called after each fold with ``(fold number from 1, held-out indices, their
            probabilities)``, e.g. to print progress.

    Returns:
        Shape ``(len(labels), num_classes)``.

    Example:
        >>> y = np.array([0, 0, 1, 1] * 3)
        >>> prior = lambda train, held: np.tile(np.bincount(y[train], minlength=2) / len(train),
        ...                                     (len(held), 1))
        >>> out_of_sample_proba(prior, y, 2, folds=3).sum(axis=1).tolist() == [1.0] * 12
        True
    """
    proba = np.full((len(labels), num_classes), np.nan)
    for k, (train, held) in enumerate(stratified_folds(labels, folds, seed), start=1):
        p = np.asarray(fit_predict(train, held), dtype=np.float64)
        if p.shape != (len(held), num_classes):
            raise ValueError(
                f"fold {k}: fit_predict gave probabilities of shape {p.shape}, expected "
                f"{(len(held), num_classes)}."
            )
        proba[held] = p
        if on_fold is not None:
            on_fold(k, held, p)
    return proba


@dataclass
class SuspectRanking:
    """Every example ranked by how unlikely its given label is.

    Attributes:
        order: Example indices, most suspect (lowest ``p(given)``) first.
        self_confidence: ``p(given label)`` of each example.
        suggested: The class the model finds likeliest for each example.
        margin: ``p(given) - max over other classes p(j)``: negative when another class wins.
        thresholds: Per class ``t_j``, the mean ``p(j)`` over the examples labelled ``j``.
        confident_issue: Whether each example is a confident label issue (another class
            reaches its threshold and is the likeliest of those that do).
    """

    order: np.ndarray
    self_confidence: np.ndarray
    suggested: np.ndarray
    margin: np.ndarray
    thresholds: np.ndarray
    confident_issue: np.ndarray

    @property
    def estimated_issues(self) -> int:
        """Confident learning's estimate of the number of wrong labels."""
        return int(self.confident_issue.sum())


def rank_suspects(proba: np.ndarray, labels: np.ndarray) -> SuspectRanking:
    """Rank examples by self-confidence and mark confident learning's label issues.

    Args:
        proba: Out-of-sample class probabilities, ``(m, K)`` (from
            :func:`out_of_sample_proba`).
        labels: The given labels.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.9, 0.1]])
        >>> r = rank_suspects(p, np.array([0, 0, 1, 1]))
        >>> r.order.tolist(), r.thresholds.round(2).tolist(), r.confident_issue.tolist()
        ([3, 2, 1, 0], [0.85, 0.4], [False, False, False, True])
    """
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels)
    m, k = proba.shape
    if len(labels) != m or np.isnan(proba).any():
        raise ValueError(f"{m} rows of probabilities (some NaN?) for {len(labels)} labels.")
    rows = np.arange(m)
    given = proba[rows, labels]
    others = proba.copy()
    others[rows, labels] = -np.inf
    margin = given - others.max(axis=1)
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros((k, k))
    np.add.at(sums, labels, proba)
    # A class nobody is labelled with gets threshold 1: only certainty reaches it.
    thresholds = np.where(counts > 0, sums[np.arange(k), np.arange(k)] / np.maximum(counts, 1), 1)
    above = np.where(proba >= thresholds, proba, -np.inf)
    confident = above.argmax(axis=1)
    issue = np.isfinite(above.max(axis=1)) & (confident != labels)
    # Least likely first; among equals the one another class beats by more.
    order = np.lexsort((margin, given))
    return SuspectRanking(order, given, proba.argmax(axis=1), margin, thresholds, issue)


def suspect_rows(
    ranking: SuspectRanking,
    labels: np.ndarray,
    class_names: Sequence[str],
    ids: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per example, most suspect first, for ``suspect_labels.csv``.

    Args:
        ranking: From :func:`rank_suspects`.
        labels: The given labels.
        class_names: One name per class.
        ids: Per example, what identifies it (e.g. ``{"split": "train", "index": 12}``); its
            keys come first in each row.

    Example:
        >>> y = np.array([0, 1, 0])
        >>> r = rank_suspects(np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]), y)
        >>> row = suspect_rows(r, y, ["cat", "dog"], [{"i": 0}, {"i": 1}, {"i": 2}])[0]
        >>> row["rank"], row["i"], row["given"], row["p_given"], row["suggested"]
        (1, 2, 'cat', 0.2, 'dog')
        >>> row["p_suggested"], row["margin"], row["confident_issue"]
        (0.8, -0.6, True)
    """
    out = []
    for rank, i in enumerate(ranking.order, start=1):
        suggested = int(ranking.suggested[i])
        p_suggested = ranking.self_confidence[i] - ranking.margin[i]
        if suggested == int(labels[i]):
            p_suggested = ranking.self_confidence[i]
        out.append(
            {
                "rank": rank,
                **ids[i],
                "given": class_names[int(labels[i])],
                "p_given": round(float(ranking.self_confidence[i]), 4),
                "suggested": class_names[suggested],
                "p_suggested": round(float(p_suggested), 4),
                "margin": round(float(ranking.margin[i]), 4),
                "confident_issue": bool(ranking.confident_issue[i]),
            }
        )
    return out
