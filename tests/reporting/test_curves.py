"""A study's training curves: every run's costs on one chart, grad norms per layer per run."""

from __future__ import annotations

import json

import pytest
from torch.utils.tensorboard import SummaryWriter

from mlstrategy.reporting.curves import (
    read_grad_norms,
    study_costs_figure,
    write_study_curves,
)


def _run(path, curve, norms=None):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(
        json.dumps({"splits": {"dev": {"error": 0.1, "n": 10}}, "cost_curve": curve})
    )
    if norms:
        writer = SummaryWriter(str(path))
        for layer, values in norms.items():
            for epoch, value in enumerate(values):
                writer.add_scalar(f"grad_norm/{layer}", value, global_step=epoch)
        writer.add_scalar("lr", 0.1, global_step=0)
        writer.close()
    return path


def test_the_study_writes_its_cost_chart_and_the_grad_norms_it_read_back(tmp_path):
    batch = [{"epoch": e, "cost/train": 0.7 - 0.1 * e, "step_costs": [0.7 - 0.1 * e]}
             for e in range(3)]  # fmt: skip
    sgd = [{"epoch": e, "cost/train": 0.5 - 0.1 * e, "step_costs": [0.9, 0.1, 0.5]}
           for e in range(3)]  # fmt: skip
    norms = {"layer_1": [1e-5, 2e-5], "layer_2": [0.1, 0.2]}
    runs = {
        "batch": _run(tmp_path / "batch" / "t", batch, norms),
        "sgd": _run(tmp_path / "sgd" / "t", sgd),
    }
    assert read_grad_norms(runs["batch"]) == {
        "layer_1": [(0, pytest.approx(1e-5)), (1, pytest.approx(2e-5))],
        "layer_2": [(0, pytest.approx(0.1)), (1, pytest.approx(0.2))],
    }
    assert read_grad_norms(runs["sgd"]) == {}
    written = write_study_curves(tmp_path, runs)
    assert set(written) == {"costs", "grad_norms", "report"}
    for key in ("costs", "grad_norms"):
        assert written[key].read_bytes()[:4] == b"\x89PNG"
    report = written["report"].read_text()
    assert "](cost_curves.png)" in report and "](grad_norms.png)" in report


def test_the_cost_chart_draws_each_step_at_its_place_in_epochs_and_each_epochs_mean():
    sgd = [{"epoch": e, "cost/train": 0.5, "step_costs": [0.9, 0.1]} for e in range(2)]
    ax = study_costs_figure({"sgd": sgd}).axes[0]
    steps, means = ax.get_lines()
    assert list(steps.get_xdata()) == [0.5, 1.0, 1.5, 2.0]
    assert list(steps.get_ydata()) == [0.9, 0.1, 0.9, 0.1]
    assert list(means.get_xdata()) == [1, 2] and means.get_label() == "sgd (2 steps an epoch)"


def test_a_study_with_nothing_trained_writes_nothing(tmp_path):
    assert write_study_curves(tmp_path, {"a": _run(tmp_path / "a", [])}) == {}
    assert not (tmp_path / "curves.md").exists()
