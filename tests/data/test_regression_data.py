"""Data with a numeric target: the sources, the data module's splits and target statistics, and
the bad targets it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from mlstrategy.data import ArrayFile, Diabetes, NoisyCurve, RegressionDataModule


def test_diabetes_is_scikit_learns():
    arrays = Diabetes().load(0)
    _, y = load_diabetes(return_X_y=True)
    assert arrays.x.shape == (442, 10) and arrays.y.dtype == np.float32
    np.testing.assert_allclose(arrays.y, y)


def test_noisy_curve_noise_is_the_bayes_rmse():
    arrays = NoisyCurve(n_samples=20_000, noise=0.2).load(3)
    residual = arrays.y - NoisyCurve.curve(arrays.x[:, 0].astype(np.float64))
    # The noiseless curve is the best possible predictor: its RMSE is the noise's std.
    assert float(np.sqrt(np.mean(residual**2))) == pytest.approx(0.2, rel=0.02)
    assert np.array_equal(NoisyCurve(50).load(1).y, NoisyCurve(50).load(1).y)  # seeded


def test_splits_are_seeded_disjoint_and_the_target_statistics_come_from_train():
    data = RegressionDataModule(NoisyCurve(100), dev_fraction=0.2, test_fraction=0.1, seed=0)
    splits = data.prepare()
    assert {k: len(v[0]) for k, v in splits.items()} == {"train": 70, "dev": 20, "test": 10}
    assert data.num_classes == 0 and data.input_shape == (1,)
    mean, std = data.target_normalizer()
    y = splits["train"][1].double().numpy()
    assert mean == pytest.approx(y.mean()) and std == pytest.approx(y.std())
    all_y = np.sort(np.concatenate([v[1].numpy() for v in splits.values()]))
    np.testing.assert_array_equal(all_y, np.sort(NoisyCurve(100).load(0).y))


def test_a_csv_with_a_numeric_target_is_read_as_numbers(tmp_path):
    path = tmp_path / "houses.csv"
    path.write_text("size,rooms,price\n50,2,150.5\n80,3,210\n120,4,300.25\n60,2,160\n90,3,\n")
    with pytest.raises(ValueError, match="line 6: the label cell \\(column 'price'\\) is empty"):
        RegressionDataModule(ArrayFile(str(path), target="price")).prepare()
    path.write_text("size,rooms,price\n" + "".join(f"{i},{i % 3},{1.5 * i}\n" for i in range(20)))
    data = RegressionDataModule(ArrayFile(str(path), target="price"), seed=0)
    y = np.sort(np.concatenate([v[1].numpy() for v in data.prepare().values()]))
    np.testing.assert_allclose(y, 1.5 * np.arange(20))


def test_a_non_numeric_target_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "pets.csv"
    path.write_text("weight,kind\n1.0,cat\n2.0,dog\n")
    with pytest.raises(
        ValueError, match="the target column 'kind' holds 'cat' \\(row 0, from 0\\)"
    ):
        RegressionDataModule(ArrayFile(str(path), target="kind")).prepare()


def test_nan_targets_are_refused(tmp_path):
    path = tmp_path / "values.npz"
    y = np.arange(10.0)
    y[[2, 7]] = np.nan
    np.savez(path, X=np.ones((10, 2)), y=y)
    with pytest.raises(ValueError, match="2 target value\\(s\\) are NaN or infinite \\(rows "
                       "\\[2, 7\\], from 0\\)"):  # fmt: skip
        RegressionDataModule(ArrayFile(str(path))).prepare()


def test_the_init_signature_spells_out_the_array_modules_arguments():
    # LightningCLI (jsonargparse) reads typed __init__ signatures: **kwargs would hide them.
    import inspect

    from mlstrategy.data import ArrayDataModule

    ours = inspect.signature(RegressionDataModule.__init__).parameters
    theirs = inspect.signature(ArrayDataModule.__init__).parameters
    assert list(ours) == list(theirs)
    for name, parameter in theirs.items():
        assert ours[name].annotation == parameter.annotation, name
        assert ours[name].default == parameter.default, name
    assert not any(p.kind is p.VAR_KEYWORD for p in ours.values())
