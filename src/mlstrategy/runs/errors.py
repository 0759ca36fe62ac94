"""The part of an error a user can act on."""

from __future__ import annotations

import re

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
