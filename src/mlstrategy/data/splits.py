"""Seeded, stratified train / train-dev / dev / test splits."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def _count(fraction: float, n: int) -> int:
    return round(fraction * n)


def stratified_split(
    y: np.ndarray,
    *,
    dev_fraction: float,
    test_fraction: float | None,
    train_dev_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Split example indices into train, (train_dev), dev and (test), stratified by label.

    Fractions are of ``len(y)``. ``train_dev`` (Ng's "training-dev set") is carved from the
    training distribution, so the gap between train-dev and dev errors measures data mismatch.
    With ``test_fraction=None`` no test split is made (the source brought its own); with
    ``test_fraction=0`` none either (train and dev only, which the course allows when no
    unbiased estimate of the final error is needed).

    Args:
        y: Integer labels, shape ``(m,)``.
        dev_fraction: Fraction of examples in the dev split, in (0, 1).
        test_fraction: Fraction in the test split, in [0, 1); 0 or None for no test split.
        train_dev_fraction: Fraction in the train-dev split, in [0, 1); 0 means none.
        seed: Seed of the shuffle; the same seed gives the same split.

    Returns:
        Sorted index arrays keyed by ``"train"``, ``"dev"`` and, when made, ``"train_dev"`` and
        ``"test"``; disjoint, and together every index.

    Raises:
        ValueError: a fraction outside its range, or a split that would be empty or too small
            to hold one example of every class.

    Example:
        >>> y = np.array([0, 1] * 10)
        >>> parts = stratified_split(y, dev_fraction=0.2, test_fraction=0.2, seed=0)
        >>> {k: len(v) for k, v in parts.items()}
        {'train': 12, 'dev': 4, 'test': 4}
        >>> list(stratified_split(y, dev_fraction=0.2, test_fraction=0, seed=0))
        ['train', 'dev']
    """
    fractions = {"dev_fraction": dev_fraction, "train_dev_fraction": train_dev_fraction}
    if test_fraction is not None:
        fractions["test_fraction"] = test_fraction
    optional = {"train_dev_fraction": "train-dev", "test_fraction": "test"}
    for name, value in fractions.items():
        low_ok = value >= 0 if name in optional else value > 0
        if not (low_ok and value < 1):
            allowed = f"[0, 1) (0 = no {optional[name]} split)" if name in optional else "(0, 1)"
            raise ValueError(
                f"{name}={value} is outside {allowed}. It is the fraction of all examples that "
                "goes to that split; typical values are 0.1 to 0.3."
            )
    total = sum(fractions.values())
    if total >= 1:
        listing = ", ".join(f"{k}={v}" for k, v in fractions.items())
        raise ValueError(
            f"The split fractions add up to {total:g} ({listing}), "
            "leaving no examples to train on. Make them sum to less than 1, e.g. 0.2 each."
        )

    n = len(y)
    classes = np.unique(y)
    counts = {k.removesuffix("_fraction"): _count(v, n) for k, v in fractions.items() if v > 0}
    counts["train"] = n - sum(counts.values())
    for split, count in counts.items():
        if count < len(classes):
            raise ValueError(
                f"The {split} split would hold {count} of {n} examples, fewer than the "
                f"{len(classes)} classes, so it cannot be stratified (or is empty). Raise its "
                "fraction or use more data."
            )
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < len(counts):
        raise ValueError(
            f"A class has only {smallest} example(s); stratified splitting into {len(counts)} "
            "splits needs at least one per split. Add examples of that class or drop it."
        )

    rest = np.arange(n)
    parts: dict[str, np.ndarray] = {}
    for split in ("test", "dev", "train_dev"):
        if split not in counts:
            continue
        try:
            rest, parts[split] = train_test_split(
                rest, test_size=counts[split], stratify=y[rest], random_state=seed
            )
        except ValueError as err:  # scikit-learn's wording names its own arguments
            raise ValueError(
                f"Cannot make a stratified {split} split of {len(rest)} examples: {err} "
                "Use more data, fewer classes, or larger split fractions."
            ) from None
    parts["train"] = rest
    order = ["train", "train_dev", "dev", "test"]
    return {k: np.sort(parts[k]) for k in order if k in parts}
