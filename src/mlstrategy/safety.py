"""Never run a stranger's code: allowlists for recipe class paths and checkpoint hyperparameters."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ALLOWED_MODULES = (
    "mlstrategy",
    "torch",
    "torchvision",
    "torchmetrics",
    "lightning",
    "pytorch_lightning",
)
# Recipe keys whose string value jsonargparse imports as a class (``model: pkg.Class``).
_CLASS_KEYS = {"class_path", "model", "data", "callbacks", "logger", "plugins", "strategy"}
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


class UnsafeError(ValueError):
    """A recipe or checkpoint names code outside the allowed modules."""


def _allowed(path: str, allow: Iterable[str]) -> bool:
    top = path.split(".", 1)[0]
    return (
        top in ALLOWED_MODULES
        or any(path == m or path.startswith(m + ".") for m in allow)
        or top in allow
    )


def _class_paths(node: Any, key: str | None = None) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _class_paths(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _class_paths(item, key)
    elif isinstance(node, str) and key in _CLASS_KEYS and _DOTTED.match(node):
        yield node


def check_recipe(
    configs: Iterable[Path], overrides: Iterable[str], allow: Iterable[str] = ()
) -> None:
    """Refuse recipes and overrides that name a class outside the allowed modules.

    Runs on the raw YAML text and command-line strings, before anything is imported. Classes
    from mlstrategy, torch, torchvision, torchmetrics and lightning are allowed; others need
    ``--allow-module NAME``.

    Raises:
        UnsafeError: naming the class path, where it came from, and the flag that allows it.

    Example:
        >>> check_recipe([], ["--model=mlstrategy.models.LogisticRegression"])
        >>> check_recipe([], ["--trainer.callbacks+=os.system"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlstrategy.safety.UnsafeError: ...
    """
    allow = list(allow)
    found: list[tuple[str, str]] = []
    for config in configs:
        try:
            tree = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError):
            continue  # the parser reports unreadable recipes with its own message
        found += [(p, str(config)) for p in _class_paths(tree)]
    for arg in overrides:
        key, _, value = arg.lstrip("-").partition("=")
        last = key.rstrip("+").split(".")[-1]
        if last in _CLASS_KEYS and _DOTTED.match(value):
            found.append((value, f"the option {arg}"))
    for path, where in found:
        if not _allowed(path, allow):
            top = path.split(".", 1)[0]
            raise UnsafeError(
                f"{where} names the class {path!r}, outside the modules recipes may use "
                f"({', '.join(ALLOWED_MODULES)}). Importing it would run its code. If you trust "
                f"it, pass --allow-module {top}."
            )


def check_checkpoint_hparams(hparams: dict[str, Any], allow: Iterable[str] = ()) -> None:
    """Refuse checkpoint hyperparameters that name a callable or class outside the toolkit.

    LightningCLI stores ``_instantiator`` and ``_class_path`` in a model's hyperparameters;
    loading such a checkpoint imports and calls them, so a crafted file could name
    ``os.system``. Only mlstrategy's own classes and Lightning's own instantiator pass.
    """
    allow = list(allow)
    instantiator = hparams.get("_instantiator")
    if instantiator is not None and instantiator != "lightning.pytorch.cli.instantiate_module":
        raise UnsafeError(
            f"The checkpoint's hyperparameters name {instantiator!r} as the function that builds "
            "the model; only Lightning's own instantiator is accepted. The file may be crafted; "
            "do not load it."
        )
    class_path = hparams.get("_class_path")
    if class_path is not None and not (
        str(class_path).startswith("mlstrategy.") or _allowed(str(class_path), allow)
    ):
        raise UnsafeError(
            f"The checkpoint's hyperparameters name the class {class_path!r}, outside the "
            f"toolkit. If you trust it, pass --allow-module {str(class_path).split('.')[0]}."
        )


def load_checkpoint(path: str | Path, allow: Iterable[str] = ()) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects, and vet its hyperparameters.

    ``torch.load(weights_only=True)`` refuses any pickle that would import code (a malicious
    ``__reduce__`` never runs); there is no unsafe retry.

    Raises:
        UnsafeError: the file needs unsafe unpickling, or its hyperparameters name foreign code.
        FileNotFoundError: the file does not exist.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsafeError(
            f"{path} is not a plain weights/checkpoint file: loading it would run code from the "
            f"file ({first}). It was refused and nothing from it was executed."
        ) from None
    if not isinstance(checkpoint, dict):
        raise UnsafeError(f"{path} does not hold a checkpoint dictionary.")
    check_checkpoint_hparams(checkpoint.get("hyper_parameters") or {}, allow)
    return checkpoint
