import random

import numpy as np
import pytest

from mlstrategy.data import MNIST1D, ArrayFile, BreastCancer, Digits, Flower, Moons


def test_breast_cancer_shapes_and_positive_class_is_malignant():
    arrays = BreastCancer().load(seed=0)
    assert arrays.x.shape == (569, 30) and arrays.x.dtype == np.float32
    assert np.bincount(arrays.y).tolist() == [357, 212]  # 212 malignant in the Wisconsin data
    assert arrays.class_names == ["benign", "malignant"]


@pytest.mark.parametrize(("flatten", "shape"), [(True, (1797, 64)), (False, (1797, 1, 8, 8))])
def test_digits_shapes(flatten, shape):
    arrays = Digits(flatten=flatten).load(seed=0)
    assert arrays.x.shape == shape
    assert sorted(set(arrays.y.tolist())) == list(range(10))


def test_moons_and_flower_are_seeded_and_balanced():
    a, b = Moons(n_samples=200).load(1), Moons(n_samples=200).load(1)
    assert a.x.shape == (200, 2) and np.array_equal(a.x, b.x)
    assert not np.array_equal(a.x, Moons(n_samples=200).load(2).x)
    flower = Flower().load(0)
    assert flower.x.shape == (400, 2) and np.bincount(flower.y).tolist() == [200, 200]
    # Petals: radius r = 4 sin(4t) + noise, so points stay within about 4 of the origin.
    assert np.abs(flower.x).max() < 5.5


@pytest.mark.slow
def test_mnist1d_is_built_locally_keeps_its_test_split_and_restores_global_rngs():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    arrays = MNIST1D(num_samples=1000).load(seed=0)
    assert (
        arrays.x.shape == (800, 40)
        and arrays.x_test is not None
        and arrays.x_test.shape == (200, 40)
    )
    assert np.random.rand() == expected_np and random.random() == expected_py
    seq = MNIST1D(num_samples=1000, as_sequence=True).load(seed=0)
    assert seq.x.shape == (800, 1, 40) and np.array_equal(seq.x[:, 0], arrays.x)


def test_npz_and_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)).astype(np.float32), np.arange(20) % 2
    np.savez(tmp_path / "d.npz", X=x, y=y)
    arrays = ArrayFile(str(tmp_path / "d.npz")).load(0)
    assert np.array_equal(arrays.x, x) and np.array_equal(arrays.y, y)
    lines = ["a,b,c,label"] + [
        f"{r[0]},{r[1]},{r[2]},{'cat' if t else 'dog'}" for r, t in zip(x, y, strict=True)
    ]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    arrays = ArrayFile(str(tmp_path / "d.csv"), target="label").load(0)
    assert np.allclose(arrays.x, x) and arrays.class_names == ["cat", "dog"]
    assert np.array_equal(arrays.y, 1 - y)  # sorted names: cat=0, dog=1


def test_file_errors_name_the_missing_column_and_bad_labels(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,0\n2,1\n")
    with pytest.raises(
        ValueError, match=r"no column\(s\) \['label'\]; its columns are \['a', 'b'\]"
    ):
        ArrayFile(str(tmp_path / "d.csv"), target="label").load(0)
    np.savez(tmp_path / "d.npz", X=np.zeros((3, 2)), y=np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="labels out of range"):
        ArrayFile(str(tmp_path / "d.npz")).load(0)
    with pytest.raises(ValueError, match="does not exist"):
        ArrayFile(str(tmp_path / "missing.npz")).load(0)
