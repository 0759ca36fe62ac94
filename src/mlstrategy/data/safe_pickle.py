"""Read a pickle that may hold only NumPy arrays and plain containers, never code.

Unpickling runs whatever callables the file names: ``os.system`` with any argument is one
``GLOBAL`` and one ``REDUCE`` opcode away. CIFAR's "python version" archives are pickles of
dicts of NumPy arrays, lists, numbers and strings, so :func:`load_arrays_pickle` admits exactly
the callables those need (NumPy's array and dtype reconstructors, ``_codecs.encode`` that
Python 3 uses to pickle bytes at protocol 2, and the built-in containers) and refuses every
other name before anything is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np


def _admitted() -> dict[tuple[str, str], Any]:
    """``(module, name) -> object`` for every global a pickle of arrays may name.

    NumPy's reconstructors live in ``numpy.core`` up to 1.x and in ``numpy._core`` from 2.0;
    pickles written by either spell their own module, so both spellings map to the function
    this NumPy provides (taken from its own ``__reduce__``, whatever module it lives in).
    """
    reconstruct = np.zeros(1).__reduce__()[0]  # numpy.core.multiarray._reconstruct
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # numpy.core.numeric._frombuffer (protocol 5)
    scalar = np.int64(0).__reduce__()[0]  # numpy.core.multiarray.scalar
    import _codecs

    admitted: dict[tuple[str, str], Any] = {("_codecs", "encode"): _codecs.encode}
    for core in ("numpy.core", "numpy._core"):
        admitted[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        admitted[(f"{core}.multiarray", "scalar")] = scalar
        admitted[(f"{core}.numeric", "_frombuffer")] = frombuffer
    admitted[("numpy", "ndarray")] = np.ndarray
    admitted[("numpy", "dtype")] = np.dtype
    for module in ("builtins", "__builtin__"):  # Python 3 and Python 2 pickles
        for kind in (set, frozenset, bytearray, complex):
            admitted[(module, kind.__name__)] = kind
    return admitted


class ArraysUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only the globals of arrays and containers.

    Every other global (a function, a class, ``copyreg._reconstructor`` for arbitrary
    objects) raises :class:`pickle.UnpicklingError` when the opcode naming it is read, before
    it could be called. Persistent ids are refused too (the base class's default).
    """

    _ADMITTED = _admitted()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ADMITTED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name}") from None


def load_arrays_pickle(path: Path, encoding: str = "latin1") -> Any:
    """The object pickled in ``path``, which may hold only arrays, numbers, strings and
    containers.

    Args:
        path: The pickle file.
        encoding: How Python 2 strings are decoded (CIFAR's files were written by Python 2;
            ``latin1`` keeps NumPy's array bytes intact, as ``torchvision`` reads them).

    Raises:
        ValueError: the file names anything else (its name is in the message), holds an
            object array, or is not a pickle; nothing in it has been called.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "batch"
        >>> batch = {"data": np.arange(3, dtype=np.uint8), "labels": [1]}
        >>> _ = f.write_bytes(pickle.dumps(batch, protocol=2))
        >>> load_arrays_pickle(f)
        {'data': array([0, 1, 2], dtype=uint8), 'labels': [1]}
    """
    data = Path(path).read_bytes()
    try:
        obj = ArraysUnpickler(io.BytesIO(data), encoding=encoding).load()
    except pickle.UnpicklingError as err:
        what = str(err)
        if "." in what and " " not in what:
            raise ValueError(
                f"{path} is a pickle that names {what}, which is not a NumPy array or a plain "
                "container; it was refused unread, since unpickling it could run code. A data "
                "archive holds only arrays, numbers, strings, lists and dicts: delete this "
                "file and fetch the data set again from its official source (download: true)."
            ) from None
        raise ValueError(
            f"{path} cannot be read as a pickle ({err}). The file is damaged or not this "
            "data set's: delete it and fetch the data set again (download: true)."
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ValueError(
            f"{path} cannot be read as a pickle of arrays ({type(err).__name__}: {err}). The "
            "file is damaged or not this data set's: delete it and fetch the data set again "
            "(download: true)."
        ) from None
    _refuse_object_arrays(obj, path)
    return obj


def _refuse_object_arrays(obj: Any, path: Path) -> None:
    """Object arrays hold references, not numbers: no data set needs them."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise ValueError(
                f"{path} holds an array of Python objects (dtype {item.dtype}); only numeric "
                "arrays are read. Fetch the data set again from its official source."
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
