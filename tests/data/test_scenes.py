"""Generated street scenes: deterministic for a seed, labels that match what was drawn, and the
chosen fraction of labels hidden."""

from __future__ import annotations

import numpy as np
import pytest

from mlstrategy.data import StreetScenes
from mlstrategy.data.scenes import KINDS, draw_scene, make_scenes


def test_same_seed_same_scenes_and_hidden_labels_other_seed_differs():
    a = StreetScenes(n_samples=30, missing_fraction=0.3).load(seed=4)
    b = StreetScenes(n_samples=30, missing_fraction=0.3).load(seed=4)
    c = StreetScenes(n_samples=30, missing_fraction=0.3).load(seed=5)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    assert a.x.shape == (30, 3, 24, 24) and a.x.dtype == np.float32
    assert a.x.min() >= 0 and a.x.max() <= 1
    assert a.label_names == list(KINDS)


def test_labels_say_which_kinds_were_drawn():
    _, labels, objects = make_scenes(60, seed=2)
    for i, drawn in enumerate(objects):
        expected = [int(any(o.kind == k for o in drawn)) for k in KINDS]
        assert labels[i].tolist() == expected
    # Every kind appears in some scenes and is absent from others.
    assert labels.mean(axis=0).min() > 0.2 and labels.mean(axis=0).max() < 0.8


@pytest.mark.parametrize("seed", range(5))
def test_each_object_is_drawn_whole_inside_its_box_and_nowhere_else(seed):
    # The same generator state draws the same background; drawing the objects on top must
    # change pixels inside their boxes only, and a good part of each box.
    kinds = list(KINDS)
    image, objects = draw_scene(np.random.default_rng(seed), kinds, clutter=3, noise=0.0)
    background, none = draw_scene(np.random.default_rng(seed), [], clutter=3, noise=0.0)
    assert none == []
    assert len(objects) >= 3  # four objects of <= 13 px nearly always fit in 24x24
    changed = (image != background).any(axis=0)
    inside = np.zeros_like(changed)
    for o in objects:
        box = changed[o.top : o.top + o.height, o.left : o.left + o.width]
        assert box.mean() > 0.3, o
        inside[o.top : o.top + o.height, o.left : o.left + o.width] = True
        # Boxes do not overlap: no object hides another.
        for p in objects:
            if p is not o:
                rows = o.top < p.top + p.height and p.top < o.top + o.height
                cols = o.left < p.left + p.width and p.left < o.left + o.width
                assert not (rows and cols)
    assert not (changed & ~inside).any()
    stop = next((o for o in objects if o.kind == "stop_sign"), None)
    if stop is not None:  # the sign's face is red: R high, G and B low, off the white bar
        r, g, b = image[:, stop.top + 1, stop.left + stop.width // 2]
        assert r > 0.6 and g < 0.3 and b < 0.3


def test_the_chosen_fraction_of_labels_is_hidden_and_the_rest_are_true():
    arrays = StreetScenes(n_samples=200, missing_fraction=0.3).load(seed=0)
    complete = StreetScenes(n_samples=200, missing_fraction=0.0).load(seed=0)
    hidden = arrays.y == -1
    assert 0.25 < hidden.mean() < 0.35  # 800 labels: 0.3 +- 3 standard deviations
    assert (complete.y != -1).all()
    np.testing.assert_array_equal(arrays.y[~hidden], complete.y[~hidden])
    np.testing.assert_array_equal(complete.x, arrays.x)  # hiding labels never changes images
    _, labels, _ = make_scenes(20, seed=0)  # the first scenes are the same whatever n is
    np.testing.assert_array_equal(complete.y[:20], labels)


def test_small_images():
    arrays = StreetScenes(n_samples=20, image_size=16).load(seed=0)
    assert arrays.x.shape == (20, 3, 16, 16)
    assert (arrays.y != -1).any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 8}, r"image_size=8 must be in \[16, 64\]"),
        ({"missing_fraction": 1.0}, r"missing_fraction=1.0 must be in \[0, 1\)"),
        ({"object_probability": 0}, r"object_probability=0 must be in \(0, 1\)"),
        ({"n_samples": 3}, r"n_samples=3 is too small"),
        ({"clutter": -1}, r"clutter=-1 must be >= 0"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StreetScenes(**kwargs)


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"kinds=\['bus'\] are not scene kinds"):
        draw_scene(np.random.default_rng(0), ["bus"])
