"""Linear regression: where the course starts gradient descent, before logistic regression."""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import Tensor, nn

from mlstrategy.models.regressor import RegressorModule


class LinearRegression(RegressorModule):
    """``y_hat = w^T x + b`` trained on the squared-error cost ``J = 1/(2m) sum (y_hat - y)^2``.

    ``w`` and ``b`` start at zero: the cost is convex (a quadratic bowl), so there is no
    symmetry to break and gradient descent reaches the one minimum, the normal equations'
    solution ``(X^T X)^-1 X^T y``. The gradients are the course's::

        dw = 1/m X (y_hat - y)^T        db = 1/m sum (y_hat - y)

    With ``optimizer: gd`` and ``batch_size: null`` this is batch gradient descent. Inputs and
    target are standardized (train split) by default, which makes the bowl round enough for a
    learning rate near 1; :meth:`coefficients` gives ``w`` and ``b`` back in the data's units.

    Args:
        input_shape: Shape of one example (flattened to ``n_x`` features); from the data.
        num_classes: 0 (a real-valued target); from the data.
        **kwargs: Settings of :class:`RegressorModule` (``standardize_target``,
            ``optimizer``, ``learning_rate``, ``l2_lambda``, ...).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int = 0, **kwargs: Any) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        linear = nn.Linear(math.prod(self.input_shape), 1)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        self.net = nn.Sequential(nn.Flatten(), linear)

    @torch.no_grad()
    def coefficients(self) -> tuple[Tensor, Tensor]:
        """``(w, b)`` in the data's units: ``y = w^T x + b`` on raw inputs and raw targets.

        Undoes both standardizations: with ``x' = (x - mu_x) / sigma_x`` and
        ``y = sigma_y y' + mu_y``, ``w = sigma_y w' / sigma_x`` and
        ``b = mu_y + sigma_y b' - w^T mu_x``.
        """
        linear = cast(nn.Linear, cast(nn.Sequential, self.net)[1])
        mu_x = self.input_norm.mean.reshape(-1)
        sigma_x = self.input_norm.std.reshape(-1)
        w = self.target_std * linear.weight.reshape(-1) / sigma_x
        b = self.target_mean + self.target_std * linear.bias.reshape(()) - w @ mu_x
        return w, b
