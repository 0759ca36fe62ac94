"""Never run a stranger's code: allowlists for class paths, and the one checkpoint loader.

jsonargparse imports any dotted string it meets where a class or callable goes, so a recipe,
an override or a checkpoint's hyperparameters that name ``pkg.Class`` run ``pkg``'s code.
Every string is vetted before anything is imported: a dotted path that is not allowed and
whose import would run a module's code is refused. jsonargparse is told the same policy, as a second
guard. Checkpoints are read with ``weights_only=True`` only, and a file that cannot be read
is called damaged, never loaded unsafely.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

ALLOWED_MODULES = (
    "mlstrategy",
    "torch",
    "torchvision",
    "torchmetrics",
    "lightning",
    "pytorch_lightning",
)
# Inside the allowed packages: callables that download, compile or unpickle code. Named as a
# class path with init_args they run anything, so each needs --allow-module of its own.
CODE_RUNNING = (
    "torch.hub",
    "torch.load",
    "torch.jit.load",
    "torch.package",
    "torch.serialization",
    "torch.utils.cpp_extension",
    "torch.multiprocessing",
    "torch.distributed.rpc",
)
# Larger files that are not .yaml/.yml/.json are data (a CSV), not configs; jsonargparse's
# own import policy (restrict_jsonargparse_imports) still guards them.
_MAX_OTHER_FILE = 1 << 20
_FILE_SUFFIX = re.compile(r"\.(ya?ml|json|csv|txt|ckpt|pth?|safetensors|npz|npy|zip|gz)$")
_user_allowed: tuple[str, ...] = ()
_enforced: set[str] = set()


class UnsafeError(ValueError):
    """A recipe or checkpoint names code outside the allowed modules."""


def allow_modules(names: Iterable[str]) -> None:
    """Allow ``names`` (``--allow-module``) for the rest of the process, replacing earlier ones.

    Every check below, :func:`load_checkpoint` included, allows them from then on.

    Example:
        >>> allow_modules(["json"])
        >>> check_recipe([], ["--model=json.Net"])  # refused without it
        >>> allow_modules([])
    """
    global _user_allowed
    _user_allowed = tuple(n for n in dict.fromkeys(names) if n)


def may_import(path: str) -> bool:
    """Whether a recipe may name ``path`` (the error hints import nothing else)."""
    return _allowed(path)


def _allowed(path: str, allow: Iterable[str] = ()) -> bool:
    if any(path == m or path.startswith(m + ".") for m in (*allow, *_user_allowed)):
        return True
    if any(path == m or path.startswith(m + ".") for m in CODE_RUNNING):
        return False
    return path.split(".", 1)[0] in ALLOWED_MODULES


def restrict_jsonargparse_imports() -> None:
    """Have jsonargparse refuse, at import time, whatever the allowlist refuses.

    A second guard behind the vetting: anything the vetting could not see (a value it did
    not read) is still not imported.
    """
    from jsonargparse import set_parsing_settings

    allowed = [
        m
        for m in (*ALLOWED_MODULES, *_user_allowed)
        if _is_import_path(m, parts=1) and m.split(".")[0] != "jsonargparse"
    ]
    # Names allowed by an earlier call in this process are denied again.
    denied = ["*", *CODE_RUNNING, *sorted(_enforced - set(allowed))]
    _enforced.update(allowed)
    set_parsing_settings(import_path_denylist=denied, import_path_allowlist=allowed)


# -------------------------------------------------------------------------------- class paths
def _is_import_path(text: str, parts: int = 2) -> bool:
    names = text.split(".")
    return len(names) >= parts and all(n.isidentifier() for n in names)


def _runs_code(path: str, base: Path) -> bool:
    """Whether importing ``path`` the way jsonargparse does would run some module's code.

    Found without importing anything: the top-level module's spec, then, while it is a
    namespace package (a bare folder, which runs nothing), each submodule's.
    """
    names = path.split(".")
    if names[0] in sys.modules:
        return True
    try:
        spec = importlib.util.find_spec(names[0])
    except (ImportError, ValueError):
        return True  # a broken finder: assume the worst
    if spec is None:
        # '' or a relative sys.path entry makes modules next to the config importable too.
        relative = any(not Path(p).is_absolute() for p in sys.path)
        return relative and any(
            (b / names[0]).is_dir() or (b / f"{names[0]}.py").is_file() for b in (base, Path())
        )
    for depth in range(1, len(names)):
        if spec.origin is not None or not spec.submodule_search_locations:
            return True  # a module with code
        found = importlib.machinery.PathFinder.find_spec(
            ".".join(names[: depth + 1]), list(spec.submodule_search_locations)
        )
        if found is None:
            return False  # getattr on a namespace package: nothing runs
        spec = found
    return spec.origin is not None


def _refuse(path: str, where: str) -> UnsafeError:
    risky = next((m for m in CODE_RUNNING if path == m or path.startswith(m + ".")), None)
    if risky is not None:
        why, allow = f"{risky} downloads, compiles or unpickles code", risky
    else:
        why = f"it is outside the modules recipes may use ({', '.join(ALLOWED_MODULES)})"
        allow = path.split(".", 1)[0]
    maybe_file = (
        f" If you meant the file {path!r}, it does not exist." if _FILE_SUFFIX.search(path) else ""
    )
    return UnsafeError(
        f"{where} names the class {path!r}, and {why}. Importing it would run its code; it was "
        f"refused before anything was imported. If you trust it, pass --allow-module {allow}."
        f"{maybe_file}"
    )


def _strings(node: Any) -> Iterator[str]:
    """Every string value at any depth (mapping keys are never imported)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, (list, tuple, set)):
        for item in node:
            yield from _strings(item)


def _load_value(text: str) -> Any:
    """A command-line value as jsonargparse reads it: YAML (JSON is YAML), else the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


class _Vetting:
    """One pass over a command: the files seen (each read once) and the extra allowed names."""

    def __init__(self, allow: Iterable[str]) -> None:
        self.allow = list(allow)
        self.seen: set[Path] = set()

    def tree(self, node: Any, where: str, base: Path) -> None:
        for text in _strings(node):
            self.string(text, where, base)

    def string(self, text: str, where: str, base: Path) -> None:
        # jsonargparse reads a value that names an existing file and uses its content instead.
        named = Path(text) if Path(text).is_absolute() else base / text
        # os.path.isfile, not Path.is_file: a name too long for the OS (or holding NUL) is not
        # a file, where Path.is_file raises.
        if text.strip() and "\n" not in text and os.path.isfile(named):
            self.file(named, f"{named} (named by {where})")
            return
        if _is_import_path(text) and not _allowed(text, self.allow) and _runs_code(text, base):
            raise _refuse(text, where)

    def file(self, path: Path, where: str) -> None:
        key = path.resolve()
        if key in self.seen:
            return
        self.seen.add(key)
        try:
            config = path.suffix in (".yaml", ".yml", ".json")
            if not config and path.stat().st_size > _MAX_OTHER_FILE:
                return
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return  # not text (a checkpoint, an image): jsonargparse cannot read it as a config
        try:
            tree = yaml.safe_load(text)
        except yaml.YAMLError:
            return  # the parser fails on it before importing anything
        self.tree(tree, where, path.parent)


def check_recipe(
    configs: Iterable[Path], overrides: Iterable[str], allow: Iterable[str] = ()
) -> None:
    """Refuse recipes and command-line values that name a class outside the allowed modules.

    Runs before anything is imported. Every string at any depth is vetted: in each config
    file, in each file a value names (``--data=other.yaml``, a config that names another), and
    in each command-line token read as YAML or JSON (``--trainer.callbacks+={"class_path":
    ...}``). A dotted string whose top-level module is importable must lie in mlstrategy,
    torch, torchvision, torchmetrics or lightning, or in a module passed to
    ``--allow-module NAME``. Strings whose top is not a module (``data.csv``) are harmless.

    Args:
        configs: Config files (a recipe, its study's ``_base.yaml``, ``--config`` files).
        overrides: Command-line tokens, as typed (``--key=value``, or ``--key`` then ``value``).
        allow: Modules allowed on top of :data:`ALLOWED_MODULES` and :func:`allow_modules`.

    Raises:
        UnsafeError: naming the class path, where it came from, and the flag that allows it.

    Example:
        >>> check_recipe([], ["--model=mlstrategy.models.LogisticRegression", "--x=data.csv"])
        >>> check_recipe([], ["--trainer.callbacks+=os.system"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlstrategy.safety.UnsafeError: the option --trainer.callbacks+=os.system names ...
    """
    importlib.invalidate_caches()  # a module written a moment ago is found too
    vetting = _Vetting(allow)
    for config in configs:
        vetting.file(Path(config), str(config))
    previous = ""
    for token in overrides:
        _, equals, value = token.partition("=")
        if token.startswith("-") and equals:
            vetting.tree(_load_value(value), f"the option {token}", Path())
        elif not token.startswith("-"):
            flag = previous.startswith("-") and "=" not in previous
            where = f"the option {previous} {token}" if flag else f"the argument {token!r}"
            vetting.tree(_load_value(token), where, Path())
        previous = token


# -------------------------------------------------------------------------------- checkpoints
def check_checkpoint_hparams(
    hparams: Mapping[str, Any], allow: Iterable[str] = (), where: str = "The checkpoint"
) -> None:
    """Refuse checkpoint hyperparameters that name a callable or class outside the toolkit.

    LightningCLI stores ``_instantiator`` and ``_class_path`` in a model's hyperparameters;
    loading such a checkpoint imports and calls them, and jsonargparse imports any class path
    nested in its arguments. Only Lightning's own instantiator passes, and every string at any
    depth is vetted like a recipe's.

    Args:
        hparams: A checkpoint's ``hyper_parameters`` (or ``datamodule_hyper_parameters``).
        allow: Modules allowed on top of :data:`ALLOWED_MODULES` and :func:`allow_modules`.
        where: How to name the checkpoint (its path).

    Raises:
        UnsafeError: naming the class or function, and the flag that allows it.

    Example:
        >>> check_checkpoint_hparams({"_class_path": "mlstrategy.models.DeepNet", "n": 3})
        >>> check_checkpoint_hparams({"opt": {"class_path": "os.system"}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlstrategy.safety.UnsafeError: The checkpoint, in its hyperparameters, names ...
    """
    instantiator = hparams.get("_instantiator")
    if instantiator is not None and instantiator != "lightning.pytorch.cli.instantiate_module":
        raise UnsafeError(
            f"{where} names {instantiator!r} as the function that builds the model (in its "
            "hyperparameters); only Lightning's own instantiator is accepted. The file may be "
            "crafted; do not load it."
        )
    class_path = hparams.get("_class_path")
    if class_path is not None and not _allowed(str(class_path), allow):
        raise _refuse(str(class_path), f"{where}, in its hyperparameters,")
    importlib.invalidate_caches()
    _Vetting(allow).tree(hparams, f"{where}, in its hyperparameters,", Path())


def _torch_reason(err: BaseException) -> str:
    """What torch says is wrong, without its advice to load the file unsafely."""
    import pickle

    if isinstance(err, EOFError):
        return "the file ends too early"
    if isinstance(err, (RuntimeError, pickle.UnpicklingError)):
        advice = ("weights_only", "Weights only load", "trusted source", "file an issue", "glob")
        for line in str(err).splitlines():
            line = line.replace("WeightsUnpickler error:", "").strip()
            if line and not any(a in line for a in advice):
                first = line.split(". ")[0].rstrip(".")
                return first if isinstance(err, RuntimeError) else f"not a torch file: {first}"
    return f"not a file torch.save writes ({type(err).__name__})"


def _unreadable(path: Path, err: BaseException, fix: str) -> ValueError:
    refused = re.search(r"GLOBAL\s+([\w.]+)", str(err))
    if refused:
        return UnsafeError(
            f"{path} is not a plain weights/checkpoint file: loading it would run code from the "
            f"file ({refused.group(1)}). It was refused and nothing from it was executed. {fix}"
        )
    empty = path.is_file() and path.stat().st_size == 0
    return ValueError(
        f"{path} is damaged or truncated: torch cannot read it as a checkpoint "
        f"({'the file is empty' if empty else _torch_reason(err)}). Nothing from it was "
        f"executed. {fix}"
    )


_FIX = "Give another copy (each run keeps checkpoints/best.ckpt and last.ckpt) or write it again."


def read_torch_file(path: str | Path, fix: str = _FIX) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors a user can act on.

    Args:
        path: The file.
        fix: The sentence that ends the error, saying what to do instead.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeError: the file needs unpickling code (nothing from it runs).
        ValueError: the file is damaged, truncated or not a torch file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"Checkpoint {str(path)!r} {what}.")
    try:
        with warnings.catch_warnings():
            # A raw pickle of another protocol: the error below says what is wrong with it.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as err:
        raise ValueError(f"{path} cannot be read: {err.strerror}.") from None
    except Exception as err:  # UnpicklingError, EOFError, RuntimeError (zip), KeyError, ...
        raise _unreadable(path, err, fix) from None


def load_checkpoint(path: str | Path, allow: Iterable[str] = ()) -> dict[str, Any]:
    """The one checkpoint loader: weights only, damaged files named, hyperparameters vetted.

    Every path that reads a checkpoint uses it (test/validate/predict ``--ckpt_path``,
    ``run --resume``, transfer backbones, pretrained multi-task trunks). There is no unsafe
    retry.

    Args:
        path: The checkpoint file.
        allow: Modules allowed on top of :data:`ALLOWED_MODULES` and :func:`allow_modules`.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeError: the file needs unsafe unpickling, or its hyperparameters name foreign code.
        ValueError: the file is damaged or truncated, or holds no checkpoint dictionary.
    """
    checkpoint = read_torch_file(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary; give a "
            "checkpoint written by a run (its checkpoints/best.ckpt or last.ckpt)."
        )
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        hparams = checkpoint.get(key) or {}
        if not isinstance(hparams, Mapping):
            raise ValueError(f"{path}: its {key} is a {type(hparams).__name__}, not a mapping.")
        check_checkpoint_hparams(hparams, allow, f"The checkpoint {path}")
    return checkpoint


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _describe(class_path: str, hparams: Mapping[str, Any]) -> str:
    parts = [f"a {class_path.rsplit('.', 1)[-1]} ({class_path})"]
    if "input_shape" in hparams:
        parts.append(f"for inputs of shape {_plain(hparams['input_shape'])}")
    if "num_classes" in hparams:
        parts.append(f"with num_classes={_plain(hparams['num_classes'])}")
    return " ".join(parts)


def check_checkpoint_class(
    checkpoint: Mapping[str, Any], class_path: str, where: str = "The checkpoint"
) -> None:
    """Refuse a checkpoint of another model class than ``class_path`` (compared by name).

    Raises:
        ValueError: naming the class the checkpoint holds and the one the recipe builds.

    Example:
        >>> ckpt = {"hyper_parameters": {"_class_path": "mlstrategy.models.ConvNet"}}
        >>> check_checkpoint_class(ckpt, "mlstrategy.models.conv.ConvNet")
        >>> check_checkpoint_class(ckpt, "mlstrategy.models.DeepNet")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: The checkpoint holds a ConvNet (mlstrategy.models.ConvNet), but the recipe ...
    """
    theirs = checkpoint.get("hyper_parameters") or {}
    their_path = str(theirs.get("_class_path") or "")
    if their_path and their_path.rsplit(".", 1)[-1] != class_path.rsplit(".", 1)[-1]:
        _mismatch(where, their_path, theirs, class_path, {})


def _mismatch(
    where: str, their_path: str, theirs: Mapping[str, Any], own_path: str, own: Mapping[str, Any]
) -> NoReturn:
    raise ValueError(
        f"{where} holds {_describe(their_path or 'model of unknown class', theirs)}, but the "
        f"recipe builds {_describe(own_path, own)}. Give the checkpoint of a run of this recipe, "
        "or the recipe that wrote it (its run folder keeps config.yaml)."
    )


def check_checkpoint_matches(
    checkpoint: Mapping[str, Any], model: Any, where: str = "The checkpoint"
) -> None:
    """Refuse a checkpoint written for another model: class, input shape, class count, weights.

    Duck-typed: reads ``type(model)``, ``model.hparams`` and, when it has one,
    ``model.state_dict()``. A key that either side lacks is not compared.

    Args:
        checkpoint: What :func:`load_checkpoint` returned.
        model: The model the recipe built.
        where: How to name the checkpoint (its path).

    Raises:
        ValueError: naming what the checkpoint holds and what the recipe builds.
    """
    theirs = checkpoint.get("hyper_parameters") or {}
    own = dict(getattr(model, "hparams", None) or {})
    cls = type(model)
    own_path = f"{cls.__module__}.{cls.__qualname__}"
    check_checkpoint_class(checkpoint, own_path, where)
    for key in ("input_shape", "num_classes"):
        if key in theirs and key in own and _plain(theirs[key]) != _plain(own[key]):
            _mismatch(where, str(theirs.get("_class_path") or ""), theirs, own_path, own)
    _check_weights_fit(checkpoint.get("state_dict"), model, where, own_path)


def _check_weights_fit(state: Any, model: Any, where: str, own_path: str) -> None:
    """Same keys, different shapes: Lightning would fail with a traceback; say it here."""
    if not isinstance(state, Mapping) or not hasattr(model, "state_dict"):
        return
    own = model.state_dict()
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state
        and hasattr(state[k], "shape")
        and _known_shape(own[k])
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if shapes:
        more = f" ... and {len(shapes) - 3} more" if len(shapes) > 3 else ""
        raise ValueError(
            f"{where} holds weights of other shapes than the {own_path} the recipe builds "
            f"({'; '.join(shapes[:3])}{more}). Give the checkpoint of a run of this recipe."
        )


def _known_shape(tensor: Any) -> bool:
    from torch.nn.parameter import is_lazy

    return hasattr(tensor, "shape") and not is_lazy(tensor)
