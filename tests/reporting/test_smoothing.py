"""The course's exponentially weighted average with bias correction, as the smoothing of the
per-step training cost in the report's cost chart, against a NumPy reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlstrategy.evaluation.settings import EvaluationSettings
from mlstrategy.reporting.plots import cost_curve_figure, exponentially_weighted_average


def _reference(theta: np.ndarray, beta: float) -> np.ndarray:
    """The course's recursion, literally: v_0 = 0, v_t = beta v_(t-1) + (1 - beta) theta_t,
    reported as v_t / (1 - beta^t)."""
    v, out = 0.0, []
    for t, x in enumerate(theta, start=1):
        v = beta * v + (1 - beta) * x
        out.append(v / (1 - beta**t))
    return np.array(out)


def _closed_form(theta: np.ndarray, beta: float) -> np.ndarray:
    """The same as a weighted mean: v_t = sum_i (1 - beta) beta^(t-i) theta_i / (1 - beta^t)."""
    t = np.arange(1, len(theta) + 1)
    weights = np.tril((1 - beta) * beta ** np.maximum(t[:, None] - t[None, :], 0))
    return weights @ theta / (1 - beta**t)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.98, 0.999])
def test_the_average_matches_the_recursion_and_its_closed_form(beta):
    theta = np.random.default_rng(0).gamma(2.0, 0.3, size=300)
    ours = exponentially_weighted_average(theta, beta)
    np.testing.assert_allclose(ours, _reference(theta, beta), rtol=1e-12)
    np.testing.assert_allclose(ours, _closed_form(theta, beta), rtol=1e-9)


def test_bias_correction_removes_the_start_at_zero():
    # Uncorrected, v_1 = (1 - beta) theta_1 = 0.02 theta_1: the curve would start near 0.
    ours = exponentially_weighted_average(np.full(50, 3.0), 0.98)
    np.testing.assert_allclose(ours, 3.0)
    assert exponentially_weighted_average([5.0, 1.0], 0.0).tolist() == [5.0, 1.0]


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5])
def test_a_beta_outside_0_1_is_refused(beta):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        exponentially_weighted_average([1.0], beta)
    with pytest.raises(ValueError, match=r"evaluation.smoothing_beta=.* must be in \[0, 1\)"):
        EvaluationSettings(smoothing_beta=beta)


def test_the_cost_chart_draws_every_step_and_the_smoothed_cost_beside_the_epochs():
    rng = np.random.default_rng(1)
    history = [
        {"epoch": float(e), "cost/train": 1.0 / (e + 1), "step_costs": list(rng.random(7))}
        for e in range(4)
    ]
    steps = np.concatenate([h["step_costs"] for h in history])
    fig = cost_curve_figure(history, beta=0.9)
    epochs, per_step = fig.axes
    assert [ln.get_label() for ln in epochs.get_lines()] == ["train cost"]
    raw, smooth = per_step.get_lines()
    np.testing.assert_allclose(raw.get_ydata(), steps)
    np.testing.assert_allclose(smooth.get_ydata(), _reference(steps, 0.9))
    np.testing.assert_array_equal(smooth.get_xdata(), np.arange(1, 29))
    # beta = 0: the raw steps only.
    assert len(cost_curve_figure(history, beta=0.0).axes[1].get_lines()) == 1


@pytest.mark.slow
def test_a_run_records_its_step_costs_and_the_recipes_beta(tiny_recipe):
    from mlstrategy.cli import main

    assert main(["run", str(tiny_recipe), "--evaluation.smoothing_beta=0.5"]) == 0
    (run_dir,) = (tiny_recipe.parent / "logs" / "tiny").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Batch gradient descent: one step per epoch, whose cost is the epoch's cost.
    for point in metrics["cost_curve"]:
        assert point["step_costs"] == [pytest.approx(point["cost/train"])]
    settings = json.loads((run_dir / "diagnosis.json").read_text())["settings"]
    assert settings["smoothing_beta"] == 0.5
    assert "exponentially weighted average" in (run_dir / "report.md").read_text()


def test_the_cli_refuses_a_beta_of_one_before_training(tiny_recipe, capsys):
    from mlstrategy.cli import main

    assert main(["run", str(tiny_recipe), "--evaluation.smoothing_beta=1.0"]) == 2
    assert "smoothing_beta=1.0 must be in [0, 1)" in capsys.readouterr().err
    assert not list((tiny_recipe.parent / "logs").glob("tiny/*/metrics.json"))
