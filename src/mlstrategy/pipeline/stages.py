"""The stages of a pipeline: each reads named values and writes one.

A stage is either a model trained on its own intermediate labels (:class:`ModelStage`: a
:class:`~mlstrategy.models.classifier.ClassifierModule` fit with a Lightning ``Trainer``) or a
fixed, hand-designed function (:class:`FixedStage`). Stages are trained on ground-truth
inputs (the intermediate labels of the stages before them), never on their predictions, so
each can be built and judged on its own.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from mlstrategy.models.classifier import ClassifierModule

#: Builds a classifier for an input shape and a number of classes, e.g. ``ConvNet`` with its
#: hyperparameters bound (a recipe gives it as ``class_path`` + ``init_args``).
ModelFactory = Callable[[tuple[int, ...], int], ClassifierModule]
NormalizeName = Literal["per_channel", "per_feature", "none"]


class Stage:
    """One step of a pipeline: reads the values named ``reads``, writes the value ``writes``.

    Subclasses implement :meth:`predict`, and :meth:`fit` when they learn from data.

    Args:
        name: Name of the stage in tables (e.g. ``localize``).
        reads: Names of the values the stage takes, in the order :meth:`predict` takes them.
        writes: Name of the value the stage produces: also the name of its intermediate label
            (ground truth) in the examples.
    """

    def __init__(self, name: str, reads: Sequence[str], writes: str) -> None:
        reads = tuple(reads)
        if not name:
            raise ValueError("name='' : a stage needs a name for the tables, e.g. 'localize'.")
        if not reads:
            raise ValueError(f"reads=() for stage {name!r}: a stage reads at least one value.")
        if writes in reads:
            raise ValueError(
                f"writes={writes!r} is also in reads={list(reads)} for stage {name!r}; a stage "
                "writes a new value."
            )
        self.name = name
        self.reads = reads
        self.writes = writes

    def fit(self, inputs: Sequence[Tensor], target: Tensor) -> None:
        """Learn from ground-truth ``inputs`` and this stage's intermediate label ``target``.

        The default does nothing: a fixed, hand-designed stage learns nothing.
        """

    def predict(self, *inputs: Tensor) -> Tensor:
        """The stage's output for a batch of examples (one tensor per name in ``reads``)."""
        raise NotImplementedError

    def wrong(self, predicted: Tensor, target: Tensor) -> Tensor | None:
        """Per-example mistakes, a bool tensor of shape ``(m,)``; None when the output has no
        right/wrong reading (e.g. an image).

        The default: an integer output is wrong when any of its elements differs from the
        target; a floating-point output has no right/wrong reading.
        """
        if predicted.is_floating_point() or target.is_floating_point():
            return None
        return (predicted != target).reshape(len(target), -1).any(dim=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, reads={list(self.reads)}, -> {self.writes!r})"


class FixedStage(Stage):
    """A hand-designed stage: a fixed function, nothing learned.

    Args:
        name: Name of the stage.
        function: Maps the values in ``reads`` (one tensor each, batched) to the output.
        reads: Names of the values the function takes, in order.
        writes: Name of the value it produces.

    Example:
        >>> double = FixedStage("double", lambda x: 2 * x, reads=["x"], writes="y")
        >>> double.predict(torch.tensor([1, 2]))
        tensor([2, 4])
    """

    def __init__(
        self, name: str, function: Callable[..., Tensor], reads: Sequence[str], writes: str
    ) -> None:
        super().__init__(name, reads, writes)
        self.function = function

    def predict(self, *inputs: Tensor) -> Tensor:
        return self.function(*inputs)


class ModelStage(Stage):
    """A stage that is a classifier trained on its own intermediate labels.

    :meth:`fit` builds the model for the input's shape and number of classes, fits input
    normalization on the training inputs, and trains it with a Lightning ``Trainer`` on
    in-memory batches for ``max(min_steps, epochs * m / batch_size)`` steps, so small training
    sets still get enough updates to converge. :meth:`predict` returns class labels.

    Args:
        name: Name of the stage.
        model: Builds the classifier, called as ``model(input_shape, num_classes)``.
        reads: The one value the classifier reads.
        writes: The class label it writes.
        num_classes: Number of classes.
        epochs: Passes over the training examples (at least ``min_steps`` steps are taken).
        min_steps: Fewest gradient steps, whatever the training-set size.
        batch_size: Mini-batch size.
        seed: Seed of the weights' initialization and the batch order.
        accelerator: Lightning accelerator: ``cpu``, ``gpu``, ``auto``, ...
        logger: A Lightning logger for the cost curve (cost per epoch), or None for none.
        normalize: Input standardization fit on the training inputs: ``per_channel`` (one
            mean and standard deviation per image channel, as for images: a pixel that is
            always dark in training, like a clean digit's border, is not blown up by noise at
            test time), ``per_feature`` (one per input element, the data module's default) or
            ``none``.
    """

    def __init__(
        self,
        name: str,
        model: ModelFactory,
        reads: Sequence[str],
        writes: str,
        num_classes: int,
        epochs: int = 10,
        min_steps: int = 300,
        batch_size: int = 64,
        seed: int = 0,
        accelerator: str = "cpu",
        logger: Any = None,
        normalize: NormalizeName = "per_channel",
    ) -> None:
        super().__init__(name, reads, writes)
        if normalize not in ("per_channel", "per_feature", "none"):
            raise ValueError(
                f"normalize={normalize!r} is not one of ['per_channel', 'per_feature', 'none']."
            )
        if len(self.reads) != 1:
            raise ValueError(
                f"reads={list(self.reads)} for model stage {name!r}: a classifier reads exactly "
                "one value."
            )
        for arg, value, low in (
            ("num_classes", num_classes, 2),
            ("epochs", epochs, 1),
            ("min_steps", min_steps, 0),
            ("batch_size", batch_size, 1),
        ):
            if value < low:
                raise ValueError(f"{arg}={value} for model stage {name!r} must be >= {low}.")
        self.model = model
        self.num_classes = num_classes
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.seed = seed
        self.accelerator = accelerator
        self.logger = logger
        self.normalize = normalize
        self.module: ClassifierModule | None = None

    def steps_for(self, m: int) -> int:
        """Gradient steps for ``m`` training examples: ``max(min_steps, epochs * ceil(m/b))``."""
        return max(self.min_steps, self.epochs * math.ceil(m / self.batch_size))

    def fit(self, inputs: Sequence[Tensor], target: Tensor) -> None:
        import lightning as L

        from mlstrategy.data.batches import InMemoryBatches

        (x,) = inputs
        y = self.encode(target)
        L.seed_everything(self.seed, verbose=False)
        module = self.model(tuple(x.shape[1:]), self.num_classes)
        _fit_normalization(module, x.float(), self.normalize)
        trainer = L.Trainer(
            max_epochs=-1,
            max_steps=self.steps_for(len(x)),
            accelerator=self.accelerator,
            devices=1,
            logger=self.logger if self.logger is not None else False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic="warn",  # as every run: ops with no deterministic CUDA kernel warn
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        batches = InMemoryBatches(
            x.float(), y, batch_size=self.batch_size, shuffle=True, seed=self.seed
        )
        with warnings.catch_warnings():
            # Stages train for a fixed number of steps, without a dev split.
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
            trainer.fit(module, train_dataloaders=batches)
        self.module = module.cpu().eval()

    @torch.inference_mode()
    def predict(self, *inputs: Tensor) -> Tensor:
        if self.module is None:
            raise RuntimeError(f"Model stage {self.name!r} is not trained; call fit first.")
        (x,) = inputs
        labels = [self.module.predict_labels(self.module(chunk.float())) for chunk in x.split(4096)]
        return self.decode(torch.cat(labels))

    def encode(self, target: Tensor) -> Tensor:
        """The intermediate label as class indices ``0..num_classes-1`` (identity here)."""
        return target.long()

    def decode(self, labels: Tensor) -> Tensor:
        """Class indices back to the intermediate label's form (identity here)."""
        return labels


@torch.no_grad()
def _fit_normalization(module: ClassifierModule, x: Tensor, how: str) -> None:
    if how == "none":
        return
    module.input_norm.fit(x)
    if how == "per_channel" and x.ndim >= 3:
        # Statistics over examples and positions, one pair per channel (dim 1).
        dims = [0, *range(2, x.ndim)]
        mean = x.mean(dim=dims, keepdim=True)[0]
        std = x.std(dim=dims, keepdim=True, correction=0)[0].clamp_min(1e-8)
        module.input_norm.mean.copy_(mean.expand_as(module.input_norm.mean))
        module.input_norm.std.copy_(std.expand_as(module.input_norm.std))
