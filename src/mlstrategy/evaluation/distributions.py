"""Do dev and test come from one distribution? Their labels, their feature means, and a
domain classifier that sees more than means.

The course requires dev and test from the same distribution (the data you expect to get in the
future), or the team aims at one target and is scored on another. :func:`compare_distributions`
tests a single-task run's class counts (chi-square) and feature means (Welch's z, Bonferroni);
:func:`compare_task_distributions` does the same for a multi-task run, on each task's present
labels. Both add :func:`domain_classifier` (adversarial validation): a classifier trained to
tell the two splits apart, scored by its cross-validated AUC. It catches what means miss (a
rotation, a change of variance, a new mode), and also tells train from dev, which differ on
purpose when the training data comes from another source (the data-mismatch gap measures what
that costs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def compare_distributions(
    dev: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    alpha: float = 0.01,
    feature_names: Sequence[str] | None = None,
    train_x: np.ndarray | None = None,
) -> dict[str, Any]:
    """Test whether dev and test look like one distribution: labels, feature means, and a
    domain classifier.

    Labels: a chi-square test of homogeneity on the class counts. Features: Welch's z for the
    difference of every feature's mean, with a Bonferroni correction for the number of
    features (only with at least 30 examples in each split); and :func:`domain_classifier`,
    which sees shifts that keep the means. A p-value under ``alpha`` (for the domain
    classifier, with an AUC of at least 0.6) is a warning: the course requires dev and test
    from the same distribution, or the team aims at one target and is scored on another.
    Given the train split's features, the domain classifier also tells train from dev; that
    is reported, never a warning (training data may come from another source on purpose).

    Args:
        dev: ``(x, y)`` of the dev split.
        test: ``(x, y)`` of the test split.
        num_classes: Number of classes.
        alpha: Significance level of the warning.
        feature_names: One name per feature, for the message (default: its index).
        train_x: The train split's features, to tell train from dev too (None: not done).

    Returns:
        ``{"dev_labels", "test_labels"`` (class proportions), ``"labels_p"``,
        ``"worst_feature"``, ``"worst_feature_z"``, ``"features_p"`` (Bonferroni),
        ``"domain"`` (``{"dev_test": ..., ["train_dev": ...]}``, each from
        :func:`domain_classifier`), ``"differ"`` (bool), ``"message"``}; with
        ``feature_names``, ``"worst_feature_name"``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(400, 3)); y = np.arange(400) % 2
        >>> compare_distributions((x[:200], y[:200]), (x[200:], y[200:]), 2)["differ"]
        False
        >>> compare_distributions((x[:200], y[:200]), (x[200:] + 1, y[200:]), 2)["differ"]
        True
    """
    (x_dev, y_dev), (x_test, y_test) = dev, test
    labels_p = _labels_p(y_dev, y_test, num_classes)
    worst, worst_z, features_p = _feature_shift(x_dev, x_test)
    name = feature_names[worst] if feature_names else None
    consistent = f"labels p={labels_p:.2g}, features Bonferroni p={features_p:.2g}"
    parts = []
    if labels_p < alpha:
        parts.append(f"label proportions differ (chi-square p={labels_p:.2g})")
    if features_p < alpha:
        parts.append(_feature_part(name or str(worst), worst_z, features_p))
    domain = _domains(x_dev, x_test, train_x, alpha)
    consistent += _domain_consistent(domain["dev_test"])
    if domain["dev_test"]["differ"]:
        parts.append(_domain_part("dev from test", domain["dev_test"]))
    out = {
        "dev_labels": _proportions(y_dev, num_classes),
        "test_labels": _proportions(y_test, num_classes),
        "labels_p": labels_p,
        "worst_feature": worst,
        "worst_feature_z": worst_z,
        "features_p": features_p,
        "domain": domain,
        "differ": bool(parts),
        "message": _verdict(parts, consistent) + _train_dev_sentence(domain.get("train_dev")),
    }
    if name is not None:
        out["worst_feature_name"] = name
    return out


def compare_task_distributions(
    x_dev: np.ndarray,
    x_test: np.ndarray,
    labels: Mapping[str, tuple[np.ndarray, np.ndarray, int]],
    alpha: float = 0.01,
) -> dict[str, Any]:
    """:func:`compare_distributions` for a multi-task run: the feature means once, and the
    labels of each classification task on its present labels.

    Args:
        x_dev: Dev features.
        x_test: Test features.
        labels: ``{task: (dev labels, test labels, number of classes)}``, present labels only.
        alpha: Significance level of the warning.

    Returns:
        ``{"worst_feature", "worst_feature_z", "features_p", "tasks": {task: {"dev_labels",
        "test_labels", "labels_p"}}, "differ", "message"}``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(400, 3)); car = np.arange(400) % 2
        >>> out = compare_task_distributions(x[:200], x[200:], {"car": (car[:200], car[200:], 2)})
        >>> out["differ"], out["tasks"]["car"]["dev_labels"]
        (False, [0.5, 0.5])
    """
    worst, worst_z, features_p = _feature_shift(x_dev, x_test)
    tasks: dict[str, dict[str, Any]] = {}
    parts: list[str] = []
    for task, (y_dev, y_test, k) in labels.items():
        p = _labels_p(y_dev, y_test, k)
        tasks[task] = {
            "dev_labels": _proportions(y_dev, k),
            "test_labels": _proportions(y_test, k),
            "labels_p": p,
        }
        if p < alpha:
            parts.append(f"the labels of {task} differ (chi-square p={p:.2g})")
    if features_p < alpha:
        parts.append(_feature_part(str(worst), worst_z, features_p))
    domain = _domains(x_dev, x_test, None, alpha)
    if domain["dev_test"]["differ"]:
        parts.append(_domain_part("dev from test", domain["dev_test"]))
    consistent = f"features Bonferroni p={features_p:.2g}"
    if tasks:
        lowest = min(float(t["labels_p"]) for t in tasks.values())
        consistent = f"lowest labels p={lowest:.2g} over {len(tasks)} task(s), {consistent}"
    consistent += _domain_consistent(domain["dev_test"])
    return {
        "worst_feature": worst,
        "worst_feature_z": worst_z,
        "features_p": features_p,
        "domain": domain,
        "tasks": tasks,
        "differ": bool(parts),
        "message": _verdict(parts, consistent),
    }


def _labels_p(y_dev: np.ndarray, y_test: np.ndarray, num_classes: int) -> float:
    """The chi-square test of homogeneity of two splits' class counts (1 with one class)."""
    from scipy.stats import chi2_contingency

    counts = np.stack(
        [np.bincount(y_dev, minlength=num_classes), np.bincount(y_test, minlength=num_classes)]
    )
    counts = counts[:, counts.sum(axis=0) > 0]
    p = 1.0 if counts.shape[1] < 2 else float(chi2_contingency(counts).pvalue)
    return p if math.isfinite(p) else 1.0


def _feature_shift(x_dev: np.ndarray, x_test: np.ndarray) -> tuple[int, float, float]:
    """``(worst feature, its Welch z, Bonferroni p)`` of the difference of feature means."""
    from scipy.stats import norm

    a = x_dev.reshape(len(x_dev), -1).astype(np.float64)
    b = x_test.reshape(len(x_test), -1).astype(np.float64)
    # Welch's z needs enough examples for the normal approximation; with a handful of dev
    # examples a pixel that happens to be blank in all of them would look "different".
    if min(len(a), len(b)) < 30:
        z = np.zeros(a.shape[1])
    else:
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        diff = a.mean(axis=0) - b.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A constant feature is fine when equal in both, a certain difference otherwise.
            z = np.where(se > 0, np.abs(diff) / se, np.where(diff == 0, 0.0, np.inf))
    worst = int(np.argmax(z)) if z.size else 0
    worst_z = float(z[worst]) if z.size else 0.0
    return worst, worst_z, min(1.0, float(2 * norm.sf(worst_z)) * max(z.size, 1))


def _feature_part(name: str, z: float, p: float) -> str:
    return f"feature {name} has a different mean (z={z:.1f}, Bonferroni p={p:.2g})"


def _verdict(parts: Sequence[str], consistent: str) -> str:
    if parts:
        return (
            "Dev and test look like different distributions: " + "; ".join(parts) + ". Take "
            "dev and test from one distribution (the data you expect to get in the future), "
            "e.g. shuffle them together and split again."
        )
    return f"Dev and test are consistent with one distribution ({consistent})."


def _proportions(y: np.ndarray, num_classes: int) -> list[float]:
    n = max(len(y), 1)
    return [round(c / n, 4) for c in np.bincount(y, minlength=num_classes).tolist()]


DOMAIN_FOLDS = 5
DOMAIN_MAX_ROWS = 1000  # per split: the check stays well under a second on a small CPU
_DOMAIN_MAX_FEATURES = 64  # wider inputs (images) are reduced to 32 principal components


def domain_classifier(
    a: np.ndarray,
    b: np.ndarray,
    alpha: float = 0.01,
    min_auc: float = 0.6,
    folds: int = DOMAIN_FOLDS,
    seed: int = 0,
    max_rows: int = DOMAIN_MAX_ROWS,
) -> dict[str, Any]:
    """Adversarial validation: can a classifier tell the rows of ``a`` from those of ``b``?

    A gradient-boosted tree ensemble (scikit-learn's ``HistGradientBoostingClassifier``, small:
    30 trees of 8 leaves) learns to label each row with its split, on ``folds`` stratified
    folds of an equal number of rows from each (at most ``max_rows``); its AUC on the held-out
    folds is the measure: 0.5 when the splits look alike, 1 when every row gives its split
    away. Trees split on any feature at any threshold, so they see shifts that keep every mean
    (a rotation, a wider spread, a new cluster), which the mean check cannot, and a logistic
    regression on the raw features would not see a pure change of variance either.

    The interval is the mean of the fold AUCs plus or minus Student's t (95%) times their
    standard error. The p-value is the stratified Mann-Whitney test (van Elteren) of AUC = 0.5
    that adds each fold's rank statistic: within a fold the model never saw the held-out
    labels, so under "one distribution" each fold's AUC is a plain Mann-Whitney statistic
    (the folds share training rows, which makes the test a little liberal on small splits:
    about 6% false alarms at ``alpha = 0.01`` with 40 rows a split, 1% with 114).
    ``differ`` needs all three: ``p < alpha``, an interval above 0.5 (which brings the 40-row
    rate to ~3%), and an AUC of at least ``min_auc`` (a difference big enough to matter, not
    just detectable in a large split).

    Args:
        a: Rows of the first split (any shape; flattened per row).
        b: Rows of the second split.
        alpha: Significance level.
        min_auc: The smallest AUC called a difference.
        folds: Cross-validation folds.
        seed: Seed of the subsample, the folds and the trees.
        max_rows: Rows drawn from each split at most.

    Returns:
        ``{"auc", "auc_interval", "fold_aucs", "p_value", "rows", "differ", "method"}``;
        with fewer than ``2 * folds`` rows in a split, or no feature that varies, ``{"auc":
        None, "differ": False, "skipped": reason}``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> same = domain_classifier(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)))
        >>> same["differ"], same["auc"] < 0.6
        (False, True)
        >>> wider = domain_classifier(rng.normal(size=(300, 4)), 2 * rng.normal(size=(300, 4)))
        >>> wider["differ"], wider["auc"] > 0.8
        (True, True)
    """
    from scipy.stats import norm
    from scipy.stats import t as student
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rows = min(len(a), len(b), max_rows)
    if rows < 2 * folds:
        return {
            "auc": None,
            "differ": False,
            "skipped": f"too few rows ({min(len(a), len(b))}; needs {2 * folds} per split)",
        }
    x, y = _domain_rows(a, b, rows, seed)
    if x.shape[1] == 0:
        return {"auc": None, "differ": False, "skipped": "no feature varies"}
    model = HistGradientBoostingClassifier(
        max_iter=30, max_leaf_nodes=8, learning_rate=0.2, early_stopping=False, random_state=seed
    )
    fold_aucs, u_sum, u_mean, u_var = [], 0.0, 0.0, 0.0
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        scores = model.fit(x[train], y[train]).predict_proba(x[held])[:, 1]
        auc = float(roc_auc_score(y[held], scores))
        n1, n0 = int(y[held].sum()), int(len(held) - y[held].sum())
        fold_aucs.append(auc)
        u_sum += auc * n1 * n0
        u_mean += n1 * n0 / 2
        u_var += n1 * n0 * (n1 + n0 + 1) / 12
    mean = float(np.mean(fold_aucs))
    half = float(student.ppf(0.975, folds - 1) * np.std(fold_aucs, ddof=1) / math.sqrt(folds))
    p_value = float(norm.sf((u_sum - u_mean) / math.sqrt(u_var)))
    differ = p_value < alpha and mean >= min_auc and mean - half > 0.5
    return {
        "auc": round(mean, 4),
        "auc_interval": [round(max(0.0, mean - half), 4), round(min(1.0, mean + half), 4)],
        "fold_aucs": [round(v, 4) for v in fold_aucs],
        "p_value": p_value,
        "rows": rows,
        "differ": bool(differ),
        "method": f"HistGradientBoostingClassifier, {folds}-fold cross-validated AUC",
    }


def _domain_rows(a: np.ndarray, b: np.ndarray, rows: int, seed: int) -> tuple[np.ndarray, ...]:
    """``rows`` random rows of each split, flattened, labelled 0 (``a``) and 1 (``b``); inputs
    wider than 64 features reduced to 32 principal components of the two together."""
    rng = np.random.default_rng(seed)
    parts = [
        np.asarray(s).reshape(len(s), -1)[rng.choice(len(s), rows, replace=False)] for s in (a, b)
    ]
    x = np.concatenate(parts).astype(np.float64)
    x = x[:, x.std(axis=0) > 0]  # a constant column carries nothing
    if x.shape[1] > _DOMAIN_MAX_FEATURES:
        from sklearn.decomposition import PCA

        components = min(32, len(x) - 1)
        x = PCA(components, svd_solver="randomized", random_state=seed).fit_transform(x)
    return x, np.repeat([0, 1], rows)


def _domains(
    x_dev: np.ndarray, x_test: np.ndarray, x_train: np.ndarray | None, alpha: float
) -> dict[str, dict[str, Any]]:
    """The domain classifier on dev vs test and, given train, on train vs dev."""
    out = {"dev_test": domain_classifier(x_dev, x_test, alpha=alpha)}
    if x_train is not None:
        out["train_dev"] = domain_classifier(x_train, x_dev, alpha=alpha)
    return out


def _domain_consistent(found: Mapping[str, Any]) -> str:
    if found.get("auc") is None:
        return ""
    low, high = found["auc_interval"]
    return f", domain classifier AUC {found['auc']:.2f} ({low:.2f}-{high:.2f})"


def _train_dev_sentence(found: Mapping[str, Any] | None) -> str:
    """What telling train from dev found: a difference to know about, never a warning."""
    if not found or found.get("auc") is None:
        return ""
    if not found["differ"]:
        return (
            f" Train and dev look alike to a domain classifier (AUC {found['auc']:.2f}, "
            f"p={found['p_value']:.2g})."
        )
    return (
        " Train vs dev: " + _domain_part("train from dev", found) + ". The training data "
        "differs from what the system will see; fine when it comes from another source on "
        "purpose. The diagnosis's data-mismatch gap (dev - train-dev) says what the difference "
        "costs when there is a train-dev split (data.init_args.train_dev_fraction)."
    )


def _domain_part(what: str, found: Mapping[str, Any]) -> str:
    low, high = found["auc_interval"]
    return (
        f"a domain classifier tells {what} apart (AUC {found['auc']:.2f}, 95% interval "
        f"{low:.2f}-{high:.2f} over {len(found['fold_aucs'])} folds, p={found['p_value']:.2g})"
    )
