"""The LightningModule every classifier in the toolkit trains with."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import nn
from torchmetrics import MeanMetric

from mlstrategy.data.normalization import Standardize
from mlstrategy.metrics.classification import classification_metrics, per_class_metrics
from mlstrategy.models.init import WEIGHT_LAYERS
from mlstrategy.models.optim import OptimizerName, build_optimizer
from mlstrategy.models.schedules import LRDecayName, build_lr_decay, check_lr_decay


class ClassifierModule(L.LightningModule):
    """Trains ``self.net`` (a plain ``nn.Module`` mapping inputs to logits) as a classifier.

    Subclasses build ``self.net``; this class owns what every classifier shares: input
    normalization, the cost, the optimizer, and the per-epoch learning curve. With
    ``num_classes == 2`` and one output unit the cost is binary cross-entropy on
    ``sigmoid(z)``; otherwise it is softmax cross-entropy.

    Logged: ``cost/train`` (mean training-batch cross-entropy of the epoch, without the L2
    term, so it reads on the same scale as dev) and ``cost/dev`` per epoch, on one TensorBoard
    chart (Custom Scalars tab) with the epoch as x-axis, ``lr`` (the rate the epoch trained
    with), all kept in
    :attr:`history` for the report's learning curve; after training, ``{split}/loss``,
    ``{split}/accuracy``, ``{split}/error``, precision, recall and F1 (multi-class: also their
    micro, macro and weighted averages) for each split evaluated with
    :meth:`~lightning.pytorch.Trainer.test`. The per-class scores and confusion matrix of the
    last evaluated split are left in :attr:`eval_details`.

    Args:
        input_shape: Shape of one example; filled in from the data module by the CLI.
        num_classes: Number of classes; filled in from the data module by the CLI.
        optimizer: ``gd`` (batch / mini-batch / stochastic by batch size), ``momentum``,
            ``rmsprop``, ``adam`` or ``adamw``.
        learning_rate: ``alpha``.
        beta1: Momentum and Adam's first-moment decay.
        beta2: RMSprop and Adam's second-moment decay.
        epsilon: Numerical-stability term of RMSprop and Adam.
        weight_decay: Decoupled weight decay, ``adamw`` only.
        l2_lambda: The course's L2 regularization ``lambda`` (>= 0): the training cost becomes
            ``J + lambda/(2m) sum_l ||W[l]||^2`` over the weights of linear and convolution
            layers (not biases, not batch-norm ``gamma``/``beta``), so each gradient gains
            ``lambda/m W``. ``m`` is the number of training examples, also with mini-batches:
            each mini-batch's gradient is then an unbiased estimate of the full-batch one and
            the regularization strength does not change with the batch size. This differs from
            ``weight_decay`` in ``torch.optim.Adam`` only in scale (``lambda/m``), and from
            ``adamw``'s decoupled decay, which shrinks ``W`` outside the adaptive step.
        lr_decay: Learning-rate decay per epoch: ``none``, ``inverse_time``
            (``alpha0 / (1 + decay_rate * epoch)``), ``exponential`` (``decay_rate^epoch *
            alpha0``), ``inverse_sqrt`` (``decay_rate / sqrt(epoch + 1) * alpha0``) or ``step``
            (``alpha0 / (1 + decay_rate * floor(epoch / decay_interval))``).
        decay_rate: The schedule's constant; null = the course's example (1, or 0.95 for
            ``exponential``).
        compile: Run the network through ``torch.compile`` (worth it on a GPU for larger
            nets; the first steps pay the compile time). Checkpoints stay interchangeable.
        decay_interval: Epochs per step of the ``step`` schedule.
    """

    net: nn.Module

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        optimizer: OptimizerName = "adam",
        learning_rate: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.0,
        l2_lambda: float = 0.0,
        lr_decay: LRDecayName = "none",
        decay_rate: float | None = None,
        decay_interval: int = 1,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes}; a classifier needs at least 2 classes.")
        self.save_hyperparameters()
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        if not l2_lambda >= 0:
            raise ValueError(f"l2_lambda={l2_lambda} must be >= 0 (0 = no L2 regularization).")
        self.l2_lambda = l2_lambda
        check_lr_decay(lr_decay, decay_rate, decay_interval)
        self.train_size: int | None = None  # m for the L2 term; set when training starts
        # Fail on bad optimizer settings now, not after the data is loaded on the GPU.
        build_optimizer(
            optimizer,
            [nn.Parameter(torch.zeros(1))],
            learning_rate,
            beta1,
            beta2,
            epsilon,
            weight_decay,
        )
        self.input_norm = Standardize(self.input_shape)
        self.train_cost = MeanMetric()
        # In the checkpoint, so an epoch resumed from a mid-epoch checkpoint logs the same cost.
        self.train_cost.persistent(True)
        self.dev_cost = MeanMetric()
        self.eval_cost = MeanMetric()
        self.eval_metrics = classification_metrics(num_classes)
        self.eval_per_class = per_class_metrics(num_classes)
        self.eval_split = "test"
        self.eval_details: dict[str, torch.Tensor] = {}
        self.history: list[dict[str, float]] = []
        self._restored_history: list[dict[str, float]] = []
        self._dev_cost_value: float | None = None

    # ------------------------------------------------------------------------------- model
    @property
    def binary(self) -> bool:
        """True when the net has a single output unit read through a sigmoid."""
        return self.num_classes == 2 and self.output_units == 1

    @property
    def output_units(self) -> int:
        return 1 if self.num_classes == 2 else self.num_classes

    def configure_model(self) -> None:
        if self.hparams.get("compile") and "_compiled_net" not in self.__dict__:
            # Kept outside the module tree, so state_dict keys (and checkpoints) do not change.
            self.__dict__["_compiled_net"] = torch.compile(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``z``: shape ``(m,)`` for a binary net, ``(m, num_classes)`` otherwise."""
        net = self.__dict__.get("_compiled_net", self.net)
        z = net(self.input_norm(x))
        return z.squeeze(-1) if self.binary else z

    def cost(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy cost ``J = -1/m sum y log(a)`` (binary: ``+ (1-y) log(1-a)``)."""
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
        return F.cross_entropy(logits, y)

    def predict_labels(self, logits: torch.Tensor) -> torch.Tensor:
        """Class labels: ``a > 0.5`` (i.e. ``z > 0``) for binary, ``argmax`` otherwise."""
        return (logits > 0).long() if self.binary else logits.argmax(dim=-1)

    def predict_proba(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities, shape ``(m, num_classes)``."""
        if self.binary:
            p = torch.sigmoid(logits.float())
            return torch.stack([1 - p, p], dim=-1)
        return torch.softmax(logits.float(), dim=-1)

    def l2_penalty(self, m: int) -> torch.Tensor:
        """The course's L2 term ``lambda/(2m) sum_l ||W[l]||_F^2`` (weights only, no biases)."""
        weights = [layer.weight for layer in self.net.modules() if isinstance(layer, WEIGHT_LAYERS)]
        if not weights:
            return torch.zeros((), device=self.device)
        return self.l2_lambda / (2 * m) * torch.stack([w.pow(2).sum() for w in weights]).sum()

    # --------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        normalizer = getattr(datamodule, "input_normalizer", None)
        fitted = normalizer() if callable(normalizer) else None
        # Statistics come from the train split only; a checkpoint restored after setup
        # overwrites them with the ones saved at training time.
        if fitted is not None:
            self.input_norm.load_state_dict(fitted.state_dict())

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        cost = self.cost(self(x), y)
        # cost/train logs the cross-entropy alone, on the same scale as cost/dev.
        self.train_cost.update(cost.detach(), len(y))
        if self.l2_lambda:
            return cost + self.l2_penalty(self.train_size or len(y))
        return cost

    def on_train_start(self) -> None:
        self.train_size = _dataset_size(self.trainer.train_dataloader)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.dev_cost.update(self.cost(self(x), y), len(y))

    def on_validation_epoch_end(self) -> None:
        cost = self.dev_cost.compute()
        self.dev_cost.reset()
        if self.trainer.sanity_checking:
            return
        self._dev_cost_value = cost.item()
        # logger=False: the chart is written per epoch in on_train_epoch_end; this value is for
        # checkpointing, early stopping and the progress bar.
        self.log("cost/dev", cost, prog_bar=True, logger=False)

    def _current_lr(self) -> float:
        optimizers = self.trainer.optimizers
        return optimizers[0].param_groups[0]["lr"] if optimizers else 0.0

    def on_train_epoch_start(self) -> None:
        # Epoch-interval lr schedulers step on the epoch's last batch, before on_train_epoch_end,
        # so the rate this epoch trained with is read now.
        self._epoch_lr = self._current_lr()

    def on_train_epoch_end(self) -> None:
        cost = self.train_cost.compute()
        self.train_cost.reset()
        self.log("cost/train", cost, prog_bar=True, logger=False)
        curve = {"cost/train": cost.item()}
        if self._dev_cost_value is not None:
            curve["cost/dev"] = self._dev_cost_value
            self._dev_cost_value = None
        # A fit resumed mid-epoch skips on_train_epoch_start; the rate has not changed since.
        curve["lr"] = getattr(self, "_epoch_lr", None) or self._current_lr()
        for logger in self.loggers:
            logger.log_metrics(curve, step=self.current_epoch)
        self.history.append({"epoch": float(self.current_epoch), **curve})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["learning_curve"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored_history = list(checkpoint.get("learning_curve", []))

    def on_fit_start(self) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        # One learning curve per fit (a learning-rate search fits too); a resumed fit continues
        # the curve saved in its checkpoint.
        self.history, self._restored_history = self._restored_history, []

        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Train and dev cost on one chart: the course's picture for spotting overfitting
                # and the early-stopping point.
                chart = ["Multiline", ["cost/train", "cost/dev"]]
                layout = {"ML strategy": {"cost (train vs dev)": chart}}
                logger.experiment.add_custom_scalars(layout)

    # ------------------------------------------------------------------------- evaluation
    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.eval_cost.update(self.cost(logits, y), len(y))
        labels = self.predict_labels(logits)
        self.eval_metrics.update(labels, y)
        self.eval_per_class.update(labels, y)

    def on_test_epoch_end(self) -> None:
        # Computed once over the whole split (states summed over batches and devices), never
        # as a mean of per-batch scores.
        values = self.eval_metrics.compute()
        values["loss"] = self.eval_cost.compute()
        values["error"] = 1 - values["accuracy"]
        self.eval_details = {k: v.detach().cpu() for k, v in self.eval_per_class.compute().items()}
        self.eval_metrics.reset()
        self.eval_per_class.reset()
        self.eval_cost.reset()
        self.log_dict({f"{self.eval_split}/{k}": v for k, v in values.items()})

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(self(x))

    def configure_optimizers(self) -> OptimizerLRScheduler:
        hp = self.hparams
        optimizer = build_optimizer(
            hp["optimizer"],
            self.parameters(),
            hp["learning_rate"],
            hp["beta1"],
            hp["beta2"],
            hp["epsilon"],
            hp["weight_decay"],
        )
        decay = build_lr_decay(optimizer, hp["lr_decay"], hp["decay_rate"], hp["decay_interval"])
        if decay is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "epoch"}}


def _dataset_size(loader: Any) -> int | None:
    """Examples per epoch of a train loader (in-memory batches or a DataLoader), if known."""
    for data in (getattr(loader, "x", None), getattr(loader, "dataset", None)):
        if data is not None and hasattr(data, "__len__"):
            return len(data)
    return None
