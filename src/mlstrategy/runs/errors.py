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

from mlstrategy.runs.class_hints import class_where, unknown_class

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
# A class_path that does not import: "module 'a.b' has no attribute 'C'", "No module named 'a'";
# a bare class name that names no known subclass; the type a key's classes must subclass.
_NO_CLASS = re.compile(r"module '([\w.]+)' has no attribute '(\w+)'|No module named '([\w.]+)'")
_SHORT = re.compile(r"Expected a dot import path string: (\S+)$")
_SUBTYPE = re.compile(r"Subtypes: \[<class '([\w.]+)'>")
_NOT_RECIPE = "Unexpected config:"
_RECIPE = (
    "a recipe is a YAML mapping with model:, data: and trainer: sections, as the files in "
    "recipes/ are (e.g. `mlstrategy run recipes/quickstart.yaml`)"
)
_DATA_FILES = (".csv", ".npz", ".tsv", ".txt")
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class ConfigError(ValueError):
    """jsonargparse's error about the command line or a recipe, in plain words.

    It keeps what its message was made from, so the verb that passed the unknown options on to
    LightningCLI can name its own options in the hint (:meth:`for_verb`).

    Args:
        message: The plain message (:func:`config_error`'s).
        text: jsonargparse's message.
        argv: The command line LightningCLI parsed.
        options: Every dotted key the parser knows.
    """

    def __init__(
        self, message: str, text: str, argv: Sequence[str], options: Sequence[str]
    ) -> None:
        super().__init__(message)
        self.text = text
        self.argv = list(argv)
        self.options = list(options)

    def for_verb(self, verb: str, flags: Sequence[str]) -> str:
        """The message again, with ``verb``'s own ``flags`` (``--trials``) among the names an
        unknown option is matched against."""
        message = config_error(self.text, self.argv, self.options, verb=verb, verb_flags=flags)
        return message or str(self)


def config_error(
    text: str,
    args: Sequence[str],
    options: Sequence[str],
    verb: str | None = None,
    verb_flags: Sequence[str] = (),
) -> str | None:
    """One paragraph for jsonargparse's error about a recipe key, or None if it is another.

    An unknown key names itself, where it was (an override or a recipe file), the closest
    valid names and the command that lists every option; an unknown class names the closest
    class that exists; a bad value is one line: the key, the value and the type expected.

    Args:
        text: jsonargparse's message.
        args: The command line LightningCLI parsed (``--config=FILE`` and the overrides).
        options: Every dotted key the parser knows (``trainer.max_epochs``, ...).
        verb: The toolkit verb (``run``, ``tune``) that passed unknown options on to
            LightningCLI, if any.
        verb_flags: That verb's own options (``--human-error``, ``--trials``).

    Example:
        >>> text = "Group 'trainer' does not accept option 'max_epoch'"
        >>> print(config_error(text, ["--config=r.yaml"], ["trainer.max_epochs"]))
        ... # doctest: +NORMALIZE_WHITESPACE
        Unknown key `trainer.max_epoch` (in the recipe): did you mean `max_epochs`? Every
        option of trainer: `mlstrategy fit --help | grep -- --trainer.`
        >>> text = 'Parser key "trainer.max_epochs":\\n  - Expected a <class \\'int\\'>\\n'
        >>> print(config_error(text + "  Given value: many", [], []))
        trainer.max_epochs=many: expected int (in the recipe)
        >>> print(config_error("unrecognized arguments: --trails=3", [], ["trainer.max_epochs"],
        ...                    "tune", ["--trials", "--refine"]))
        ... # doctest: +NORMALIZE_WHITESPACE
        Unknown option `--trails=3`: did you mean `--trials`? Every option of `mlstrategy
        tune`: `mlstrategy tune --help`
    """
    if text.startswith(_NOT_RECIPE):
        return _not_a_recipe(args)
    chain_keys: list[str] = []
    classes: list[str] = []
    unknown: str | None = None
    missing: str | None = None  # a class_path that names no class
    broken: tuple[str, str] | None = None  # a class whose module fails to import, and why
    got: tuple[str, str] | None = None
    for line in text.splitlines():
        line = line.strip().removeprefix("- ")
        if match := _KEY.match(line):
            chain_keys.append(match.group(1))
        elif match := _CLASS.match(line):
            classes.append(match.group(1))
        elif (match := _NO_CLASS.match(line)) and classes:
            if _names_part_of(match, classes[-1]):
                missing = classes.pop()
            else:  # the class's module is there, its own import fails
                broken = classes.pop(), line
            break
        elif match := _SHORT.match(line):
            missing = match.group(1)
            break
        elif match := _OPTION.match(line):
            unknown = match.group(1)
            break
        elif match := _GROUP.match(line):
            chain_keys, unknown = [match.group(1)], match.group(2)
            break
        elif match := _UNRECOGNIZED.match(line):
            return _unrecognized(match.group(1), args, options, verb, verb_flags)
        elif match := _GOT.match(line):
            got = match.group(1), match.group(2)
            break
    if not chain_keys and unknown is None:
        return None
    key = _dotted(chain_keys, classes)
    if broken is not None:
        return (
            f"{key}: `{broken[0]}` does not import: {broken[1]} ({class_where(broken[0], args)}). "
            "Install what its module needs, or fix the module."
        )
    if missing is not None:
        base = _SUBTYPE.search(text) if not classes else None
        return unknown_class(missing, key, args, base.group(1) if base else None)
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


def _names_part_of(match: re.Match[str], class_path: str) -> bool:
    """Whether the module or attribute an import error names is ``class_path`` or a module on
    its way: a misspelt class. An import failing inside the class's module (a dependency
    missing) is another error, shown as it is.

    Example:
        >>> m = _NO_CLASS.match("No module named 'timm'")
        >>> _names_part_of(m, "timm.models.Net"), _names_part_of(m, "mynet.Net")
        (True, False)
    """
    module, attribute, missing_module = match.groups()
    named = missing_module or f"{module}.{attribute}"
    return class_path == named or class_path.startswith(f"{named}.")


def _not_a_recipe(args: Sequence[str]) -> str:
    """The file given as a recipe that is not a YAML mapping (a CSV, a text file)."""
    configs = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    bad = next((c for c in reversed(configs) if not _is_mapping(Path(c))), None)
    if bad is None:
        return f"A --config value is not a recipe: {_RECIPE}."
    message = f"{bad} is not a recipe: {_RECIPE}."
    if Path(bad).suffix.lower() in _DATA_FILES:
        source = (
            f"{{class_path: mlstrategy.data.ArrayFile, init_args: {{path: {bad}, target: ...}}}}"
        )
        help_ = (
            "mlstrategy fit --data mlstrategy.data.ArrayDataModule "
            "--data.init_args.source.help mlstrategy.data.ArrayFile"
        )
        message += (
            f" To train on {bad}, name it as the data source in a recipe, "
            f"data.init_args.source: {source} (its options: `{help_}`)."
        )
    return message


def _is_mapping(path: Path) -> bool:
    try:
        return isinstance(yaml.safe_load(path.read_text(errors="replace")), dict)
    except (OSError, yaml.YAMLError):
        return False


def _unrecognized(
    token: str,
    args: Sequence[str],
    options: Sequence[str],
    verb: str | None,
    verb_flags: Sequence[str],
) -> str:
    """An argument no parser took: an override without ``--``, a misspelt option of the verb,
    or an unknown recipe key."""
    key = token.lstrip("-").split("=", 1)[0]
    if not token.startswith("-"):
        if "=" in token or any(o == key or o.startswith(f"{key}.") for o in options):
            return f"`{token}` was given without `--`: overrides are written `--{token}`."
        return (
            f"Unexpected argument `{token}`: give one recipe, then overrides written "
            "--section.key=value (e.g. --trainer.max_epochs=5)."
        )
    if "." not in key and verb is not None:
        names = [f.lstrip("-") for f in verb_flags if f.startswith("--")]
        close = _closest(key, names)
        if close:
            guess = _either([f"--{n}" for n in close])
            listing = f"mlstrategy {verb} --help"
            return (
                f"Unknown option `{token}`: did you mean {guess}? Every option of "
                f"`mlstrategy {verb}`: `{listing}`"
            )
    return _unknown(key, [], args, options)


def _closest(word: str, names: Sequence[str]) -> list[str]:
    """Up to three of ``names`` spelled like ``word``, closest first: every hint's match."""
    return difflib.get_close_matches(word, list(dict.fromkeys(names)), n=3, cutoff=0.6)


def _either(names: Sequence[str]) -> str:
    """The names in backticks, as a sentence lists them.

    Example:
        >>> _either(["a"]), _either(["a", "b", "c"])
        ('`a`', '`a`, `b` or `c`')
    """
    return " or ".join(", ".join(f"`{n}`" for n in names).rsplit(", ", 1))


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
    """``<class 'int'> or <class 'NoneType'>`` -> ``int or null``; a Literal's choices.

    Example:
        >>> _type_words("<class 'int'> or <class 'NoneType'> or <class 'NoneType'>")
        'int or null'
    """
    words = []
    for part in expected.split(" or "):
        literal = re.match(r"typing\.Literal\[(.*)\]$", part)
        if literal:
            words.append("one of " + literal.group(1).replace("'", ""))
            continue
        name = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", part)
        words.append("null" if name == "NoneType" else name)
    # An Optional class's union and the union inside it both allow null: say it once.
    return " or ".join(dict.fromkeys(words))


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
    section = _unknown_section(key, options) if class_path is None else None
    if section is not None:
        name, hint = section
        where = _where(key, args)
        listing = "mlstrategy fit --help"
        return f"Unknown section `{name}` in `{key}` ({where}): {hint} Every option: `{listing}`"
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
    close = _closest(leaf, names)
    suggestion = f"did you mean {_either(close)}?" if close else f"{owner} has no `{leaf}`."
    where = _where(key, args)
    return f"Unknown key `{key}` ({where}): {suggestion} Every option of {owner}: `{listing}`"


def _unknown_section(key: str, options: Sequence[str]) -> tuple[str, str] | None:
    """The section on the way to ``key`` that the parser does not know, and the closest it
    does; None when it knows them all (or a class's arguments start on the way, which the
    parser does not list).

    Example:
        >>> _unknown_section("trainr.max_epochs", ["trainer.max_epochs", "model"])
        ('trainr', 'did you mean `trainer`?')
        >>> print(_unknown_section("trainer.max_epoch", ["trainer.max_epochs"]))
        None
    """
    parts = key.split(".")
    for i in range(len(parts) - 1):
        path = ".".join(parts[: i + 1])
        if path in options:
            return None  # a class (model, data): its arguments are not the parser's options
        if any(o.startswith(f"{path}.") for o in options):
            continue
        prefix = ".".join(parts[:i]) + "." if i else ""
        names = [o[len(prefix) :].split(".", 1)[0] for o in options if o.startswith(prefix)]
        close = _closest(parts[i], names)
        owner = f"`{prefix[:-1]}`" if prefix else "a recipe"
        return parts[i], f"did you mean {_either(close)}?" if close else f"{owner} has none."
    return None


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
