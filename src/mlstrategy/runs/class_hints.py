"""The class a misspelt ``class_path`` meant: the closest class that exists, and where the
misspelt one was given.

Only what a recipe may name is imported while looking (:func:`~mlstrategy.safety.may_import`),
so the hint runs no code that the recipe itself could not.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import pkgutil
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlstrategy.safety import may_import

_TOOLKIT_PACKAGES = ("mlstrategy.models", "mlstrategy.data")


def unknown_class(class_path: str, key: str, args: Sequence[str], base_path: str | None) -> str:
    """A class_path that names no class: the closest that exists, and where it was given."""
    where = class_where(class_path, args)
    guesses = close_classes(class_path, base_path)
    if guesses:
        hint = f"did you mean `{guesses[0]}`?"  # the closest: the others differ more
    else:
        module = class_path.rpartition(".")[0] or " or ".join(_TOOLKIT_PACKAGES)
        hint = f"no class of that name in {module}."
    return f"Unknown class `{class_path}` for {key} ({where}): {hint}"


def close_classes(class_path: str, base_path: str | None) -> list[str]:
    """Existing class paths spelled like ``class_path`` (a subclass of ``base_path`` when it
    is known): each module of the path that does not import is matched against its package's
    modules, the class against its module's classes; a bare name, against the toolkit's
    subclasses of ``base_path``."""
    base = _import(base_path) if base_path else None
    base = base if isinstance(base, type) else object
    if "." not in class_path:
        for package in _TOOLKIT_PACKAGES:
            _import(package)  # loads the toolkit's classes, so that they are subclasses
        by_name = {cls.__name__: _public_path(cls) for cls in _subclasses(base)}
        return [by_name[n] for n in difflib.get_close_matches(class_path, list(by_name))]
    head, *rest = class_path.split(".")
    root = _import(head)
    return _close_paths(root, head, rest, base) if root is not None else []


def _close_paths(node: Any, prefix: str, rest: list[str], base: type) -> list[str]:
    """The paths under ``node`` (named ``prefix``) spelled like ``rest``, up to three."""
    part, *tail = rest
    if not tail:  # the class
        classes = {n: v for n, v in vars(node).items() if _is_class(v) and issubclass(v, base)}
        return [f"{prefix}.{n}" for n in difflib.get_close_matches(part, list(classes))]
    child = _import(f"{prefix}.{part}")
    if child is not None:
        return _close_paths(child, f"{prefix}.{part}", tail, base)
    found: list[str] = []
    modules = [m.name for m in pkgutil.iter_modules(getattr(node, "__path__", []))]
    for name in difflib.get_close_matches(part, modules):
        module = _import(f"{prefix}.{name}")
        if module is not None:
            found += _close_paths(module, f"{prefix}.{name}", tail, base)
    return found[:3]


def _import(path: str) -> Any:
    """The module ``path`` names, or the attribute of a module it names; None if neither, or
    if a recipe may not name it (the hint imports nothing the recipe itself could not)."""
    if not may_import(path):
        return None
    module_name, _, name = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ImportError:
        pass
    try:
        return getattr(importlib.import_module(module_name), name) if module_name else None
    except (ImportError, AttributeError):
        return None


def _is_class(value: Any) -> bool:
    return inspect.isclass(value) and not value.__name__.startswith("_")


def _subclasses(base: type) -> list[type]:
    """Every loaded subclass of ``base``, below it at any depth, the toolkit's only."""
    found: set[type] = set()
    todo: list[type] = list(base.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.add(cls)
            todo += type.__subclasses__(cls)  # also for metaclasses (type itself)
    toolkit = [c for c in found if c.__module__.split(".")[0] == "mlstrategy" and _is_class(c)]
    return sorted(toolkit, key=lambda c: (c.__module__, c.__qualname__))  # the same each time


def _public_path(cls: type) -> str:
    """``mlstrategy.models.SoftmaxRegression``, not ``mlstrategy.models.softmax.Soft...``:
    the shortest module that exports ``cls``."""
    parts = cls.__module__.split(".")
    for i in range(1, len(parts) + 1):
        module = _import(".".join(parts[:i]))
        if getattr(module, cls.__name__, None) is cls:
            return f"{'.'.join(parts[:i])}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__name__}"


def class_where(class_path: str, args: Sequence[str]) -> str:
    """``override --model.class_path=X``, ``in FILE`` or ``in the recipe``: where the class
    path was given (an override, else the last recipe file that spells it)."""
    for arg in reversed(args):
        if arg.startswith("--") and arg.split("=", 1)[-1] == class_path:
            return f"override {arg}"
    configs = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for config in reversed(configs):
        with contextlib.suppress(OSError):
            if re.search(rf"\b{re.escape(class_path)}\b", Path(config).read_text()):
                return f"in {config}"
    return "in the recipe"
