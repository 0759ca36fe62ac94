"""Ceiling analysis on pipelines with known, deterministic stage accuracies."""

from __future__ import annotations

import pytest
import torch

from mlstrategy.pipeline import FixedStage, Pipeline, ceiling_analysis

M = 60


def _examples() -> dict[str, torch.Tensor]:
    x = torch.arange(M)
    return {"x": x, "a": x, "b": 10 * x, "c": 10 * x + 1}


def _pipeline() -> Pipeline:
    """detect: wrong on x % 5 == 0 (20%); read: wrong on a % 4 == 1 (25%), and garbage in,
    garbage out; label: wrong on b % 60 == 30 (b = 10a: a % 6 == 3, 10 of 60), same rule."""
    detect = FixedStage("detect", lambda x: torch.where(x % 5 == 0, -1, x), ["x"], "a")
    read = FixedStage("read", lambda a: torch.where((a % 4 == 1) | (a < 0), -7, 10 * a), ["a"], "b")
    label = FixedStage(
        "label", lambda b: torch.where((b % 60 == 30) | (b < 0), -9, b + 1), ["b"], "c"
    )
    return Pipeline([detect, read, label])


def _error(wrong: torch.Tensor) -> float:
    return float(wrong.float().mean())


def test_rows_match_errors_computed_by_hand() -> None:
    x = torch.arange(M)
    detect_wrong, read_wrong, label_wrong = x % 5 == 0, x % 4 == 1, x % 6 == 3
    analysis = ceiling_analysis(_pipeline(), _examples())
    assert [r.component for r in analysis.rows] == ["overall system", "detect", "read", "label"]
    expected = [
        _error(detect_wrong | read_wrong | label_wrong),
        _error(read_wrong | label_wrong),
        _error(label_wrong),
        0.0,
    ]
    assert [r.error for r in analysis.rows] == pytest.approx(expected)
    assert [r.stage_error for r in analysis.rows[1:]] == pytest.approx([0.2, 0.25, 1 / 6])


def test_every_stage_but_the_last_perfect_gives_the_last_stages_own_error() -> None:
    analysis = ceiling_analysis(_pipeline(), _examples())
    last = analysis.rows[-1]
    assert analysis.rows[-2].perfect == ("detect", "read")
    # The last stage's own error on clean input, known by construction: a % 6 == 3.
    assert analysis.rows[-2].error == pytest.approx(1 / 6)
    assert last.stage_error == pytest.approx(1 / 6)
    assert last.gain == pytest.approx(analysis.rows[-2].error)
    assert last.error == 0.0


def test_shares_add_up_to_the_system_error_and_name_the_worst_stage() -> None:
    analysis = ceiling_analysis(_pipeline(), _examples())
    assert sum(analysis.gains.values()) == pytest.approx(analysis.system_error)
    assert all(g >= 0 for g in analysis.gains.values())
    assert analysis.worst == max(analysis.gains, key=analysis.gains.get)
    # A stage's share is not its own error: overlapping mistakes are counted once.
    assert analysis.gains["detect"] < 0.2


def test_a_perfect_pipeline_has_no_error_to_share() -> None:
    ok = FixedStage("ok", lambda x: x, ["x"], "y")
    analysis = ceiling_analysis(Pipeline([ok]), {"x": torch.arange(5), "y": torch.arange(5)})
    assert [r.error for r in analysis.rows] == [0.0, 0.0]
    assert analysis.to_dict()[1] == {
        "component": "ok",
        "perfect": ["ok"],
        "error": 0.0,
        "gain": 0.0,
        "stage_error": 0.0,
    }
