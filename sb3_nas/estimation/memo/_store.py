"""The store: :class:`RewardMemo`, a key → :class:`MemoEntry` database with a per-process cache in front."""

from __future__ import annotations

import dataclasses
import functools
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from sb3_nas.estimation.database import create_engine, error_line, sqlite_file
from sb3_nas.estimation.memo._csv import CSVError, read_csv, write_csv
from sb3_nas.estimation.memo._entry import MEMO_COLUMNS, MemoEntry, MemoError, entry_problem
from sb3_nas.estimation.memo._schema import (
    SELECT_BY_KEY,
    TABLE_NAME,
    entry_from_row,
    insert_if_absent,
    migrate,
    table,
)
from sb3_nas.estimation.memo._urls import database_url, default_memo_url, masked_url
from sb3_nas.estimation.retry import Retry

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

_IMPORT_CHUNK = 500  # rows per transaction in import_csv, so other writers are not locked out for long


def _ancestors(path: str) -> list[str]:
    """``path`` and the folders above it."""
    result = [path]
    while (parent := os.path.dirname(result[-1])) != result[-1]:
        result.append(parent)
    return result


def _insert_all(entries: Sequence[MemoEntry], conn: Connection) -> int:
    """Insert the entries whose keys are not stored yet; returns how many were new."""
    return sum(insert_if_absent(conn, table, dataclasses.asdict(entry)) for entry in entries)


class RewardMemo:
    """Persistent key → :class:`MemoEntry` store shared by steps, trials and processes.

    Usable in three lines::

        memo = RewardMemo("sqlite:///results/memo.sqlite")
        if (entry := memo.get(key)) is None:
            entry = memo.put(MemoEntry(key=key, ...))

    :param url: an SQLAlchemy URL (``sqlite:///path``, ``postgresql://...``), a plain filesystem path
        (SQLite at that path), or None for :func:`default_memo_url`. ``sqlite://`` is an in-memory
        database private to this object (a pickled copy reconnects to a new, empty one).
    :raises MemoError: when the location cannot be opened for writing or the URL names no usable driver.
    """

    def __init__(self, url: str | os.PathLike[str] | None = None) -> None:
        self.url = database_url(default_memo_url() if url is None else url)
        self._cache: dict[str, MemoEntry] = {}
        self._hits = 0
        self._misses = 0
        self._writes = 0
        self._engine: Engine | None = None
        self._engine_pid = -1
        try:
            parsed = make_url(self.url)
        except (SQLAlchemyError, ValueError) as err:
            raise MemoError(f"reward memo {self.url}: not a database URL ({error_line(err)})") from None
        self._shown_url = masked_url(self.url)
        path = sqlite_file(parsed)
        if path is not None:  # absolute, so a child process with another working directory agrees
            parsed = parsed.set(database=os.path.abspath(os.path.expanduser(path)))
        self._engine_url = parsed.render_as_string(hide_password=False)
        self._retry = self._make_retry()
        self._connect()

    # -- connection ---------------------------------------------------------------------------------

    def _make_retry(self) -> Retry:
        """The retrying of transient errors, its budget read once from the environment (a bad value is a
        one-line MemoError)."""
        try:
            return Retry()
        except ValueError as err:
            raise self._fail(str(err)) from None

    def _fail(self, problem: str) -> MemoError:
        return MemoError(f"reward memo {self._shown_url}: {problem}")

    def _prepare_sqlite_file(self, path: str) -> None:
        folder = os.path.dirname(path) or "."
        blocker = next((p for p in _ancestors(folder) if os.path.exists(p) and not os.path.isdir(p)), None)
        if blocker is not None:
            raise self._fail(f"cannot create folder {folder}: {blocker} is a file")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise self._fail(f"cannot create folder {folder} ({err.strerror or err})") from None
        if os.path.isdir(path):
            raise self._fail(f"{path} is a folder, not a database file")
        # WAL writes -wal and -shm files beside the database, so the folder itself must be writable
        if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise self._fail(f"{path} is read-only")

    def _connect(self) -> None:
        """Open the engine, create or migrate the tables and check them; every failure becomes a MemoError."""
        url = make_url(self._engine_url)
        path = sqlite_file(url)
        if path is not None:
            self._prepare_sqlite_file(path)
        try:
            engine = create_engine(url)
        except (SQLAlchemyError, ImportError, ValueError) as err:
            raise self._fail(f"no usable database driver ({error_line(err)})") from None
        try:
            missing = self._retry.call(lambda: migrate(engine), "open the database")
        except (SQLAlchemyError, OSError, sqlite3.Error) as err:
            engine.dispose()
            raise self._fail(f"cannot open the database ({error_line(err)})") from None
        if missing:
            engine.dispose()
            raise self._fail(f"table {TABLE_NAME} exists without columns {', '.join(missing)}")
        self._engine = engine
        self._engine_pid = os.getpid()

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._connect()
        elif self._engine_pid != os.getpid():
            # forked child: leave the parent's pooled connections alone and open fresh ones
            self._engine.dispose(close=False)
            self._engine_pid = os.getpid()
        assert self._engine is not None
        return self._engine

    def _run(self, action: str, work: Callable[[Connection], T]) -> T:
        """``work`` in one committed transaction, the whole transaction retried on a transient database error
        (a lost connection, a server restarting, a lock past its timeout: :class:`Retry`, within the
        ``--memo-retry`` budget); any other database error, or the last one, becomes a MemoError naming the
        action. Every write is an insert that keeps a key's first entry, so a retried one never doubles."""

        def once() -> T:
            with self._get_engine().begin() as conn:
                return work(conn)

        try:
            return self._retry.call(once, action)
        except (SQLAlchemyError, sqlite3.Error) as err:
            raise self._fail(f"cannot {action} ({error_line(err)})") from None

    # -- reading ------------------------------------------------------------------------------------

    def _lookup(self, key: str) -> MemoEntry | None:
        """Cache first, then the database (another process may have written the key since)."""
        entry = self._cache.get(key)
        if entry is None:
            row = self._run("read", lambda conn: conn.execute(SELECT_BY_KEY, {"k": key}).first())
            if row is not None:
                entry = self._cache[key] = entry_from_row(row)
        return entry

    def get_first(self, keys: Sequence[str]) -> MemoEntry | None:
        """The entry of the first of ``keys`` (in their order) that is stored, or None.

        One lookup for the counters of :attr:`stats`, at most one database query: the keys before the first
        one in this process's cache are looked up in the database (another process may have written them).
        """
        keys = list(dict.fromkeys(keys))
        cached_at = next((i for i, key in enumerate(keys) if key in self._cache), len(keys))
        entry = self._cache[keys[cached_at]] if cached_at < len(keys) else None
        if cached_at > 0:
            query = sa.select(table).where(table.c.key.in_(keys[:cached_at]))
            rows = self._run("read", lambda conn: conn.execute(query).all())
            found = {row._mapping["key"]: entry_from_row(row) for row in rows}
            self._cache.update(found)
            entry = next((found[key] for key in keys[:cached_at] if key in found), entry)
        if entry is None:
            self._misses += 1
        else:
            self._hits += 1
        return entry

    def get(self, key: str) -> MemoEntry | None:
        """The entry stored under ``key``, or None; a cache hit touches no database."""
        entry = self._cache.get(key)
        if entry is not None:
            self._hits += 1
            return entry
        entry = self._lookup(key)
        if entry is None:
            self._misses += 1
        else:
            self._hits += 1
        return entry

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not None

    def __len__(self) -> int:
        query = sa.select(sa.func.count()).select_from(table)
        return int(self._run("count entries", lambda conn: conn.execute(query).scalar_one()))

    def entries(self) -> list[MemoEntry]:
        """All stored entries, oldest first."""
        query = sa.select(table).order_by(table.c.created_at, table.c.key)
        rows = self._run("read entries", lambda conn: conn.execute(query).all())
        result = [entry_from_row(row) for row in rows]
        self._cache.update((entry.key, entry) for entry in result)
        return result

    @property
    def stats(self) -> dict[str, int]:
        """Counters of this process: ``get`` hits and misses, and entries this process wrote."""
        return {"hits": self._hits, "misses": self._misses, "writes": self._writes}

    # -- writing ------------------------------------------------------------------------------------

    def put(self, entry: MemoEntry) -> MemoEntry:
        """Store ``entry`` and commit; if its key exists already, keep the first and return that one.

        :raises MemoError: when the entry's values are inconsistent (:func:`entry_problem`: e.g. an accuracy
            that is not a finite number in [0, 1]); its key is the caller's and is not recomputed.
        """
        problem = entry_problem(entry)
        if problem is not None:
            raise self._fail(f"cannot store the entry {entry.key!r}: {problem}")
        stored = self._cache.get(entry.key)
        if stored is not None:
            return stored

        def write(conn: Connection) -> tuple[bool, MemoEntry]:
            if insert_if_absent(conn, table, dataclasses.asdict(entry)):
                return True, entry
            return False, entry_from_row(conn.execute(SELECT_BY_KEY, {"k": entry.key}).one())

        inserted, stored = self._run("write", write)
        self._writes += int(inserted)
        self._cache[entry.key] = stored
        return stored

    # -- tables -------------------------------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """All entries as a table, one column per :class:`MemoEntry` field."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(e) for e in self.entries()], columns=list(MEMO_COLUMNS))

    def export_csv(self, path: str | os.PathLike[str]) -> int:
        """Write all entries to a CSV file (floats exact); returns the number of rows."""
        entries = self.entries()
        try:
            write_csv(path, entries)
        except CSVError as err:
            raise self._fail(str(err)) from None
        return len(entries)

    def import_csv(self, path: str | os.PathLike[str]) -> int:
        """Add the entries of a CSV file written by :meth:`export_csv`; returns how many were new.

        Every row is checked before anything is stored: its values (:func:`entry_problem`: accuracy a finite
        number in [0, 1], 0 for an invalid network, no reason for a valid one, counts and times not negative,
        a known precision) and its key, recomputed from its content (:func:`key_problem`). The first bad row
        raises a :class:`MemoError` naming the file, its line (the header is line 1) and the problem, and
        nothing of the file is stored. Keys already stored are skipped; ``created_at`` may be absent (then:
        now), and so may ``precision`` and ``fidelity_digest`` (a table exported before the memo recorded
        them: its rows are entries of unrecorded precision).
        """
        try:
            entries = read_csv(path)
        except CSVError as err:
            raise self._fail(str(err)) from None
        # all rows are valid: a database failure part way leaves whole, valid chunks (first write wins, so
        # importing the file again completes it)
        added = 0
        for start in range(0, len(entries), _IMPORT_CHUNK):
            chunk = entries[start : start + _IMPORT_CHUNK]
            added += self._run("import", functools.partial(_insert_all, chunk))
        return added

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the database connections (a later call reconnects); the cache is kept."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> RewardMemo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # the child reconnects lazily by URL; connections, cache and counters stay with this process
        return {"url": self.url, "engine_url": self._engine_url, "shown_url": self._shown_url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]
        self._engine_url = state["engine_url"]
        self._shown_url = state["shown_url"]
        self._cache = {}
        self._hits = self._misses = self._writes = 0
        self._engine = None
        self._engine_pid = -1
        self._retry = self._make_retry()

    def __repr__(self) -> str:
        return f"RewardMemo({self._shown_url!r})"
