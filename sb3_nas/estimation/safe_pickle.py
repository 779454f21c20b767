"""Reading a benchmark table shipped as a pickle without running code from it.

``pickle.load`` calls whatever global a file names; a restricted unpickler resolves only the globals a table
is known to hold, each to a constructor of ours (a checked numpy scalar, a plain record), and refuses every
other one, and every persistent id, before anything is called.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sb3_nas.errors import InputError

_NUMERIC_KINDS = frozenset("biuf")  # bool, signed and unsigned integers, floats


class TablePickleError(InputError):
    """A benchmark table that cannot be read safely: it names a foreign global, or it is damaged."""


class Record:
    """A plain attribute bag standing for a benchmark's own record class (``Architecture`` …): its state is
    set as a dict of values, and no method of the original class is ever looked up or run."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
            raise pickle.UnpicklingError("a record's state is not a dict of named fields")
        self.__dict__.update(state)


def numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` as pickles call it, restricted to numeric types."""
    if not isinstance(name, str):
        raise pickle.UnpicklingError(f"a numpy dtype named by {type(name).__name__}")
    dtype = np.dtype(name)
    if dtype.kind not in _NUMERIC_KINDS:
        raise pickle.UnpicklingError(f"numpy dtype {name!r} is not numeric")
    return dtype


def numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
    """``numpy.core.multiarray.scalar`` as pickles call it: a numeric scalar from its raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS or not isinstance(data, bytes):
        raise pickle.UnpicklingError("a numpy scalar that is not a numeric value from bytes")
    if len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"a numpy {dtype} scalar of {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype)[0]


NUMPY_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "dtype"): numpy_dtype,
    ("numpy.core.multiarray", "scalar"): numpy_scalar,
    ("numpy._core.multiarray", "scalar"): numpy_scalar,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of ``allowed`` ((module, name) → our callable)."""

    def __init__(self, file: Any, allowed: Mapping[tuple[str, str], Callable[..., Any]], where: str) -> None:
        super().__init__(file)
        self.allowed = allowed
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise TablePickleError(
                f"{self.where} names the global {module}.{name}, which the table is not known to hold; "
                "refused without running it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise TablePickleError(f"{self.where} holds a persistent id; refused")


def load_restricted(path: str | Path, allowed: Mapping[tuple[str, str], Callable[..., Any]]) -> Any:
    """The object pickled in ``path``, resolving only the globals of ``allowed``; raises
    :class:`TablePickleError` (one line) for any other global or a damaged file."""
    where = f"benchmark table {path}"
    try:
        with open(path, "rb") as file:
            return RestrictedUnpickler(file, allowed, where).load()
    except TablePickleError:
        raise
    except OSError as error:
        raise TablePickleError(f"{where}: cannot be read ({error.strerror or error})") from None
    except Exception as error:  # any malformed stream: truncated, wrong opcodes, refused values
        raise TablePickleError(f"{where} is damaged ({type(error).__name__}: {error})") from None
