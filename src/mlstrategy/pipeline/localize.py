"""The stages of the digit-on-a-canvas pipeline: localize the digit, crop it, classify it.

Two localizers: :class:`TemplateLocalizer`, a hand-designed matched filter (needs almost no
data, but its accuracy has a ceiling set by how much the clutter looks like a digit), and
:class:`LearnedLocalizer`, a fully convolutional net trained on the position labels. The crop
is a fixed function; the classifier is any :class:`~mlstrategy.pipeline.stages.ModelStage`
trained on clean digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlstrategy.data.canvas import DIGIT_SIZE
from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.deep import Activation, make_activation
from mlstrategy.models.init import InitName, check_init, initialize
from mlstrategy.pipeline.stages import FixedStage, ModelFactory, ModelStage, Stage


def crop(canvas: Tensor, position: Tensor, size: int = DIGIT_SIZE) -> Tensor:
    """The ``size x size`` window of each canvas whose top-left pixel is at ``position``.

    Args:
        canvas: Images, shape ``(m, C, H, W)``.
        position: ``(row, col)`` per image, shape ``(m, 2)``, inside ``0..H-size``,
            ``0..W-size``.
        size: Side of the window.

    Returns:
        The crops, shape ``(m, C, size, size)``.

    Example:
        >>> canvas = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> crop(canvas, torch.tensor([[1, 2]]), size=2)
        tensor([[[[ 6.,  7.],
                  [10., 11.]]]])
    """
    m, _, height, width = canvas.shape
    position = position.long()
    if position.shape != (m, 2):
        raise ValueError(
            f"position has shape {tuple(position.shape)}; it needs one (row, col) per canvas, "
            f"shape ({m}, 2)."
        )
    low = int(position.min()) if m else 0
    high_r = int(position[:, 0].max()) if m else 0
    high_c = int(position[:, 1].max()) if m else 0
    if low < 0 or high_r > height - size or high_c > width - size:
        raise ValueError(
            f"position holds a corner outside the canvas (rows 0..{height - size}, cols "
            f"0..{width - size} for a {size}x{size} window on {height}x{width})."
        )
    offsets = torch.arange(size, device=canvas.device)
    rows = position[:, 0, None, None] + offsets[:, None]  # (m, size, 1)
    cols = position[:, 1, None, None] + offsets[None, :]  # (m, 1, size)
    # One gather for the whole batch: canvas[i, :, rows[i], cols[i]].
    batch = torch.arange(m, device=canvas.device)[:, None, None]
    return canvas.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def crop_stage(name: str = "crop") -> FixedStage:
    """The fixed crop stage: reads ``canvas`` and ``position``, writes ``digit``."""
    return FixedStage(name, crop, reads=("canvas", "position"), writes="digit")


def _position_wrong(predicted: Tensor, target: Tensor, tolerance: int) -> Tensor:
    # Chebyshev distance: off by more than `tolerance` pixels along either axis.
    return (predicted.long() - target.long()).abs().amax(dim=1) > tolerance


def _check_tolerance(tolerance: int) -> None:
    if tolerance < 0:
        raise ValueError(
            f"tolerance={tolerance} must be >= 0 (pixels a position may be off and still count "
            "as right; 0 = exact)."
        )


class TemplateLocalizer(Stage):
    """Hand-designed localizer: a matched filter with the average digit as its template.

    :meth:`fit` averages the 8x8 windows at the true positions of the training canvases (the
    average digit); :meth:`predict` correlates each canvas with that template and returns the
    best-scoring position. Nothing is learned beyond one average, so it works from a few
    examples, but clutter that looks like a digit fools it whatever the amount of data.

    Args:
        name: Name of the stage.
        tolerance: Pixels a predicted position may be off (along either axis) and still count
            as right in the stage's own error; 0 = exact.
    """

    def __init__(self, name: str = "localize", tolerance: int = 0) -> None:
        super().__init__(name, reads=("canvas",), writes="position")
        _check_tolerance(tolerance)
        self.tolerance = tolerance
        self.template: Tensor | None = None

    def fit(self, inputs: Sequence[Tensor], target: Tensor) -> None:
        (canvas,) = inputs
        self.template = crop(canvas.float(), target).mean(dim=0, keepdim=True)

    @torch.inference_mode()
    def predict(self, *inputs: Tensor) -> Tensor:
        if self.template is None:
            raise RuntimeError(f"{self.name!r}: fit the template first.")
        (canvas,) = inputs
        score = F.conv2d(canvas.float(), self.template)[:, 0]  # (m, H-7, W-7)
        best = score.flatten(1).argmax(dim=1)
        width = score.shape[-1]
        return torch.stack([best // width, best % width], dim=1)

    def wrong(self, predicted: Tensor, target: Tensor) -> Tensor:
        return _position_wrong(predicted, target, self.tolerance)


class PositionNet(nn.Module):
    """A fully convolutional net scoring every place an 8x8 box can take on the canvas.

    ``CONV("same") -> ACTIVATION`` blocks keep the canvas's size, then one ``box x box``
    convolution without padding gives one score per box position: ``(H-box+1) x (W-box+1)``
    logits, flattened (row-major), so position ``(r, c)`` is class ``r * (W-box+1) + c``.
    Weight sharing makes it translation-equivariant: what it learns at one place holds at all.

    Args:
        input_shape: ``(channels, height, width)`` of a canvas.
        channels: Output channels of each ``same`` convolution.
        kernel_size: Filter size of those convolutions.
        box: Side of the box being located.
        activation: Activation after each convolution.
        init: Weight initialization.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (16, 16),
        kernel_size: int = 3,
        box: int = DIGIT_SIZE,
        activation: Activation = "relu",
        init: InitName = "he",
    ) -> None:
        super().__init__()
        c_in, height, width = (int(s) for s in input_shape)
        if min(height, width) < box:
            raise ValueError(f"input_shape={tuple(input_shape)} is smaller than box={box}.")
        check_init(init)
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size, padding="same"),
                make_activation(activation),
            ]
            c_in = c_out
        layers += [nn.Conv2d(c_in, 1, box), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.num_positions = (height - box + 1) * (width - box + 1)
        initialize(self, init)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Localizer(ClassifierModule):
    """A classifier over the positions of a box on the canvas (one class per position).

    Args:
        input_shape: ``(channels, height, width)`` of a canvas; from the data.
        num_classes: Number of positions, ``(height-box+1) * (width-box+1)``.
        channels: Output channels of each ``same`` convolution of the :class:`PositionNet`.
        kernel_size: Their filter size.
        box: Side of the box being located (8 for scikit-learn's digits).
        activation: ``relu``, ``tanh``, ``sigmoid`` or ``leaky_relu``.
        init: ``he``, ``xavier``, ``small_random`` or ``zeros``.
        **kwargs: Cost and optimizer settings of :class:`ClassifierModule`.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: Sequence[int] = (16, 16),
        kernel_size: int = 3,
        box: int = DIGIT_SIZE,
        activation: Activation = "relu",
        init: InitName = "he",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        self.net = PositionNet(self.input_shape, channels, kernel_size, box, activation, init)
        if self.net.num_positions != num_classes:
            raise ValueError(
                f"num_classes={num_classes}, but a {box}x{box} box has "
                f"{self.net.num_positions} positions on input_shape={self.input_shape}."
            )

    @property
    def output_units(self) -> int:
        return self.num_classes  # one score per position, also when there are only two


class LearnedLocalizer(ModelStage):
    """Learned localizer: a position classifier (:class:`Localizer` by default) trained on
    the position labels; reads ``canvas``, writes ``position``.

    Args:
        canvas_size: Height and width of the canvases.
        model: Builds the position classifier as ``model(input_shape, num_positions)``; by
            default :class:`Localizer` with its defaults.
        name: Name of the stage.
        tolerance: Pixels a predicted position may be off and still count as right.
        **kwargs: Training settings of :class:`~mlstrategy.pipeline.stages.ModelStage`
            (``epochs``, ``min_steps``, ``batch_size``, ``seed``, ``accelerator``, ``logger``).
    """

    def __init__(
        self,
        canvas_size: int,
        model: ModelFactory | None = None,
        name: str = "localize",
        tolerance: int = 0,
        **kwargs: Any,
    ) -> None:
        _check_tolerance(tolerance)
        self.width = canvas_size - DIGIT_SIZE + 1
        if self.width < 2:
            raise ValueError(f"canvas_size={canvas_size} must be > {DIGIT_SIZE}.")
        super().__init__(
            name,
            model or Localizer,
            reads=("canvas",),
            writes="position",
            num_classes=self.width**2,
            **kwargs,
        )
        self.tolerance = tolerance

    def encode(self, target: Tensor) -> Tensor:
        return target[:, 0].long() * self.width + target[:, 1].long()

    def decode(self, labels: Tensor) -> Tensor:
        return torch.stack([labels // self.width, labels % self.width], dim=1)

    def wrong(self, predicted: Tensor, target: Tensor) -> Tensor:
        return _position_wrong(predicted, target, self.tolerance)
