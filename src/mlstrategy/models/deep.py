"""Deep neural networks (L-layer MLPs) as in the course: He init, dropout, L2, batch norm.

The network is ``[LINEAR -> (BATCH NORM) -> ACTIVATION -> (DROPOUT)] x (L-1) -> LINEAR``,
with the output read through a sigmoid (one unit, two classes) or a softmax (C classes) by
the cost in :class:`~mlstrategy.models.classifier.ClassifierModule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor, nn

from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.init import InitName, check_init, initialize
from mlstrategy.models.regressor import RegressorModule

Activation = Literal["relu", "tanh", "sigmoid", "leaky_relu", "linear"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,  # the course's max(0.01 z, z)
    # g(z) = z: the course's "why non-linear activations" lesson. Any number of linear layers
    # compose to one linear function, so the net is no more than logistic regression.
    "linear": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """The activation ``g`` called ``name``; ``ValueError`` for an unknown name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is not one of {list(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


def check_layer_dims(layer_dims: Sequence[int], arg: str = "layer_dims") -> list[int]:
    """Hidden-layer sizes as a list; ``ValueError`` if empty or not all >= 1."""
    dims = list(layer_dims)
    if not dims:
        raise ValueError(
            f"{arg}=[] has no hidden layer; a deep net needs at least one, e.g. [64, 32]. For "
            "no hidden layer use mlstrategy.models.SoftmaxRegression (or LogisticRegression)."
        )
    if any(int(n) != n or n < 1 for n in dims):
        raise ValueError(f"{arg}={dims}: every hidden layer needs a whole number of units >= 1.")
    return [int(n) for n in dims]


def keep_probs(
    keep_prob: float | Sequence[float], n_layers: int, arg: str = "keep_prob"
) -> list[float]:
    """One keep probability per hidden layer, from one value or a list of ``n_layers`` values.

    Raises ``ValueError`` when a value is outside ``(0, 1]`` or the list has the wrong length.
    """
    probs = (
        [float(keep_prob)] * n_layers if isinstance(keep_prob, (int, float)) else list(keep_prob)
    )
    if len(probs) != n_layers:
        raise ValueError(
            f"{arg}={probs} has {len(probs)} values for {n_layers} hidden layers; give one "
            "value for all of them or one per hidden layer."
        )
    for p in probs:
        if not 0 < p <= 1:
            raise ValueError(
                f"{arg}={p} must be in (0, 1] (1 = no dropout; 0.8 drops 20% of units)."
            )
    return probs


def hidden_layer(
    n_in: int, n_out: int, activation: str, keep_prob: float, batch_norm: bool
) -> nn.Sequential:
    """One hidden layer: ``Z = W A + b``, ``(Z_norm = gamma Z_hat + beta)``, ``A = g(Z)``, dropout.

    With batch norm, ``b`` is left out: the mean subtraction cancels it and ``beta`` takes its
    role (course, week 3). Dropout is inverted dropout (``torch.nn.Dropout``): in training each
    unit is kept with probability ``keep_prob`` and the survivors are divided by ``keep_prob``
    so ``E[A]`` is unchanged; in eval mode it does nothing.
    """
    layers: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(n_out))
    layers.append(make_activation(activation))
    if keep_prob < 1:
        layers.append(nn.Dropout(p=1 - keep_prob))
    return nn.Sequential(*layers)


class HeadedNet(nn.Module):
    """A network split into ``features`` (up to the output layer) and ``head`` (the output layer).

    The transfer-learning interface of the toolkit's networks: ``forward_features`` gives the
    ``num_features`` activations the output layer reads (``A[L-1]``), ``forward_head`` the
    output layer's ``Z[L]``, and :meth:`reset_head` replaces the output layer for a new task
    (the course's "delete the last layer and its weights").
    """

    features: nn.Module
    head: nn.Linear
    num_features: int
    init: InitName

    def forward_features(self, x: Tensor) -> Tensor:
        """``A[L-1]``, shape ``(m, num_features)``."""
        return self.features(x)

    def forward_head(self, a: Tensor) -> Tensor:
        """``Z[L] = W[L] A[L-1] + b[L]``."""
        return self.head(a)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_head(self, n_y: int) -> None:
        """Replace the output layer by a new one with ``n_y`` units, initialized like the rest."""
        self.head = nn.Linear(self.num_features, n_y).to(self.head.weight.device)
        initialize(self.head, self.init)


class MLP(HeadedNet):
    """The plain L-layer network a :class:`DeepNet` trains (no normalization, no cost).

    ``forward_features`` returns ``A[L-1]``, the last hidden layer's activations (see
    :class:`HeadedNet`).

    Args:
        n_x: Input features (inputs are flattened).
        layer_dims: Hidden-layer sizes ``n[1], ..., n[L-1]``.
        n_y: Output units.
        activation: Hidden activation ``g``.
        keep_prob: Dropout keep probability, one for all hidden layers or one per layer.
        batch_norm: Normalize each hidden ``Z`` before the activation.
        init: Weight initialization (see :func:`~mlstrategy.models.init.init_std`).

    Example:
        >>> import torch
        >>> net = MLP(4, [5, 3], 2)
        >>> net(torch.zeros(7, 4)).shape
        torch.Size([7, 2])
    """

    def __init__(
        self,
        n_x: int,
        layer_dims: Sequence[int],
        n_y: int,
        activation: Activation = "relu",
        keep_prob: float | Sequence[float] = 1.0,
        batch_norm: bool = False,
        init: InitName = "he",
    ) -> None:
        super().__init__()
        dims = check_layer_dims(layer_dims)
        probs = keep_probs(keep_prob, len(dims))
        check_init(init)
        make_activation(activation)
        self.init = init
        sizes = [n_x, *dims]
        self.features = nn.Sequential(
            nn.Flatten(),
            *(
                hidden_layer(sizes[i], sizes[i + 1], activation, probs[i], batch_norm)
                for i in range(len(dims))
            ),
        )
        self.num_features = dims[-1]
        self.head = nn.Linear(self.num_features, n_y)
        initialize(self, init)


class DeepNet(ClassifierModule):
    """An L-layer deep neural network classifier (course 1 week 4, course 2 weeks 1-3).

    Hidden layers are ``LINEAR -> (BATCH NORM) -> ACTIVATION -> (DROPOUT)``; the output layer
    has one sigmoid unit for two classes or a softmax over ``num_classes``. Regularize with
    ``keep_prob`` (inverted dropout) and ``l2_lambda`` (L2, in :class:`ClassifierModule`).

    Args:
        input_shape: Shape of one example (flattened to ``n_x`` inputs); from the data.
        num_classes: Number of classes; from the data.
        layer_dims: Hidden-layer sizes, like the course's ``layers_dims`` without the input and
            output sizes (those come from the data), e.g. ``[20, 7, 5]``.
        activation: Hidden activation: ``relu``, ``tanh``, ``sigmoid``, ``leaky_relu`` or
            ``linear`` (``g(z) = z``: the layers then compose to one linear function, so the
            net can draw no better boundary than logistic regression; for the lesson only).
        keep_prob: Inverted-dropout keep probability in (0, 1]: one value for every hidden layer
            or one per hidden layer; 1 = no dropout.
        batch_norm: Batch-normalize each hidden ``Z`` before the activation (learnable ``gamma``
            and ``beta``, batch statistics in training, running averages at eval).
        init: Weight initialization: ``he`` (``randn * sqrt(2/n[l-1])``), ``xavier``
            (``sqrt(1/n[l-1])``), ``small_random`` (``* 0.01``) or ``zeros``.
        **kwargs: Cost and optimizer settings of :class:`ClassifierModule` (``optimizer``,
            ``learning_rate``, ``l2_lambda``, ``lr_decay``, ...).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        layer_dims: Sequence[int] = (64, 32),
        activation: Activation = "relu",
        keep_prob: float | Sequence[float] = 1.0,
        batch_norm: bool = False,
        init: InitName = "he",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        self.net = MLP(
            math.prod(self.input_shape),
            layer_dims,
            self.output_units,
            activation=activation,
            keep_prob=keep_prob,
            batch_norm=batch_norm,
            init=init,
        )


class DeepRegressor(RegressorModule):
    """An L-layer deep neural network with one linear output unit: ``y_hat = Z[L]``.

    The network of :class:`DeepNet` (the same :class:`MLP`, hidden layers ``LINEAR -> (BATCH
    NORM) -> ACTIVATION -> (DROPOUT)``, He init, L2 by ``l2_lambda``) trained on the squared
    error of :class:`~mlstrategy.models.regressor.RegressorModule` instead of cross-entropy.

    Args:
        input_shape: Shape of one example (flattened to ``n_x`` inputs); from the data.
        num_classes: 0 (a real-valued target); from the data.
        layer_dims: Hidden-layer sizes, e.g. ``[64, 64]``.
        activation: Hidden activation: ``relu``, ``tanh``, ``sigmoid``, ``leaky_relu`` or
            ``linear`` (``g(z) = z``: then no better than linear regression).
        keep_prob: Inverted-dropout keep probability in (0, 1], one value or one per hidden
            layer; 1 = no dropout.
        batch_norm: Batch-normalize each hidden ``Z`` before the activation.
        init: ``he``, ``xavier``, ``small_random`` or ``zeros``.
        **kwargs: Settings of :class:`~mlstrategy.models.regressor.RegressorModule`
            (``standardize_target``, ``optimizer``, ``learning_rate``, ``l2_lambda``, ...).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int = 0,
        layer_dims: Sequence[int] = (64, 32),
        activation: Activation = "relu",
        keep_prob: float | Sequence[float] = 1.0,
        batch_norm: bool = False,
        init: InitName = "he",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        self.net = MLP(
            math.prod(self.input_shape),
            layer_dims,
            self.output_units,
            activation=activation,
            keep_prob=keep_prob,
            batch_norm=batch_norm,
            init=init,
        )
