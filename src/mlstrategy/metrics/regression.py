"""Regression metrics from torchmetrics, one collection per split.

:func:`regression_metrics` gives the scalars a regressor is scored by on each split: mean
squared error, its root (in the target's units), mean absolute error and the coefficient of
determination ``R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean(y))^2``. :class:`RegressionScores`
feeds them batch by batch and keeps the predictions, so the evaluation layer can bootstrap
their standard errors. Each is tested against scikit-learn's ``mean_squared_error``,
``root_mean_squared_error``, ``mean_absolute_error`` and ``r2_score``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from mlstrategy.metrics.names import REGRESSION_NAMES


def regression_metrics(prefix: str = "") -> MetricCollection:
    """MSE, RMSE, MAE and R^2 of predicted values against true values.

    Args:
        prefix: Prepended to every key, e.g. ``"dev/"``.

    Example:
        >>> m = regression_metrics()
        >>> out = m(torch.tensor([2.5, 0.0, 2.0, 8.0]), torch.tensor([3.0, -0.5, 2.0, 7.0]))
        >>> {k: round(v.item(), 4) for k, v in out.items()}
        {'mae': 0.5, 'mse': 0.375, 'r2': 0.9486, 'rmse': 0.6124}
    """
    metrics = {
        "mse": MeanSquaredError(),
        "rmse": MeanSquaredError(squared=False),
        "mae": MeanAbsoluteError(),
        "r2": R2Score(),
    }
    assert tuple(metrics) == REGRESSION_NAMES
    return MetricCollection(metrics, prefix=prefix)  # type: ignore[arg-type]


class RegressionScores(nn.Module):
    """The running scores of one split of a regressor, fed batch by batch.

    The metrics' states are summed over batches (and devices), so :meth:`compute` scores the
    whole split at once. The predictions and targets are kept too (one float per example:
    small), for the bootstrap of the scores' standard errors.

    Example:
        >>> scores = RegressionScores()
        >>> scores.update(torch.tensor(0.5), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]))
        >>> scores.update(torch.tensor(0.0), torch.tensor([5.0]), torch.tensor([5.0]))
        >>> scalars, (preds, target) = scores.compute()
        >>> round(float(scalars["mse"]), 4), round(float(scalars["loss"]), 4), len(preds)
        (0.3333, 0.3333, 3)
    """

    def __init__(self) -> None:
        super().__init__()
        self.scalars = regression_metrics()
        self.cost = MeanMetric()
        self._preds: list[Tensor] = []
        self._targets: list[Tensor] = []

    def update(self, cost: Tensor, preds: Tensor, target: Tensor) -> None:
        """Add one batch: its mean cost, its predicted values and its true values."""
        preds, target = preds.reshape(-1).float(), target.reshape(-1).float()
        self.cost.update(cost, len(target))
        self.scalars.update(preds, target)
        self._preds.append(preds.detach())
        self._targets.append(target.detach())

    def compute(self) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor]]:
        """``(scalars, (preds, targets))``: MSE, RMSE, MAE, R^2 and ``loss`` (the split's
        mean cost), and every prediction with its target, on the CPU."""
        values: dict[str, Tensor] = dict(self.scalars.compute())
        values["loss"] = self.cost.compute()
        preds = torch.cat(self._preds).cpu() if self._preds else torch.zeros(0)
        targets = torch.cat(self._targets).cpu() if self._targets else torch.zeros(0)
        return values, (preds, targets)

    def reset(self) -> None:
        """Forget every batch, for the next split."""
        self.scalars.reset()
        self.cost.reset()
        self._preds, self._targets = [], []
