"""The verb's own options, kept for the hint on a misspelt one.

The verbs that train (``run``, ``tune``, ``learning-curve``, ``lr-find``, ``grad-check``) read
their own options and hand the rest to LightningCLI as recipe overrides, so a misspelt option
of the verb's (``--trails``) reaches LightningCLI, which knows only the recipe's keys. The verb
parses through :func:`parse_known`; the CLI's error handler then matches the misspelt option
against :func:`verb_flags` too.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from contextvars import ContextVar

_FLAGS: ContextVar[tuple[str, ...]] = ContextVar("verb_flags", default=())


def parse_known(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, list[str]]:
    """``parser.parse_known_args(argv)``, remembering the parser's options.

    Example:
        >>> parser = argparse.ArgumentParser(prog="mlstrategy tune")
        >>> _ = parser.add_argument("--trials", type=int)
        >>> parse_known(parser, ["--trials", "3", "--trainer.max_epochs=2"])[1]
        ['--trainer.max_epochs=2']
        >>> verb_flags()
        ['-h', '--help', '--trials']
    """
    _FLAGS.set(tuple(flag for action in parser._actions for flag in action.option_strings))
    return parser.parse_known_args(list(argv))


def verb_flags() -> list[str]:
    """The options of the verb parsed last in this context (none before any)."""
    return list(_FLAGS.get())
