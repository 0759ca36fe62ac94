"""Satisficing and optimizing metrics: parsing, filtering, the winner, clear errors."""

from __future__ import annotations

import pytest

from mlstrategy.evaluation.selection import (
    Constraint,
    default_goal,
    flatten_metrics,
    parse_constraint,
    select,
)
from mlstrategy.evaluation.settings import EvaluationSettings

RUNS = {
    # best dev F1, but too slow: must not win
    "big": {"dev/f1": 0.97, "latency_ms": 12.0, "test/recall": 0.95, "dev/error": 0.03},
    "medium": {"dev/f1": 0.93, "latency_ms": 4.0, "test/recall": 0.91, "dev/error": 0.06},
    # fast but misses the recall bar
    "small": {"dev/f1": 0.95, "latency_ms": 1.0, "test/recall": 0.85, "dev/error": 0.05},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latency_ms<=5", Constraint("latency_ms", "<=", 5.0)),
        ("test/recall >= 0.9", Constraint("test/recall", ">=", 0.9)),
        (" params<1e6 ", Constraint("params", "<", 1e6)),
        ("dev/recall/malignant>0.95", Constraint("dev/recall/malignant", ">", 0.95)),
        ("epochs==10", Constraint("epochs", "==", 10.0)),
    ],
)
def test_parse_constraint(text, expected):
    assert parse_constraint(text) == expected


@pytest.mark.parametrize(
    "text", ["latency_ms", "latency_ms<=", "<=5", "latency_ms=<5", "a<=b", "x<=nan"]
)
def test_malformed_constraint_is_a_clear_error(text):
    with pytest.raises(ValueError, match="Write METRIC OP NUMBER"):
        parse_constraint(text)


def test_constraint_holds():
    c = Constraint("latency_ms", "<=", 5.0)
    assert c.holds(5.0) and c.holds(0.1) and not c.holds(5.01)
    assert str(c) == "latency_ms<=5"


@pytest.mark.parametrize(
    ("metric", "goal"),
    [
        ("dev/f1", "max"),
        ("dev/error", "min"),
        ("test/loss", "min"),
        ("latency_ms", "min"),
        ("trainable_params", "min"),
        ("dev/recall/error_prone_class", "max"),
        ("dev/f1_weighted", "max"),
    ],
)
def test_default_goal(metric, goal):
    assert default_goal(metric) == goal


def test_optimizing_winner_that_fails_a_constraint_is_not_chosen():
    s = select(RUNS, "dev/f1", ["latency_ms<=5", "test/recall>=0.9"])
    assert s.winner == "medium"
    assert [c.name for c in s.candidates] == ["medium", "big", "small"]
    by_name = {c.name: c for c in s.candidates}
    assert by_name["big"].failures == ["latency_ms<=5 (12)"]
    assert by_name["small"].failures == ["test/recall>=0.9 (0.85)"]
    assert select({"a": {"params": 17025.0}}, "params", ["params<=10"]).candidates[0].failures == [
        "params<=10 (17025)"
    ]
    assert by_name["medium"].eligible


def test_without_constraints_the_best_on_the_optimizing_metric_wins():
    assert select(RUNS, "dev/f1").winner == "big"
    assert select(RUNS, "dev/error").winner == "big"  # minimized
    assert select(RUNS, "dev/error", goal="max").winner == "medium"


def test_no_run_meets_every_constraint():
    s = select(RUNS, "dev/f1", ["latency_ms<=0.5"])
    assert s.winner is None
    assert all(not c.eligible for c in s.candidates)


def test_ties_go_to_the_run_listed_first():
    runs = {"a": {"dev/f1": 0.9}, "b": {"dev/f1": 0.9}}
    assert select(runs, "dev/f1").winner == "a"


def test_a_run_missing_a_metric_fails_that_constraint():
    runs = {"a": {"dev/f1": 0.99}, "b": {"dev/f1": 0.9, "train_dev/error": 0.01}}
    s = select(runs, "dev/f1", ["train_dev/error<=0.05"])
    assert s.winner == "b"
    assert s.candidates[1].failures == ["train_dev/error<=0.05 (no train_dev/error)"]


@pytest.mark.parametrize(
    ("optimize", "satisfy"),
    [("dev/f2", []), ("dev/f1", ["latency<=5"])],
)
def test_unknown_metric_lists_those_available(optimize, satisfy):
    with pytest.raises(ValueError) as err:
        select(RUNS, optimize, satisfy)
    message = str(err.value)
    assert "Unknown" in message and "Metrics available" in message
    assert "dev/f1" in message and "latency_ms" in message


def test_no_runs_is_a_clear_error():
    with pytest.raises(ValueError, match="No runs to compare"):
        select({}, "dev/f1")


def test_flatten_metrics_from_a_metrics_json():
    metrics = {
        "recipe": "r.yaml",
        "params": 31,
        "latency_ms": 0.07,
        "best_checkpoint": None,
        "splits": {
            "dev": {
                "f1": 0.9,
                "n": 10,
                "confusion_matrix": [[1, 0], [0, 1]],
                "per_class": {"malignant": {"recall": 0.8, "support": 4}},
            }
        },
    }
    flat = flatten_metrics(metrics)
    assert flat == {
        "params": 31.0,
        "latency_ms": 0.07,
        "dev/f1": 0.9,
        "dev/n": 10.0,
        "dev/recall/malignant": 0.8,
        "dev/support/malignant": 4.0,
    }


def test_recipe_settings_validate_and_resolve_the_goal():
    s = EvaluationSettings(human_error=0.05, optimize="dev/error", satisfy=["latency_ms<=5"])
    assert s.resolved_goal == "min"
    assert s.constraints == [Constraint("latency_ms", "<=", 5.0)]
    assert s.to_dict()["satisfy"] == ["latency_ms<=5"]
    with pytest.raises(ValueError, match="human_error=5"):  # a classifier's: a fraction
        EvaluationSettings(human_error=5).fit_model(regression=False)
    EvaluationSettings(human_error=5).fit_model(regression=True)  # an RMSE of 5: fine
    with pytest.raises(ValueError, match="human_error=-1"):
        EvaluationSettings(human_error=-1)
    with pytest.raises(ValueError, match="Write METRIC OP NUMBER"):
        EvaluationSettings(satisfy=["fast"])
