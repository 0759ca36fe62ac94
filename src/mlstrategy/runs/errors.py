"""The part of an error a user can act on."""

from __future__ import annotations

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
        >>> user_message(ValueError("plain"))
        'plain'
    """
    text = str(err)
    if _UNION not in text:
        return text
    inner = [
        line.strip()[2:]
        for line in text.splitlines()
        if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line
    ]
    return " ".join(inner) or text
