"""Sums for the weighted error and the per-group errors of a split, on the device.

The weighted error is defined in :mod:`mlstrategy.metrics.costs`. The slices example (course
3: a cat app's users in several geographies): each group's error rate, and
``error_group_mean``, their unweighted mean, so that every group counts the same however many
examples it has.

:class:`WeightedConfusion` adds these up batch by batch on the device (sum-reduced across
processes like any torchmetrics state); :func:`weighted_scores` turns its sums into the numbers
a split's row holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric


class WeightedConfusion(Metric):
    """Sums for the weighted error and the per-group errors of one split.

    States (all sum-reduced across processes): ``weight[i, j]`` and ``weight_sq[i, j]``, the
    sums of ``w`` and ``w^2`` over the examples of true class ``i`` predicted ``j``;
    ``group_n[g]`` and ``group_wrong[g]``, each group's examples and mistakes.

    Args:
        num_classes: ``K``.
        num_groups: Groups of the split's data (0: no group column).

    Example:
        >>> m = WeightedConfusion(2)
        >>> m.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), torch.tensor([1., 2, 1]))
        >>> m.weight.tolist()
        [[1.0, 0.0], [2.0, 1.0]]
    """

    full_state_update = False
    weight: Tensor
    weight_sq: Tensor
    group_n: Tensor
    group_wrong: Tensor

    def __init__(self, num_classes: int, num_groups: int = 0) -> None:
        super().__init__()
        k = num_classes
        self.num_classes = k
        zeros = torch.zeros
        self.add_state("weight", zeros(k, k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight_sq", zeros(k, k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("group_n", zeros(num_groups, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("group_wrong", zeros(num_groups, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self, preds: Tensor, targets: Tensor, weights: Tensor, groups: Tensor | None = None
    ) -> None:
        """Add a batch: predicted and true classes, the examples' weights and group codes.

        Sums as products of indicator matrices (``[t_n = i]^T diag(w) [p_n = j]``), not
        ``bincount``: a weighted ``bincount`` on CUDA has no deterministic kernel (the runs set
        ``deterministic``), and these are deterministic on every device, with no host sync.
        """
        classes = torch.arange(self.num_classes, device=preds.device)
        true = (targets.long()[:, None] == classes).to(torch.float64)  # (n, K)
        predicted = (preds.long()[:, None] == classes).to(torch.float64)
        w = weights.to(torch.float64)[:, None]
        self.weight += (true * w).T @ predicted
        self.weight_sq += (true * w * w).T @ predicted
        if groups is not None and len(self.group_n):
            names = torch.arange(len(self.group_n), device=preds.device)
            member = (groups.long()[:, None] == names).to(torch.float64)  # (n, G)
            self.group_n += member.sum(dim=0)
            self.group_wrong += member.T @ (preds != targets).to(torch.float64)

    def compute(self) -> dict[str, Tensor]:
        return {
            "weight": self.weight,
            "weight_sq": self.weight_sq,
            "group_n": self.group_n,
            "group_wrong": self.group_wrong,
        }


def weighted_scores(
    sums: dict[str, Tensor], costs: np.ndarray, group_names: Sequence[str] = ()
) -> tuple[dict[str, float], dict[str, Any]]:
    """A split's weighted scalars and its per-group table, from :class:`WeightedConfusion`.

    ``weighted_error`` is ``sum(W * C) / sum(W)`` with ``W`` the weighted confusion matrix and
    ``C`` the cost matrix. Its standard error is the ratio estimator's (delta method):
    ``sqrt(sum_i w_i^2 (c_i - E)^2) / sum_i w_i``, which is the binomial ``sqrt(E (1 - E) / m)``
    for unit weights and 0-1 costs. Groups with no example in the split are left out of
    ``error_group_mean`` (the unweighted mean of the groups' error rates).

    Returns:
        ``({"weighted_error": E[, "error_group_mean": ...]}, {"standard_errors":
        {"weighted_error": se}[, "groups": {name: {"n": .., "error": ..}}]})``.
    """
    w = sums["weight"].double().cpu().numpy()
    w2 = sums["weight_sq"].double().cpu().numpy()
    total = w.sum()
    value = float((w * costs).sum() / total) if total > 0 else math.nan
    se = math.sqrt(float((w2 * (costs - value) ** 2).sum())) / total if total > 0 else math.nan
    scalars = {"weighted_error": value}
    details: dict[str, Any] = {"standard_errors": {"weighted_error": se}}
    n, wrong = sums["group_n"].cpu().numpy(), sums["group_wrong"].cpu().numpy()
    if len(n):
        groups = {
            str(name): {"n": int(n[g]), "error": float(wrong[g] / n[g])}
            for g, name in enumerate(group_names)
            if n[g] > 0
        }
        scalars["error_group_mean"] = float(np.mean([r["error"] for r in groups.values()]))
        details["groups"] = groups
    return scalars, details
