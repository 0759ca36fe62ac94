"""Softmax regression: logistic regression generalized to C classes."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from mlstrategy.models.classifier import ClassifierModule


class SoftmaxRegression(ClassifierModule):
    """``z = W x + b``, ``a = softmax(z)``, trained on the cross-entropy cost ``-sum y log a``.

    Weights start at zero: the cost is convex, so, as in logistic regression, there is no
    symmetry to break. ``dZ = A - Y`` as in the course.

    Args:
        input_shape: Shape of one example (flattened to ``n_x`` features); from the data.
        num_classes: Number of classes ``C``; from the data.
        **kwargs: Optimizer settings of :class:`ClassifierModule` (``optimizer``,
            ``learning_rate``, ...).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        linear = nn.Linear(math.prod(self.input_shape), self.num_classes)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        self.net = nn.Sequential(nn.Flatten(), linear)

    @property
    def output_units(self) -> int:
        return self.num_classes
