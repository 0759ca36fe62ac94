"""lr-find's costs: Lightning's smoothed sweep with the bias correction made exact, so the
curve does not seem to climb at the smallest rates."""

from __future__ import annotations

import numpy as np
import pytest

from mlstrategy.reporting.plots import exponentially_weighted_average
from mlstrategy.runs.lr_find import lr_find_figure, unbiased_costs


def _lightning_smoothing(costs: np.ndarray, beta: float = 0.98) -> list[float]:
    """What Lightning's _LRCallback records: the running average over 1 - beta^(step + 1),
    step being the trainer's global step after the batch (1 for the first)."""
    avg, out = 0.0, []
    for step, cost in enumerate(costs, start=1):
        avg = beta * avg + (1 - beta) * cost
        out.append(avg / (1 - beta ** (step + 1)))
    return out


def test_the_costs_are_the_course_s_bias_corrected_average_of_the_step_costs():
    rng = np.random.default_rng(0)
    raw = 0.69 - 0.3 * np.linspace(0, 1, 100) ** 2 + rng.normal(0, 0.02, 100)
    fixed = unbiased_costs(_lightning_smoothing(raw))
    np.testing.assert_allclose(fixed, exponentially_weighted_average(raw, 0.98), rtol=1e-12)
    # Lightning's first value reads about half the cost; the corrected one is the cost.
    assert _lightning_smoothing(raw)[0] == pytest.approx(raw[0] / 1.98)
    assert fixed[0] == pytest.approx(raw[0])


def test_a_flat_cost_reads_flat_from_the_first_step():
    fixed = unbiased_costs(_lightning_smoothing(np.full(30, 0.69)))
    np.testing.assert_allclose(fixed, 0.69, rtol=1e-12)
    assert np.isnan(unbiased_costs([float("nan")])[0])  # a skipped step stays missing


def test_the_plot_is_titled_with_log_rate_and_cost_axes_and_one_suggestion():
    rates = list(np.logspace(-6, 0, 40))
    fig = lr_find_figure(rates, list(np.linspace(0.7, 0.4, 40)), 0.01, "quickstart")
    (ax,) = fig.axes
    assert ax.get_title() == "Learning-rate sweep: quickstart"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()) == (
        "learning rate (log scale)",
        "cost",
        "log",
    )
    labels = [line.get_label() for line in ax.get_lines()]
    assert sum(label.startswith("suggestion 0.01 (a tenth of") for label in labels) == 1
