"""The LightningModule every single-task classifier in the toolkit trains with."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mlstrategy.models.base import SupervisedModule


class ClassifierModule(SupervisedModule):
    """Trains ``self.net`` (a plain ``nn.Module`` mapping inputs to logits) as a classifier.

    Subclasses build ``self.net``; input normalization, the L2 term, the optimizer and the cost
    curve come from :class:`~mlstrategy.models.base.SupervisedModule`. With
    ``num_classes == 2`` and one output unit the cost is binary cross-entropy on
    ``sigmoid(z)``; otherwise it is softmax cross-entropy.

    ``test_step`` returns each batch's cost, predicted labels and true labels; a scorer
    (:class:`~mlstrategy.evaluation.scoring.SplitScorer`) turns them into the split's error,
    accuracy, precision, recall, F1, per-class scores and confusion matrix.

    Args:
        input_shape: Shape of one example; filled in from the data module by the CLI.
        num_classes: Number of classes; filled in from the data module by the CLI.
        class_weights: One weight ``>= 0`` per class (in the data's class order) for the
            cost: each example's cross-entropy is weighted by its true class's weight and the
            batch's cost is normalized by the sum of those weights, ``J = sum_i w[y_i] L_i /
            sum_i w[y_i]`` (as ``torch.nn.CrossEntropyLoss(weight=...)`` with
            ``reduction="mean"``, and scikit-learn's ``log_loss(..., sample_weight=w[y])``;
            binary logistic too). The course's weighted cost that matches
            ``evaluation.class_costs: {true: [...]}``; it weights the training cost, ``cost/dev``
            and each split's ``loss``. null: every class weighs 1.
        **kwargs: Cost and optimizer settings of
            :class:`~mlstrategy.models.base.SupervisedModule` (``optimizer``,
            ``learning_rate``, ``l2_lambda``, ``lr_decay``, ``compile``, ...).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        class_weights: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        if num_classes == 0:  # the data's mark for a real-valued target
            raise ValueError(
                f"{type(self).__name__} is a classifier, but the data's target is real numbers "
                "(num_classes=0, a regression). Use a regressor: mlstrategy.models."
                "LinearRegression, DeepRegressor or ConvRegressor."
            )
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes}; a classifier needs at least 2 classes.")
        _check_class_weights(class_weights, num_classes)
        super().__init__(input_shape, **kwargs)
        self.num_classes = num_classes
        weight = None if class_weights is None else torch.tensor([float(w) for w in class_weights])
        # Not persistent: checkpoints keep the list in the hyperparameters, and their keys do
        # not change; it moves to the model's device with the model.
        self.class_weight: Tensor | None
        self.register_buffer("class_weight", weight, persistent=False)

    @property
    def binary(self) -> bool:
        """True when the net has a single output unit read through a sigmoid."""
        return self.num_classes == 2 and self.output_units == 1

    @property
    def output_units(self) -> int:
        """Units of the output layer: 1 for two classes (a sigmoid), else ``num_classes``."""
        return 1 if self.num_classes == 2 else self.num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``z``: shape ``(m,)`` for a binary net, ``(m, num_classes)`` otherwise."""
        z = self.forward_net(x)
        return z.squeeze(-1) if self.binary else z

    def cost(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy cost ``J = -1/m sum y log(a)`` (binary: ``+ (1-y) log(1-a)``); with
        ``class_weights`` ``w``, ``J = sum_i w[y_i] L_i / sum_i w[y_i]``."""
        w = self.class_weight
        if not self.binary:
            return F.cross_entropy(outputs, y, weight=None if w is None else w.to(outputs.dtype))
        if w is None:
            return F.binary_cross_entropy_with_logits(outputs, y.to(outputs.dtype))
        losses = F.binary_cross_entropy_with_logits(outputs, y.to(outputs.dtype), reduction="none")
        wy = w.to(outputs.dtype)[y.long()]
        return (wy * losses).sum() / wy.sum()

    def predict_labels(self, logits: Tensor) -> Tensor:
        """Class labels: ``a > 0.5`` (i.e. ``z > 0``) for binary, ``argmax`` otherwise."""
        return (logits > 0).long() if self.binary else logits.argmax(dim=-1)

    def predict_proba(self, outputs: Tensor) -> Tensor:
        """Class probabilities, shape ``(m, num_classes)``."""
        if self.binary:
            p = torch.sigmoid(outputs.float())
            return torch.stack([1 - p, p], dim=-1)
        return torch.softmax(outputs.float(), dim=-1)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """One test batch for the split's scorer: ``{"cost", "preds", "targets"}``."""
        cost, logits, y = self.model_step(batch)
        return {"cost": cost, "preds": self.predict_labels(logits), "targets": y}


def _check_class_weights(class_weights: Sequence[float] | None, num_classes: int) -> None:
    """Refuse class weights of the wrong length, negative or non-finite, or all 0."""
    if class_weights is None:
        return
    weights = [float(w) for w in class_weights]
    if len(weights) != num_classes:
        raise ValueError(
            f"class_weights={weights} has {len(weights)} weights, but the data has {num_classes} "
            f"classes; give one weight per class in the data's class order (0..{num_classes - 1})."
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise ValueError(
            f"class_weights={weights}: weights must be finite and >= 0, and not all 0 (1 = the "
            "usual cost, 10 = that class's examples count ten times)."
        )
