"""The confusion-matrix figure reads at TensorBoard's default size: counts in the cells (as
scikit-learn counts them), class names on the axes, large type, and a fallback for many
classes."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from mlstrategy.reporting.plots import confusion_matrix_figure


def _splits(k: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", 300), ("dev", 100), ("test", 100)):
        y = rng.integers(0, k, n)
        noisy = np.where(rng.random(n) < 0.2, rng.integers(0, k, n), y)
        out[split] = confusion_matrix(y, noisy, labels=range(k))
    return out


def test_each_cell_holds_scikit_learn_s_count_and_the_title_the_errors():
    matrices = _splits(3)
    names = ["cat", "dog", "bird"]
    fig = confusion_matrix_figure({s: m.tolist() for s, m in matrices.items()}, names)
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == 3 and len(fig.axes) == 4  # two a row; the fourth slot left blank
    for ax, (split, cm) in zip(drawn, matrices.items(), strict=True):
        texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
        assert {pos: int(t.get_text()) for pos, t in texts.items()} == {
            (i, j): int(cm[i, j]) for i in range(3) for j in range(3)
        }
        assert all(t.get_fontsize() >= 14 for t in texts.values())  # readable when scaled
        errors = int(cm.sum() - np.trace(cm))
        assert ax.get_title() == f"{split}: {errors} errors in {cm.sum()}"
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        assert [t.get_text() for t in ax.get_yticklabels()] == names
        assert all(t.get_rotation() == 0 for t in ax.get_xticklabels())  # short names: level
    # Two 3.2-inch panels at 100 dpi: about 670 px wide, so the type survives the scaling.
    assert fig.get_size_inches()[0] * 100 <= 700


def test_the_cell_colour_is_the_share_of_the_true_class():
    cm = np.array([[8, 2], [1, 9]])
    (ax,) = confusion_matrix_figure({"dev": cm.tolist()}, ["no", "yes"]).axes
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown, cm / cm.sum(axis=1, keepdims=True))
    assert ax.get_title() == "dev: 3 errors in 20"


def test_many_classes_drop_the_counts_and_name_every_nth_class():
    k = 64
    matrices = _splits(k, seed=1)
    names = [f"c{i}" for i in range(k)]
    fig = confusion_matrix_figure({"dev": matrices["dev"].tolist()}, names)
    (ax,) = fig.axes
    assert len(ax.texts) == 0  # 4,096 numbers would be unreadable
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == names[::3] and len(labels) <= 30
    assert ax.get_title().endswith("colour: share of the row")
    cm = matrices["dev"]
    rows = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    assert ax.images[0].get_clim() == (0.0, shares.max())  # the scale spans the shares
