"""Finding the recipes a path names, and vetting a command line before anything is imported.

A recipe is one YAML file. A folder of recipes is a study: every ``*.yaml`` in it, in name
order, except files starting with ``_``. A study folder may hold ``_base.yaml``, on top of
which each of its recipes is composed, whether the study runs whole or one recipe runs alone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

BASE_RECIPE = "_base.yaml"


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


def vet_command(verb: str, tail: list[str], allow: list[str]) -> None:
    """Refuse foreign class paths and crafted checkpoints before anything is imported.

    Reads the recipe a toolkit verb names (with its study's base), every ``--config`` file,
    every dotted override and ``--ckpt_path``, and checks them against the allowlist.

    Raises:
        mlstrategy.safety.UnsafeError: a class path or checkpoint outside the allowlist.
    """
    from mlstrategy.safety import check_recipe, load_checkpoint

    configs: list[Path] = []
    overrides: list[str] = []
    ckpt: str | None = None
    for i, arg in enumerate(tail):
        value = arg.split("=", 1)[1] if "=" in arg else (tail[i + 1] if i + 1 < len(tail) else "")
        if arg == "--config" or arg.startswith("--config="):
            configs.append(Path(value))
        elif arg == "--ckpt_path" or arg.startswith("--ckpt_path="):
            ckpt = value
        elif arg.startswith("--"):
            overrides.append(arg if "=" in arg else f"{arg}={value}")
    if verb in ("run", "learning-curve", "lr-find") and tail and not tail[0].startswith("-"):
        target = Path(tail[0])
        if target.exists():
            # A folder without recipes: the verb itself says what is wrong with it.
            with contextlib.suppress(ValueError):
                configs += [c for recipe in recipe_configs(target) for c in recipe]
    check_recipe(list(dict.fromkeys(c for c in configs if c.is_file())), overrides, allow)
    if ckpt and Path(ckpt).is_file():
        load_checkpoint(ckpt, allow)
