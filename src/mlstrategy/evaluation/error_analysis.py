"""Error analysis on the dev set, and the check that dev and test share one distribution.

The course's error analysis: look at the dev examples the model gets wrong, count what kinds of
mistake dominate, and work on the biggest category first. Here: the most-confused class pairs
(from the confusion matrix) and the dev examples with the highest loss (the most confidently
wrong). The course also requires dev and test to come from one distribution;
:func:`compare_distributions` tests their labels and feature means and says when they differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def most_confused(
    confusion_matrix: Sequence[Sequence[int]], class_names: Sequence[str], k: int = 5
) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal cells: which true class is taken for which, how often.

    Args:
        confusion_matrix: Counts, ``[true][predicted]``.
        class_names: One name per class.
        k: How many pairs to return.

    Returns:
        ``[{"true", "predicted", "count", "share"}]``, largest first; ``share`` is the fraction
        of all errors; pairs that never happen are left out.

    Example:
        >>> pairs = most_confused([[5, 3, 0], [1, 4, 0], [0, 0, 2]], ["a", "b", "c"], k=2)
        >>> [(p["true"], p["predicted"], p["count"], p["share"]) for p in pairs]
        [('a', 'b', 3, 0.75), ('b', 'a', 1, 0.25)]
    """
    cm = np.asarray(confusion_matrix, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    total = int(off.sum())
    pairs = [(int(off[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if off[i, j]]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [
        {
            "true": class_names[i],
            "predicted": class_names[j],
            "count": count,
            "share": round(count / total, 4),
        }
        for count, i, j in pairs[:k]
    ]


@torch.no_grad()
def example_losses(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example cross-entropy ``-log a_y``, predicted labels and ``p(true class)``.

    The model is run in eval mode (dropout off) and must offer ``forward`` (logits),
    ``predict_proba`` and ``predict_labels`` as :class:`~mlstrategy.models.ClassifierModule`
    does; its training mode is restored afterwards.

    Args:
        model: A trained classifier.
        x: Examples, on any device (moved to the model's).
        y: True labels.
        batch_size: Examples per forward pass.

    Returns:
        ``(loss, predicted, p_true)``, each of shape ``(m,)``, on the CPU.
    """
    classifier: Any = model  # duck-typed: forward, predict_proba, predict_labels
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses, preds, p_true = [], [], []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            logits = classifier(xb)
            proba = classifier.predict_proba(logits)
            p = proba.gather(1, yb[:, None]).squeeze(1)
            losses.append(-torch.log(p.clamp_min(1e-12)).cpu())
            preds.append(classifier.predict_labels(logits).cpu())
            p_true.append(p.cpu())
    finally:
        model.train(was_training)
    return torch.cat(losses), torch.cat(preds), torch.cat(p_true)


def highest_loss(
    losses: torch.Tensor,
    preds: torch.Tensor,
    p_true: torch.Tensor,
    y: torch.Tensor,
    class_names: Sequence[str],
    k: int = 10,
) -> list[dict[str, Any]]:
    """The ``k`` examples with the highest loss, worst first.

    Args:
        losses: Per-example loss, from :func:`example_losses`.
        preds: Predicted labels.
        p_true: Probability given to the true class.
        y: True labels.
        class_names: One name per class.
        k: How many examples to return.

    Returns:
        ``[{"index", "true", "predicted", "p_true", "loss"}]``; ``index`` is the position in
        the split.

    Example:
        >>> import torch
        >>> rows = highest_loss(torch.tensor([0.1, 2.3, 0.7]), torch.tensor([0, 0, 1]),
        ...                     torch.tensor([0.9, 0.1, 0.5]), torch.tensor([0, 1, 1]),
        ...                     ["cat", "dog"], k=1)
        >>> rows
        [{'index': 1, 'true': 'dog', 'predicted': 'cat', 'p_true': 0.1, 'loss': 2.3}]
    """
    order = torch.argsort(losses, descending=True, stable=True)[:k]
    return [
        {
            "index": int(i),
            "true": class_names[int(y[i])],
            "predicted": class_names[int(preds[i])],
            "p_true": round(float(p_true[i]), 4),
            "loss": round(float(losses[i]), 4),
        }
        for i in order
    ]


def compare_distributions(
    dev: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    alpha: float = 0.01,
) -> dict[str, Any]:
    """Test whether dev and test look like one distribution: labels and feature means.

    Labels: a chi-square test of homogeneity on the class counts. Features: Welch's z for the
    difference of every feature's mean, with a Bonferroni correction for the number of
    features (only with at least 30 examples in each split). A p-value under ``alpha`` is a
    warning: the course requires dev and test from the same distribution, or the team aims at
    one target and is scored on another.

    Args:
        dev: ``(x, y)`` of the dev split.
        test: ``(x, y)`` of the test split.
        num_classes: Number of classes.
        alpha: Significance level of the warning.

    Returns:
        ``{"dev_labels", "test_labels"`` (class proportions), ``"labels_p"``,
        ``"worst_feature"``, ``"worst_feature_z"``, ``"features_p"`` (Bonferroni),
        ``"differ"`` (bool), ``"message"``}.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(400, 3)); y = np.arange(400) % 2
        >>> compare_distributions((x[:200], y[:200]), (x[200:], y[200:]), 2)["differ"]
        False
        >>> compare_distributions((x[:200], y[:200]), (x[200:] + 1, y[200:]), 2)["differ"]
        True
    """
    from scipy.stats import chi2_contingency, norm

    (x_dev, y_dev), (x_test, y_test) = dev, test
    counts = np.stack(
        [np.bincount(y_dev, minlength=num_classes), np.bincount(y_test, minlength=num_classes)]
    )
    counts = counts[:, counts.sum(axis=0) > 0]
    labels_p = 1.0 if counts.shape[1] < 2 else float(chi2_contingency(counts).pvalue)

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
    features_p = min(1.0, float(2 * norm.sf(worst_z)) * max(z.size, 1))
    differ = labels_p < alpha or features_p < alpha
    parts = []
    if labels_p < alpha:
        parts.append(f"label proportions differ (chi-square p={labels_p:.2g})")
    if features_p < alpha:
        parts.append(
            f"feature {worst} has a different mean (z={worst_z:.1f}, Bonferroni p={features_p:.2g})"
        )
    if differ:
        message = (
            "Dev and test look like different distributions: " + "; ".join(parts) + ". Take dev "
            "and test from one distribution (the data you expect to get in the future), e.g. "
            "shuffle them together and split again."
        )
    else:
        message = (
            f"Dev and test are consistent with one distribution (labels p={labels_p:.2g}, "
            f"features Bonferroni p={features_p:.2g})."
        )

    def proportions(y: np.ndarray) -> list[float]:
        n = max(len(y), 1)
        return [round(c / n, 4) for c in np.bincount(y, minlength=num_classes).tolist()]

    return {
        "dev_labels": proportions(y_dev),
        "test_labels": proportions(y_test),
        "labels_p": labels_p if math.isfinite(labels_p) else 1.0,
        "worst_feature": worst,
        "worst_feature_z": worst_z,
        "features_p": features_p,
        "differ": bool(differ),
        "message": message,
    }


def analyze_errors(
    model: torch.nn.Module, datamodule: Any, splits: Mapping[str, Mapping[str, Any]], k: int = 10
) -> dict[str, Any]:
    """Error analysis on the dev split and the dev/test same-distribution check.

    Needs a single-task classifier and a data module that keeps its splits in memory
    (``prepare()`` returning ``{split: (x, y)}``, as :class:`~mlstrategy.data.ArrayDataModule`);
    returns ``{}`` otherwise (a multi-task model is analysed per task by
    :func:`~mlstrategy.evaluation.multitask.diagnose_tasks`).

    Args:
        model: The trained classifier (the weights that were scored).
        datamodule: Its data module.
        splits: The scored splits, from :func:`~mlstrategy.evaluation.scoring.evaluate_splits`.
        k: How many highest-loss dev examples to list.

    Returns:
        ``{"most_confused": [...], "highest_loss": [...], "same_distribution": {...}}`` and,
        for image or signal data, ``"highest_loss_x"`` (the raw examples, for the figure).
    """
    if any("tasks" in row for row in splits.values()):
        return {}  # a multi-task model: scored per task, no single confusion matrix
    prepare = getattr(datamodule, "prepare", None)
    if not callable(prepare):
        return {}
    data = prepare()
    if "dev" not in data:
        return {}
    x_dev, y_dev = data["dev"]
    if y_dev.dim() != 1:
        return {}  # one label column per task: not a single-task classifier's labels
    cm = splits.get("dev", {}).get("confusion_matrix")
    num_classes = len(cm) if cm else int(max(int(y.max()) for _, y in data.values())) + 1
    names = list(getattr(datamodule, "class_names", None) or []) or [
        str(c) for c in range(num_classes)
    ]
    losses, preds, p_true = example_losses(model, x_dev, y_dev)
    worst = highest_loss(losses, preds, p_true, y_dev, names, k=k)
    out: dict[str, Any] = {
        "most_confused": most_confused(cm, names) if cm else [],
        "highest_loss": worst,
    }
    if x_dev.dim() in (3, 4):
        out["highest_loss_x"] = x_dev[[w["index"] for w in worst]].numpy()
    if "test" in data:
        x_test, y_test = data["test"]
        out["same_distribution"] = compare_distributions(
            (x_dev.numpy(), y_dev.numpy()), (x_test.numpy(), y_test.numpy()), num_classes
        )
    return out
