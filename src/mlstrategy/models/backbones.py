"""Where a transfer-learning backbone comes from, and how its weights are read safely.

Three sources, each read without unpickling code:

- torchvision's registry (``resnet18``, ``mobilenet_v3_small``, ``efficientnet_b0``): the
  architecture, its published weights through the torch hub cache, and the preprocessing of
  those weights (``weights.transforms()``);
- a local weights file: ``.safetensors`` or a ``torch.save``d state dict;
- an earlier run of the toolkit: its checkpoint (found with
  :func:`~mlstrategy.run_folder.run_checkpoint`), from which the model is rebuilt by a vetted
  import of its class (:func:`source_module`).

:func:`build_backbone` reads the source a recipe names and returns a :class:`Backbone`: the
layers, their width, their blocks for gradual unfreezing, and the input normalization they were
trained with. :class:`~mlstrategy.models.TransferNet` puts a new head on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mlstrategy.models.classifier import ClassifierModule
from mlstrategy.models.init import WEIGHT_LAYERS
from mlstrategy.run_folder import run_checkpoint

BackboneName = Literal["resnet18", "mobilenet_v3_small", "efficientnet_b0", "checkpoint"]
BACKBONES: tuple[str, ...] = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "checkpoint")
TORCHVISION_BACKBONES: tuple[str, ...] = BACKBONES[:3]

# The layer each torchvision classifier ends with: the one transfer learning deletes.
TORCHVISION_HEAD = {
    "resnet18": "fc",
    "mobilenet_v3_small": "classifier.3",
    "efficientnet_b0": "classifier.1",
}
LISTED = 8  # keys shown per kind in a "does not fit" message


@dataclass
class Backbone:
    """A backbone ready for a new head: pretrained, or freshly initialized.

    Attributes:
        features: Maps an input batch to ``(m, num_features)``.
        num_features: Width of its output.
        blocks: Its layers, grouped, bottom to top (the units of gradual unfreezing).
        norm: ``(mean, std)`` of the inputs its weights were trained on, shaped like one
            example; None without pretrained weights (the data's own statistics apply then).
        source: Where it came from, for the log.
    """

    features: nn.Module
    num_features: int
    blocks: list[list[nn.Module]]
    norm: tuple[Tensor, Tensor] | None
    source: str


def build_backbone(
    backbone: str,
    input_shape: tuple[int, ...],
    weights: str | None = None,
    weights_path: str | None = None,
    checkpoint: str | None = None,
    pretrained: bool = True,
) -> Backbone:
    """The backbone a recipe names, with its weights when ``pretrained``.

    Args:
        backbone: A torchvision architecture (``resnet18``, ...) or ``checkpoint``.
        input_shape: Shape of one example of the target task.
        weights: torchvision's weights (``DEFAULT`` or a member name).
        weights_path: A local weights file for the torchvision architecture.
        checkpoint: ``backbone: checkpoint``: a ``.ckpt`` file, a run folder or a folder of runs.
        pretrained: Load the weights (and their normalization); False = the same architecture,
            randomly initialized.

    Raises:
        ValueError: the backbone does not fit the inputs, or its weights do not fit it (check
            the sources first with :func:`check_sources`).
        FileNotFoundError: a named file or run is not there, with how to make it.
    """
    if backbone == "checkpoint":
        if checkpoint is None:
            raise ValueError("backbone='checkpoint' needs checkpoint: the run to transfer from.")
        return _from_run(checkpoint, input_shape, pretrained)
    return _from_torchvision(backbone, input_shape, weights, weights_path, pretrained)


def _from_run(checkpoint: str, input_shape: tuple[int, ...], pretrained: bool) -> Backbone:
    path = run_checkpoint(checkpoint)
    source = source_module(path, load_weights=pretrained)
    if tuple(source.input_shape) != input_shape:
        raise ValueError(
            f"The backbone in {path} was trained on inputs of shape "
            f"{tuple(source.input_shape)}; this data gives {input_shape}. Transfer "
            "needs the same input shape: resize the target data (e.g. DigitImages' size)."
        )
    net: Any = source.net
    norm = None
    if pretrained:  # the source task's train-split statistics
        norm = (source.input_norm.mean.clone(), source.input_norm.std.clone())
    features = net.features
    return Backbone(
        features,
        int(net.num_features),
        toolkit_blocks(features),
        norm,
        f"{type(source).__name__} from {path}",
    )


def _from_torchvision(
    name: str,
    input_shape: tuple[int, ...],
    weights: str | None,
    weights_path: str | None,
    pretrained: bool,
) -> Backbone:
    if len(input_shape) != 3 or input_shape[0] != 3:
        raise ValueError(
            f"input_shape={input_shape}: {name} takes RGB images (3, H, W). Use "
            "mlstrategy.data.DigitImages (channels: 3) or an ImageFolderDataModule."
        )
    features, width, blocks = torchvision_backbone(name)
    head_prefix = TORCHVISION_HEAD[name] + "."
    source = f"{name}, random initialization"
    if pretrained and weights is not None:
        state = registry_state_dict(name, weights)
        load_backbone_state(features, state, f"{name} {weights}", head_prefix)
        source = f"{name} {torchvision_weights(name, weights)}"
    elif pretrained and weights_path is not None:
        state = load_weights_file(weights_path)
        load_backbone_state(features, state, weights_path, head_prefix)
        source = f"{name} weights from {weights_path}"
    norm = None
    if pretrained:
        # The preprocessing the weights were trained with (ImageNet's mean and std).
        preprocessing = torchvision_weights(name, weights or "DEFAULT").transforms()
        shape = (3, 1, 1)
        norm = (
            torch.tensor(preprocessing.mean).view(shape).expand(input_shape),
            torch.tensor(preprocessing.std).view(shape).expand(input_shape),
        )
    return Backbone(features, width, blocks, norm, source)


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

    if name not in TORCHVISION_BACKBONES:
        raise ValueError(f"backbone={name!r} is not one of {list(TORCHVISION_BACKBONES)}.")
    model = get_model(name, weights=None)
    head = TORCHVISION_HEAD[name]
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
        ValueError: the cached file is damaged or truncated, or the download failed its hash.
    """
    from urllib.parse import urlparse

    from mlstrategy.safety import read_torch_file

    member = torchvision_weights(name, weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(member.url).path).name
    if not cached.is_file():
        try:
            torch.hub.load_state_dict_from_url(
                member.url, map_location="cpu", check_hash=True, weights_only=True
            )
        except OSError as err:  # URLError and socket errors are OSErrors
            raise FileNotFoundError(
                f"The weights {member} for {name} are not in the torch hub cache ({cached}) and "
                f"could not be downloaded ({err}). Run once on a machine with internet (they "
                f"are cached there), copy the file to {cached}, or set weights_path to a local "
                "copy; weights: null trains from random initialization."
            ) from None
        except Exception as err:  # a failed hash check; a file that loads badly is read below
            if not cached.is_file():
                raise ValueError(f"Downloading the weights {member} failed: {err}") from None
    fix = f"Delete it and download it again (torchvision weights {member})."
    return _tensors_only(read_torch_file(cached, fix), cached)


# --------------------------------------------------------------------------- local weight files
def load_weights_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a ``.safetensors`` file or a ``torch.save``d one (``weights_only``).

    A Lightning checkpoint's ``state_dict`` is taken from it as well.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeError: the file would need unpickling code.
        ValueError: it is damaged or truncated, or holds something other than named tensors.
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
        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # SafetensorError: a bad header, a short file
            raise ValueError(
                f"{path} is damaged or truncated: safetensors cannot read it ({err}). Give "
                "another copy of the weights."
            ) from None
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
            f"{where} is not a state dict of tensors: {bad[:LISTED]} are not tensors. Save the "
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
                more = f" ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:LISTED])}{more}")
        raise ValueError(
            f"The weights in {where} do not fit the {type(model).__name__} backbone; "
            + "; ".join(parts)
            + ". Give weights saved from the same architecture (state_dict keys as torchvision "
            "names them), or pick the backbone they were saved from."
        )
    model.load_state_dict({k: state[k] for k in expected}, strict=False)


# ----------------------------------------------------------------- backbones from earlier runs
def source_module(path: str | Path, load_weights: bool = True) -> ClassifierModule:
    """Rebuild the toolkit model an earlier run saved in ``path`` (vetted, weights only).

    The class and its arguments come from the checkpoint's hyperparameters (LightningCLI stores
    ``_class_path``); only the toolkit's own classifiers are built. With ``load_weights`` false
    the same architecture is returned freshly initialized (the ``scratch`` baseline).

    Args:
        path: The checkpoint file (:func:`~mlstrategy.run_folder.run_checkpoint` finds it from
            a run folder).
        load_weights: Load the checkpoint's weights into the rebuilt model.

    Raises:
        ValueError: not a toolkit run, no backbone to transfer, or weights that do not fit.
        UnsafeError: the checkpoint names a class outside the toolkit's classifiers.
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


# ------------------------------------------------------------------------------- recipe checks
def check_sources(
    backbone: str,
    weights: str | None,
    weights_path: str | None,
    checkpoint: str | None,
    strategy: str,
) -> None:
    """Exactly one source of pretrained weights, and one that fits the backbone.

    Args:
        backbone: ``checkpoint`` or a torchvision architecture.
        weights: torchvision's weights, or None.
        weights_path: A local weights file, or None.
        checkpoint: An earlier run, or None.
        strategy: The transfer strategy; every one but ``scratch`` needs pretrained weights.

    Raises:
        ValueError: naming the argument, its value and what to set instead.
    """
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
