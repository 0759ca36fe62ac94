"""Gradual unfreezing: train the new head first, then the backbone from the top down."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from lightning.pytorch.utilities import rank_zero_info
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, MultiplicativeLR


class GradualUnfreezing(BaseFinetuning):
    """Unfreeze a pretrained backbone one block at a time, from the top, every ``every`` epochs.

    Epochs ``0 .. every-1`` train the head alone (the backbone is frozen before training);
    epoch ``k * every`` unfreezes the ``k``-th block from the top, until all train. The layers
    nearest the output are the most specific to the source task, so they adapt first; the
    generic low-level features move last, if at all.

    Each unfrozen block joins the optimizer as a new parameter group (named ``block{i}``) at
    ``backbone_lr_ratio`` x the head's initial learning rate. Learning-rate schedulers learn of
    the group too: it starts at its base rate times the schedule's current factor and decays
    with the others from then on (a plain ``add_param_group`` would leave it undecayed). A
    resumed run restores the groups, the schedule and which blocks train.

    Under DDP the blocks unfrozen during training are outside DistributedDataParallel's
    gradient reduction (it covers the parameters that trained when it wrapped the model), so
    this callback averages their gradients over the processes after each backward pass;
    without that each process would train its own copy of them (Lightning's
    ``BackboneFinetuning`` has this bug: Lightning-AI/pytorch-lightning#20340).

    Works with any LightningModule whose ``net`` has ``blocks`` (bottom-to-top lists of modules)
    and ``set_block_trainable(i, bool)``, as :class:`~mlstrategy.models.transfer.TransferNetwork`
    has; :class:`~mlstrategy.models.TransferNet` adds it itself for ``strategy: gradual``.

    Args:
        every: Epochs between unfreezing two blocks, >= 1.
        backbone_lr_ratio: Learning rate of an unfrozen block / the head's initial rate, in
            (0, 1].

    Example:
        >>> GradualUnfreezing(every=2).schedule(num_blocks=3)
        {2: 2, 4: 1, 6: 0}
    """

    def __init__(self, every: int = 1, backbone_lr_ratio: float = 0.1) -> None:
        super().__init__()
        if int(every) != every or every < 1:
            raise ValueError(f"every={every} must be a whole number of epochs >= 1.")
        if not 0 < backbone_lr_ratio <= 1:
            raise ValueError(
                f"backbone_lr_ratio={backbone_lr_ratio} must be in (0, 1] (a fraction of the "
                "head's learning rate)."
            )
        self.every = int(every)
        self.backbone_lr_ratio = backbone_lr_ratio
        self._reduced_by_ddp: set[int] = set()  # ids of the parameters DDP averages itself

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every=self.every, backbone_lr_ratio=self.backbone_lr_ratio)

    def schedule(self, num_blocks: int) -> dict[int, int]:
        """``{epoch: block index}``: when each block is unfrozen, the top (highest index) first."""
        return {self.every * (k + 1): num_blocks - 1 - k for k in range(num_blocks)}

    @staticmethod
    def _net(pl_module: L.LightningModule) -> Any:
        net = getattr(pl_module, "net", None)
        if not (hasattr(net, "blocks") and hasattr(net, "set_block_trainable")):
            raise ValueError(
                f"GradualUnfreezing needs {type(pl_module).__name__}.net to have `blocks` and "
                "`set_block_trainable` (mlstrategy.models.TransferNet's network has them)."
            )
        return net

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Only a fit starts frozen; testing the trained model afterwards leaves it as it ended.
        if stage == "fit":
            super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        net = self._net(pl_module)
        for i in range(len(net.blocks)):
            net.set_block_trainable(i, False)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The strategy wrapped the model just before this hook: DDP reduces what trains now.
        self._reduced_by_ddp = {id(p) for p in pl_module.parameters() if p.requires_grad}
        restarting = self._restarting
        super().on_fit_start(trainer, pl_module)  # a resumed run gets its param groups back
        if not restarting:
            return
        net = self._net(pl_module)
        for optimizer in trainer.optimizers:
            in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
            for i in range(len(net.blocks)):
                block = [p for m in net.blocks[i] for p in m.parameters()]
                if block and all(id(p) in in_optimizer for p in block):
                    net.set_block_trainable(i, True)
            # The schedulers' saved state covers every group; size them before it loads.
            for scheduler in _schedulers_of(trainer, optimizer):
                _match_lambdas(scheduler, len(optimizer.param_groups))

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Right after backward, where DDP reduces its own: the non-finite guard, clipping and
        # the step see the same gradients on every process. (Averaging after each backward
        # of an accumulated step gives the same sum: the earlier part is equal everywhere.)
        if not isinstance(trainer.strategy.model, DistributedDataParallel):
            return
        grads = [
            p.grad
            for p in pl_module.parameters()
            if p.requires_grad and p.grad is not None and id(p) not in self._reduced_by_ddp
        ]
        if grads:  # the same blocks on every process (the schedule is by epoch)
            _average_over_processes(grads, trainer.world_size)

    def finetune_function(
        self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        net = self._net(pl_module)
        for at, i in self.schedule(len(net.blocks)).items():
            if at > epoch:
                break
            in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
            net.set_block_trainable(i, True)
            params = [p for m in net.blocks[i] for p in m.parameters() if id(p) not in in_optimizer]
            if not params:
                continue
            base_lr = self.backbone_lr_ratio * optimizer.param_groups[0].get(
                "initial_lr", optimizer.param_groups[0]["lr"]
            )
            group = {"name": f"block{i}", "params": params, "lr": base_lr, "initial_lr": base_lr}
            factor = 1.0
            for scheduler in _schedulers_of(pl_module.trainer, optimizer):
                factor = scheduler.get_last_lr()[0] / scheduler.base_lrs[0]
            group["lr"] = base_lr * factor
            optimizer.add_param_group(group)
            for scheduler in _schedulers_of(pl_module.trainer, optimizer):
                scheduler.base_lrs.append(base_lr)
                _match_lambdas(scheduler, len(optimizer.param_groups))
                scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]  # type: ignore[attr-defined]
            rank_zero_info(
                f"epoch {epoch}: unfroze backbone block {i} ({sum(p.numel() for p in params):,} "
                f"parameters) at learning rate {group['lr']:.3g}"
            )


def _schedulers_of(trainer: L.Trainer, optimizer: Optimizer) -> list[Any]:
    return [
        config.scheduler
        for config in trainer.lr_scheduler_configs
        if getattr(config.scheduler, "optimizer", None) is optimizer
    ]


def _match_lambdas(scheduler: Any, n_groups: int) -> None:
    """Give a per-group-lambda scheduler one rule per group: the first group's."""
    if isinstance(scheduler, (LambdaLR, MultiplicativeLR)):
        while len(scheduler.lr_lambdas) < n_groups:
            scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])


def _average_over_processes(grads: list[torch.Tensor], world_size: int) -> None:
    """Replace each gradient by its mean over the processes, in one all-reduce."""
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
