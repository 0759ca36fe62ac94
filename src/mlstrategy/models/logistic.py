"""Logistic regression: the course's first neural network (week 2)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from mlstrategy.models.classifier import ClassifierModule


class LogisticRegression(ClassifierModule):
    """``y_hat = a = sigmoid(w^T x + b)`` trained on the binary cross-entropy cost.

    ``w`` and ``b`` start at zero as in the course (logistic regression has no symmetry to
    break). The gradients are the course's ``dw = 1/m X (A - Y)^T``, ``db = 1/m sum(A - Y)``.

    Args:
        input_shape: Shape of one example (flattened to ``n_x`` features); from the data.
        num_classes: Must be 2; from the data.
        **kwargs: Optimizer settings of :class:`ClassifierModule` (``optimizer``,
            ``learning_rate``, ...).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int = 2, **kwargs: Any) -> None:
        if num_classes != 2:
            raise ValueError(
                f"LogisticRegression is a binary classifier but the data has {num_classes} "
                "classes. Use mlstrategy.models.SoftmaxRegression for multi-class data."
            )
        super().__init__(input_shape, num_classes, **kwargs)
        linear = nn.Linear(math.prod(self.input_shape), 1)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        self.net = nn.Sequential(nn.Flatten(), linear)
