"""The LightningModule every supervised model of the toolkit trains with."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn
from torchmetrics import Metric

from mlstrategy.data.normalization import Standardize
from mlstrategy.models.init import WEIGHT_LAYERS
from mlstrategy.models.optim import OptimizerName, build_optimizer
from mlstrategy.models.schedules import LRDecayName, build_lr_decay, check_lr_decay

COST_CURVE_KEY = "cost_curve"  # where a checkpoint keeps the cost per epoch
STEP_COSTS_KEY = "step_costs"  # each epoch's per-step training costs, in its cost-curve point
_PENDING_STEPS_KEY = "pending_step_costs"  # a mid-epoch checkpoint's steps of the open epoch
_PENDING_COST_KEY = "pending_train_cost"  # and the open epoch's weighted cost sum and count
_OLD_COST_CURVE_KEY = "learning_curve"  # the same, in checkpoints written before the rename


class _WeightedMean(Metric):
    """A weighted mean fed sums: ``update(total, count)`` adds ``total`` (a sum of
    ``value * weight``) and ``count`` (the sum of the weights); ``compute`` divides them.

    ``MeanMetric``'s states (same names, so checkpoint keys do not change), without its
    ``update``: that checks for NaN with ``if nans.any()`` (a host sync each call), and its
    ``nan_strategy="disable"``, which skips the check, also drops the weight (it replaces it by
    ones), so a batch of 5 would count as much as a batch of 64. This adds unchecked (the
    non-finite guard watches the cost). Sum-reduced across processes like ``MeanMetric``.
    """

    full_state_update = False
    mean_value: Tensor
    weight: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("mean_value", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, total: Tensor | float, count: Tensor | float) -> None:
        self.mean_value += total
        self.weight += count

    def compute(self) -> Tensor:
        return self.mean_value / self.weight


class SupervisedModule(L.LightningModule):
    """Trains ``self.net`` (a plain ``nn.Module``) on labelled examples; the shared base of
    :class:`~mlstrategy.models.ClassifierModule` and :class:`~mlstrategy.models.MultiTaskNet`.

    Subclasses build ``self.net`` and define :meth:`forward`, :meth:`cost`,
    :meth:`predict_proba` and ``test_step``. This class owns what they share: input
    normalization (fit on the train split), the L2 term, the optimizer and its learning-rate
    schedule, ``torch.compile``, and the cost curve (cost per epoch).

    Logged per epoch: ``cost/train`` (mean training-batch cost of the epoch, without the L2
    term, so it reads on the same scale as dev) and ``cost/dev``, on one TensorBoard chart
    (Custom Scalars tab) with the epoch as x-axis, and ``lr`` (the rate the epoch trained with).
    All three are kept in :attr:`cost_curve`, which checkpoints save and restore, with each
    epoch's per-step training costs (``step_costs``: the cost of every mini-batch, without the
    L2 term, in training order) for the report's smoothed per-step chart. The steps' costs stay
    on the device in a tensor buffer during the epoch and reach the host once, at its end, and
    ``cost/train``'s weighted sum is added up on the device (one in-place add a step) and
    reaches its metric once, at the epoch's end: no step adds a host-device synchronization.

    Args:
        input_shape: Shape of one example; filled in from the data module by the CLI.
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
        decay_interval: Epochs per step of the ``step`` schedule.
        compile: Run the network through ``torch.compile`` (worth it on a GPU for larger
            nets; the first steps pay the compile time). Checkpoints stay interchangeable.
    """

    net: nn.Module

    def __init__(
        self,
        input_shape: tuple[int, ...],
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
        # Every subclass's __init__ arguments too: they rebuild the model from a checkpoint.
        self.save_hyperparameters()
        self.input_shape = tuple(input_shape)
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
        self.train_cost = _WeightedMean()
        # Its states stay in checkpoints (older mid-epoch ones hold the open epoch's sum there);
        # it is fed once per epoch, so newer ones keep that sum under _PENDING_COST_KEY.
        self.train_cost.persistent(True)
        self._train_cost_sum = torch.zeros(())  # sum of cost * batch size, on the device
        self._train_cost_count = 0  # examples this epoch (a host int: no device op)
        self._restored_cost: tuple[float, int] = (0.0, 0)
        self.dev_cost = _WeightedMean()
        self.cost_curve: list[dict[str, Any]] = []
        self._restored_curve: list[dict[str, Any]] = []
        self._dev_cost_value: float | None = None
        self._step_buffer = torch.zeros(0)  # this epoch's step costs, on the training device
        self._steps_in_buffer = 0
        self._steps_before: list[float] = []  # the open epoch's steps from a checkpoint
        self._restored_steps: list[float] = []

    # ------------------------------------------------------------------------------- model
    def cost(self, outputs: Any, y: Tensor) -> Tensor:
        """The cost ``J`` of a batch's outputs against its labels (without the L2 term)."""
        raise NotImplementedError(f"{type(self).__name__} defines no cost.")

    def predict_proba(self, outputs: Any) -> Any:
        """Probabilities (or predicted values) from the outputs of :meth:`forward`."""
        raise NotImplementedError(f"{type(self).__name__} defines no predict_proba.")

    def configure_model(self) -> None:
        if self.hparams.get("compile") and "_compiled_net" not in self.__dict__:
            # Kept outside the module tree, so state_dict keys (and checkpoints) do not change.
            self.__dict__["_compiled_net"] = torch.compile(self.net)

    def forward_net(self, x: Tensor) -> Any:
        """The network's output on normalized inputs, through ``torch.compile`` when
        ``compile`` is set."""
        net = self.__dict__.get("_compiled_net", self.net)
        return net(self.input_norm(x))

    def model_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Any, Tensor]:
        """``(cost, outputs, targets)`` of one batch: the step training, dev and test share."""
        x, y = batch
        outputs = self(x)
        return self.cost(outputs, y), outputs, y

    def l2_penalty(self, m: int) -> Tensor:
        """The course's L2 term ``lambda/(2m) sum_l ||W[l]||_F^2`` over the weights that train
        (no biases; frozen weights cannot change)."""
        weights = [
            layer.weight
            for layer in self.net.modules()
            if isinstance(layer, WEIGHT_LAYERS) and layer.weight.requires_grad
        ]
        if not weights:
            return torch.zeros((), device=self.device)
        return self.l2_lambda / (2 * m) * torch.stack([w.pow(2).sum() for w in weights]).sum()

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: by default one, holding every parameter.

        Subclasses return several groups (``{"name", "params", "lr"}``) to train parts of the
        network at their own rates; the optimizer and its schedule are built around them.
        """
        return [{"params": list(self.parameters())}]

    def configure_optimizers(self) -> OptimizerLRScheduler:
        hp = self.hparams
        optimizer = build_optimizer(
            hp["optimizer"],
            self.param_groups(),
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

    # --------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        normalizer = getattr(datamodule, "input_normalizer", None)
        fitted = normalizer() if callable(normalizer) else None
        # Statistics come from the train split only; a checkpoint restored after setup
        # overwrites them with the ones saved at training time.
        if fitted is not None:
            self.input_norm.load_state_dict(fitted.state_dict())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        cost, _, y = self.model_step(batch)
        # cost/train logs the cost alone, on the same scale as cost/dev.
        self._add_train_cost(cost.detach(), len(y))
        self._record_step_cost(cost.detach())
        if self.l2_lambda:
            return cost + self.l2_penalty(self.train_size or len(y))
        return cost

    def _add_train_cost(self, cost: Tensor, n: int) -> None:
        """Add ``cost * n`` to the epoch's sum in place on the device (no sync, and none of
        torchmetrics' per-update work); :attr:`train_cost` receives the sum at the epoch's end."""
        if self._train_cost_sum.device != cost.device:
            self._train_cost_sum = self._train_cost_sum.to(cost.device)
        self._train_cost_sum.add_(cost * n)
        self._train_cost_count += n

    def _record_step_cost(self, cost: Tensor) -> None:
        """Copy the step's cost into the device buffer (a device-side copy: no sync)."""
        i = self._steps_in_buffer
        if i == len(self._step_buffer) or self._step_buffer.device != cost.device:
            grown = torch.zeros(max(64, 2 * i), dtype=torch.float32, device=cost.device)
            grown[:i] = self._step_buffer[:i].to(cost.device)
            self._step_buffer = grown
        self._step_buffer[i] = cost.float()
        self._steps_in_buffer = i + 1

    def _epoch_step_costs(self) -> list[float]:
        """The open epoch's step costs on the host (one copy from the device)."""
        steps = self._step_buffer[: self._steps_in_buffer].tolist()
        return [*self._steps_before, *steps]

    def on_train_start(self) -> None:
        self.train_size = _dataset_size(self.trainer.train_dataloader)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        cost, _, y = self.model_step(batch)
        self.dev_cost.update(cost * len(y), len(y))

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
        self.train_cost.update(self._train_cost_sum, self._train_cost_count)
        self._train_cost_sum.zero_()
        self._train_cost_count = 0
        cost = self.train_cost.compute()
        self.train_cost.reset()
        self.log("cost/train", cost, prog_bar=True, logger=False)
        point = {"cost/train": cost.item()}
        steps = self._epoch_step_costs()
        self._steps_in_buffer, self._steps_before = 0, []
        if self._dev_cost_value is not None:
            point["cost/dev"] = self._dev_cost_value
            self._dev_cost_value = None
        # A fit resumed mid-epoch skips on_train_epoch_start; the rate has not changed since.
        point["lr"] = getattr(self, "_epoch_lr", None) or self._current_lr()
        for logger in self.loggers:
            logger.log_metrics(point, step=self.current_epoch)
        self.cost_curve.append({"epoch": float(self.current_epoch), **point, STEP_COSTS_KEY: steps})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[COST_CURVE_KEY] = list(self.cost_curve)
        # A checkpoint taken inside an epoch keeps its steps so far (a sync, as saving is).
        checkpoint[_PENDING_STEPS_KEY] = self._epoch_step_costs()
        checkpoint[_PENDING_COST_KEY] = [self._train_cost_sum.item(), self._train_cost_count]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        curve = checkpoint.get(COST_CURVE_KEY, checkpoint.get(_OLD_COST_CURVE_KEY, []))
        self._restored_curve = list(curve)
        self._restored_steps = list(checkpoint.get(_PENDING_STEPS_KEY, []))
        total, count = checkpoint.get(_PENDING_COST_KEY, (0.0, 0))
        self._restored_cost = (float(total), int(count))

    def on_fit_start(self) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        # One cost curve per fit (a learning-rate search fits too); a resumed fit continues
        # the curve saved in its checkpoint.
        self.cost_curve, self._restored_curve = self._restored_curve, []
        self._steps_before = self._restored_steps
        self._restored_steps, self._steps_in_buffer = [], 0
        total, self._train_cost_count = self._restored_cost
        self._train_cost_sum, self._restored_cost = torch.tensor(total), (0.0, 0)

        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Train and dev cost on one chart: the course's picture for spotting overfitting
                # and the early-stopping point.
                chart = ["Multiline", ["cost/train", "cost/dev"]]
                layout = {"ML strategy": {"cost (train vs dev)": chart}}
                logger.experiment.add_custom_scalars(layout)

    # ------------------------------------------------------------------------- prediction
    def predict_step(self, batch: Any, batch_idx: int) -> Any:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(self(x))


def _dataset_size(loader: Any) -> int | None:
    """Examples per epoch of a train loader (in-memory batches or a DataLoader), if known."""
    for data in (getattr(loader, "x", None), getattr(loader, "dataset", None)):
        if data is not None and hasattr(data, "__len__"):
            return len(data)
    return None
