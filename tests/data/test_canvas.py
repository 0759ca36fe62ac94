"""The generated digit-on-a-canvas task: seeded, positions correct, test digits held out."""

from __future__ import annotations

import numpy as np
import pytest

from mlstrategy.data import ArrayDataModule
from mlstrategy.data.canvas import DIGIT_SIZE, DigitCanvas, draw_canvases


def _small(**kwargs) -> DigitCanvas:
    args = {"canvas_size": 16, "n_train": 40, "n_test": 20, "clutter": 3}
    args.update(kwargs)
    return DigitCanvas(**args)


def _box(canvases, i: int) -> np.ndarray:
    r, c = canvases.position[i]
    return canvases.canvas[i, 0, r : r + DIGIT_SIZE, c : c + DIGIT_SIZE]


def test_same_seed_same_canvases_other_seed_other_canvases() -> None:
    task = _small()
    (a, a_test), (b, b_test) = task.generate(3), task.generate(3)
    for field in ("canvas", "label", "position", "digit"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(getattr(a_test, field), getattr(b_test, field))
    c, _ = task.generate(4)
    assert not np.array_equal(a.canvas, c.canvas)
    assert not np.array_equal(a.position, c.position)


def test_the_digit_is_where_the_position_label_says() -> None:
    train, test = _small(noise=0.0, clutter=5).generate(0)
    for canvases in (train, test):
        for i in range(len(canvases)):
            np.testing.assert_array_equal(_box(canvases, i), canvases.digit[i, 0])
    assert train.position.min() >= 0 and train.position.max() <= 16 - DIGIT_SIZE


def test_without_clutter_or_noise_the_canvas_is_the_digit_on_black() -> None:
    train, _ = _small(noise=0.0, clutter=0).generate(1)
    for i in range(len(train)):
        outside = train.canvas[i, 0].copy()
        r, c = train.position[i]
        outside[r : r + DIGIT_SIZE, c : c + DIGIT_SIZE] = 0
        assert not outside.any()
        assert train.canvas[i].sum() == pytest.approx(train.digit[i].sum())


def test_clutter_lies_outside_the_digit_box_and_noise_is_bounded() -> None:
    clean, _ = _small(noise=0.0, clutter=6).generate(2)
    noisy, _ = _small(noise=1.0, clutter=6).generate(2)
    # Clutter adds ink outside the box on every canvas.
    total = clean.canvas.reshape(len(clean), -1).sum(axis=1)
    assert (total > clean.digit.reshape(len(clean), -1).sum(axis=1)).all()
    # Noise changes pixels, within a few standard deviations, clipped to 0..16.
    assert noisy.canvas.min() >= 0 and noisy.canvas.max() <= 16
    diff = np.abs(noisy.canvas - clean.canvas)
    assert 0.3 < diff.mean() < 1.0 and diff.max() < 8


def test_positions_cover_the_canvas_uniformly() -> None:
    train, _ = DigitCanvas(canvas_size=12, n_train=2000, n_test=1, clutter=0).generate(0)
    counts = np.bincount(train.position[:, 0] * 5 + train.position[:, 1], minlength=25)
    assert counts.min() > 2000 / 25 * 0.5 and counts.max() < 2000 / 25 * 1.5


def test_test_canvases_use_held_out_digits_only() -> None:
    train, test = DigitCanvas(canvas_size=12, n_train=600, n_test=300, clutter=0).generate(0)
    seen = {d.tobytes() for d in train.digit}
    assert not any(d.tobytes() in seen for d in test.digit)
    assert set(np.unique(test.label)) == set(range(10))


def test_as_a_source_it_feeds_the_data_module_with_its_own_test_split() -> None:
    dm = ArrayDataModule(_small(n_train=100, n_test=30), dev_fraction=0.2)
    splits = dm.prepare()
    assert dm.input_shape == (1, 16, 16)
    assert dm.num_classes == 10
    assert len(splits["test"][0]) == 30
    assert len(splits["train"][0]) + len(splits["dev"][0]) == 100


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"canvas_size": 8}, "canvas_size=8"),
        ({"clutter": -1}, "clutter=-1"),
        ({"fragment_size": 9}, "fragment_size=9"),
        ({"noise": -0.5}, "noise=-0.5"),
        ({"n_train": 0}, "n_train=0"),
        ({"test_digits": 1.0}, "test_digits=1.0"),
        ({"canvas_size": 10, "fragment_size": 4}, "leaves no room"),
        ({"canvas_size": 14, "fragment_size": 4}, "canvas_size >= 15"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_value(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        DigitCanvas(**kwargs)


def test_the_smallest_canvas_that_fits_clutter_can_be_drawn() -> None:
    # 15 = 8 + 2 * 4 - 1: a digit in the middle leaves exactly 4 pixels on one side.
    train, _ = DigitCanvas(canvas_size=15, n_train=50, n_test=1, clutter=3, noise=0.0).generate(0)
    for i in range(len(train)):
        np.testing.assert_array_equal(_box(train, i), train.digit[i, 0])


def test_draw_canvases_needs_at_least_one() -> None:
    digits = np.zeros((3, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="n=0"):
        draw_canvases(digits, np.arange(3), 0, np.random.default_rng(0))
