"""The LightningModule every single-task regressor in the toolkit trains with."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mlstrategy.models.base import SupervisedModule


class RegressorModule(SupervisedModule):
    """Trains ``self.net`` (a plain ``nn.Module`` with one output unit) to predict a number.

    The sibling of :class:`~mlstrategy.models.classifier.ClassifierModule` on the same base:
    input normalization, the L2 term, the optimizer and the cost curve come from
    :class:`~mlstrategy.models.base.SupervisedModule`. The cost is the course's squared error
    (:meth:`cost`).

    **Target standardization.** With ``standardize_target`` the net learns
    ``(y - mu_y) / sigma_y``, with ``mu_y`` and ``sigma_y`` from the train split only (the data
    module's ``target_normalizer``). They are buffers, so they travel in the checkpoint, and
    :meth:`predict_values` undoes them: every prediction, score and ``predict`` output is in
    the target's own units. The cost (``cost/train``, ``cost/dev``) is in standardized units.

    ``test_step`` returns each batch's cost, predicted values and true values (target units);
    the scorer (:class:`~mlstrategy.evaluation.scoring.SplitScorer`) turns them into the
    split's MSE, RMSE, MAE and R^2.

    Args:
        input_shape: Shape of one example; filled in from the data module by the CLI.
        num_classes: Filled in from the data module: 0, the data's mark for real-valued
            targets (:class:`~mlstrategy.data.RegressionDataModule`).
        standardize_target: Learn the standardized target (statistics from the train split,
            undone at prediction). Targets in the hundreds (diabetes: 25-346) otherwise need a
            much smaller learning rate for the same steps.
        **kwargs: Cost and optimizer settings of
            :class:`~mlstrategy.models.base.SupervisedModule` (``optimizer``,
            ``learning_rate``, ``l2_lambda``, ``lr_decay``, ``compile``, ...).
    """

    regression = True  # how the scorer and the run layer tell a regressor from a classifier
    target_mean: Tensor
    target_std: Tensor

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int = 0,
        standardize_target: bool = True,
        **kwargs: Any,
    ) -> None:
        if num_classes != 0:
            raise ValueError(
                f"{type(self).__name__} predicts a real number, but the data has {num_classes} "
                "classes. Use a classifier (e.g. mlstrategy.models.DeepNet) for class labels, "
                "or give the regressor mlstrategy.data.RegressionDataModule (a numeric target)."
            )
        super().__init__(input_shape, **kwargs)
        self.num_classes = 0
        self.standardize_target = standardize_target
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    @property
    def output_units(self) -> int:
        """One linear output unit: ``y_hat``."""
        return 1

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self._trainer, "datamodule", None)
        fitted = getattr(datamodule, "target_normalizer", None)
        # From the train split only; a checkpoint restored after setup brings its own.
        if self.standardize_target and callable(fitted):
            mean, std = fitted()
            self.target_mean.fill_(float(mean))
            self.target_std.fill_(float(std))

    def forward(self, x: Tensor) -> Tensor:
        """``y_hat`` in standardized units, shape ``(m,)``."""
        return self.forward_net(x).squeeze(-1)

    def standardized(self, y: Tensor) -> Tensor:
        """``(y - mu_y) / sigma_y``: a target in the units the net learns."""
        return (y.to(self.target_mean.dtype) - self.target_mean) / self.target_std

    def cost(self, outputs: Tensor, y: Tensor) -> Tensor:
        """The course's squared-error cost ``J = 1/(2m) sum_i (y_hat(i) - y(i))^2``.

        In standardized units (``y`` is standardized here); its gradient is the course's
        ``dw = 1/m X (y_hat - y)^T``, ``db = 1/m sum (y_hat - y)`` for a linear model.
        """
        residual = outputs - self.standardized(y).to(outputs.dtype)
        return 0.5 * residual.pow(2).mean()

    def predict_values(self, outputs: Tensor) -> Tensor:
        """Predictions in the target's units: ``y_hat sigma_y + mu_y``."""
        return outputs * self.target_std.to(outputs.dtype) + self.target_mean.to(outputs.dtype)

    def predict_proba(self, outputs: Tensor) -> Tensor:
        """A regressor has no probabilities: its predicted values, in the target's units."""
        return self.predict_values(outputs)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """One test batch for the split's scorer: ``{"cost", "preds", "targets"}``, the
        predictions and targets in the target's units."""
        cost, outputs, y = self.model_step(batch)
        return {"cost": cost, "preds": self.predict_values(outputs), "targets": y}
