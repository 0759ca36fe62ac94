"""The part of an error a user can act on."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

_UNION = "Does not validate against any of the Union subtypes"


def user_message(err: BaseException) -> str:
    """``str(err)`` without jsonargparse's bookkeeping.

    jsonargparse wraps a ``ValueError`` raised while building a class (a model's bad
    hyperparameter) in "Does not validate against any of the Union subtypes ... Given value:
    Namespace(...)"; only the inner messages say what is wrong.

    Example:
        >>> text = "Does not validate against any of the Union subtypes\\n- clutter=-1 is bad"
        >>> user_message(ValueError(text))
        'clutter=-1 is bad'
        >>> nested = [_UNION, "  - In class X:", "      Got value: foo", "  - Expected a <class"]
        >>> user_message(ValueError(chr(10).join(nested) + " 'NoneType'>"))
        'In class X: Got value: foo'
        >>> lines = ['Parser key "trainer.max_epochs":', "  " + _UNION, "  Errors:"]
        >>> lines += ["    - Expected a <class 'int'>", "  Given value: many"]
        >>> user_message(ValueError(chr(10).join(lines)))
        "trainer.max_epochs: Expected a <class 'int'> (given: many)"
        >>> user_message(ValueError("plain"))
        'plain'
    """
    text = str(err)
    if _UNION not in text:
        return text
    entries: list[list[str]] = []
    indent = -1
    for line in text.splitlines():
        stripped = line.strip()
        depth = len(line) - len(line.lstrip())
        if stripped.startswith("- "):
            entries.append([stripped[2:]])
            indent = depth
        elif entries and depth > indent >= 0:
            entries[-1].append(stripped)  # the entry continues: where in the class it failed
        else:
            indent = -1
    kept = [" ".join(e) for e in entries if "Expected a <class 'NoneType'>" not in e[0]]
    if not kept:
        return text
    # Which key failed, and (when it is short) the value given: the rest is bookkeeping.
    key = re.match(r'\s*Parser key "([^"]+)":', text)
    given = re.search(r"^\s*Given value: (.+)$", text, re.M)
    shown = given.group(1) if given and len(given.group(1)) < 60 else None
    if shown is not None and ("Namespace(" in shown or "NestedArg(" in shown):
        shown = None
    message = " ".join(kept)
    if key:
        message = f"{key.group(1)}: {message}"
    return f"{message} (given: {shown})" if shown else message


# jsonargparse's words for an unknown key or a bad value (4.x), innermost last.
_KEY = re.compile(r'Parser key "([^"]+)":')
_CLASS = re.compile(r"Problem with given class_path '([^']+)':")
_OPTION = re.compile(r"Option '([^']+)' is not accepted")
_GROUP = re.compile(r"(?:Group|Subcommand) '([^']+)' does not accept option '([^']+)'")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (\S+)")
_GOT = re.compile(r"Expected an? (.+?)\. Got value: (.*)$")
_EXPECTED = re.compile(r"Expected an? (.+)$")
_GIVEN = re.compile(r"^\s*Given value: (.*)$", re.M)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def config_error(text: str, args: Sequence[str], options: Sequence[str]) -> str | None:
    """One paragraph for jsonargparse's error about a recipe key, or None if it is another.

    An unknown key names itself, where it was (an override or a recipe file), the closest
    valid names and the command that lists every option; a bad value is one line: the key,
    the value and the type expected.

    Args:
        text: jsonargparse's message.
        args: The command line LightningCLI parsed (``--config=FILE`` and the overrides).
        options: Every dotted key the parser knows (``trainer.max_epochs``, ...).

    Example:
        >>> text = "Group 'trainer' does not accept option 'max_epoch'"
        >>> print(config_error(text, ["--config=r.yaml"], ["trainer.max_epochs"]))
        ... # doctest: +NORMALIZE_WHITESPACE
        Unknown key `trainer.max_epoch` (in the recipe): did you mean `max_epochs`? Every
        option of trainer: `mlstrategy fit --help | grep -- --trainer.`
        >>> text = 'Parser key "trainer.max_epochs":\\n  - Expected a <class \\'int\\'>\\n'
        >>> print(config_error(text + "  Given value: many", [], []))
        trainer.max_epochs=many: expected int (in the recipe)
    """
    chain_keys: list[str] = []
    classes: list[str] = []
    unknown: str | None = None
    got: tuple[str, str] | None = None
    for line in text.splitlines():
        line = line.strip().removeprefix("- ")
        if match := _KEY.match(line):
            chain_keys.append(match.group(1))
        elif match := _CLASS.match(line):
            classes.append(match.group(1))
        elif match := _OPTION.match(line):
            unknown = match.group(1)
            break
        elif match := _GROUP.match(line):
            chain_keys, unknown = [match.group(1)], match.group(2)
            break
        elif match := _UNRECOGNIZED.match(line):
            return _unknown(match.group(1).lstrip("-").split("=", 1)[0], [], args, options)
        elif match := _GOT.match(line):
            got = match.group(1), match.group(2)
            break
    if not chain_keys and unknown is None:
        return None
    key = _dotted(chain_keys, classes)
    if unknown is not None:
        if not chain_keys or chain_keys[0] in ("fit", "validate", "test", "predict"):
            key = unknown  # a top-level key (of the parser or of a subcommand's)
        else:
            key = f"{key}.init_args.{unknown}" if classes else f"{key}.{unknown}"
        return _unknown(key, classes, args, options, chain_keys)
    if got is None:
        expected = [m.group(1) for m in map(_EXPECTED.match, _entries(text)) if m]
        given = _GIVEN.search(text)
        if not expected or given is None:
            return None
        got = " or ".join(expected), given.group(1)
    return f"{key}={got[1]}: expected {_type_words(got[0])} ({_where(key, args)})"


def _entries(text: str) -> list[str]:
    return [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]


def _dotted(keys: list[str], classes: list[str]) -> str:
    """``data.init_args.source.init_args.seed`` from the keys and classes on the way down."""
    parts = keys[:1]
    for i in range(len(classes)):
        if i + 1 < len(keys):
            parts += ["init_args", keys[i + 1]]
    return ".".join(parts)


def _type_words(expected: str) -> str:
    """``<class 'int'> or <class 'NoneType'>`` -> ``int or null``; a Literal's choices."""
    words = []
    for part in expected.split(" or "):
        literal = re.match(r"typing\.Literal\[(.*)\]$", part)
        if literal:
            words.append("one of " + literal.group(1).replace("'", ""))
            continue
        name = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", part)
        words.append("null" if name == "NoneType" else name)
    return " or ".join(words)


def _unknown(
    key: str,
    classes: Sequence[str],
    args: Sequence[str],
    options: Sequence[str],
    chain_keys: Sequence[str] = (),
) -> str:
    class_path = classes[-1] if classes else None
    leaf = key.rsplit(".", 1)[-1]
    group = key.rsplit(".", 1)[0] if "." in key else ""
    if class_path is not None:
        names = _init_parameters(class_path)
        owner = class_path.rsplit(".", 1)[-1]
        listing = _class_help(chain_keys, classes)
    else:
        prefix = f"{group}." if group else ""
        names = [o[len(prefix) :] for o in options if o.startswith(prefix)]
        names = [n for n in names if "." not in n]
        owner = group or "the recipe's top level"
        listing = (
            f"mlstrategy fit --help | grep -- --{group}." if group else "mlstrategy fit --help"
        )
    close = difflib.get_close_matches(leaf, names, n=3, cutoff=0.6)
    guess = " or ".join(", ".join(f"`{n}`" for n in close).rsplit(", ", 1))
    suggestion = f"did you mean {guess}?" if close else f"{owner} has no `{leaf}`."
    where = _where(key, args)
    return f"Unknown key `{key}` ({where}): {suggestion} Every option of {owner}: `{listing}`"


def _class_help(chain_keys: Sequence[str], classes: Sequence[str]) -> str:
    """The command whose help lists every argument of the innermost class.

    A nested class (``data.source``) needs the classes above it named first.
    """
    keys = list(chain_keys) or ["model"]
    flags = [f"--{'.'.join(keys[: i + 1])} {c}" for i, c in enumerate(classes[:-1])]
    path = ".".join(keys[: len(classes)])
    return " ".join(["mlstrategy fit", *flags, f"--{path}.help {classes[-1]}"])


def _init_parameters(class_path: str) -> list[str]:
    """The names ``class_path``'s ``__init__`` takes, with those its ``**kwargs`` pass on to
    its bases' (as jsonargparse reads them); [] when it cannot be imported."""
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
        inits = [k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__]
        signatures = [inspect.signature(init) for init in inits if inspect.isfunction(init)]
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
    names: list[str] = []
    for signature in signatures:
        params = list(signature.parameters.values())[1:]  # without self
        names += [p.name for p in params if p.kind not in _VARIADIC and p.name not in names]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break  # nothing is passed further up
    return names


def _where(key: str, args: Sequence[str]) -> str:
    """``override --k=v``, ``in FILE`` or ``in the recipe``: where ``key`` was given."""
    bare = key.replace(".init_args.", ".")
    configs = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for arg in args:
        if arg.startswith("--") and not arg.startswith("--config="):
            given = arg[2:].split("=", 1)[0].replace(".init_args.", ".")
            if given == bare:
                return f"override {arg}"
    for config in reversed(configs):
        try:
            tree = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if _has_key(tree, bare.split(".")):
            return f"in {config}"
    return "in the recipe"


def _has_key(node: Any, parts: list[str]) -> bool:
    """Whether ``parts`` is a path in the YAML tree, through ``init_args`` and through a
    mapping's entries (``heads: {car: {kind: ...}}``), which jsonargparse leaves unnamed."""
    if not parts:
        return True
    if not isinstance(node, dict):
        return False
    if parts[0] in node:
        return _has_key(node[parts[0]], parts[1:])
    return any(_has_key(child, parts) for child in node.values() if isinstance(child, dict))
