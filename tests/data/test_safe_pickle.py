"""The restricted unpickler: arrays and plain containers come back, anything callable is refused."""

from __future__ import annotations

import copyreg
import os
import pickle

import numpy as np
import pytest

from mlstrategy.data.safe_pickle import load_arrays_pickle


def _write(path, obj, protocol=2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_and_containers_round_trip_at_every_protocol(tmp_path, protocol):
    batch = {
        "data": np.arange(12, dtype=np.uint8).reshape(2, 6),
        "labels": [3, 1],
        "filenames": ["a.png", "b.png"],
        "extra": (np.float32(0.5), {1, 2}, b"raw", 2.5, None, True),
        "floats": np.linspace(0, 1, 4),
    }
    got = load_arrays_pickle(_write(tmp_path / "b", batch, protocol))
    assert got.keys() == batch.keys()
    np.testing.assert_array_equal(got["data"], batch["data"])
    assert got["data"].dtype == np.uint8
    np.testing.assert_array_equal(got["floats"], batch["floats"])
    assert got["labels"] == [3, 1] and got["filenames"] == ["a.png", "b.png"]
    assert got["extra"] == batch["extra"]


def test_a_python2_numpy1_pickle_naming_numpy_core_is_read(tmp_path):
    """CIFAR's files were written by Python 2 and NumPy 1, whose reconstructor lives in
    ``numpy.core.multiarray``; NumPy 2 writes ``numpy._core``. Both names are admitted."""
    data = pickle.dumps({"data": np.arange(5, dtype=np.uint8)}, protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in old  # the text GLOBAL opcode, as in CIFAR
    (tmp_path / "b").write_bytes(old)
    np.testing.assert_array_equal(load_arrays_pickle(tmp_path / "b")["data"], np.arange(5))


class _Smuggler:
    """Pickles to ``os.system(command)``: what a hostile data file would hold."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_pickle_smuggling_os_system_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    path = _write(tmp_path / "data_batch_1", {"data": _Smuggler(f"touch {marker}")})
    with pytest.raises(ValueError) as info:
        load_arrays_pickle(path)
    message = str(info.value)
    assert f"{os.system.__module__}.system" in message  # posix.system: what it asked for
    assert "refused unread" in message and "download: true" in message
    assert str(path) in message
    assert not marker.exists()  # the command never ran
    # The same file through the standard unpickler would have run it: the test is real.
    pickle.loads(path.read_bytes())
    assert marker.exists()


class _Anything:
    pass


@pytest.mark.parametrize(
    "obj",
    [
        _Anything(),  # copyreg._reconstructor / the class itself
        eval,  # builtins.eval
        copyreg._reconstructor,
        np.load,  # a NumPy function is not an array
    ],
    ids=["object", "builtin-eval", "copyreg", "numpy-function"],
)
def test_other_globals_are_refused_by_name(tmp_path, obj):
    with pytest.raises(ValueError, match=r"is a pickle that names .* not a NumPy array"):
        load_arrays_pickle(_write(tmp_path / "b", [1, obj]))


def test_an_object_array_is_refused(tmp_path):
    path = _write(tmp_path / "b", {"data": np.array([1, "x"], dtype=object)})
    with pytest.raises(ValueError, match="array of Python objects"):
        load_arrays_pickle(path)


@pytest.mark.parametrize("data", [b"", b"not a pickle at all", pickle.dumps([1, 2])[:-3]])
def test_a_file_that_is_not_a_pickle_says_so(tmp_path, data):
    (tmp_path / "b").write_bytes(data)
    with pytest.raises(ValueError, match="cannot be read as a pickle"):
        load_arrays_pickle(tmp_path / "b")
