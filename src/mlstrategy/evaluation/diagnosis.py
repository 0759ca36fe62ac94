"""Where the error comes from, and which knob to turn: the bias / variance / mismatch diagnosis.

Andrew Ng's ML strategy (deeplearning.ai course 3; *Machine Learning Yearning*, ch. 20-29 and
36-42), with human-level error as the proxy for Bayes (optimal) error::

    avoidable bias       = train error     - human-level error
    variance             = train-dev error - train error     (dev error - train error
                                                              when there is no train-dev split)
    data mismatch        = dev error       - train-dev error
    overfitting to dev   = test error      - dev error

The largest gap is the problem to work on first; :data:`REMEDIES` lists the course's remedies
for each. :data:`KNOBS` orders them as the course's orthogonalization does: fit the training
set, then dev, then test, then the real world, one knob per goal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlstrategy.evaluation.human_level import HumanError, human_level_notes, resolve_human_error
from mlstrategy.evaluation.run_kind import is_regression_run, no_error_rate
from mlstrategy.evaluation.sampling import dev_size_note, split_sampling
from mlstrategy.metrics.names import REGRESSION_ERRORS

GAPS = ("avoidable_bias", "variance", "data_mismatch", "dev_overfitting")

GAP_TITLES = {
    "avoidable_bias": "avoidable bias",
    "variance": "variance",
    "data_mismatch": "data mismatch",
    "dev_overfitting": "overfitting to dev",
    "none": "none",
}

REMEDIES: dict[str, tuple[str, ...]] = {
    "avoidable_bias": (
        "Train a bigger network (more hidden units or layers).",
        "Train longer.",
        "Use a better optimization algorithm (momentum, RMSprop, Adam).",
        "Try a different architecture, or search the hyperparameters.",
    ),
    "variance": (
        "Get more training data.",
        "Regularize: L2, dropout, data augmentation.",
        "Try a different architecture, or search the hyperparameters.",
    ),
    "data_mismatch": (
        "Carry out error analysis to understand how the training data differs from dev/test.",
        "Make the training data more like dev/test: collect more of it, or synthesize it "
        "(artificial data synthesis).",
    ),
    "dev_overfitting": ("Get a bigger dev set.",),
    "none": (
        "Every gap is zero or negative: the model matches the human-level proxy on every split. "
        "If it still does not do well in the real world, change the dev/test set or the "
        "cost function.",
    ),
}

# The course's orthogonalization: one knob per goal, in the order the goals are met.
KNOBS: tuple[tuple[str, str, str], ...] = (
    (
        "fit the training set well",
        "avoidable_bias",
        "bigger network, train longer, better optimizer, other architecture",
    ),
    (
        "fit the dev set well",
        "variance",
        "more data, regularization (L2, dropout, augmentation), other architecture",
    ),
    (
        "fit a dev set from another distribution",
        "data_mismatch",
        "error analysis, training data more like dev",
    ),
    ("fit the test set well", "dev_overfitting", "bigger dev set"),
    ("do well in the real world", "none", "change the dev set or the cost function"),
)


@dataclass(frozen=True)
class Diagnosis:
    """The errors of one run, the gaps between them, and the verdict.

    Attributes:
        train_error: Error on the train split (eval mode, whole split).
        dev_error: Error on the dev split.
        test_error: Error on the test split, or None when there is none.
        train_dev_error: Error on the train-dev split, or None when the data has none.
        human_error: The proxy for Bayes error: the human-level error the recipe gave, the
            lowest of its levels when it gave several (see ``human_levels``), or None.
        avoidable_bias: ``train - human`` (``train - 0`` when ``human_error`` is None: then
            an upper bound, since Bayes error is at least 0).
        variance: ``train_dev - train``, or ``dev - train`` without a train-dev split.
        data_mismatch: ``dev - train_dev``; None without a train-dev split.
        dev_overfitting: ``test - dev``; None without a test error.
        largest: Name of the largest gap (one of :data:`GAPS`), or ``"none"`` when no gap is
            positive.
        remedies: The course's remedies for ``largest``.
        notes: Caveats, e.g. that no human-level error was given.
        sampling: Per split, the error's binomial standard error and the smallest difference
            in error that would be significant at 95% on a split its size (two-sided z-test; see
            :func:`~mlstrategy.evaluation.sampling.split_sampling`); empty without sizes. For
            a regression, each split's bootstrap standard error of ``metric``.
        metric: What the errors are: ``error`` (error rates, fractions) or a regression's
            ``rmse``, ``mse`` or ``mae`` in the target's units.
        human_levels: Every level the recipe gave (``{"typical": .., "expert": ..,
            "team": ..}``, any of them); empty when it gave one number or none.
        human_proxy: The level that is the proxy (the lowest), or None.
        below_human: The splits whose error is below the proxy: there avoidable bias cannot be
            estimated as ``train - human`` (see the notes).
    """

    train_error: float
    dev_error: float
    test_error: float | None
    train_dev_error: float | None
    human_error: float | None
    avoidable_bias: float
    variance: float
    data_mismatch: float | None
    dev_overfitting: float | None
    largest: str
    remedies: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    sampling: dict[str, dict[str, float | int]] = field(default_factory=dict)
    metric: str = "error"
    human_levels: dict[str, float] = field(default_factory=dict)
    human_proxy: str | None = None
    below_human: tuple[str, ...] = ()

    @property
    def gaps(self) -> dict[str, float | None]:
        """``{gap name: value or None}`` in the course's order."""
        return {g: getattr(self, g) for g in GAPS}

    @property
    def gap_standard_errors(self) -> dict[str, float | None]:
        """Each gap's standard error: the binomial standard errors of the two errors it
        subtracts, added in quadrature (human-level error is given, not sampled); None where a
        split's size is unknown or the gap is not measured."""
        ses = {s: row.get("standard_error") for s, row in self.sampling.items()}
        variances = {s: float(se) * float(se) for s, se in ses.items() if se is not None}
        with_train_dev = self.train_dev_error is not None
        return {
            gap: _in_quadrature(gap, with_train_dev, variances) if value is not None else None
            for gap, value in self.gaps.items()
        }

    @property
    def verdict(self) -> str:
        """One sentence: the largest gap and its size, in percentage points (a regression:
        in its metric's units, e.g. ``0.4 RMSE``)."""
        if self.largest == "none" and "train" in self.below_human:
            return (
                "No gap is positive: train error is below the human-level proxy, where "
                "avoidable bias cannot be estimated (see the notes)."
            )
        if self.largest == "none":
            return "No gap is positive: the model is at the human-level proxy on every split."
        value = self.gaps[self.largest]
        assert value is not None
        size = f"{100 * value:.2f} points" if self.metric == "error" else f"{value:.4g} {self.unit}"
        return f"The largest gap is {GAP_TITLES[self.largest]} ({size})."

    @property
    def unit(self) -> str:
        """How the errors read: ``points`` of error rate, or the regression metric's name."""
        return "points" if self.metric == "error" else self.metric.upper()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the content of ``diagnosis.json``)."""
        out = asdict(self)
        out["remedies"] = list(self.remedies)
        out["notes"] = list(self.notes)
        out["below_human"] = list(self.below_human)
        out["verdict"] = self.verdict
        out["gap_standard_errors"] = self.gap_standard_errors
        return out


def _check_error(name: str, value: float | None, metric: str = "error") -> None:
    if metric != "error":  # a regression's error: any number >= 0, in the target's units
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value} is not a {metric.upper()}; it must be >= 0.")
        return
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{name}={value} is not an error rate; give a fraction in [0, 1] (5% -> 0.05)."
        )


NO_HUMAN_NOTE = (
    "No human_error given: 0 stands in for Bayes error, so avoidable bias is an upper "
    "bound. Set evaluation.human_error, or add --human-error 0.01 to `mlstrategy run`."
)

# A run of train and dev only (test_fraction: 0).
NO_TEST_NOTE = (
    "No test split, so overfitting to dev cannot be measured, and the dev error is an "
    "optimistic estimate of the error on new data: dev was used to choose the model. For an "
    "unbiased estimate set data.init_args.test_fraction (e.g. 0.2)."
)


def diagnose(
    train_error: float,
    dev_error: float,
    test_error: float | None = None,
    train_dev_error: float | None = None,
    human_error: HumanError | None = None,
    split_sizes: Mapping[str, int] | None = None,
    metric: str = "error",
    standard_errors: Mapping[str, float] | None = None,
) -> Diagnosis:
    """Compute the course's gaps between errors and name the largest.

    Args:
        train_error: Error on the train split, measured in eval mode over the whole split.
        dev_error: Error on the dev split.
        test_error: Error on the test split; None leaves overfitting to dev out.
        train_dev_error: Error on a train-dev split (same distribution as train, not trained
            on); None when the data module carved none.
        human_error: Human-level error, the proxy for Bayes error: a number, or the course's
            levels ``{"typical": .., "expert": .., "team": ..}`` (any of them), whose lowest is
            the proxy; None uses 0 (then avoidable bias is an upper bound and a note says so).
            Train or dev error below the proxy gets a note: avoidable bias cannot be estimated
            there.
        split_sizes: Examples per split (``{"train": m, "dev": ..., ...}``); when given, a note
            warns if the largest gap is within two standard errors, i.e. may be sampling noise,
            another gives the smallest difference in dev error that would be significant at
            95% (two-sided z-test), and
            :attr:`Diagnosis.sampling` holds each split's standard error.
        metric: ``error`` (error rates) or a regression's ``rmse``, ``mse`` or ``mae``: then
            every error and ``human_error`` is in that metric's units (>= 0, no upper bound).
        standard_errors: A regression's ``{split: bootstrap standard error of metric}``; they
            replace the binomial ones in the sampling-noise note and :attr:`Diagnosis.sampling`.

    Returns:
        A :class:`Diagnosis`.

    Raises:
        ValueError: an error rate outside [0, 1] (a regression's error below 0), or a human
            level that is not one of typical, expert and team.

    Example:
        >>> d = diagnose(train_error=0.08, dev_error=0.10, human_error=0.01)
        >>> round(d.avoidable_bias, 4), round(d.variance, 4), d.largest
        (0.07, 0.02, 'avoidable_bias')
        >>> d.remedies[0]
        'Train a bigger network (more hidden units or layers).'
        >>> d = diagnose(0.01, 0.11, test_error=0.12, train_dev_error=0.015, human_error=0.005)
        >>> d.largest, round(d.data_mismatch, 3)
        ('data_mismatch', 0.095)
        >>> d = diagnose(0.02, 0.04, human_error={"typical": 0.05, "expert": 0.03})
        >>> d.human_error, d.human_proxy, d.below_human
        (0.03, 'expert', ('train',))
    """
    for name, value in (
        ("train_error", train_error),
        ("dev_error", dev_error),
        ("test_error", test_error),
        ("train_dev_error", train_dev_error),
    ):
        _check_error(name, value, metric)
    levels, proxy, human = resolve_human_error(
        human_error, lambda name, value: _check_error(name, value, metric)
    )
    notes: list[str] = [] if human is not None else [NO_HUMAN_NOTE]
    avoidable_bias = train_error - (human if human is not None else 0.0)
    if train_dev_error is not None:
        variance = train_dev_error - train_error
        data_mismatch: float | None = dev_error - train_dev_error
    else:
        variance = dev_error - train_error
        data_mismatch = None
        notes.append(
            "No train-dev split, so variance and data mismatch are not told apart (variance = "
            "dev - train). To measure mismatch add --data.init_args.train_dev_fraction=0.1."
        )
    dev_overfitting = test_error - dev_error if test_error is not None else None
    if test_error is None and split_sizes and "test" not in split_sizes:  # train and dev only
        notes.append(NO_TEST_NOTE)
    errors = {"train": train_error, "train_dev": train_dev_error, "dev": dev_error}
    errors["test"] = test_error
    below, human_notes = human_level_notes(levels, proxy, human, errors, metric)
    notes = human_notes + notes
    sampling = _sampling(errors, split_sizes or {}, metric, standard_errors)
    gaps = {
        "avoidable_bias": avoidable_bias,
        "variance": variance,
        "data_mismatch": data_mismatch,
        "dev_overfitting": dev_overfitting,
    }
    known = {k: v for k, v in gaps.items() if v is not None}
    # max() keeps the first of equal gaps, so ties go to the earlier knob in the course's order;
    # rounding makes gaps equal in decimal (0.06 - 0.01 vs 0.11 - 0.06) tie in binary too.
    largest = max(known, key=lambda k: round(known[k], 9))
    if known[largest] <= 0:
        largest = "none"
    elif split_sizes or standard_errors:
        noise = _noise(largest, errors, split_sizes or {}, standard_errors)
        if noise is not None and known[largest] < 2 * noise:
            notes.append(_noise_note(known[largest], noise, metric))
    dev_note = dev_size_note(sampling) if metric == "error" else None
    if dev_note is not None:
        notes.append(dev_note)
    return Diagnosis(
        train_error=train_error,
        dev_error=dev_error,
        test_error=test_error,
        train_dev_error=train_dev_error,
        human_error=human,
        avoidable_bias=avoidable_bias,
        variance=variance,
        data_mismatch=data_mismatch,
        dev_overfitting=dev_overfitting,
        largest=largest,
        remedies=REMEDIES[largest],
        notes=tuple(notes),
        sampling=sampling,
        metric=metric,
        human_levels=levels,
        human_proxy=proxy,
        below_human=below,
    )


def _noise_note(gap: float, noise: float, metric: str) -> str:
    return (
        f"The largest gap ({_shown(gap, metric)}) is within two standard errors "
        f"({_shown(2 * noise, metric)}) of the errors it compares, so it may be sampling "
        "noise; larger splits would tell."
    )


def _shown(value: float, metric: str) -> str:
    """A gap as the notes write it: points of error rate, or the regression metric's units."""
    return f"{100 * value:.2f} points" if metric == "error" else f"{value:.4g} {metric.upper()}"


def _sampling(
    errors: Mapping[str, float | None],
    sizes: Mapping[str, int],
    metric: str,
    standard_errors: Mapping[str, float] | None,
) -> dict[str, dict[str, float | int]]:
    """Each split's standard error: binomial for error rates, bootstrap (given) otherwise."""
    if metric == "error":
        return split_sampling({s: {"error": e, "n": sizes.get(s)} for s, e in errors.items()})
    out: dict[str, dict[str, float | int]] = {}
    for split, value in errors.items():
        se = (standard_errors or {}).get(split)
        if value is not None and se is not None:
            out[split] = {"n": int(sizes.get(split, 0)), metric: value, "standard_error": se}
    return out


def _gap_splits(gap: str, with_train_dev: bool) -> tuple[str, ...]:
    """The splits whose errors ``gap`` subtracts (human-level error is given, not sampled)."""
    return {
        "avoidable_bias": ("train",),
        "variance": ("train", "train_dev" if with_train_dev else "dev"),
        "data_mismatch": ("dev", "train_dev"),
        "dev_overfitting": ("dev", "test"),
    }[gap]


def _in_quadrature(gap: str, with_train_dev: bool, variances: Mapping[str, float]) -> float | None:
    """Standard error of ``gap``, the difference of independent samples' errors:
    ``sqrt(sum of their variances)``; None when a split's variance is not known."""
    splits = _gap_splits(gap, with_train_dev)
    if any(s not in variances for s in splits):
        return None
    return math.sqrt(sum(variances[s] for s in splits))


def _noise(
    gap: str,
    errors: Mapping[str, float | None],
    sizes: Mapping[str, int],
    standard_errors: Mapping[str, float] | None = None,
) -> float | None:
    """Standard error of the difference of the two errors a gap subtracts: binomial, or from
    the splits' given (bootstrap) standard errors; the splits are independent samples."""
    measured = {s: e for s, e in errors.items() if e is not None}
    if standard_errors is not None:
        variances = {s: se**2 for s, se in standard_errors.items() if s in measured}
    else:
        variances = {s: e * (1 - e) / sizes[s] for s, e in measured.items() if sizes.get(s)}
    return _in_quadrature(gap, errors.get("train_dev") is not None, variances)


def diagnose_splits(
    splits: dict[str, dict[str, Any]],
    human_error: HumanError | None = None,
    metric: str = "error",
) -> Diagnosis:
    """:func:`diagnose` on the ``splits`` of a run's ``metrics.json``.

    Args:
        splits: ``{split: {"error": ..., ...}}`` with at least ``train`` and ``dev``.
        human_error: Human-level error (a number or the course's levels), or None.
        metric: The error to diagnose: ``error``, or a regressor's ``rmse``, ``mse`` or
            ``mae`` (each row's ``standard_errors`` give the bootstrap standard errors).

    Example:
        >>> splits = {"train": {"error": 0.2}, "dev": {"error": 0.22}, "test": {"error": 0.23}}
        >>> diagnose_splits(splits, human_error=0.05).largest
        'avoidable_bias'
        >>> curve = {"train": {"rmse": 0.7, "n": 600}, "dev": {"rmse": 0.72, "n": 200}}
        >>> diagnose_splits(curve, human_error=0.2, metric="rmse").verdict
        'The largest gap is avoidable bias (0.5 RMSE).'
    """
    missing = [s for s in ("train", "dev") if splits.get(s, {}).get(metric) is None]
    if missing:
        raise ValueError(
            f"The run has no {metric} for split(s) {missing} (it has {sorted(splits)}); the "
            f"diagnosis needs train and dev {metric}. Run the recipe again with `mlstrategy run`."
        )

    def error(split: str) -> float | None:
        row = splits.get(split)
        return float(row[metric]) if row and row.get(metric) is not None else None

    sizes = {s: int(row["n"]) for s, row in splits.items() if row.get("n")}
    errors = {
        s: float(se)
        for s, row in splits.items()
        if (se := (row.get("standard_errors") or {}).get(metric)) is not None
    }
    return diagnose(
        train_error=float(splits["train"][metric]),
        dev_error=float(splits["dev"][metric]),
        test_error=error("test"),
        train_dev_error=error("train_dev"),
        human_error=human_error,
        split_sizes=sizes,
        metric=metric,
        standard_errors=errors if metric != "error" else None,
    )


def diagnose_run(
    splits: dict[str, dict[str, Any]],
    human_error: HumanError | None = None,
    error_metric: str | None = None,
) -> Diagnosis | str:
    """The diagnosis of a run (:func:`diagnose_splits`), or why it has none: a multi-task run
    without an error rate (see :func:`no_error_rate`) is skipped with that reason. A
    regressor's run is diagnosed on ``error_metric`` (``rmse``, ``mse`` or ``mae``; default
    ``rmse``), with ``human_error`` in the same units.

    Example:
        >>> diagnose_run({"train": {"error": 0.2}, "dev": {"error": 0.22}}).largest
        'avoidable_bias'
        >>> diagnose_run({"train": {"error": None, "tasks": {"y": {"kind": "regression"}}},
        ...               "dev": {"error": None, "tasks": {"y": {"kind": "regression"}}}})[:27]
        'no task is a classification'
    """
    if is_regression_run(splits):
        metric = error_metric if error_metric in REGRESSION_ERRORS else "rmse"
        return diagnose_splits(splits, human_error, metric)
    reason = no_error_rate(splits)
    metric = "weighted_error" if error_metric == "weighted_error" else "error"  # a classifier's
    return reason if reason is not None else diagnose_splits(splits, human_error, metric)
