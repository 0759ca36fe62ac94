"""Convolutional networks for 1-D sequences (MNIST-1D) and 2-D images (digits, image folders).

Each conv block is ``CONV -> (BATCH NORM) -> ACTIVATION -> (POOL) -> (DROPOUT)``; the feature
map is then pooled (or flattened) into a vector, optionally passed through dense hidden layers
(:func:`~mlstrategy.models.deep.hidden_layer`), and read by one linear output layer: the head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from torch import nn

from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.deep import (
    Activation,
    HeadedNet,
    hidden_layer,
    keep_probs,
    make_activation,
)
from mlstrategy.models.init import InitName, check_init, initialize
from mlstrategy.models.regressor import RegressorModule

PoolName = Literal["max", "avg"]
GlobalPoolName = Literal["avg", "max", "flatten"]

# Layer types by the number of spatial dimensions of the input.
_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_POOL = {
    ("max", 1): nn.MaxPool1d,
    ("max", 2): nn.MaxPool2d,
    ("avg", 1): nn.AvgPool1d,
    ("avg", 2): nn.AvgPool2d,
}
_GLOBAL_POOL = {
    ("max", 1): nn.AdaptiveMaxPool1d,
    ("max", 2): nn.AdaptiveMaxPool2d,
    ("avg", 1): nn.AdaptiveAvgPool1d,
    ("avg", 2): nn.AdaptiveAvgPool2d,
}


def _per_block(value: int | Sequence[int], n: int, arg: str) -> list[int]:
    values = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
    if len(values) != n or any(v < 1 for v in values):
        raise ValueError(
            f"{arg}={value!r} must be one whole number >= 1 or one per conv block ({n} blocks)."
        )
    return values


def _check_choices(kernel_size: int, pool: str, global_pool: str) -> None:
    if kernel_size < 1:
        raise ValueError(f"kernel_size={kernel_size} must be >= 1.")
    if pool not in ("max", "avg"):
        raise ValueError(f"pool={pool!r} is not one of ['max', 'avg'].")
    if global_pool not in ("avg", "max", "flatten"):
        raise ValueError(f"global_pool={global_pool!r} is not one of ['avg', 'max', 'flatten'].")


class CNN(HeadedNet):
    """The plain convolutional network a :class:`ConvNet` trains.

    Exposes the transfer-learning interface of :class:`~mlstrategy.models.deep.HeadedNet`:
    ``forward_features`` (everything up to the output layer: a vector of ``num_features`` per
    example), ``forward_head`` (the output layer) and ``reset_head`` (a new output layer).

    Args:
        input_shape: ``(channels, length)`` for sequences or ``(channels, height, width)``
            for images.
        n_y: Output units.
        channels: Output channels of each conv block.
        kernel_size: Filter size ``f`` of every convolution ("same" padding, stride 1).
        pool: ``max`` or ``avg`` pooling inside the blocks.
        pool_sizes: Pooling window (and stride) after each block: one value for all blocks or
            one per block; 1 = no pooling after that block.
        global_pool: How the last feature map becomes a vector: ``avg`` or ``max`` over
            positions (translation-invariant), or ``flatten`` (keeps where a pattern was).
        hidden_dims: Sizes of dense hidden layers between the features and the output layer.
        activation: Activation ``g`` of every block and hidden layer.
        keep_prob: Inverted-dropout keep probability: one value, or one per conv block then
            per hidden layer.
        batch_norm: Batch-normalize every convolution's and hidden layer's ``Z``.
        init: Weight initialization (see :func:`~mlstrategy.models.init.init_std`).

    Example:
        >>> import torch
        >>> net = CNN((1, 40), 10, channels=[8, 16])
        >>> net(torch.zeros(3, 1, 40)).shape, net.num_features
        (torch.Size([3, 10]), 16)
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_y: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: PoolName = "max",
        pool_sizes: int | Sequence[int] = 2,
        global_pool: GlobalPoolName = "avg",
        hidden_dims: Sequence[int] = (),
        activation: Activation = "relu",
        keep_prob: float | Sequence[float] = 1.0,
        batch_norm: bool = False,
        init: InitName = "he",
    ) -> None:
        super().__init__()
        shape = [int(s) for s in input_shape]
        if len(shape) not in (2, 3):
            raise ValueError(
                f"input_shape={tuple(shape)}: a ConvNet takes (channels, length) sequences or "
                "(channels, height, width) images. For MNIST-1D set the source's as_sequence: "
                "true; for digits set flatten: false."
            )
        dims = len(shape) - 1
        channels = [int(c) for c in channels]
        if not channels or any(c < 1 for c in channels):
            raise ValueError(
                f"channels={channels} needs at least one conv block, each >= 1 channel."
            )
        _check_choices(kernel_size, pool, global_pool)
        pools = _per_block(pool_sizes, len(channels), "pool_sizes")
        hidden = [int(n) for n in hidden_dims]
        if any(n < 1 for n in hidden):
            raise ValueError(f"hidden_dims={hidden}: every hidden layer needs >= 1 unit.")
        probs = keep_probs(keep_prob, len(channels) + len(hidden))
        check_init(init)
        make_activation(activation)
        self.init = init

        layers: list[nn.Module] = []
        c_in, spatial = shape[0], shape[1:]
        for c_out, pool_size, p in zip(channels, pools, probs, strict=False):
            layers.append(
                _CONV[dims](c_in, c_out, kernel_size, padding="same", bias=not batch_norm)
            )
            if batch_norm:
                layers.append(_BATCH_NORM[dims](c_out))
            layers.append(make_activation(activation))
            if pool_size > 1:
                layers.append(_POOL[pool, dims](pool_size))
                spatial = [s // pool_size for s in spatial]
                if min(spatial) < 1:
                    raise ValueError(
                        f"pool_sizes={pools} shrink input_shape={tuple(shape)} to nothing; use "
                        "fewer or smaller pools (1 = none after a block)."
                    )
            if p < 1:
                layers.append(nn.Dropout(p=1 - p))
            c_in = c_out
        if global_pool == "flatten":
            n_features = c_in * math.prod(spatial)
        else:
            layers.append(_GLOBAL_POOL[global_pool, dims](1))
            n_features = c_in
        layers.append(nn.Flatten())
        for n_out, p in zip(hidden, probs[len(channels) :], strict=True):
            layers.append(hidden_layer(n_features, n_out, activation, p, batch_norm))
            n_features = n_out
        self.features = nn.Sequential(*layers)
        self.num_features = n_features
        self.head = nn.Linear(n_features, n_y)
        initialize(self, init)


class ConvNet(ClassifierModule):
    """A convolutional classifier for sequences ``(C, L)`` or images ``(C, H, W)``.

    The same switches as :class:`~mlstrategy.models.deep.DeepNet` (``keep_prob``,
    ``batch_norm``, ``init``, and ``l2_lambda`` on every convolution and dense weight).

    Args:
        input_shape: ``(channels, length)`` or ``(channels, height, width)``; from the data.
        num_classes: Number of classes; from the data.
        channels: Output channels of each conv block, e.g. ``[32, 64]``.
        kernel_size: Filter size of every convolution ("same" padding, stride 1).
        pool: ``max`` or ``avg`` pooling inside the blocks.
        pool_sizes: Pooling window after each block: one value for all, or one per block;
            1 = no pooling after that block.
        global_pool: ``avg`` or ``max`` over the last feature map's positions, or ``flatten``.
        hidden_dims: Dense hidden layers between the conv features and the output layer.
        activation: ``relu``, ``tanh``, ``sigmoid`` or ``leaky_relu``.
        keep_prob: Inverted-dropout keep probability in (0, 1]: one value, or one per conv block
            then per hidden layer.
        batch_norm: Batch-normalize every convolution's and hidden layer's ``Z``.
        init: ``he``, ``xavier``, ``small_random`` or ``zeros``.
        **kwargs: Cost and optimizer settings of :class:`ClassifierModule`.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: PoolName = "max",
        pool_sizes: int | Sequence[int] = 2,
        global_pool: GlobalPoolName = "avg",
        hidden_dims: Sequence[int] = (),
        activation: Activation = "relu",
        keep_prob: float | Sequence[float] = 1.0,
        batch_norm: bool = False,
        init: InitName = "he",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        self.net = CNN(
            self.input_shape,
            self.output_units,
            channels=channels,
            kernel_size=kernel_size,
            pool=pool,
            pool_sizes=pool_sizes,
            global_pool=global_pool,
            hidden_dims=hidden_dims,
            activation=activation,
            keep_prob=keep_prob,
            batch_norm=batch_norm,
            init=init,
        )


class ConvRegressor(RegressorModule):
    """A convolutional network with one linear output unit, for a number per sequence or image.

    The network of :class:`ConvNet` (the same :class:`CNN`, ``keep_prob``, ``batch_norm``,
    ``init``, ``l2_lambda`` on every convolution and dense weight) trained on the squared
    error of :class:`~mlstrategy.models.regressor.RegressorModule`.

    Args:
        input_shape: ``(channels, length)`` or ``(channels, height, width)``; from the data.
        num_classes: 0 (a real-valued target); from the data.
        channels: Output channels of each conv block, e.g. ``[32, 64]``.
        kernel_size: Filter size of every convolution ("same" padding, stride 1).
        pool: ``max`` or ``avg`` pooling inside the blocks.
        pool_sizes: Pooling window after each block: one value for all, or one per block.
        global_pool: ``avg`` or ``max`` over the last feature map's positions, or ``flatten``.
        hidden_dims: Dense hidden layers between the conv features and the output unit.
        activation: ``relu``, ``tanh``, ``sigmoid`` or ``leaky_relu``.
        keep_prob: Inverted-dropout keep probability in (0, 1].
        batch_norm: Batch-normalize every convolution's and hidden layer's ``Z``.
        init: ``he``, ``xavier``, ``small_random`` or ``zeros``.
        **kwargs: Settings of :class:`~mlstrategy.models.regressor.RegressorModule`.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int = 0,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: PoolName = "max",
        pool_sizes: int | Sequence[int] = 2,
        global_pool: GlobalPoolName = "avg",
        hidden_dims: Sequence[int] = (),
        activation: Activation = "relu",
        keep_prob: float | Sequence[float] = 1.0,
        batch_norm: bool = False,
        init: InitName = "he",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        self.net = CNN(
            self.input_shape,
            self.output_units,
            channels=channels,
            kernel_size=kernel_size,
            pool=pool,
            pool_sizes=pool_sizes,
            global_pool=global_pool,
            hidden_dims=hidden_dims,
            activation=activation,
            keep_prob=keep_prob,
            batch_norm=batch_norm,
            init=init,
        )
