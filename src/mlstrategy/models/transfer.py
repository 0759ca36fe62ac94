"""Transfer learning: a pretrained backbone, a new output layer, and how much of it to retrain.

The course's recipe (Structuring ML Projects, week 2): delete the last layer of a network trained
on a task A with plenty of data, and its weights; put a new, randomly initialized output layer
for task B in its place; then either keep the other weights fixed (little data for B) or retrain
them all (more data). :class:`TransferNet` makes that one recipe key, ``strategy``:

- ``freeze``: feature extraction. Backbone parameters are frozen and its batch-norm layers stay
  in eval mode (their running statistics are those of task A), so only the head learns.
- ``finetune``: everything trains; the backbone at ``backbone_lr_ratio`` times the head's rate.
- ``gradual``: start as ``freeze``, then unfreeze the backbone from the top, one block every
  ``unfreeze_every`` epochs (:class:`~mlstrategy.callbacks.finetuning.GradualUnfreezing`).
- ``scratch``: the same architecture from random weights: the baseline that says whether
  transfer paid.

Backbones come from an earlier run of the toolkit (``backbone: checkpoint``), from torchvision
(``resnet18``, ``mobilenet_v3_small``, ``efficientnet_b0`` with ``weights: DEFAULT``) or from a
local weights file (``weights_path``); :mod:`mlstrategy.models.backbones` finds and reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import nn

from mlstrategy.models.backbones import (
    BACKBONES,
    LISTED,
    BackboneName,
    build_backbone,
    check_sources,
)
from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.deep import HeadedNet
from mlstrategy.models.init import initialize

StrategyName = Literal["freeze", "finetune", "gradual", "scratch"]
STRATEGIES: tuple[str, ...] = ("freeze", "finetune", "gradual", "scratch")


class TransferNetwork(HeadedNet):
    """A backbone (``features``) and a new output layer (``head``), with the backbone in blocks.

    ``blocks`` lists the backbone's layers bottom to top, grouped into the units gradual
    unfreezing works with (a conv layer with its batch norm, a ResNet stage, a MobileNet
    inverted-residual block). A block whose parameters are all frozen stays in eval mode, also
    when ``.train()`` is called on the network or any module holding it: its batch-norm layers
    keep normalizing with (and never update) the running statistics of the source task, and its
    dropout stays off.

    Args:
        features: The backbone: maps an input batch to ``(m, num_features)``.
        num_features: Width of the backbone's output.
        n_y: Output units of the new head.
        blocks: The backbone's layers, grouped, bottom to top; together they must hold every
            parameter of ``features``.

    Example:
        >>> import torch
        >>> conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        >>> features = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> net = TransferNetwork(features, 4, 2, blocks=[[conv]])
        >>> net.set_block_trainable(0, False)
        >>> _ = net.train()
        >>> net(torch.zeros(5, 3, 8, 8)).shape, conv[1].training
        (torch.Size([5, 2]), False)
    """

    def __init__(
        self,
        features: nn.Module,
        num_features: int,
        n_y: int,
        blocks: Sequence[Sequence[nn.Module]],
    ) -> None:
        super().__init__()
        self.features = features
        self.num_features = num_features
        # Kept by name, not as module references: state_dict keys stay those of `features`, and
        # modules swapped in place (SyncBatchNorm under DDP) are still the ones frozen.
        names = {id(m): n for n, m in features.named_modules()}
        unknown = [type(m).__name__ for b in blocks for m in b if id(m) not in names]
        if unknown:
            raise ValueError(f"blocks hold modules outside the backbone: {unknown[:LISTED]}.")
        self.block_names: list[list[str]] = [[names[id(m)] for m in b] for b in blocks]
        in_blocks = {id(p) for block in self.blocks for m in block for p in m.parameters()}
        uncovered = [n for n, p in features.named_parameters() if id(p) not in in_blocks]
        if uncovered:
            raise ValueError(f"blocks leave backbone parameters out: {uncovered[:LISTED]}.")
        self.head = nn.Linear(num_features, n_y)
        self.reset_head(n_y)

    def reset_head(self, n_y: int) -> None:
        """A new output layer with ``n_y`` units: ``W ~ randn * sqrt(1/n)``, ``b = 0``.

        Xavier's scale keeps the first logits near unit size whatever the backbone's width.
        """
        self.head = nn.Linear(self.num_features, n_y).to(self.head.weight.device)
        initialize(self.head, "xavier")

    @property
    def blocks(self) -> list[list[nn.Module]]:
        """The backbone's blocks, bottom to top, each a list of its modules."""
        return [[self.features.get_submodule(n) for n in b] for b in self.block_names]

    def block_trainable(self, i: int) -> bool:
        """Whether any parameter of block ``i`` trains."""
        return any(p.requires_grad for m in self.blocks[i] for p in m.parameters())

    def set_block_trainable(self, i: int, trainable: bool) -> None:
        """Freeze or unfreeze block ``i``: ``requires_grad`` and, when frozen, eval mode."""
        for module in self.blocks[i]:
            for p in module.parameters():
                p.requires_grad_(trainable)
            module.train(self.training and trainable)

    def freeze_backbone(self) -> None:
        """Freeze every block (feature extraction)."""
        for i in range(len(self.blocks)):
            self.set_block_trainable(i, False)

    def train(self, mode: bool = True) -> TransferNetwork:
        super().train(mode)
        for i, block in enumerate(self.blocks):
            if mode and not self.block_trainable(i):
                for module in block:
                    module.eval()
        return self


class TransferNet(ClassifierModule):
    """A pretrained backbone with a new output layer for this task; ``strategy`` sets how much
    of it trains.

    Typical recipes::

        model:                          # an earlier run of the toolkit as the backbone
          class_path: mlstrategy.models.TransferNet
          init_args:
            backbone: checkpoint
            checkpoint: logs/transfer/0_pretrain   # its latest finished run's best.ckpt
            strategy: freeze

        model:                          # torchvision's ImageNet weights
          class_path: mlstrategy.models.TransferNet
          init_args: {backbone: resnet18, weights: DEFAULT, strategy: finetune}

    Input normalization follows the backbone: a toolkit backbone keeps the statistics of its
    source task's train split, torchvision weights use the mean and standard deviation of their
    ``weights.transforms()`` (ImageNet's); both are saved with the model. ``scratch`` fits them on
    this task's train split like any other model.

    Args:
        input_shape: Shape of one example; from the data. ``(3, H, W)`` for torchvision
            backbones; the source run's input shape for ``checkpoint``.
        num_classes: Classes of this (the target) task; from the data.
        backbone: ``resnet18``, ``mobilenet_v3_small``, ``efficientnet_b0`` (torchvision), or
            ``checkpoint`` (the network of an earlier toolkit run, named by ``checkpoint``).
        weights: torchvision backbones: ``DEFAULT`` (the best published weights, through
            torchvision's registry and the torch hub cache, downloaded once when online), a
            named member such as ``IMAGENET1K_V1``, or null.
        weights_path: torchvision backbones: a local ``.safetensors`` file or state dict
            (``torch.save(model.state_dict())``) of that architecture, instead of ``weights``.
        checkpoint: ``backbone: checkpoint``: a ``.ckpt`` file, a run folder, or a folder of runs
            of one recipe such as ``logs/transfer/0_pretrain`` (its latest finished run).
        strategy: ``freeze`` (train the head only; backbone weights and batch-norm statistics
            fixed), ``finetune`` (train all, backbone at ``backbone_lr_ratio`` x the rate),
            ``gradual`` (``freeze``, then unfreeze one block from the top every
            ``unfreeze_every`` epochs) or ``scratch`` (same architecture, random weights).
        backbone_lr_ratio: Backbone learning rate / head learning rate for ``finetune`` and the
            blocks ``gradual`` unfreezes, in (0, 1]: pretrained weights need smaller steps.
        unfreeze_every: ``gradual``: epochs between unfreezing blocks (>= 1).
        **kwargs: Cost and optimizer settings of
            :class:`~mlstrategy.models.base.SupervisedModule` (``learning_rate`` is the head's,
            ``optimizer``, ``lr_decay``, ``l2_lambda``, ...). L2 covers the weights that
            train.
    """

    net: TransferNetwork

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        backbone: BackboneName = "resnet18",
        weights: str | None = None,
        weights_path: str | None = None,
        checkpoint: str | None = None,
        strategy: StrategyName = "finetune",
        backbone_lr_ratio: float = 0.1,
        unfreeze_every: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, num_classes, **kwargs)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone={backbone!r} is not one of {list(BACKBONES)}.")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is not one of {list(STRATEGIES)}.")
        check_sources(backbone, weights, weights_path, checkpoint, strategy)
        if not 0 < backbone_lr_ratio <= 1:
            raise ValueError(
                f"backbone_lr_ratio={backbone_lr_ratio} must be in (0, 1]: the backbone's "
                "learning rate as a fraction of the head's (typical 0.01 to 0.1; 1 = the same)."
            )
        if int(unfreeze_every) != unfreeze_every or unfreeze_every < 1:
            raise ValueError(
                f"unfreeze_every={unfreeze_every} must be a whole number of epochs >= 1."
            )
        self.strategy = strategy
        self.backbone_lr_ratio = backbone_lr_ratio
        self.unfreeze_every = int(unfreeze_every)
        found = build_backbone(
            backbone,
            self.input_shape,
            weights,
            weights_path,
            checkpoint,
            pretrained=strategy != "scratch",
        )
        self.backbone_source = found.source
        self.net = TransferNetwork(
            found.features, found.num_features, self.output_units, found.blocks
        )
        # A pretrained backbone brings the normalization its weights were trained with.
        self.backbone_norm = found.norm is not None
        if found.norm is not None:
            self.input_norm.mean.copy_(found.norm[0])
            self.input_norm.std.copy_(found.norm[1])
        if strategy in ("freeze", "gradual"):
            self.net.freeze_backbone()

    # --------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        # A pretrained backbone keeps the normalization it was trained with; the data
        # module's statistics (fit on this task) would shift every input it sees.
        if not self.backbone_norm:
            super().setup(stage)

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups: the head at ``learning_rate``, the trainable backbone at
        ``learning_rate`` (``scratch``) or ``backbone_lr_ratio`` x it (the others)."""
        lr = float(self.hparams["learning_rate"])
        ratio = 1.0 if self.strategy == "scratch" else self.backbone_lr_ratio
        backbone = [p for p in self.net.features.parameters() if p.requires_grad]
        groups = [{"name": "head", "params": list(self.net.head.parameters()), "lr": lr}]
        if backbone:
            groups.append({"name": "backbone", "params": backbone, "lr": lr * ratio})
        return groups

    def configure_callbacks(self) -> list[Any]:
        own = list(super().configure_callbacks())  # the gradient norms
        if self.strategy != "gradual":
            return own
        from mlstrategy.callbacks.finetuning import GradualUnfreezing

        trainer = self._trainer
        callbacks = getattr(trainer, "callbacks", [])  # Trainer.callbacks is set in __init__
        if trainer is not None and any(isinstance(c, GradualUnfreezing) for c in callbacks):
            return own  # one already there (from this trainer's fit, or the recipe's own)
        return [*own, GradualUnfreezing(self.unfreeze_every, self.backbone_lr_ratio)]

    def on_fit_start(self) -> None:
        import warnings

        from lightning.pytorch.utilities import rank_zero_info

        super().on_fit_start()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(not self.net.block_trainable(i) for i in range(len(self.net.blocks)))
        rank_zero_info(
            f"TransferNet: {self.backbone_source}; strategy {self.strategy}, "
            f"{trainable:,} trainable parameters at the start"
            + (f", {frozen} frozen backbone block(s) in eval mode." if frozen else ".")
        )
        if frozen:  # Lightning warns about modules in eval mode; here they are on purpose.
            warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start")
