"""The LightningModule every supervised model of the toolkit trains with."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn

from mlstrategy.data.normalization import Standardize
from mlstrategy.models.cost_log import CloseSubRunsOnFailure, CostSubRuns, is_tensorboard
from mlstrategy.models.init import WEIGHT_LAYERS
from mlstrategy.models.optim import OptimizerName, build_optimizer
from mlstrategy.models.schedules import LRDecayName, build_lr_decay, check_lr_decay
from mlstrategy.run_folder import TENSORBOARD_DEV_RUN, TENSORBOARD_TRAIN_RUN

COST_CURVE_KEY = "cost_curve"  # where a checkpoint keeps the cost per epoch
STEP_COSTS_KEY = "step_costs"  # each epoch's per-step training costs, in its cost-curve point
_PENDING_STEPS_KEY = "pending_step_costs"  # a mid-epoch checkpoint's steps of the open epoch
_PENDING_COST_KEY = "pending_train_cost"  # and the open epoch's weighted cost sum and count
_PENDING_L2_KEY = "pending_l2_terms"  # and the L2 term of each of those steps
_OLD_COST_CURVE_KEY = "learning_curve"  # the same, in checkpoints written before the rename
# LightningModule's hooks that Lightning calls on every training step and that do nothing by
# default (the evaluation loops read their batch hooks' signatures, so those stay methods).
# Each call through Lightning's dispatcher (trainer/call.py _call_lightning_module_hook) costs
# a few microseconds (its name formatted, a profiler context entered), about 5 a training
# step; the dispatcher skips a hook that is not callable.
_EMPTY_BATCH_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_zero_grad",
    "on_after_backward",
    "on_before_optimizer_step",
)


class _CarriedCost(nn.Module):
    """Where older mid-epoch checkpoints kept the open epoch's weighted training-cost sum
    (``train_cost.mean_value``) and count (``train_cost.weight``, torchmetrics' ``MeanMetric``
    state names). Kept, always 0, so that the state dict's keys do not change and such
    checkpoints still load; :meth:`SupervisedModule.on_load_checkpoint` counts their sum."""

    in_summary = False  # bookkeeping, not a layer: the console's model summary leaves it out
    mean_value: Tensor
    weight: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_value", torch.tensor(0.0))
        self.register_buffer("weight", torch.tensor(0.0))


class SupervisedModule(L.LightningModule):
    """Trains ``self.net`` (a plain ``nn.Module``) on labelled examples; the shared base of
    :class:`~mlstrategy.models.ClassifierModule` and :class:`~mlstrategy.models.MultiTaskNet`.

    Subclasses build ``self.net`` and define :meth:`forward`, :meth:`cost`,
    :meth:`predict_proba` and ``test_step``. This class owns what they share: input
    normalization (fit on the train split), the L2 term, the optimizer and its learning-rate
    schedule, ``torch.compile``, and the cost curve (cost per epoch).

    Logged per epoch: ``cost/train`` (mean training-batch cost of the epoch, without the L2
    term, so it reads on the same scale as dev), ``cost/dev`` and ``lr`` (the rate the epoch
    trained with). All three are kept in :attr:`cost_curve`, which checkpoints save and
    restore, with each epoch's per-step training costs (``step_costs``: the cost of every
    mini-batch, without the L2 term, in training order) for the report's smoothed per-step
    chart.

    In TensorBoard the costs go to two sub-runs of the run, ``train/`` and ``dev/``
    (:class:`~mlstrategy.models.cost_log.CostSubRuns`), so tag ``cost`` is one chart with a
    train and a dev line per run; ``lr`` stays in the run's own events. The train sub-run also
    holds ``J``, the course's regularized cost ``cost + lambda/(2m) sum ||W||^2`` (the epoch's
    mean cost plus its steps' mean L2 term; with batch gradient descent it must fall every
    epoch), and per step (x-axis: the step) ``cost/step`` and ``J/step``, the raw mini-batch
    costs whose noise the epoch means hide. Other loggers get ``cost/train``, ``cost/dev``,
    ``J/train`` and ``lr``.

    No step adds a host-device synchronization, nor any device operation: each step's cost
    (and L2 term) is kept as the tensor it is, and at the epoch's end they are stacked, the
    epoch's weighted mean is taken on the device and the steps reach the host in one copy.

    Nor does a step pay for hooks that do nothing: LightningModule's empty per-step hooks
    (``on_train_batch_start``, ``on_train_batch_end``, ``on_before_zero_grad``,
    ``on_after_backward``, ``on_before_optimizer_step``) are None on the instance unless a
    subclass overrides them, so Lightning's dispatcher skips them. To add one, override it in
    a subclass, or assign a function to the instance (``model.on_train_batch_end = fn``).

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
        # Newer checkpoints keep the open epoch's sum under _PENDING_COST_KEY.
        self.train_cost = _CarriedCost()
        self._dev_costs: list[Tensor] = []  # this validation's batch costs (unread)
        self._dev_sizes: list[int] = []  # and batch sizes
        self.cost_curve: list[dict[str, Any]] = []
        self._restored_curve: list[dict[str, Any]] = []
        self._dev_cost_value: float | None = None
        self._step_costs: list[Tensor] = []  # this epoch's step costs, as computed (unread)
        self._step_l2: list[Tensor] = []  # and their L2 terms, when l2_lambda > 0
        self._step_sizes: list[int] = []  # and batch sizes (host ints: no device op)
        # The open epoch's steps from a mid-epoch checkpoint: costs, L2 terms, (sum, count).
        self._before: tuple[list[float], list[float], float, int] = ([], [], 0.0, 0)
        self._restored: tuple[list[float], list[float], float, int] = ([], [], 0.0, 0)
        self._sub_runs = CostSubRuns()
        # Set by NonFiniteGuard for the length of a fit: it reads each step's loss from here.
        self.guard_losses: list[Tensor] | None = None
        # Lightning's dispatcher skips a module hook that is not callable: the empty
        # per-batch ones this class's subclass does not override cost nothing then.
        for name in _EMPTY_BATCH_HOOKS:
            if getattr(type(self), name) is getattr(L.LightningModule, name):
                object.__setattr__(self, name, None)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name before and after every hook it calls, about 40
        # times a training step. nn.Module's __setattr__ first looks for a parameter, buffer
        # or submodule of that name (about 1.4 us a call, 4% of a small net's step); the
        # name is never one, so it is set as plain Python sets it (about 0.15 us).
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

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
    def configure_callbacks(self) -> list[Any]:
        """The gradient norm of each layer, logged per epoch when the trainer has a logger
        (:class:`~mlstrategy.callbacks.gradients.GradientNorms`), and the TensorBoard sub-runs
        closed when a fit fails (:class:`~mlstrategy.models.cost_log.CloseSubRunsOnFailure`)."""
        from mlstrategy.callbacks.gradients import GradientNorms

        # One of each per trainer: its later fits and tests (each calls this again) keep that
        # one, so Lightning has nothing to override and prints no notice.
        present = getattr(self._trainer, "callbacks", [])
        kinds = (GradientNorms, CloseSubRunsOnFailure)
        return [kind() for kind in kinds if not any(isinstance(c, kind) for c in present)]

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
        # cost/train is the cost alone, on the same scale as cost/dev. Keeping the detached
        # tensor is no device operation; the epoch's end reads them all at once.
        self._step_costs.append(cost.detach())
        self._step_sizes.append(y.shape[0])
        if not self.l2_lambda:
            return cost
        l2 = self.l2_penalty(self.train_size or len(y))
        self._step_l2.append(l2.detach())
        return cost + l2

    def on_before_backward(self, loss: Tensor) -> None:
        # The non-finite guard's copy of the loss, in a hook Lightning calls anyway (a callback
        # hook of the guard's own would cost a dispatch a step).
        losses = self.guard_losses
        if losses is not None:
            losses.append(loss.detach())

    def _open_epoch(self) -> tuple[list[float], list[float], float, int]:
        """The open epoch so far, on the host (one copy from the device): its steps' costs and
        L2 terms, the sum of cost * batch size and the examples it covers."""
        costs, l2, total, count = self._before
        costs, l2 = list(costs), list(l2)
        if not self._step_costs:
            return costs, l2, total, count
        rows = [torch.stack(self._step_costs).float()]
        if self._step_l2:
            rows.append(torch.stack(self._step_l2).float())
        host = torch.stack(rows).tolist()
        costs += host[0]
        l2 += host[1] if self._step_l2 else []
        total += _weighted_sum(host[0], self._step_sizes)
        return costs, l2, total, count + sum(self._step_sizes)

    def on_train_start(self) -> None:
        self.train_size = _dataset_size(self.trainer.train_dataloader)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        cost, _, y = self.model_step(batch)
        self._dev_costs.append(cost)
        self._dev_sizes.append(y.shape[0])

    def on_validation_epoch_end(self) -> None:
        costs, sizes = self._dev_costs, self._dev_sizes
        self._dev_costs, self._dev_sizes = [], []
        if self.trainer.sanity_checking:
            return
        # One copy from the device; a process whose share of the dev set is empty still joins
        # the sum across processes.
        total = _weighted_sum(torch.stack(costs).float().tolist(), sizes) if costs else 0.0
        self._dev_cost_value = self._weighted_mean(total, sum(sizes))
        # The chart is written per epoch in on_train_epoch_end; this value is for
        # checkpointing, early stopping and the progress bar.
        self._publish("cost/dev", self._dev_cost_value)

    def _weighted_mean(self, total: float, count: int) -> float:
        """``total / count`` over every process: both summed across processes (one reduction;
        none in a single process; NaN when there is no example at all).

        The weighted mean of the epoch's batch costs, each batch weighted by its size, so a
        last batch of 5 counts 5/64 of a full one. The sums are taken on the host, in double
        precision, from the one copy of the epoch's costs that the cost curve reads anyway:
        torchmetrics' ``update``, ``compute`` and ``reset`` cost about 0.13 ms an epoch each
        for the training and the dev cost, and even a device-side dot product and division
        are a few kernels more than this needs. Across processes the sum is
        ``strategy.reduce`` with ``sum``."""
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            both = torch.tensor([total, count], dtype=torch.float64, device=self.device)
            total, count = trainer.strategy.reduce(both, reduce_op="sum").tolist()
        return total / count if count else float("nan")

    def _current_lr(self) -> float:
        optimizers = self.trainer.optimizers
        return optimizers[0].param_groups[0]["lr"] if optimizers else 0.0

    def on_train_epoch_start(self) -> None:
        # Epoch-interval lr schedulers step on the epoch's last batch, before on_train_epoch_end,
        # so the rate this epoch trained with is read now.
        self._epoch_lr = self._current_lr()

    def on_train_epoch_end(self) -> None:
        steps, l2, total, count = self._open_epoch()
        self._step_costs, self._step_l2, self._step_sizes = [], [], []
        self._before = ([], [], 0.0, 0)
        point = {"cost/train": self._weighted_mean(total, count)}
        self._publish("cost/train", point["cost/train"])
        if self._dev_cost_value is not None:
            point["cost/dev"] = self._dev_cost_value
            self._dev_cost_value = None
        # A fit resumed mid-epoch skips on_train_epoch_start; the rate has not changed since.
        point["lr"] = getattr(self, "_epoch_lr", None) or self._current_lr()
        self._log_costs(point, steps, l2)
        self.cost_curve.append({"epoch": float(self.current_epoch), **point, STEP_COSTS_KEY: steps})

    def _publish(self, name: str, number: float) -> None:
        """Give checkpoints, early stopping, learning-rate schedulers and the progress bar an
        epoch's cost: what ``self.log(name, value, prog_bar=True, logger=False)`` would leave.

        Lightning's ``self.log`` costs about a millisecond a call (it builds a result object
        and moves it to the device each time) and has every later step of the epoch walk
        that object: on a small model, several percent of training. The two dictionaries it
        fills are written directly instead, as Lightning's own ``ddp_spawn`` launcher writes
        ``trainer.callback_metrics``; Lightning clears them when a fit, validation or test
        starts. No logger is involved either way: :meth:`_log_costs` writes the charts.
        ``callback_metrics`` holds a 0-dim tensor on the model's device, the progress bar's
        dictionary the number, as Lightning's do.
        """
        trainer = self._trainer
        if trainer is None:  # not attached to a Trainer (self.log would warn and skip too)
            return
        trainer.callback_metrics[name] = torch.scalar_tensor(number, device=self.device)
        trainer.progress_bar_metrics[name] = number

    def _log_costs(self, point: dict[str, float], steps: list[float], l2: list[float]) -> None:
        """Log one epoch: ``cost`` and ``J`` per epoch and per step to TensorBoard's train and
        dev sub-runs and ``lr`` to the run's own events; flat names to any other logger."""
        epoch, cost = self.current_epoch, point["cost/train"]
        # J = cost + L2 term; an old mid-epoch checkpoint may lack its first steps' L2 terms.
        offset = len(steps) - len(l2) if self.l2_lambda else 0
        j_steps = [c + (l2[i - offset] if self.l2_lambda else 0.0) for i, c in enumerate(steps)]
        j = cost + (sum(l2) / len(l2) if l2 else 0.0)
        first = sum(len(p.get(STEP_COSTS_KEY, [])) for p in self.cost_curve)  # steps before
        tensorboard = [lg for lg in self.loggers if is_tensorboard(lg)]
        for logger in self.loggers:
            if logger in tensorboard:
                logger.log_metrics({"lr": point["lr"]}, step=epoch)
            else:
                logger.log_metrics({**point, "J/train": j}, step=epoch)
        if not tensorboard or not self.trainer.is_global_zero:
            return
        train, dev = TENSORBOARD_TRAIN_RUN, TENSORBOARD_DEV_RUN
        self._sub_runs.write(tensorboard, train, "cost", [(epoch, cost)])
        self._sub_runs.write(tensorboard, train, "J", [(epoch, j)])
        self._sub_runs.write(tensorboard, train, "cost/step", enumerate(steps, first))
        j_points = list(enumerate(j_steps, first))[offset:]
        self._sub_runs.write(tensorboard, train, "J/step", j_points)
        if "cost/dev" in point:
            self._sub_runs.write(tensorboard, dev, "cost", [(epoch, point["cost/dev"])])
        self._sub_runs.flush()

    def on_fit_end(self) -> None:
        self._sub_runs.close()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[COST_CURVE_KEY] = list(self.cost_curve)
        # A checkpoint taken inside an epoch keeps its steps so far (a sync, as saving is).
        steps, l2, total, count = self._open_epoch()
        checkpoint[_PENDING_STEPS_KEY] = steps
        checkpoint[_PENDING_L2_KEY] = l2
        checkpoint[_PENDING_COST_KEY] = [float(total), count]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        curve = checkpoint.get(COST_CURVE_KEY, checkpoint.get(_OLD_COST_CURVE_KEY, []))
        self._restored_curve = list(curve)
        total, count = checkpoint.get(_PENDING_COST_KEY, (0.0, 0))
        # An older checkpoint's open-epoch sum, in the train_cost states: counted here, and
        # zeroed before the state dict loads, so the buffers stay 0 and it counts once.
        state = checkpoint.get("state_dict", {})
        carried = [state.get(f"train_cost.{name}") for name in ("mean_value", "weight")]
        if carried[0] is not None and carried[1] is not None:
            total, count = float(total) + float(carried[0]), int(count) + round(float(carried[1]))
            state["train_cost.mean_value"] = torch.zeros_like(carried[0])
            state["train_cost.weight"] = torch.zeros_like(carried[1])
        self._restored = (
            list(checkpoint.get(_PENDING_STEPS_KEY, [])),
            list(checkpoint.get(_PENDING_L2_KEY, [])),
            float(total),
            int(count),
        )

    def on_fit_start(self) -> None:
        # One cost curve per fit (a learning-rate search fits too); a resumed fit continues
        # the curve saved in its checkpoint, and the open epoch's steps before it.
        self.cost_curve, self._restored_curve = self._restored_curve, []
        self._before, self._restored = self._restored, ([], [], 0.0, 0)
        self._step_costs, self._step_l2, self._step_sizes = [], [], []

    # ------------------------------------------------------------------------- prediction
    def predict_step(self, batch: Any, batch_idx: int) -> Any:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(self(x))


def _weighted_sum(costs: list[float], sizes: list[int]) -> float:
    """``sum_i cost_i * size_i`` in double precision.

    Example:
        >>> _weighted_sum([0.5, 0.25], [64, 8])
        34.0
    """
    return math.fsum(c * n for c, n in zip(costs, sizes, strict=True))


def _dataset_size(loader: Any) -> int | None:
    """Examples per epoch of a train loader (in-memory batches or a DataLoader), if known."""
    for data in (getattr(loader, "x", None), getattr(loader, "dataset", None)):
        if data is not None and hasattr(data, "__len__"):
            return len(data)
    return None
