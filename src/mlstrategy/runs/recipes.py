"""Finding the recipes a path names, and vetting a command line before anything is imported.

A recipe is one YAML file. A folder of recipes is a study: every ``*.yaml`` in it, in name
order, except files starting with ``_``. A study folder may hold ``_base.yaml``, on top of
which each of its recipes is composed, whether the study runs whole or one recipe runs alone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml

BASE_RECIPE = "_base.yaml"
# The verbs whose first positional argument is a recipe (the plain verbs take --config).
_RECIPE_VERBS = ("run", "learning-curve", "lr-find", "grad-check", "tune")
_WHAT = (
    "A recipe is a YAML mapping of model: (the class to train and its init_args), data: (the "
    "data module) and trainer: (Lightning's settings); see recipes/quickstart.yaml."
)


def recipe_configs(path: Path) -> list[list[Path]]:
    """The config files of each recipe ``path`` names, base first.

    Args:
        path: A recipe file, or a folder of recipes (a study).

    Returns:
        One list per recipe: ``[_base.yaml, recipe]`` when the folder has a base, else
        ``[recipe]``.

    Raises:
        ValueError: a folder with no recipes in it.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("_base.yaml", "b.yaml", "a.yaml"):
        ...     _ = (folder / name).write_text("{}")
        >>> [[p.name for p in c] for c in recipe_configs(folder)]
        [['_base.yaml', 'a.yaml'], ['_base.yaml', 'b.yaml']]
        >>> [p.name for p in recipe_configs(folder / "a.yaml")[0]]
        ['_base.yaml', 'a.yaml']
    """
    if path.is_file():
        base = path.parent / BASE_RECIPE
        return [[base, path]] if base.is_file() and path.name != base.name else [[path]]
    base = path / BASE_RECIPE
    recipes = sorted(p for p in path.glob("*.yaml") if not p.name.startswith("_"))
    if not recipes:
        raise ValueError(
            f"Folder {str(path)!r} holds no *.yaml recipes (files starting with _ are bases)."
        )
    return [[base, p] if base.is_file() else [p] for p in recipes]


def one_recipe(given: str, verb: str, example: str) -> Path:
    """The single recipe file a verb such as ``learning-curve`` takes.

    Raises:
        ValueError: ``given`` is not a file (a folder, or nothing), with an example to follow.

    Example:
        >>> one_recipe("nowhere.yaml", "lr-find", "recipes/mnist1d/mlp.yaml")
        Traceback (most recent call last):
        ...
        ValueError: Recipe 'nowhere.yaml' is not a file. Give one .yaml recipe, e.g. \
`mlstrategy lr-find recipes/mnist1d/mlp.yaml`.
    """
    path = Path(given)
    if not path.is_file():
        raise ValueError(
            f"Recipe {given!r} is not a file. Give one .yaml recipe, e.g. "
            f"`mlstrategy {verb} {example}`."
        )
    return path


def split_allow_module(args: list[str]) -> tuple[list[str], list[str]]:
    """Take ``--allow-module NAME`` (repeatable) out of ``args``: ``(allowed, the rest)``.

    Example:
        >>> split_allow_module(["run", "r.yaml", "--allow-module", "mypkg", "--x=1"])
        (['mypkg'], ['run', 'r.yaml', '--x=1'])
    """
    allow: list[str] = []
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--allow-module":
            allow.append(next(it, ""))
        elif arg.startswith("--allow-module="):
            allow.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return allow, rest


def check_recipe_file(path: Path) -> None:
    """Refuse a recipe file that is not a YAML mapping, with one line naming the file and line.

    An empty file (or one of only comments) is refused too: jsonargparse cannot read it.

    Raises:
        ValueError: empty, only comments, not valid YAML, or a list or string.

    Example:
        >>> import tempfile
        >>> empty = Path(tempfile.mkdtemp()) / "r.yaml"
        >>> _ = empty.write_text("# nothing yet")
        >>> check_recipe_file(empty)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...r.yaml holds only comments. A recipe is a YAML mapping of model: ...
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(f"{path}{line}: not valid YAML ({problem}). {_WHAT}") from None
    if node is None:
        what = "holds only comments" if text.strip() else "is empty"
        raise ValueError(f"{path} {what}. {_WHAT}")
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else f"the value {node.value!r}"
        raise ValueError(
            f"{path}, line {node.start_mark.line + 1}: holds {kind}, not a mapping. {_WHAT}"
        )


def vet_command(verb: str, tail: list[str], allow: list[str]) -> None:
    """Refuse foreign class paths, crafted checkpoints and empty recipes before any import.

    Reads the recipe a toolkit verb names (with its study's base), every ``--config`` file,
    every token of the command line (as YAML, and any file it names) and the ``--ckpt_path``
    checkpoint's hyperparameters, and checks every string in them against the allowlist.
    ``allow`` (``--allow-module``) is kept for the rest of the process
    (:func:`mlstrategy.safety.allow_modules`), so checkpoints loaded later honour it too.

    Raises:
        mlstrategy.safety.UnsafeError: a class path or checkpoint outside the allowlist.
        ValueError: a recipe that is empty, not valid YAML or not a mapping; a damaged
            checkpoint.
    """
    from mlstrategy.safety import allow_modules, check_recipe, load_checkpoint

    allow_modules(allow)
    recipes: list[list[Path]] = [[]]  # each recipe's files, base first; --config files: one
    tokens: list[str] = []
    ckpt: str | None = None
    for i, arg in enumerate(tail):
        value = arg.split("=", 1)[1] if "=" in arg else (tail[i + 1] if i + 1 < len(tail) else "")
        if arg in ("--config", "-c") or arg.startswith("--config="):
            recipes[0].append(Path(value))
        elif arg == "--ckpt_path" or arg.startswith("--ckpt_path="):
            ckpt = value  # a path, never imported; its hyperparameters are vetted below
            continue
        if not (i > 0 and tail[i - 1] == "--ckpt_path"):
            tokens.append(arg)
    # The toolkit verbs take the recipe as a positional argument, anywhere on the line: every
    # bare token that names a recipe file or folder is read (with its study's base).
    # (Not the value of an option spelled without "=", such as `--resume logs/r/RUN`.)
    bare = [
        a
        for i, a in enumerate(tail)
        if not a.startswith("-")
        and not (i and tail[i - 1].startswith("--") and "=" not in tail[i - 1])
    ]
    targets = [Path(a) for a in bare] if verb in _RECIPE_VERBS else []
    for target in targets:
        if target.is_dir() or (target.is_file() and target.suffix in (".yaml", ".yml")):
            # A folder without recipes: the verb itself says what is wrong with it.
            with contextlib.suppress(ValueError):
                recipes += recipe_configs(target)
    # A --config recipe of a study is composed on its folder's _base.yaml (MLStrategyCLI adds
    # it), so that base is read too.
    recipes += [recipe_configs(f)[0] for f in recipes[0] if f.is_file()]
    for files in recipes:
        files[:] = [f for f in files if f.is_file()]
        for file in files:
            check_recipe_file(file)
        if files and all(yaml.safe_load(f.read_text()) == {} for f in files):
            raise ValueError(f"{files[-1]} is an empty recipe ({{}}). {_WHAT}")
    check_recipe(list(dict.fromkeys(f for files in recipes for f in files)), tokens, allow)
    if ckpt and Path(ckpt).is_file():
        load_checkpoint(ckpt, allow)
