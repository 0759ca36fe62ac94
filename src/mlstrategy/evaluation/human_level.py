"""Human-level performance in the course's variants, and what it can and cannot tell.

Structuring ML Projects, week 1 ("understanding human-level performance"): on a medical image
a typical human misreads 3%, a typical doctor 1%, an experienced doctor 0.7% and a team of
experienced doctors 0.5%. For the bias / variance analysis the *best* of them, the lowest
error, is the proxy for Bayes error: Bayes error is at most what the best humans achieve. So
``evaluation.human_error`` is a number or a mapping of the levels :data:`LEVELS`, and the lowest
of them is the proxy.

Once a model's error falls below that proxy, the proxy stops working ("surpassing human-level
performance"): Bayes error is unknown, somewhere below the best human level, so
``train - human`` is no longer avoidable bias, and progress slows because humans can no longer
label what the model gets wrong or say why. :func:`below_human_notes` says so.

Structuring ML Projects, week 2 ("addressing data mismatch"): with human-level error measured
on the target distribution too (``evaluation.human_error_dev``), the course lays the errors out
in a 2x3 table, rows human level / examples trained on / examples not trained on, columns the
general (source) distribution / the target distribution: :func:`distributions_table`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

# The course's levels of human-level performance, and how the reports name them.
LEVELS = {"typical": "typical human", "expert": "expert", "team": "team of experts"}

HumanError = float | Mapping[str, float]


def _fix(where: str) -> str:
    return (
        f"Give {where} as one number, e.g. 0.01, or as levels, e.g. {{typical: 0.03, "
        "expert: 0.01, team: 0.005} (any of typical, expert and team; the lowest is the "
        "proxy for Bayes error): for a classifier fractions in [0, 1] (5% -> 0.05), for a "
        "regressor errors >= 0 in the target's units."
    )


def _number(where: str, value: Any, base: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}={value!r} is not a number. {_fix(base)}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where}={value} is not an error: it must be >= 0. {_fix(base)}")
    return float(value)


def human_levels(value: Any, where: str = "evaluation.human_error") -> dict[str, float]:
    """The levels of a human-level error as given: ``{}`` for None or a single number,
    ``{level: error}`` (in the order of :data:`LEVELS`) for a mapping.

    Raises:
        ValueError: a key that is not a level (the message suggests the nearest), a value that
            is not a number >= 0, an empty mapping, or neither a number nor a mapping.

    Example:
        >>> human_levels({"expert": 0.01, "typical": 0.03})
        {'typical': 0.03, 'expert': 0.01}
        >>> human_levels(0.02), human_levels(None)
        ({}, {})
        >>> human_levels({"expret": 0.01})
        Traceback (most recent call last):
        ...
        ValueError: evaluation.human_error has an unknown level 'expret' (did you mean 'expert'?)...
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _number(where, value, where)
        return {}
    if not value:
        raise ValueError(f"{where} is an empty mapping. {_fix(where)}")
    for key in value:
        if key not in LEVELS:
            close = difflib.get_close_matches(str(key), list(LEVELS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where} has an unknown level {key!r}{hint}; the levels are typical, expert "
                f"and team (typical human, expert, team of experts). {_fix(where)}"
            )
    return {k: _number(f"{where}.{k}", value[k], where) for k in LEVELS if k in value}


def bayes_proxy(
    value: Any, where: str = "evaluation.human_error"
) -> tuple[float | None, str | None]:
    """The proxy for Bayes error, and the level it is: the lowest level of a mapping (ties go
    to the more expert level), a single number as given (level None), or ``(None, None)``.

    Example:
        >>> bayes_proxy({"typical": 0.03, "expert": 0.01, "team": 0.005})
        (0.005, 'team')
        >>> bayes_proxy(0.02)
        (0.02, None)
    """
    levels = human_levels(value, where)
    if not levels:
        return (None, None) if value is None else (float(value), None)
    best = best_level(levels)
    return levels[best], best


def best_level(levels: Mapping[str, float]) -> str:
    """The level with the lowest error; of equal ones, the more expert (team over expert).

    Example:
        >>> best_level({"typical": 0.01, "expert": 0.01})
        'expert'
    """
    return min(reversed(list(levels)), key=lambda k: levels[k])


def check_human_error(value: Any, where: str) -> None:
    """Refuse a human-level error that is not a number >= 0 or a mapping of :data:`LEVELS`.

    Example:
        >>> check_human_error(-1, "evaluation.human_error")
        Traceback (most recent call last):
        ...
        ValueError: evaluation.human_error=-1 is not an error; give a fraction in [0, 1] for...
    """
    if isinstance(value, Mapping):
        human_levels(value, where)
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if value is not None and not (number and math.isfinite(value) and value >= 0):
        raise ValueError(
            f"{where}={value} is not an error; give a fraction in [0, 1] for a classifier "
            "(5% -> 0.05), an RMSE >= 0 in the target's units for a regressor, the course's "
            "levels, e.g. {typical: 0.03, expert: 0.01, team: 0.005} (the lowest is the proxy "
            "for Bayes error), or null when it is not known."
        )


def check_error_rates(value: Any, where: str) -> None:
    """A classifier's human-level error: every level a fraction in [0, 1].

    Example:
        >>> check_error_rates({"expert": 2.0}, "evaluation.human_error")
        Traceback (most recent call last):
        ...
        ValueError: evaluation.human_error.expert=2.0 is not an error rate; give a fraction...
    """
    levels = human_levels(value, where) or ({where: value} if value is not None else {})
    for level, error in levels.items():
        if error > 1.0:
            name = level if level == where else f"{where}.{level}"
            raise ValueError(
                f"{name}={error} is not an error rate; give a fraction in [0, 1] (5% -> 0.05), "
                "or null when it is not known."
            )


def parse_human_error_option(text: str, option: str = "--human-error") -> float | dict[str, float]:
    """The value of a ``--human-error`` option: a number (``0.01``) or levels
    (``typical=0.03,expert=0.01``), validated like ``evaluation.human_error``.

    Example:
        >>> parse_human_error_option("0.05"), parse_human_error_option("typical=0.03,expert=0.01")
        (0.05, {'typical': 0.03, 'expert': 0.01})
    """
    try:
        return float(text)
    except ValueError:
        pass
    levels: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, number = part.partition("=")
        if not sep:
            raise ValueError(
                f"{option} {text!r}: cannot read {part!r}. Give a number, e.g. {option} 0.01, "
                f"or levels, e.g. {option} typical=0.03,expert=0.01,team=0.005."
            )
        try:
            levels[key.strip()] = float(number)
        except ValueError:
            levels[key.strip()] = number.strip()  # human_levels names it
    return human_levels(levels, option)


def override_value(value: float | Mapping[str, float]) -> str:
    """``value`` as a LightningCLI override spells it: ``0.01`` or ``{typical: 0.03, ...}``.

    Example:
        >>> override_value({"typical": 0.03, "expert": 0.01}), override_value(0.01)
        ('{typical: 0.03, expert: 0.01}', '0.01')
    """
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in value.items()) + "}"
    return repr(float(value))


def levels_text(levels: Mapping[str, float], proxy: str | None, shown: Any) -> str:
    """``typical human 3.00%, expert 1.00% (the proxy)``: every level, the proxy marked."""
    return ", ".join(
        f"{LEVELS[k]} {shown(v)}" + (" (the proxy)" if k == proxy else "")
        for k, v in levels.items()
    )


def levels_note(levels: Mapping[str, float], proxy: str | None, shown: Any) -> str | None:
    """The note that lists every level and names the proxy; None without levels."""
    if not levels or proxy is None:
        return None
    return (
        f"Human-level error: {levels_text(levels, None, shown)}. The best, {LEVELS[proxy]} "
        f"({shown(levels[proxy])}), is the proxy for Bayes error: Bayes error is at most what "
        "the best humans achieve."
    )


def below_human_notes(
    errors: Mapping[str, float | None], proxy: float, who: str, shown: Any
) -> list[str]:
    """What it means that train or dev error is below the human-level proxy (course 3, week 1,
    "surpassing human-level performance"); ``who`` names the proxy, ``shown`` formats."""
    notes = []
    train, dev = errors.get("train"), errors.get("dev")
    human = f"human-level error ({shown(proxy)}, {who})"
    if train is not None and train < proxy:
        notes.append(
            f"Train error ({shown(train)}) is below {human}, so train - human "
            f"({shown(train - proxy)}) is not an avoidable bias: past human level, Bayes error "
            "is unknown, somewhere below the best human, and avoidable bias can no longer be "
            f"estimated this way (it lies between 0 and the train error, {shown(train)}). "
            "Progress slows here: humans can no longer label what the model gets wrong or "
            "tell why. The gaps between splits (variance, data mismatch) still measure."
        )
    if dev is not None and dev < proxy:
        notes.append(
            f"Dev error ({shown(dev)}) is below {human}: the model beats the best human on "
            "held-out data. Human-level error then no longer tells how much error is left to "
            "remove (Bayes error is unknown, below the best human), and human labels and manual "
            "error analysis help less; judge further work by the dev metric and the gaps "
            "between splits."
        )
    return notes


def resolve_human_error(
    human_error: HumanError | None, check: Callable[[str, float | None], None]
) -> tuple[dict[str, float], str | None, float | None]:
    """Validate ``human_error`` (``check(name, value)`` refuses an error out of range):
    ``(levels, the proxy's level, the proxy)``; ``({}, None, number)`` for one number or none.

    Example:
        >>> resolve_human_error({"typical": 0.03, "team": 0.01}, lambda name, value: None)
        ({'typical': 0.03, 'team': 0.01}, 'team', 0.01)
    """
    if not isinstance(human_error, Mapping):
        check("human_error", human_error)
        return {}, None, None if human_error is None else float(human_error)
    levels = human_levels(human_error, "human_error")
    for level, value in levels.items():
        check(f"human_error.{level}", value)
    best = best_level(levels)
    return levels, best, levels[best]


def shown_error(value: float, metric: str = "error") -> str:
    """An error, or a difference of errors, as the human-level notes write it.

    Example:
        >>> shown_error(-0.001), shown_error(0.25, "rmse")
        ('-0.10%', '0.25 RMSE')
    """
    return f"{100 * value:.2f}%" if metric == "error" else f"{value:.4g} {metric.upper()}"


def human_level_notes(
    levels: Mapping[str, float],
    proxy: str | None,
    human: float | None,
    errors: Mapping[str, float | None],
    metric: str = "error",
) -> tuple[tuple[str, ...], list[str]]:
    """``(the splits below the proxy, the notes)``: the levels and which one is the proxy,
    then what a train or dev error below it means (:func:`below_human_notes`)."""
    if human is None:
        return (), []
    shown = lambda v: shown_error(v, metric)  # noqa: E731
    notes = [n for n in (levels_note(levels, proxy, shown),) if n is not None]
    below = tuple(s for s, e in errors.items() if e is not None and e < human)
    who = LEVELS[proxy] if proxy is not None else "as the recipe gives it"
    return below, notes + below_human_notes(errors, human, who, shown)


def _mix(split: str, origins: Mapping[str, int]) -> str:
    """Which split a cell is measured on, and its mix when it holds target examples too."""
    if not origins.get("target"):
        return split
    return f"{split}, the mix: {origins.get('source', 0):,} source + {origins['target']:,} target"


def _cell(error: float | None, reason: str | None = None, on: str | None = None) -> dict[str, Any]:
    return {"error": error, "measured_on": on, "reason": reason if error is None else None}


def distributions_table(
    diagnosis: Any, sources: Mapping[str, Any], human_error_dev: Any = None
) -> dict[str, Any]:
    """The course's 2x3 table for training and testing on different distributions.

    Rows: human level, error on examples trained on, error on examples not trained on;
    columns: the general (``source``) distribution, the ``target`` distribution. A cell the
    run cannot measure holds ``error: None`` and the ``reason``. Measured from the run:

    - human level, general: ``evaluation.human_error`` (its proxy); target:
      ``evaluation.human_error_dev`` (the proxy of its levels).
    - trained on, general: the train error (the training mix, as the course reads it);
      target: not measured, since the train split is scored as one (its target examples are
      not scored apart), or there are none.
    - not trained on, general: the train-dev error; target: the dev error.

    Args:
        diagnosis: The run's :class:`~mlstrategy.evaluation.diagnosis.Diagnosis` (error rates).
        sources: The data module's ``describe_sources()`` (each split's origin counts).
        human_error_dev: Human-level error on the target distribution: a number, levels, or None.

    Returns:
        ``{"rows": {row: {"general": cell, "target": cell}}, "human_error_dev": proxy,
        "human_levels_dev": levels, "readings": {name: value}}``.
    """
    d = diagnosis
    dev_proxy, dev_level = bayes_proxy(human_error_dev, "evaluation.human_error_dev")
    splits = sources.get("splits", {})
    train = splits.get("train", {})
    in_train = int(train.get("target", 0))
    train_dev = splits.get("train_dev", {})
    rows = {
        "human level": {
            "general": _cell(d.human_error, "not given: set evaluation.human_error"),
            "target": _cell(
                dev_proxy,
                "not given: set evaluation.human_error_dev, human-level error on the target",
                LEVELS[dev_level] if dev_level else None,
            ),
        },
        "trained on": {
            "general": _cell(d.train_error, on=_mix("train", train)),
            "target": _cell(
                None,
                f"the train split's {in_train:,} target examples are scored together with its "
                "source examples, not apart"
                if in_train
                else "no target example was trained on: data.init_args.target_in_train is 0",
            ),
        },
        "not trained on": {
            "general": _cell(
                d.train_dev_error,
                "no train-dev split: set data.init_args.train_dev_fraction, e.g. 0.1",
                on=_mix("train-dev", train_dev),
            ),
            "target": _cell(d.dev_error, on="dev"),
        },
    }
    readings: dict[str, float] = {}
    if dev_proxy is not None:
        readings["dev_minus_human_dev"] = d.dev_error - dev_proxy
        if d.human_error is not None:
            readings["human_dev_minus_human"] = dev_proxy - d.human_error
    return {
        "rows": rows,
        "human_error_dev": dev_proxy,
        "human_levels_dev": human_levels(human_error_dev, "evaluation.human_error_dev"),
        "readings": readings,
    }
