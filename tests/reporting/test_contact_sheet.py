"""The contact sheet: one large, captioned cell per example, pictures or line plots."""

from __future__ import annotations

import numpy as np
import pytest

from mlstrategy.reporting.contact_sheet import CELL_INCHES, SheetCell, contact_sheet_figure


def _cells(n: int) -> list[SheetCell]:
    return [SheetCell(i, str(i % 10), str((i + 1) % 10), 0.01 * i) for i in range(n)]


def test_images_get_one_captioned_cell_each_in_rows_of_six():
    x = np.random.default_rng(0).random((8, 1, 8, 8))
    fig = contact_sheet_figure(x, _cells(8), title="errors")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 8
    assert drawn[3].get_title() == "#3  true 3 -> 4\np(true) = 0.03"
    np.testing.assert_array_equal(drawn[3].images[0].get_array(), x[3, 0])
    width, height = fig.get_size_inches()
    assert width == pytest.approx(6 * CELL_INCHES)  # big enough to judge by eye
    assert height > 2 * CELL_INCHES  # two rows


def test_colour_images_are_drawn_in_colour():
    fig = contact_sheet_figure(np.random.default_rng(0).random((2, 3, 5, 5)), _cells(2))
    assert fig.axes[0].images[0].get_array().shape == (5, 5, 3)


def test_signals_are_drawn_as_line_plots():
    x = np.sin(np.linspace(0, 6, 40))[None, None, :].repeat(3, axis=0)
    fig = contact_sheet_figure(x, _cells(3))
    lines = fig.axes[1].get_lines()
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0].get_ydata(), x[1, 0])


def test_flat_features_and_mismatched_captions():
    assert contact_sheet_figure(np.zeros((3, 30)), _cells(3)) is None
    assert contact_sheet_figure(np.zeros((0, 1, 8, 8)), []) is None
    with pytest.raises(ValueError, match="2 examples but 3 captions"):
        contact_sheet_figure(np.zeros((2, 1, 8, 8)), _cells(3))
