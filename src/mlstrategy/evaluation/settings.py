"""The ``evaluation:`` section of a recipe: human-level error and the model-selection rules."""

from __future__ import annotations

from typing import Literal

from mlstrategy.evaluation.human_level import (
    bayes_proxy,
    check_error_rates,
    check_human_error,
    human_levels,
)
from mlstrategy.evaluation.selection import (
    Constraint,
    Goal,
    check_metric_name,
    default_goal,
    parse_constraint,
)
from mlstrategy.metrics.costs import ClassCosts, check_class_costs
from mlstrategy.metrics.names import REGRESSION_ERRORS, REGRESSION_NAMES

ErrorMetric = Literal["auto", "error", "weighted_error", "rmse", "mse", "mae"]
DEFAULT_OPTIMIZE = {False: "dev/f1", True: "dev/rmse"}  # by "is the model a regressor"


class EvaluationSettings:
    """What ``mlstrategy run`` needs beyond training to diagnose and compare runs.

    In a recipe (LightningCLI config) it is a top-level section beside ``model``, ``data`` and
    ``trainer``; plain LightningCLI verbs (``mlstrategy fit --config``) accept and ignore it::

        evaluation:
          human_error: 0.05          # a human misreads ~5% of these: the Bayes-error proxy
          optimize: dev/f1           # the single-number evaluation metric
          satisfy: ["latency_ms<=5"] # satisficing constraints

    Args:
        human_error: Human-level error on this task, used as the proxy for Bayes error in the
            diagnosis (avoidable bias = train error - human_error): for a classifier a fraction
            in [0, 1]; for a regressor in the units of ``error_metric`` (an RMSE in the
            target's units, e.g. the noise's standard deviation). Or the course's levels,
            ``{typical: 0.03, expert: 0.01, team: 0.005}`` (any of them): the lowest is the
            proxy, and the report shows them all. null: not known (0 is then used and
            avoidable bias is an upper bound).
        human_error_dev: Human-level error on the dev/target distribution (a number or
            levels, like ``human_error``), for a run on two distributions
            (:class:`~mlstrategy.data.MismatchDataModule`): it fills the target column of the
            report's human level / trained on / not trained on table.
        optimize: The optimizing metric for comparing runs (``mlstrategy compare`` and the
            table after a study), e.g. ``dev/f1``, ``dev/error``, ``test/recall/malignant``,
            ``dev/rmse``; null: ``dev/f1`` for a classifier, ``dev/rmse`` for a regressor.
        goal: Whether ``optimize`` is maximized or minimized; ``auto`` minimizes errors,
            losses, latency and sizes and maximizes the rest.
        satisfy: Satisficing constraints ``METRIC OP NUMBER`` (OP: <=, >=, <, >, ==) that a
            run must meet to be chosen, e.g. ``latency_ms<=5`` or ``test/recall>=0.9``.
        latency_repeats: Timed forward passes of one example; the median is ``latency_ms``.
        candidate: False for a run that only prepares the others of its study (e.g. pretraining
            on a source task for transfer learning): it runs, but is left out of the comparison.
        columns: More metrics for the comparison table, e.g. ``[test/f1, fit_seconds,
            trainable_params]``.
        smoothing_beta: ``beta`` of the exponentially weighted average (with bias correction)
            that smooths the per-step training cost in the report's cost chart, in [0, 1): it
            averages over about ``1 / (1 - beta)`` steps (0.9: ~10, 0.98: ~50); 0 draws the raw
            cost only.
        error_metric: The error the diagnosis subtracts: ``error`` (the error rate, a
            classifier's) or ``weighted_error`` (a classifier's, with ``class_costs`` and the
            data's example weights; ``human_error`` is then in the same cost units), or for a
            regressor ``rmse``, ``mse`` or ``mae`` in the target's units; ``auto``: ``error``
            for a classifier, ``rmse`` for a regressor.
        class_costs: What each kind of mistake costs in a classifier's ``{split}/
            weighted_error`` = ``sum_i w_i cost[y_i, yhat_i] / sum_i w_i`` (``w_i``: the
            data's example weight, e.g. ``ArrayFile``'s ``weight`` column, else 1). One of
            ``{true: [c_0, .., c_K-1]}`` (a mistake on an example of true class k costs c_k),
            ``{predicted: [c_0, .., c_K-1]}`` (wrongly predicting k costs c_k), or a K x K
            matrix ``[[..], ..]`` indexed [true][predicted]; costs >= 0, in the data's class
            order. null: every mistake costs 1 (``weighted_error`` is then the error rate,
            weighted by the example weights).

    Example:
        >>> s = EvaluationSettings(human_error=0.05, satisfy=["latency_ms<=5"])
        >>> s.constraints, s.resolved_goal
        ([Constraint(metric='latency_ms', op='<=', threshold=5.0)], 'max')
        >>> s = EvaluationSettings(human_error=0.2)
        >>> s.fit_model(regression=True)
        >>> s.optimize, s.error_metric, s.resolved_goal
        ('dev/rmse', 'rmse', 'min')
    """

    def __init__(
        self,
        human_error: float | dict[str, float] | None = None,
        human_error_dev: float | dict[str, float] | None = None,
        optimize: str | None = None,
        goal: Literal["auto", "max", "min"] = "auto",
        satisfy: list[str] | None = None,
        latency_repeats: int = 50,
        candidate: bool = True,
        columns: list[str] | None = None,
        smoothing_beta: float = 0.98,
        error_metric: ErrorMetric = "auto",
        class_costs: ClassCosts | None = None,
    ) -> None:
        check_human_error(human_error, "evaluation.human_error")
        check_human_error(human_error_dev, "evaluation.human_error_dev")
        if error_metric not in ("auto", "error", "weighted_error", *REGRESSION_ERRORS):
            raise ValueError(
                f"evaluation.error_metric={error_metric!r}; use auto, error, weighted_error, "
                "rmse, mse or mae."
            )
        if class_costs is not None:
            check_class_costs(class_costs)  # the class count is checked once the data is known
        if goal not in ("auto", "max", "min"):
            raise ValueError(f"evaluation.goal={goal!r}; use auto, max or min.")
        if not 0.0 <= smoothing_beta < 1.0:
            raise ValueError(
                f"evaluation.smoothing_beta={smoothing_beta} must be in [0, 1): the weight of the "
                "running average in v_t = beta v_(t-1) + (1 - beta) theta_t. It averages over "
                "about 1 / (1 - beta) steps: 0.9 for ~10, 0.98 for ~50; 0 turns smoothing off."
            )
        if latency_repeats < 1:
            raise ValueError(f"evaluation.latency_repeats={latency_repeats} must be >= 1.")
        self.human_error = human_error
        self.human_error_dev = human_error_dev
        self.optimize = optimize
        self.goal = goal
        self.satisfy = list(satisfy or [])
        self.latency_repeats = latency_repeats
        self.candidate = candidate
        self.columns = list(columns or [])
        self.smoothing_beta = smoothing_beta
        self.error_metric = error_metric
        self.class_costs = class_costs
        self.constraints: list[Constraint] = [parse_constraint(c) for c in self.satisfy]
        # A name no run records would train a run that no comparison can choose.
        if optimize is not None:
            check_metric_name(optimize, "evaluation.optimize")
        for c in self.constraints:
            check_metric_name(c.metric, "evaluation.satisfy")
        for column in self.columns:
            check_metric_name(column, "evaluation.columns")

    def fit_model(self, regression: bool) -> None:
        """Resolve the defaults that depend on the model, and refuse settings that do not fit
        it, before anything trains.

        A regressor gets ``dev/rmse`` and ``rmse`` for ``optimize`` and ``error_metric`` left
        to default; a classifier ``dev/f1`` and ``error``.

        Raises:
            ValueError: a classification metric (error, accuracy, precision, recall, F1) named
                for a regressor, a regression error for a classifier's diagnosis, or a
                classifier's ``human_error`` outside [0, 1].
        """
        if self.optimize is None:
            self.optimize = DEFAULT_OPTIMIZE[regression]
        if self.error_metric == "auto":
            self.error_metric = "rmse" if regression else "error"
        if regression:
            if self.error_metric in ("error", "weighted_error"):
                raise ValueError(
                    f"evaluation.error_metric={self.error_metric} is a classifier's error; this "
                    "run's model is a regressor. Use rmse (the default), mse or mae."
                )
            named = [("evaluation.optimize", self.optimize)]
            named += [("evaluation.satisfy", c.metric) for c in self.constraints]
            named += [("evaluation.columns", c) for c in self.columns]
            for where, metric in named:
                parts = metric.split("/")
                if len(parts) > 1 and parts[1] not in (*REGRESSION_NAMES, "loss", "n"):
                    raise ValueError(
                        f"{where} names {metric!r}, a classification metric, but this run's "
                        f"model is a regressor, which records no {parts[1]!r}. Use "
                        f"{parts[0]}/rmse, {parts[0]}/mse, {parts[0]}/mae or {parts[0]}/r2 "
                        "(rmse, mse and mae minimized, r2 maximized)."
                    )
            return
        if self.error_metric not in ("error", "weighted_error"):
            raise ValueError(
                f"evaluation.error_metric={self.error_metric} is a regression error; this "
                "run's model is a classifier, diagnosed on its error rate (error_metric: error "
                "or auto, or weighted_error)."
            )
        if self.error_metric == "error":  # every level a fraction in [0, 1]
            check_error_rates(self.human_error, "evaluation.human_error")
            check_error_rates(self.human_error_dev, "evaluation.human_error_dev")

    @property
    def resolved_goal(self) -> Goal:
        """``goal``, with ``auto`` resolved from the metric's name."""
        optimize = self.optimize or DEFAULT_OPTIMIZE[False]
        return default_goal(optimize) if self.goal == "auto" else self.goal

    def to_dict(self) -> dict[str, object]:
        """The settings as given, for ``diagnosis.json``; ``human_error`` is the proxy (the
        lowest level), with ``human_levels`` holding every level when several were given."""
        levels = human_levels(self.human_error)
        return {
            "human_error": bayes_proxy(self.human_error)[0],
            **({"human_levels": levels} if levels else {}),
            "human_error_dev": self.human_error_dev,
            "optimize": self.optimize,
            "goal": self.goal,
            "satisfy": list(self.satisfy),
            "candidate": self.candidate,
            "columns": list(self.columns),
            "smoothing_beta": self.smoothing_beta,
            "error_metric": self.error_metric,
            "class_costs": self.class_costs,
        }
