"""The memo as a CSV table: writing its entries, and reading a table back with every row checked."""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from sb3_nas.estimation.memo._entry import FIELD_TYPES, FIELDS, MEMO_COLUMNS, MemoEntry, entry_problem
from sb3_nas.estimation.memo._keys import key_problem

# CSV columns a table may lack: the fields with a default (created_at: then now; precision and
# fidelity_digest: then the table predates them, and its rows are entries of unrecorded precision)
_OPTIONAL_COLUMNS = frozenset(
    f.name
    for f in FIELDS
    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
)


class CSVError(ValueError):
    """A CSV file that cannot be written or read as memo entries; the message names the file and the
    problem."""


def write_csv(path: str | os.PathLike[str], entries: Sequence[MemoEntry]) -> None:
    """Write ``entries`` to a CSV file, one column per :class:`MemoEntry` field (floats exact)."""
    folder = os.path.dirname(os.fspath(path))
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(MEMO_COLUMNS)
            # repr of a float reads back to the same float
            writer.writerows(
                [repr(v) if isinstance(v, float) else v for v in dataclasses.astuple(e)] for e in entries
            )
    except OSError as err:
        raise CSVError(f"cannot export to {os.fspath(path)} ({err.strerror or err})") from None


def read_csv(path: str | os.PathLike[str]) -> list[MemoEntry]:
    """The entries of a CSV file written by :func:`write_csv`, every row checked.

    A row's values are checked with :func:`entry_problem` and its key with :func:`key_problem`; the first bad
    row raises a :class:`CSVError` naming its line (the header is line 1). ``created_at`` may be absent (then:
    now), and so may ``precision`` and ``fidelity_digest`` (a table exported before the memo recorded them:
    its rows are entries of unrecorded precision).
    """
    shown = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _read_entries(csv.reader(f), shown)
    except OSError as err:
        raise CSVError(f"cannot import {shown} ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise CSVError(f"cannot import {shown}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _read_entries(reader: Any, shown: str) -> list[MemoEntry]:
    """The checked entries of a CSV reader; the first bad row raises a CSVError naming its line."""
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise CSVError(f"{shown} line 1: {err}") from None
    if not header:
        raise CSVError(f"{shown} has no header line")
    missing = [c for c in MEMO_COLUMNS if c not in header and c not in _OPTIONAL_COLUMNS]
    if missing:
        raise CSVError(f"{shown} lacks columns {', '.join(missing)}")
    entries = []
    while True:
        line = reader.line_num + 1  # where the next record starts, as a text editor counts lines
        try:
            row = next(reader)
        except StopIteration:
            return entries
        except csv.Error as err:
            raise CSVError(f"{shown} line {line}: {err}") from None
        if not row:
            continue  # a blank line
        try:
            if len(row) != len(header):
                raise ValueError(f"{len(row)} fields, the header has {len(header)}")
            entry = _entry_from_csv_row(dict(zip(header, row, strict=True)))
            problem = entry_problem(entry) or key_problem(entry)
        except (TypeError, ValueError) as err:
            problem = str(err)
        if problem is not None:
            raise CSVError(f"{shown} line {line}: {problem}")
        entries.append(entry)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return int(float(text))  # e.g. "1200.0" written by a float column


_PARSERS: dict[type, Callable[[str], Any]] = {str: str, float: float, int: _parse_int, bool: _parse_bool}


def _entry_from_csv_row(row: dict[str, str]) -> MemoEntry:
    values: dict[str, Any] = {}
    for name in MEMO_COLUMNS:
        if name in _OPTIONAL_COLUMNS and not row.get(name):
            continue  # e.g. created_at: a table from elsewhere may not record when it was made
        if row.get(name) is None:
            raise ValueError(f"no value for {name}")
        try:
            values[name] = _PARSERS[FIELD_TYPES[name]](row[name])
        except ValueError:
            raise ValueError(f"{name} {row[name]!r} is not a {FIELD_TYPES[name].__name__}") from None
    return MemoEntry(**values)
