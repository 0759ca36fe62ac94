"""A recipe's ``search:`` section: which recipe keys to tune, over which ranges, on which scale.

Each entry maps a dotted recipe key to a range::

    search:
      model.init_args.learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}  # log scale
      model.init_args.keep_prob: {low: 0.5, high: 1.0}                        # linear
      data.init_args.batch_size: {choices: [32, 64, 128, 256]}
      model.init_args.beta1: {low: 0.9, high: 0.999, beta: true}              # 1 - beta, log
      model.init_args.layer_dims:                    # a list of equal hidden layers
        {layers: {low: 1, high: 4}, units: {low: 16, high: 256, log: true}}

A range whose ``low`` and ``high`` are both whole numbers samples integers. ``beta: true`` is
the course's scale for exponentially weighted averages: ``1 - beta`` is sampled on a log scale,
so 0.9 -> 0.99 gets as many samples as 0.99 -> 0.999 (week 3, "using an appropriate scale").
``layers``/``units`` builds a list of ``layers`` hidden layers of ``units`` units each.

Optuna samples the parameters (:meth:`SearchSpace.distributions`); a trial's values become
LightningCLI overrides (:meth:`SearchSpace.overrides`). :meth:`SearchSpace.narrowed` is the
coarse-to-fine step: ranges shrunk around the best trials, log scales kept log.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

_RANGE_FIELDS = {"low", "high", "log", "beta"}
_FORMS = (
    "{low: A, high: B} (linear), {low: A, high: B, log: true}, {choices: [...]}, "
    "{low: 0.9, high: 0.999, beta: true} (1 - beta on a log scale) or "
    "{layers: {low: 1, high: 4}, units: {low: 16, high: 256, log: true}}"
)


@dataclass(frozen=True)
class Range:
    """One sampled number or choice.

    Attributes:
        low: Smallest value (``choices``: unused).
        high: Largest value.
        log: Sample on a log scale.
        beta: Sample ``1 - value`` on a log scale (``low``/``high`` are betas).
        integer: Sample whole numbers.
        choices: The values of a categorical range (then the numbers are unused).
    """

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    beta: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of the sampled parameter (``1 - beta`` for a beta range)."""
        if self.choices is not None:
            return CategoricalDistribution([_encode(c) for c in self.choices])
        if self.beta:
            return FloatDistribution(1 - self.high, 1 - self.low, log=True)
        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial: Any, name: str) -> Any:
        """Sample the parameter ``name`` for an ``optuna.Trial``."""
        d = self.distribution()
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(name, d.choices)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(name, d.low, d.high, log=d.log)
        assert isinstance(d, FloatDistribution)
        return trial.suggest_float(name, d.low, d.high, log=d.log)

    def value(self, sampled: Any) -> Any:
        """The recipe value of a sampled parameter."""
        if self.choices is not None:
            return _decode(sampled)
        if self.beta:
            return 1 - float(sampled)
        return int(sampled) if self.integer else float(sampled)

    def to_spec(self) -> dict[str, Any]:
        """The range as a ``search:`` entry."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        number = int if self.integer else float
        spec: dict[str, Any] = {"low": number(self.low), "high": number(self.high)}
        if self.log:
            spec["log"] = True
        if self.beta:
            spec["beta"] = True
        return spec

    @property
    def on_log_axis(self) -> bool:
        """True when the parameter is sampled (and best plotted) on a log scale."""
        return self.log or self.beta


@dataclass(frozen=True)
class SearchKey:
    """One recipe key of the search and the range(s) behind it.

    Attributes:
        key: The dotted recipe key, e.g. ``model.init_args.learning_rate``.
        ranges: ``{"": range}``, or ``{"layers": range, "units": range}`` for a list of layers.
    """

    key: str
    ranges: dict[str, Range]

    def params(self) -> dict[str, Range]:
        """``{Optuna parameter name: range}``: the key itself, ``KEY:1-beta`` for a beta
        scale, ``KEY:layers`` and ``KEY:units`` for a list of layers."""
        if "" in self.ranges:
            suffix = ":1-beta" if self.ranges[""].beta else ""
            return {self.key + suffix: self.ranges[""]}
        return {f"{self.key}:{part}": r for part, r in self.ranges.items()}

    def value(self, sampled: Mapping[str, Any]) -> Any:
        """The recipe value from the sampled parameters."""
        if "" in self.ranges:
            (name,) = self.params()
            return self.ranges[""].value(sampled[name])
        layers = self.ranges["layers"].value(sampled[f"{self.key}:layers"])
        return [self.ranges["units"].value(sampled[f"{self.key}:units"])] * layers

    def to_spec(self) -> dict[str, Any]:
        """The entry as a ``search:`` section holds it."""
        if "" in self.ranges:
            return self.ranges[""].to_spec()
        return {part: r.to_spec() for part, r in self.ranges.items()}


class SearchSpace:
    """The parsed ``search:`` section.

    Args:
        section: ``{dotted recipe key: range}`` as in the recipe.
        known_keys: The recipe's real keys (every leaf of its resolved config); a search key
            outside them is refused, naming the closest real key. None: not checked.

    Raises:
        ValueError: an empty section, an unknown key, ``low >= high``, ``log`` with
            ``low <= 0``, a beta outside (0, 1), empty ``choices`` or an unknown field.

    Example:
        >>> space = SearchSpace({"model.init_args.beta1": {"low": 0.9, "high": 0.999,
        ...                                                "beta": True}})
        >>> space.distributions()["model.init_args.beta1:1-beta"]
        FloatDistribution(high=0.09999999999999998, log=True, low=0.0010000000000000009, step=None)
        >>> space.overrides({"model.init_args.beta1:1-beta": 0.01})
        ['--model.init_args.beta1=0.99']
    """

    def __init__(self, section: Mapping[str, Any], known_keys: Iterable[str] | None = None):
        if not isinstance(section, Mapping) or not section:
            raise ValueError(
                "The recipe has no search: section, so there is nothing to tune. Add one that "
                "maps recipe keys to ranges, e.g. search: {model.init_args.learning_rate: "
                "{low: 1.0e-4, high: 1.0e-1, log: true}} (see recipes/tune/mlp.yaml)."
            )
        known = sorted(known_keys) if known_keys is not None else None
        self.keys: list[SearchKey] = []
        for key, spec in section.items():
            if known is not None and key not in known:
                raise ValueError(_unknown_key(str(key), known))
            self.keys.append(_parse_key(str(key), spec))

    def params(self) -> dict[str, Range]:
        """``{Optuna parameter name: range}`` over every key."""
        return {name: r for k in self.keys for name, r in k.params().items()}

    def distributions(self) -> dict[str, BaseDistribution]:
        """``{Optuna parameter name: distribution}``, for ``trial._suggest`` / ``study.ask``."""
        return {name: r.distribution() for name, r in self.params().items()}

    def values(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """``{recipe key: value}`` of a trial's sampled parameters."""
        return {k.key: k.value(sampled) for k in self.keys}

    def overrides(self, sampled: Mapping[str, Any]) -> list[str]:
        """The LightningCLI overrides that set a trial's values (JSON, which YAML reads)."""
        return [override(key, v) for key, v in self.values(sampled).items()]

    def quoted_choices(self) -> list[tuple[str, str]]:
        """``(recipe key, choice)`` for each string choice that YAML would read as
        another type: it goes quoted, which a ``str`` parameter would keep, so each is checked
        to reach the recipe as written."""
        return [
            (k.key, c)
            for k in self.keys
            if "" in k.ranges
            for c in k.ranges[""].choices or ()
            if isinstance(c, str) and _reads_otherwise(c)
        ]

    def example(self) -> dict[str, Any]:
        """Sampled parameters at every range's high end (last choice): a point to check the
        recipe accepts before any trial runs."""
        point: dict[str, Any] = {}
        for name, r in self.params().items():
            d = r.distribution()
            if isinstance(d, CategoricalDistribution):
                point[name] = d.choices[-1]
            else:
                assert isinstance(d, (FloatDistribution, IntDistribution))
                point[name] = d.high
        return point

    def to_section(self) -> dict[str, Any]:
        """The space as a ``search:`` section (the refined child study records its own)."""
        return {k.key: k.to_spec() for k in self.keys}

    def narrowed(self, best: Sequence[Mapping[str, Any]], margin: float = 0.25) -> SearchSpace:
        """Coarse to fine: every range shrunk to span the ``best`` trials' sampled values,
        widened by ``margin`` of that span on each side, inside the old range; log scales stay
        log (the span is measured in log space); choices keep those the best trials used.

        Args:
            best: The top trials' sampled parameters (``{Optuna name: value}``), at least one.
            margin: Extra room on each side, as a fraction of the best trials' span.

        Example:
            >>> space = SearchSpace({"m.lr": {"low": 1e-5, "high": 1.0, "log": True}})
            >>> space.narrowed([{"m.lr": 1e-3}, {"m.lr": 1e-2}]).to_section()["m.lr"]["log"]
            True
        """
        if not best:
            raise ValueError(
                "--refine needs finished trials to narrow the ranges around; the parent study "
                "has none that completed and met the constraints. Run more trials first."
            )
        section: dict[str, Any] = {}
        for k in self.keys:
            parts = {}
            for part, r in k.ranges.items():
                name = k.key + (":1-beta" if r.beta else "") if part == "" else f"{k.key}:{part}"
                parts[part] = _narrow(r, [t[name] for t in best if name in t], margin)
            section[k.key] = (
                parts[""].to_spec() if "" in parts else {p: r.to_spec() for p, r in parts.items()}
            )
        return SearchSpace(section)


def _parse_key(key: str, spec: Any) -> SearchKey:
    where = f"search: {key}"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} is {spec!r}; give a range: {_FORMS}.")
    if "layers" in spec or "units" in spec:
        extra = set(spec) - {"layers", "units"}
        if extra or not {"layers", "units"} <= set(spec):
            raise ValueError(
                f"{where}: a list of layers needs exactly layers: and units:, "
                f"each a whole-number range, e.g. {_FORMS.rsplit(' or ', 1)[1]}."
            )
        ranges = {p: _parse_range(f"{where}.{p}", spec[p]) for p in ("layers", "units")}
        for p, r in ranges.items():
            if not r.integer or r.choices is not None or r.low < 1:
                raise ValueError(
                    f"{where}.{p} must be a whole-number range >= 1, e.g. {{low: 1, high: 4}}."
                )
        return SearchKey(key, ranges)
    return SearchKey(key, {"": _parse_range(where, spec)})


def _parse_range(where: str, spec: Any) -> Range:
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} is {spec!r}; give a range: {_FORMS}.")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            others = sorted(set(spec) - {"choices"})
            raise ValueError(f"{where}: choices cannot be combined with {others}.")
        if not isinstance(choices, list) or not choices:
            raise ValueError(
                f"{where}: choices is empty (or not a list); list at least one "
                "value, e.g. {choices: [32, 64, 128]}."
            )
        return Range(choices=tuple(choices))
    unknown = set(spec) - _RANGE_FIELDS
    if unknown or not {"low", "high"} <= set(spec):
        raise ValueError(
            f"{where}: {dict(spec)} is not a range (unknown or missing fields: "
            f"{sorted(unknown) or ['low', 'high']}). Use {_FORMS}."
        )
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ValueError(f"{where}: low={low!r} and high={high!r} must be numbers.")
    log, beta = bool(spec.get("log", False)), bool(spec.get("beta", False))
    if not low < high:
        raise ValueError(
            f"{where}: low={low} is not below high={high}; give low < high (to fix "
            "a value, set it in the recipe and leave it out of search:)."
        )
    if log and low <= 0:
        raise ValueError(
            f"{where}: a log scale needs low > 0 (low={low}); e.g. learning rates "
            "{low: 1.0e-4, high: 1.0e-1, log: true}."
        )
    if beta and (log or not 0 < low < high < 1):
        raise ValueError(
            f"{where}: beta: true samples 1 - beta on a log scale by itself (no log:) "
            f"and needs 0 < low < high < 1 (got low={low}, high={high}), e.g. "
            "{low: 0.9, high: 0.999, beta: true}."
        )
    integer = isinstance(low, int) and isinstance(high, int) and not beta
    return Range(float(low), float(high), log=log, beta=beta, integer=integer)


def _narrow(r: Range, values: list[Any], margin: float) -> Range:
    if r.choices is not None:
        used = {json.dumps(_decode(v), sort_keys=True) for v in values}
        kept = tuple(c for c in r.choices if json.dumps(c, sort_keys=True) in used)
        return Range(choices=kept or r.choices)
    if not values:
        return r
    scale = math.log if r.on_log_axis else float
    unscale = math.exp if r.on_log_axis else float
    # beta ranges are sampled as 1 - beta: narrow that, then turn it back into betas.
    lo_box, hi_box = (1 - r.high, 1 - r.low) if r.beta else (r.low, r.high)
    points = [scale(float(v)) for v in values]
    span = max(points) - min(points) or 0.1 * (scale(hi_box) - scale(lo_box))
    lo = max(scale(lo_box), min(points) - margin * span)
    hi = min(scale(hi_box), max(points) + margin * span)
    low, high = unscale(lo), unscale(hi)
    if r.integer:
        low, high = math.floor(low + 1e-9), math.ceil(high - 1e-9)
        if low >= high:  # one whole number: keep its neighbours in play
            low, high = max(int(r.low), low - 1), min(int(r.high), high + 1)
    if r.beta:
        low, high = 1 - high, 1 - low
    return Range(low, high, log=r.log, beta=r.beta, integer=r.integer)


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.0)
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == leaf]
    nearest = (same_leaf or close or ["?"])[0]
    return (
        f"search: {key!r} is not a key of the recipe, so it cannot be tuned. The closest real "
        f"key is {nearest!r}. Search keys are dotted paths of the resolved recipe, as "
        "`mlstrategy fit --print_config --config RECIPE` prints them (e.g. "
        "model.init_args.learning_rate, data.init_args.batch_size)."
    )


def _encode(choice: Any) -> Any:
    """Optuna's categorical choices are None, bool, int, float or str: lists go as JSON."""
    return (
        choice
        if choice is None or isinstance(choice, (bool, int, float, str))
        else ("json:" + json.dumps(choice))
    )


def _decode(sampled: Any) -> Any:
    if isinstance(sampled, str) and sampled.startswith("json:"):
        return json.loads(sampled[5:])
    return sampled


def override(key: str, value: Any) -> str:
    """The LightningCLI override that sets the recipe ``key`` to ``value``.

    Example:
        >>> override("model.init_args.learning_rate", 0.01), override("a.path", "b.csv")
        ('--model.init_args.learning_rate=0.01', '--a.path=b.csv')
        >>> override("a.weights", "null"), override("a.dims", [8, 8])
        ('--a.weights="null"', '--a.dims=[8, 8]')
    """
    return f"--{key}={_format(value)}"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and not _reads_otherwise(value):
        return value  # as typed: the parser keeps a str-typed value's quotes
    return json.dumps(value)


def _reads_otherwise(text: str) -> bool:
    """Whether YAML reads ``text`` as something other than that string ("null", "1e-3",
    "[x]", "a: b"): such a choice goes quoted, which every type but ``str`` reads back."""
    try:
        return bool(yaml.safe_load(text) != text)
    except yaml.YAMLError:
        return True


def config_keys(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every leaf key of a resolved config, dotted (lists are leaves).

    Example:
        >>> config_keys({"model": {"init_args": {"lr": 0.1, "dims": [4]}}, "seed": 0})
        ['model.init_args.lr', 'model.init_args.dims', 'seed']
    """
    keys = []
    for name, value in config.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            keys += config_keys(value, dotted + ".")
        else:
            keys.append(dotted)
    return keys
