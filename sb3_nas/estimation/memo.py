"""On-disk reward memo: the "database of experiments" of §5 (SPEC §5).

Every evaluated network is stored under a key computed by the caller (dataset fingerprint, canonical
network, fidelity) and reused by every later step, trial and process. The store is any SQLAlchemy URL:
SQLite on one machine (WAL, busy timeout, one commit per entry, safe with several writer processes),
PostgreSQL for many. A per-process dict cache sits in front of the database so that a repeated reward
costs a dictionary lookup.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sqlite3
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from sb3_nas.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MEMO_URL = "sqlite:///results/memo.sqlite"
MEMO_URL_ENV = "SB3_NAS_MEMO"
SQLITE_BUSY_TIMEOUT_S = 30.0
TABLE_NAME = "reward_memo"
_IMPORT_CHUNK = 500  # rows per transaction in import_csv, so other writers are not locked out for long


def default_memo_url() -> str:
    """The memo URL to use when none is given: ``$SB3_NAS_MEMO`` if set, else :data:`DEFAULT_MEMO_URL`."""
    return os.environ.get(MEMO_URL_ENV) or DEFAULT_MEMO_URL


class MemoError(InputError, RuntimeError):
    """The reward memo cannot be opened, read or written (the message names the URL and the problem)."""


@dataclass(frozen=True)
class MemoEntry:
    """One evaluated network: the row stored under ``key``.

    :param key: primary key computed by the caller (dataset fingerprint, canonical network, fidelity)
    :param dataset: dataset name
    :param dataset_fingerprint: fingerprint of the dataset's contents
    :param fidelity: training budget, as ``name@version``
    :param network: canonical network string
    :param nsc: JSON of the NSC rows that built the network
    :param accuracy: validation accuracy (the reward)
    :param valid: whether the network could be built and trained
    :param reason: why it is invalid ('' when valid)
    :param n_params: number of trainable parameters
    :param flops: floating point operations of one forward pass
    :param train_seconds: wall-clock training time
    :param created_at: unix time of the evaluation
    """

    key: str
    dataset: str
    dataset_fingerprint: str
    fidelity: str
    network: str
    nsc: str
    accuracy: float
    valid: bool
    reason: str
    n_params: int
    flops: int
    train_seconds: float
    created_at: float = field(default_factory=time.time)


_FIELDS = dataclasses.fields(MemoEntry)
MEMO_COLUMNS: tuple[str, ...] = tuple(f.name for f in _FIELDS)
_FIELD_TYPES: dict[str, type] = {
    name: hint for name, hint in typing.get_type_hints(MemoEntry).items() if name in MEMO_COLUMNS
}
# CSV columns a table may lack: the fields with a default (created_at: then now)
_OPTIONAL_COLUMNS = frozenset(
    f.name
    for f in _FIELDS
    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
)

# The column type of each field's Python type; the short identifiers of _SHORT_STRINGS are VARCHAR(255)
# (indexable on every backend; ``key`` is the primary key), other text is TEXT. Existing databases keep the
# table they were created with (there is no migration), so these stay as they are (tests/test_memo.py pins
# them).
_SQL_TYPES: dict[type, Callable[[], sa.types.TypeEngine[Any]]] = {
    str: sa.Text,
    float: sa.Float,
    int: sa.BigInteger,
    bool: sa.Boolean,
}
_SHORT_STRINGS = ("key", "dataset", "dataset_fingerprint", "fidelity")


def _column(name: str) -> sa.Column[Any]:
    short = name in _SHORT_STRINGS and _FIELD_TYPES[name] is str
    column_type = sa.String(255) if short else _SQL_TYPES[_FIELD_TYPES[name]]()
    return sa.Column(name, column_type, primary_key=name == "key", nullable=False)


_metadata = sa.MetaData()
_table = sa.Table(TABLE_NAME, _metadata, *(_column(name) for name in MEMO_COLUMNS))
_SELECT_BY_KEY = sa.select(_table).where(_table.c.key == sa.bindparam("k"))


def _first_line(err: BaseException) -> str:
    """The driver's own message when there is one, on one line, without SQLAlchemy's boilerplate."""
    err = getattr(err, "orig", None) or err
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def database_url(url: str | os.PathLike[str]) -> str:
    """``url`` as an SQLAlchemy URL: a plain filesystem path means SQLite at that path."""
    text = os.fspath(url)
    return text if "://" in text else f"sqlite:///{text}"


def masked_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``, for messages; a text that is not a URL is
    returned unchanged."""
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError, TypeError):
        return url
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> str | None:
    """The database file of a SQLite URL, or None for in-memory and URI-mode databases."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.database.startswith("file:") or "uri" in url.query:
        return None
    return url.database


def _ancestors(path: str) -> list[str]:
    """``path`` and the folders above it."""
    result = [path]
    while (parent := os.path.dirname(result[-1])) != result[-1]:
        result.append(parent)
    return result


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside one writer; the busy timeout makes writers wait instead of failing."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # safe in WAL mode; an app crash loses nothing
    finally:
        cursor.close()


def _entry_from_row(row: Any) -> MemoEntry:
    """The entry of a database row, each value as its field's Python type (drivers differ, e.g. 0/1)."""
    m = row._mapping
    return MemoEntry(**{name: _FIELD_TYPES[name](m[name]) for name in MEMO_COLUMNS})


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
        values[name] = _PARSERS[_FIELD_TYPES[name]](row[name])
    return MemoEntry(**values)


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
            raise MemoError(f"reward memo {self.url}: not a database URL ({_first_line(err)})") from None
        self._shown_url = masked_url(self.url)
        sqlite_file = _sqlite_file(parsed)
        if sqlite_file is not None:  # absolute, so a child process with another working directory agrees
            parsed = parsed.set(database=os.path.abspath(os.path.expanduser(sqlite_file)))
        self._engine_url = parsed.render_as_string(hide_password=False)
        self._connect()

    # -- connection ---------------------------------------------------------------------------------

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
        """Open the engine, create the table if absent and check it; every failure becomes a MemoError."""
        url = make_url(self._engine_url)
        sqlite_file = _sqlite_file(url)
        if sqlite_file is not None:
            self._prepare_sqlite_file(sqlite_file)
        try:
            if url.get_backend_name() == "sqlite":
                kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
                if sqlite_file is None:  # one shared connection, or each thread would see its own database
                    kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
                engine = sa.create_engine(url, **kwargs)
                sa.event.listen(engine, "connect", _set_sqlite_pragmas)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as err:
            raise self._fail(f"no usable database driver ({_first_line(err)})") from None
        try:
            missing = self._create_table(engine)
        except (SQLAlchemyError, OSError, sqlite3.Error) as err:
            engine.dispose()
            raise self._fail(f"cannot open the database ({_first_line(err)})") from None
        if missing:
            engine.dispose()
            raise self._fail(f"table {TABLE_NAME} exists without columns {', '.join(missing)}")
        self._engine = engine
        self._engine_pid = os.getpid()

    @staticmethod
    def _create_table(engine: Engine) -> list[str]:
        """Create the table if absent; returns the memo columns an existing table lacks."""
        try:
            _metadata.create_all(engine)
        except SQLAlchemyError:
            # another process may have created the table between the existence check and CREATE TABLE
            if not sa.inspect(engine).has_table(TABLE_NAME):
                raise
        columns = {c["name"] for c in sa.inspect(engine).get_columns(TABLE_NAME)}
        return [name for name in MEMO_COLUMNS if name not in columns]

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._connect()
        elif self._engine_pid != os.getpid():
            # forked child: leave the parent's pooled connections alone and open fresh ones
            self._engine.dispose(close=False)
            self._engine_pid = os.getpid()
        assert self._engine is not None
        return self._engine

    @contextmanager
    def _transaction(self, action: str) -> Iterator[Connection]:
        """One committed transaction; database errors become a MemoError naming the action."""
        try:
            with self._get_engine().begin() as conn:
                yield conn
        except (SQLAlchemyError, sqlite3.Error) as err:
            raise self._fail(f"cannot {action} ({_first_line(err)})") from None

    # -- reading ------------------------------------------------------------------------------------

    def _lookup(self, key: str) -> MemoEntry | None:
        """Cache first, then the database (another process may have written the key since)."""
        entry = self._cache.get(key)
        if entry is None:
            with self._transaction("read") as conn:
                row = conn.execute(_SELECT_BY_KEY, {"k": key}).first()
            if row is not None:
                entry = self._cache[key] = _entry_from_row(row)
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
        with self._transaction("count entries") as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_table)).scalar_one())

    def entries(self) -> list[MemoEntry]:
        """All stored entries, oldest first."""
        with self._transaction("read entries") as conn:
            rows = conn.execute(sa.select(_table).order_by(_table.c.created_at, _table.c.key)).all()
        result = [_entry_from_row(row) for row in rows]
        self._cache.update((entry.key, entry) for entry in result)
        return result

    @property
    def stats(self) -> dict[str, int]:
        """Counters of this process: ``get`` hits and misses, and entries this process wrote."""
        return {"hits": self._hits, "misses": self._misses, "writes": self._writes}

    # -- writing ------------------------------------------------------------------------------------

    def _insert_if_absent(self, conn: Connection, entry: MemoEntry) -> bool:
        """Insert ``entry`` unless its key exists; True when this call inserted it."""
        values = dataclasses.asdict(entry)
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            stmt = insert(_table).values(values).on_conflict_do_nothing(index_elements=["key"])
            return conn.execute(stmt).rowcount == 1
        try:  # portable fallback: a savepoint keeps the surrounding transaction usable after a conflict
            with conn.begin_nested():
                conn.execute(_table.insert().values(values))
        except IntegrityError:
            return False
        return True

    def put(self, entry: MemoEntry) -> MemoEntry:
        """Store ``entry`` and commit; if its key exists already, keep the first and return that one."""
        stored = self._cache.get(entry.key)
        if stored is not None:
            return stored
        with self._transaction("write") as conn:
            inserted = self._insert_if_absent(conn, entry)
            if inserted:
                stored = entry
            else:
                stored = _entry_from_row(conn.execute(_SELECT_BY_KEY, {"k": entry.key}).one())
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
            raise self._fail(f"cannot export to {os.fspath(path)} ({err.strerror or err})") from None
        return len(entries)

    def import_csv(self, path: str | os.PathLike[str]) -> int:
        """Add the entries of a CSV file written by :meth:`export_csv`; returns how many were new.

        Keys already stored are skipped; ``created_at`` may be absent (then: now).
        """
        shown = os.fspath(path)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                present = set(reader.fieldnames or [])
                missing = [c for c in MEMO_COLUMNS if c not in present and c not in _OPTIONAL_COLUMNS]
                if missing:
                    raise self._fail(f"{shown} lacks columns {', '.join(missing)}")
                entries = []
                for row in reader:
                    try:
                        entries.append(_entry_from_csv_row(row))
                    except (TypeError, ValueError) as err:
                        raise self._fail(f"{shown} line {reader.line_num}: {err}") from None
        except OSError as err:
            raise self._fail(f"cannot import {shown} ({err.strerror or err})") from None
        added = 0
        for start in range(0, len(entries), _IMPORT_CHUNK):
            with self._transaction("import") as conn:
                added += sum(self._insert_if_absent(conn, e) for e in entries[start : start + _IMPORT_CHUNK])
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

    def __repr__(self) -> str:
        return f"RewardMemo({self._shown_url!r})"
