import random

import numpy as np
import pytest

from conftest import run_cli_subprocess, write_recipe
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


# ----------------------------------------------------------------- odd CSV and .npz files
def _write(tmp_path, text: str, name: str = "d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_blank_lines_are_skipped_and_later_lines_keep_their_numbers(tmp_path):
    text = "\na,b,label\n1,2,0\n\n3,4,1\n  \n5,6,0\n\n\n"
    arrays = ArrayFile(_write(tmp_path, text), target="label").load(0)
    assert arrays.x.tolist() == [[1, 2], [3, 4], [5, 6]] and arrays.y.tolist() == [0, 1, 0]
    # Line numbers are the file's own: the bad cell is on line 7 (blank lines counted).
    bad = "a,b,label\n1,2,0\n\n3,4,1\n\n\n5,x,0\n"
    with pytest.raises(ValueError, match=r"d.csv line 7, column 'b': 'x' is not a number"):
        ArrayFile(_write(tmp_path, bad), target="label").load(0)


def test_csv_with_a_utf8_byte_order_mark_reads_its_first_column(tmp_path):
    (tmp_path / "d.csv").write_bytes("\ufeffa,label\n1,0\n2,1\n".encode())
    arrays = ArrayFile(str(tmp_path / "d.csv"), target="label").load(0)
    assert arrays.x.tolist() == [[1], [2]]


def _rows(label) -> str:
    return "".join(f"{i},{label(i)}\n" for i in range(20))


ODD_CSV = [
    ("trailing_commas", "a,label,\n" + _rows(lambda i: f"{i % 2},"),
     r"line 1: column 3 has no name: trailing commas\? Remove the comma at the end"),
    ("unnamed_middle_column", "a,,label\n1,2,0\n",
     r"line 1: column 2 has no name: give every column a name"),
    ("header_only", "a,label\n", r"has a header row \(2 columns\) but no data rows"),
    ("empty", "", r"is empty; it needs a header row"),
    ("blank_only", "\n \n\n", r"is empty; it needs a header row"),
    ("repeated_name", "a,a,label\n1,2,0\n", r"the column name 'a' is used by columns \[1, 2\]"),
    ("trailing_comma_in_a_row", "a,label\n1,0\n2,1,\n",
     r"line 3 has 3 cells, the header has 2. A trailing comma\?"),
    ("unquoted_comma", 'a,label\n1,0\n2,"x",y,1\n', r"line 3 has 4 cells.*in double quotes"),
    ("semicolons", "a;b;label\n1;2;0\n",
     r"its columns are \['a;b;label'\]. The header looks separated by ';'"),
    ("empty_label", "a,label\n1,0\n2,\n", r"line 3: the label cell \(column 'label'\) is empty"),
    ("labels_from_1", "a,label\n" + _rows(lambda i: 1 + i % 3),
     r"labels run from 1 to 3 and none is 0.*Subtract 1"),
    ("one_class", "a,label\n" + _rows(lambda i: 1), r"every label is '1', so there is one class"),
    ("id_as_target", "a,label\n" + _rows(lambda i: 1000 + i),
     r"the largest label is 1019 but there are only 20 examples.*not an id"),
    ("no_features", "label\n0\n1\n", r"has only the label column 'label'; it needs feature"),
    ("field_over_the_csv_limit", "a,label\n" + "9" * 200_000 + ",0\n",
     r"line 2 cannot be read as CSV \(field larger than field limit"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "match"), [pytest.param(*c[1:], id=c[0]) for c in ODD_CSV])
def test_odd_csv_files_are_refused_naming_the_file_the_place_and_the_fix(tmp_path, text, match):
    with pytest.raises(ValueError, match=match) as err:
        ArrayFile(_write(tmp_path, text), target="label").load(0)
    assert "d.csv" in str(err.value)


def test_csv_that_is_not_text_and_a_target_listed_as_a_feature(tmp_path):
    (tmp_path / "d.csv").write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match=r"d.csv is not UTF-8 text \(byte 128"):
        ArrayFile(str(tmp_path / "d.csv")).load(0)
    path = _write(tmp_path, "a,label\n1,0\n2,1\n")
    with pytest.raises(ValueError, match=r"label column 'label' is also listed in `features`"):
        ArrayFile(path, target="label", features=["a", "label"]).load(0)


def test_data_path_that_is_a_folder_or_starts_with_a_tilde(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"is a folder, not a file"):
        ArrayFile(str(tmp_path)).load(0)
    monkeypatch.setenv("HOME", str(tmp_path))
    _write(tmp_path, "a,label\n1,0\n2,1\n")
    assert ArrayFile("~/d.csv", target="label").load(0).y.tolist() == [0, 1]


class _ImportsOnLoad:
    """Pickled, this object is a call: importing a module the moment it is loaded."""

    def __reduce__(self):
        import importlib

        return (importlib.import_module, ("mlstrategy_test_never_imported",))


ODD_NPZ = [
    ("one_dimensional_features", {"X": np.zeros(10), "y": np.arange(10) % 2},
     r"have shape \(10,\).*save X\[:, None\]"),
    ("one_hot_labels", {"X": np.zeros((10, 2)), "y": np.eye(2)[np.arange(10) % 2]},
     r"shape \(10, 2\).*y.argmax\(axis=1\)"),
    ("no_rows", {"X": np.zeros((0, 2)), "y": np.zeros(0)}, r"hold no examples \(0 rows\)"),
    ("pickled_objects", {"X": np.array([_ImportsOnLoad()] * 4, dtype=object), "y": np.arange(4)},
     r"array 'X' holds Python objects \(dtype=object\)"),
    ("text_features", {"X": np.array([["a"], ["b"]]), "y": np.arange(2)},
     r"features 'X' are <U1, not numbers"),
]  # fmt: skip


@pytest.mark.parametrize(("arrays", "match"), [pytest.param(*c[1:], id=c[0]) for c in ODD_NPZ])
def test_odd_npz_files_are_refused_with_the_fix(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        ArrayFile(str(tmp_path / "d.npz")).load(0)
    import sys

    assert "mlstrategy_test_never_imported" not in sys.modules


def test_npz_that_is_not_an_archive(tmp_path):
    (tmp_path / "d.npz").write_text("X,y\n1,0\n")
    with pytest.raises(ValueError, match=r"d.npz is not a NumPy .npz archive"):
        ArrayFile(str(tmp_path / "d.npz")).load(0)
    np.save(tmp_path / "one.npy", np.zeros((3, 2)))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(ValueError, match=r"holds one array \(a .npy file\)"):
        ArrayFile(str(tmp_path / "one.npz")).load(0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a,b,label,\n" + "".join(f"{i},{i % 3},{i % 2},\n" for i in range(12)),
         "d.csv line 1: column 4 has no name: trailing commas?"),
    ],
    ids=["trailing_commas"],  # the other odd files' messages are checked in-process above
)  # fmt: skip
def test_console_script_refuses_an_odd_csv_in_one_line(in_tmp, text, says):
    (in_tmp / "d.csv").write_text(text)
    source = {
        "class_path": "mlstrategy.data.ArrayFile",
        "init_args": {"path": "d.csv", "target": "label"},
    }
    recipe = write_recipe(
        in_tmp / "r.yaml",
        model={"class_path": "mlstrategy.models.LogisticRegression"},
        data={"class_path": "mlstrategy.data.ArrayDataModule", "init_args": {"source": source}},
    )
    result = run_cli_subprocess("run", str(recipe), cwd=in_tmp)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {says}"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(in_tmp.glob("logs/*/*/metrics.json"))
