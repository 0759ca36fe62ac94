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
local weights file (``weights_path``). Every file is read without unpickling code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.deep import HeadedNet
from mlstrategy.models.init import WEIGHT_LAYERS, initialize
from mlstrategy.models.optim import build_optimizer
from mlstrategy.models.schedules import build_lr_decay

BackboneName = Literal["resnet18", "mobilenet_v3_small", "efficientnet_b0", "checkpoint"]
StrategyName = Literal["freeze", "finetune", "gradual", "scratch"]
BACKBONES: tuple[str, ...] = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "checkpoint")
TORCHVISION_BACKBONES: tuple[str, ...] = BACKBONES[:3]
STRATEGIES: tuple[str, ...] = ("freeze", "finetune", "gradual", "scratch")

# The layer each torchvision classifier ends with: the one transfer learning deletes.
_TORCHVISION_HEAD = {
    "resnet18": "fc",
    "mobilenet_v3_small": "classifier.3",
    "efficientnet_b0": "classifier.1",
}
_LISTED = 8  # keys shown per kind in a "does not fit" message


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
            raise ValueError(f"blocks hold modules outside the backbone: {unknown[:_LISTED]}.")
        self.block_names: list[list[str]] = [[names[id(m)] for m in b] for b in blocks]
        in_blocks = {id(p) for block in self.blocks for m in block for p in m.parameters()}
        uncovered = [n for n, p in features.named_parameters() if id(p) not in in_blocks]
        if uncovered:
            raise ValueError(f"blocks leave backbone parameters out: {uncovered[:_LISTED]}.")
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


# ------------------------------------------------------------------------ torchvision backbones
def torchvision_backbone(name: str) -> tuple[nn.Module, int, list[list[nn.Module]]]:
    """A torchvision classifier, randomly initialized, with its last layer replaced by identity.

    Returns the model (its output is then the features the deleted layer read), their width,
    and its blocks bottom to top: ResNet's stem and four stages; MobileNet's and EfficientNet's
    ``features`` stages (MobileNet's pretrained 576 -> 1024 dense layer is the top block).

    Example:
        >>> model, width, blocks = torchvision_backbone("resnet18")
        >>> width, len(blocks)
        (512, 5)
    """
    from torchvision.models import get_model

    _check_choice("backbone", name, TORCHVISION_BACKBONES)
    model = get_model(name, weights=None)
    head = _TORCHVISION_HEAD[name]
    last = model.get_submodule(head)
    assert isinstance(last, nn.Linear)
    parent, _, attr = head.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, nn.Identity())
    blocks: list[list[nn.Module]]
    if name == "resnet18":
        m: Any = model
        blocks = [[m.conv1, m.bn1], [m.layer1], [m.layer2], [m.layer3], [m.layer4]]
    else:
        blocks = [[stage] for stage in model.get_submodule("features")]
        if name == "mobilenet_v3_small":
            blocks.append([model.get_submodule("classifier.0")])
    return model, last.in_features, blocks


def torchvision_weights(name: str, weights: str) -> Any:
    """The torchvision weights enum member ``weights`` (``DEFAULT`` or e.g. ``IMAGENET1K_V1``)."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    members = list(enum.__members__)
    if weights not in members:
        raise ValueError(
            f"weights={weights!r} is not one of torchvision's weights for {name}: {members} (or "
            "null for none; for a file of your own use weights_path)."
        )
    return enum[weights]


def registry_state_dict(name: str, weights: str) -> dict[str, Tensor]:
    """Published weights through torchvision's registry and the torch hub cache.

    A file already in ``$TORCH_HOME/hub/checkpoints`` is read from there; otherwise it is
    downloaded once (hash-checked) when the machine is online. Loaded with
    ``weights_only=True``: a file that would run code is refused.

    Raises:
        FileNotFoundError: not cached and the download failed (offline), with the path to copy
            the file to.
        UnsafeError: the cached file is not plain weights.
    """
    import pickle
    from urllib.parse import urlparse

    from mlstrategy.safety import UnsafeError

    member = torchvision_weights(name, weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(member.url).path).name
    try:
        state = torch.hub.load_state_dict_from_url(
            member.url, map_location="cpu", check_hash=True, weights_only=True
        )
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsafeError(
            f"{cached} (torchvision weights {member}) is not plain weights: loading it would run "
            f"code ({first}). It was refused; delete the file and download it again."
        ) from None
    except OSError as err:  # URLError and socket errors are OSErrors
        raise FileNotFoundError(
            f"The weights {member} for {name} are not in the torch hub cache ({cached}) and "
            f"could not be downloaded ({err}). Run once on a machine with internet (they are "
            f"cached there), copy the file to {cached}, or set weights_path to a local copy; "
            "weights: null trains from random initialization."
        ) from None
    return _tensors_only(state, cached)


# --------------------------------------------------------------------------- local weight files
def load_weights_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a ``.safetensors`` file or a ``torch.save``d one (``weights_only``).

    A Lightning checkpoint's ``state_dict`` is taken from it as well.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeError: the file would need unpickling code.
        ValueError: it holds something other than named tensors.
    """
    from mlstrategy.safety import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights_path={str(path)!r} does not exist. Give a .safetensors file or a state "
            "dict saved with torch.save(model.state_dict(), PATH)."
        )
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:  # pragma: no cover - a dependency; kept for a broken install
            raise ImportError("Reading .safetensors needs `pip install safetensors`.") from None
        return load_file(str(path), device="cpu")
    loaded = load_checkpoint(path)
    state = loaded.get("state_dict", loaded)
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{path} holds no state dict (its 'state_dict' is {type(state).__name__})."
        )
    return _tensors_only(state, path)


def _tensors_only(state: Any, where: Any) -> dict[str, Tensor]:
    if not isinstance(state, Mapping):
        raise ValueError(f"{where} holds a {type(state).__name__}, not a state dict.")
    bad = [str(k) for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(
            f"{where} is not a state dict of tensors: {bad[:_LISTED]} are not tensors. Save the "
            "weights with torch.save(model.state_dict(), PATH) or safetensors."
        )
    return {str(k): v for k, v in state.items()}


def load_backbone_state(
    model: nn.Module, state: Mapping[str, Tensor], where: Any, skip_prefix: str = ""
) -> None:
    """Load ``state`` into ``model`` exactly, or say which keys and shapes do not fit.

    Keys under ``skip_prefix`` (the deleted output layer, which the new task replaces) are
    ignored on both sides; every other key must be present in both with the same shape.

    Raises:
        ValueError: listing missing keys, unexpected keys and shape mismatches.
    """

    def kept(keys: Iterable[str]) -> set[str]:
        return {k for k in keys if not (skip_prefix and k.startswith(skip_prefix))}

    own = model.state_dict()
    expected, given = kept(own), kept(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    shapes = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in sorted(expected & given)
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        ):
            if items:
                more = f" ... and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:_LISTED])}{more}")
        raise ValueError(
            f"The weights in {where} do not fit the {type(model).__name__} backbone; "
            + "; ".join(parts)
            + ". Give weights saved from the same architecture (state_dict keys as torchvision "
            "names them), or pick the backbone they were saved from."
        )
    model.load_state_dict({k: state[k] for k in expected}, strict=False)


# ----------------------------------------------------------------- backbones from earlier runs
def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file ``path`` names: a ``.ckpt`` file, a run folder (its best checkpoint),
    or a folder of runs of one recipe (the latest finished run's best checkpoint).

    Raises:
        FileNotFoundError: nothing there, with how to make it.
    """
    from mlstrategy.run_folder import find_run

    given = Path(path)
    if given.is_file():
        return given
    how = (
        "Run the source task first: in a study, its pretraining recipe runs before the others "
        "(`mlstrategy run recipes/transfer/` pretrains, then transfers), and `checkpoint` names "
        "its folder of runs, e.g. logs/transfer/0_pretrain."
    )
    if not given.exists():
        raise FileNotFoundError(f"checkpoint={str(given)!r} does not exist. {how}")
    if (given / "checkpoints").is_dir() and not (given / "metrics.json").is_file():
        run_dir = given  # a fit-only run folder (mlstrategy fit)
    else:
        try:
            run_dir = find_run(given)
        except ValueError as err:
            raise FileNotFoundError(
                f"checkpoint={str(given)!r} holds no finished run ({err}) {how}"
            ) from None
    for name in ("best.ckpt", "last.ckpt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise FileNotFoundError(f"The run {run_dir} has no checkpoints/best.ckpt or last.ckpt. {how}")


def source_module(path: str | Path, load_weights: bool = True) -> ClassifierModule:
    """Rebuild the toolkit model an earlier run saved in ``path`` (vetted, weights only).

    The class and its arguments come from the checkpoint's hyperparameters (LightningCLI stores
    ``_class_path``); only the toolkit's own classifiers are built. With ``load_weights`` false
    the same architecture is returned freshly initialized (the ``scratch`` baseline).
    """
    from mlstrategy.safety import UnsafeError, load_checkpoint

    checkpoint = load_checkpoint(path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = str(hparams.get("_class_path", ""))
    if not class_path.startswith("mlstrategy.models."):
        raise ValueError(
            f"{path} was not written by a toolkit model run (hyperparameters name the class "
            f"{class_path or 'nothing'}); give the checkpoint of a `mlstrategy run` or "
            "`mlstrategy fit` of an mlstrategy.models class."
        )
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ClassifierModule)):
        raise UnsafeError(f"{path}: {class_path} is not a toolkit classifier.")
    model = cls(**{k: v for k, v in hparams.items() if not k.startswith("_")})
    net = getattr(model, "net", None)
    if not all(hasattr(net, a) for a in ("features", "num_features", "forward_features")):
        raise ValueError(
            f"{path}: {class_name}'s network has no backbone to transfer (it needs `features` "
            "and `forward_features`, like DeepNet and ConvNet)."
        )
    if load_weights:
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as err:
            raise ValueError(f"{path} does not fit its own {class_name}: {err}") from None
    return model


def toolkit_blocks(features: nn.Module) -> list[list[nn.Module]]:
    """Blocks of a toolkit backbone: each weight layer (or hidden-layer group) starts one, and
    the batch norm, activation, pooling and dropout after it belong to it."""
    blocks: list[list[nn.Module]] = []
    for child in features.children():
        own = any(True for _ in child.parameters())
        if isinstance(child, WEIGHT_LAYERS) or (own and not isinstance(child, _BatchNorm)):
            blocks.append([child])
        elif blocks:
            blocks[-1].append(child)
    return blocks


# ------------------------------------------------------------------------------ the classifier
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
        **kwargs: Cost and optimizer settings of :class:`ClassifierModule` (``learning_rate``
            is the head's, ``optimizer``, ``lr_decay``, ``l2_lambda``, ...).
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
        _check_choice("backbone", backbone, BACKBONES)
        _check_choice("strategy", strategy, STRATEGIES)
        _check_sources(backbone, weights, weights_path, checkpoint, strategy)
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
        pretrained = strategy != "scratch"
        norm: tuple[Tensor, Tensor] | None = None  # the backbone's (mean, std), if it has one
        if backbone == "checkpoint":
            assert checkpoint is not None
            path = resolve_checkpoint(checkpoint)
            source = source_module(path, load_weights=pretrained)
            if tuple(source.input_shape) != self.input_shape:
                raise ValueError(
                    f"The backbone in {path} was trained on inputs of shape "
                    f"{tuple(source.input_shape)}; this data gives {self.input_shape}. Transfer "
                    "needs the same input shape: resize the target data (e.g. DigitImages' size)."
                )
            src_net: Any = source.net
            features, width = src_net.features, int(src_net.num_features)
            blocks = toolkit_blocks(features)
            if pretrained:
                norm = (source.input_norm.mean.clone(), source.input_norm.std.clone())
            self.backbone_source = f"{type(source).__name__} from {path}"
        else:
            if len(self.input_shape) != 3 or self.input_shape[0] != 3:
                raise ValueError(
                    f"input_shape={self.input_shape}: {backbone} takes RGB images (3, H, W). Use "
                    "mlstrategy.data.DigitImages (channels: 3) or an ImageFolderDataModule."
                )
            features, width, blocks = torchvision_backbone(backbone)
            head_prefix = _TORCHVISION_HEAD[backbone] + "."
            self.backbone_source = f"{backbone}, random initialization"
            if pretrained and weights is not None:
                state = registry_state_dict(backbone, weights)
                load_backbone_state(features, state, f"{backbone} {weights}", head_prefix)
                self.backbone_source = f"{backbone} {torchvision_weights(backbone, weights)}"
            elif pretrained and weights_path is not None:
                state = load_weights_file(weights_path)
                load_backbone_state(features, state, weights_path, head_prefix)
                self.backbone_source = f"{backbone} weights from {weights_path}"
            if pretrained:
                preprocessing = torchvision_weights(backbone, weights or "DEFAULT").transforms()
                shape = (3, 1, 1)
                norm = (
                    torch.tensor(preprocessing.mean).view(shape).expand(self.input_shape),
                    torch.tensor(preprocessing.std).view(shape).expand(self.input_shape),
                )
        self.net = TransferNetwork(features, width, self.output_units, blocks)
        self.backbone_norm = norm is not None
        if norm is not None:
            self.input_norm.mean.copy_(norm[0])
            self.input_norm.std.copy_(norm[1])
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

    def configure_optimizers(self) -> OptimizerLRScheduler:
        hp: Any = self.hparams
        optimizer = build_optimizer(
            hp.optimizer,
            self.param_groups(),
            hp.learning_rate,
            hp.beta1,
            hp.beta2,
            hp.epsilon,
            hp.weight_decay,
        )
        decay = build_lr_decay(optimizer, hp.lr_decay, hp.decay_rate, hp.decay_interval)
        if decay is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "epoch"}}

    def configure_callbacks(self) -> list[Any]:
        if self.strategy != "gradual":
            return []
        from mlstrategy.callbacks.finetuning import GradualUnfreezing

        trainer = self._trainer
        callbacks = getattr(trainer, "callbacks", [])  # Trainer.callbacks is set in __init__
        if trainer is not None and any(isinstance(c, GradualUnfreezing) for c in callbacks):
            return []  # one already there (from this trainer's fit, or the recipe's own)
        return [GradualUnfreezing(self.unfreeze_every, self.backbone_lr_ratio)]

    def l2_penalty(self, m: int) -> Tensor:
        """The course's L2 term over the weights that train (frozen ones cannot change)."""
        weights = [
            layer.weight
            for layer in self.net.modules()
            if isinstance(layer, WEIGHT_LAYERS) and layer.weight.requires_grad
        ]
        return self.l2_lambda / (2 * m) * sum((w.pow(2).sum() for w in weights), torch.zeros(()))

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


def _check_choice(arg: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{arg}={value!r} is not one of {list(allowed)}.")


def _check_sources(
    backbone: str,
    weights: str | None,
    weights_path: str | None,
    checkpoint: str | None,
    strategy: str,
) -> None:
    """Exactly one source of pretrained weights, and one that fits the backbone."""
    if backbone == "checkpoint":
        if checkpoint is None:
            raise ValueError(
                "backbone='checkpoint' needs checkpoint: the run to transfer from, e.g. "
                "logs/transfer/0_pretrain (its latest finished run) or a .ckpt file."
            )
        for arg, value in (("weights", weights), ("weights_path", weights_path)):
            if value is not None:
                raise ValueError(
                    f"{arg}={value!r} applies to torchvision backbones; backbone='checkpoint' "
                    "takes its weights from the checkpoint. Leave it null."
                )
        return
    if checkpoint is not None:
        raise ValueError(
            f"checkpoint={checkpoint!r} is read with backbone='checkpoint' only; backbone="
            f"{backbone!r} takes weights (DEFAULT) or weights_path."
        )
    if weights is not None and weights_path is not None:
        raise ValueError(
            f"weights={weights!r} and weights_path={weights_path!r} are two sources for the same "
            "backbone; set one of them."
        )
    if weights is not None:
        torchvision_weights(backbone, weights)
    if strategy != "scratch" and weights is None and weights_path is None:
        raise ValueError(
            f"strategy={strategy!r} starts from pretrained weights, but backbone={backbone!r} has "
            "none: set weights: DEFAULT (torchvision's, cached once online) or weights_path "
            "(a local file), or use strategy: scratch for random initialization."
        )
