"""The digit pipeline's stages: crop, the template and learned localizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlstrategy.data.canvas import DigitCanvas
from mlstrategy.pipeline import (
    LearnedLocalizer,
    Localizer,
    PositionNet,
    TemplateLocalizer,
    crop,
    crop_stage,
)


def test_crop_matches_numpy_slicing() -> None:
    rng = np.random.default_rng(0)
    canvas = rng.normal(size=(5, 2, 12, 10)).astype(np.float32)
    position = np.stack([rng.integers(0, 5, 5), rng.integers(0, 3, 5)], axis=1)
    got = crop(torch.from_numpy(canvas), torch.from_numpy(position)).numpy()
    for i, (r, c) in enumerate(position):
        np.testing.assert_array_equal(got[i], canvas[i, :, r : r + 8, c : c + 8])


def test_crop_at_the_true_position_returns_the_clean_digit() -> None:
    train, _ = DigitCanvas(canvas_size=16, n_train=30, n_test=1, noise=0.0).generate(0)
    stage = crop_stage()
    got = stage.predict(torch.from_numpy(train.canvas), torch.from_numpy(train.position))
    np.testing.assert_array_equal(got.numpy(), train.digit)
    assert stage.wrong(got, torch.from_numpy(train.digit)) is None  # an image: no right/wrong


def test_crop_refuses_positions_off_the_canvas() -> None:
    with pytest.raises(ValueError, match="outside the canvas"):
        crop(torch.zeros(1, 1, 10, 10), torch.tensor([[3, 0]]))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        crop(torch.zeros(2, 1, 10, 10), torch.tensor([1, 1]))


def test_template_localizer_is_close_without_clutter_and_fooled_by_clutter() -> None:
    clean_train, clean_test = DigitCanvas(
        canvas_size=20, n_train=100, n_test=100, clutter=0, noise=0.0
    ).generate(0)
    stage = TemplateLocalizer(tolerance=1)
    stage.fit([torch.from_numpy(clean_train.canvas)], torch.from_numpy(clean_train.position))
    assert stage.template is not None and stage.template.shape == (1, 1, 8, 8)
    found = stage.predict(torch.from_numpy(clean_test.canvas))
    target = torch.from_numpy(clean_test.position)
    # On a black canvas it is never more than a pixel off; thin digits (1, 7) shift it by one.
    assert not stage.wrong(found, target).any()
    assert 0.8 < (found == target).all(dim=1).float().mean() < 1.0

    _, busy_test = DigitCanvas(canvas_size=20, n_train=1, n_test=100, clutter=8).generate(0)
    found = stage.predict(torch.from_numpy(busy_test.canvas))
    assert stage.wrong(found, torch.from_numpy(busy_test.position)).float().mean() > 0.05


def test_position_wrong_uses_the_tolerance() -> None:
    target = torch.tensor([[3, 3], [3, 3], [3, 3]])
    found = torch.tensor([[3, 3], [4, 2], [3, 5]])
    assert TemplateLocalizer().wrong(found, target).tolist() == [False, True, True]
    assert TemplateLocalizer(tolerance=1).wrong(found, target).tolist() == [False, False, True]
    with pytest.raises(ValueError, match="tolerance=-1"):
        TemplateLocalizer(tolerance=-1)


def test_position_net_scores_every_position_row_major() -> None:
    net = PositionNet((1, 12, 10), channels=[4])
    assert net.num_positions == 5 * 3
    assert net(torch.zeros(2, 1, 12, 10)).shape == (2, 15)
    module = Localizer((1, 12, 10), 15, channels=[4])
    assert module.output_units == 15
    with pytest.raises(ValueError, match="num_classes=14"):
        Localizer((1, 12, 10), 14)


def test_learned_localizer_encodes_positions_as_classes_and_back() -> None:
    stage = LearnedLocalizer(canvas_size=12)
    assert stage.num_classes == 25
    positions = torch.tensor([[0, 0], [0, 4], [4, 0], [2, 3]])
    classes = stage.encode(positions)
    assert classes.tolist() == [0, 4, 20, 13]
    assert torch.equal(stage.decode(classes), positions)


@pytest.mark.slow
def test_learned_localizer_learns_to_find_digits() -> None:
    train, test = DigitCanvas(canvas_size=12, n_train=400, n_test=200, clutter=0).generate(0)
    stage = LearnedLocalizer(canvas_size=12, epochs=1, min_steps=150, tolerance=1)
    stage.fit([torch.from_numpy(train.canvas)], torch.from_numpy(train.position))
    found = stage.predict(torch.from_numpy(test.canvas))
    assert stage.wrong(found, torch.from_numpy(test.position)).float().mean() < 0.1
