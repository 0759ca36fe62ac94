"""The study's crossover, tables and figure."""

from __future__ import annotations

import math

import pytest

from mlstrategy.pipeline import find_crossover
from mlstrategy.pipeline.ceiling import CeilingAnalysis, CeilingRow
from mlstrategy.pipeline.study_report import ceiling_markdown, crossover_figure, sizes_markdown


def test_crossover_interpolates_in_log_size() -> None:
    c = find_crossover([100, 400, 1600], [0.6, 0.3, 0.1], [0.2, 0.2, 0.2])
    assert c.between == (400, 1600)
    # Gap 0.1 at 400 and -0.1 at 1600: halfway in log m is sqrt(400 * 1600) = 800.
    assert c.at == pytest.approx(800)
    assert "between m=400 (30.0% vs 20.0%) and m=1600 (10.0% vs 20.0%)" in c.summary


def test_crossover_at_a_measured_size_is_that_size() -> None:
    c = find_crossover([100, 1000], [0.3, 0.2], [0.2, 0.2])
    assert c.at == pytest.approx(1000) and c.between == (100, 1000)


def test_no_crossover_says_who_leads() -> None:
    behind = find_crossover([10, 100], [0.5, 0.4], [0.2, 0.1], names=("e2e", "pipe"))
    assert behind.at is None and "pipe stays ahead of e2e" in behind.summary
    ahead = find_crossover([10, 100], [0.1, 0.1], [0.2, 0.2], names=("e2e", "pipe"))
    assert ahead.at is None and "already at m=10" in ahead.summary


@pytest.mark.parametrize(
    ("sizes", "a", "b", "needle"),
    [([10, 10], [0.1, 0.1], [0.1, 0.1], "increasing"), ([10], [0.1, 0.2], [0.1], "lengths")],
)
def test_crossover_bad_inputs(sizes, a, b, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        find_crossover(sizes, a, b)


def test_markdown_tables_and_figure() -> None:
    assert sizes_markdown([10, 20], {"a": [0.5, 0.25]}).splitlines()[-1] == "| 20 | 25.0% |"
    analysis = CeilingAnalysis(
        (
            CeilingRow("overall system", (), 0.3, 0.0),
            CeilingRow("find", ("find",), 0.1, 0.2, 0.25),
            CeilingRow("read", ("find", "read"), 0.0, 0.1, 0.1),
        )
    )
    lines = ceiling_markdown(analysis).splitlines()
    assert lines[3] == "| **+ find** | 10.0% | 20.0% | 25.0% |"
    assert lines[4] == "| + read | 0.0% | 10.0% | 10.0% |"
    c = find_crossover([10, 100], [0.5, 0.1], [0.2, 0.2])
    fig = crossover_figure([10, 100], {"e2e": [0.5, 0.1], "pipe": [0.2, 0.2]}, c)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[:2] == ["e2e", "pipe"] and labels[2].startswith("crossover")
    assert math.isclose(fig.axes[0].get_lines()[0].get_ydata()[0], 50.0)


def test_ceiling_verdict_names_the_stage_to_improve_with_the_numbers() -> None:
    from mlstrategy.pipeline.study_report import ceiling_verdict

    analysis = CeilingAnalysis(
        (
            CeilingRow("overall system", (), 0.2, 0.0),
            CeilingRow("find", ("find",), 0.15, 0.05, 0.1),
            CeilingRow("read", ("find", "read"), 0.0, 0.15, 0.15),
        )
    )
    assert ceiling_verdict(analysis) == (
        "Improve read first: perfect, it would cut the error from 20.0% to 5.0% (3/4 of it)."
    )
    perfect = CeilingAnalysis(
        (CeilingRow("overall system", (), 0.0, 0.0), CeilingRow("a", ("a",), 0.0, 0.0, 0.0))
    )
    assert "no stage to improve" in ceiling_verdict(perfect)
