"""On-disk reward memo: the "database of experiments" of §5.

Every evaluated network is stored under a key computed by the caller (dataset fingerprint, canonical
network, fidelity) and reused by every later step, trial and process. The store is any SQLAlchemy URL:
SQLite on one machine (WAL, busy timeout, one commit per entry, safe with several writer processes),
PostgreSQL for many. A per-process dict cache sits in front of the database so that a repeated reward
costs a dictionary lookup.

An entry answers only for what it measured, and that includes the numeric precision the network was trained
in (``fp32``; ``bf16`` under autocast; ``bf16-dense``, bf16 autocast with the dense layers' weights in bf16;
the hardware chooses: see ``SpeedSettings``): the precision is a column of the table and part of the key
(:func:`entry_key`), so an fp32 request never finds a bf16 reward unless the caller accepts other precisions
(``PerformanceEstimator(accept_precision=...)``, ``--accept-precision`` on the commands). Entries stored
before the precision was tracked read as :data:`UNRECORDED_PRECISION` and keep the key they were stored under,
which has no precision in it: nothing looks them up unless it accepts ``unrecorded`` too.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import sqlite3
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from sb3_nas.errors import InputError
from sb3_nas.estimation.fidelity import get_fidelity
from sb3_nas.space.nsc import canonical_network, validate_nsc

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MEMO_URL = "sqlite:///results/memo.sqlite"
MEMO_URL_ENV = "SB3_NAS_MEMO"
SQLITE_BUSY_TIMEOUT_S = 30.0
TABLE_NAME = "reward_memo"
_IMPORT_CHUNK = 500  # rows per transaction in import_csv, so other writers are not locked out for long

# what a training can run in (SpeedSettings: autocast_dtype, bf16_dense); estimator.precision_of names them
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "bf16-dense")
UNRECORDED_PRECISION = "unrecorded"  # an entry stored before the memo recorded the precision
KNOWN_PRECISIONS: tuple[str, ...] = (*PRECISIONS, UNRECORDED_PRECISION)


def entry_key(
    dataset_fingerprint: str, fidelity_id: str, fidelity_digest: str, network: str, precision: str
) -> str:
    """The memo key of a reward: dataset content, fidelity (``name@version`` and the digest of its settings),
    numeric precision and canonical network.

    For :data:`UNRECORDED_PRECISION` it is the key of the memo before the precision was recorded (the
    precision is left out of the hashed text), so the entries stored then keep answering to their keys; a
    canonical network never starts with a precision's name, so the two kinds of key never collide.
    """
    if precision not in KNOWN_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(KNOWN_PRECISIONS)})")
    parts = [dataset_fingerprint, fidelity_id, fidelity_digest]
    if precision != UNRECORDED_PRECISION:
        parts.append(precision)
    return hashlib.sha256("|".join([*parts, network]).encode()).hexdigest()


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
    :param precision: the numeric precision of the training: ``fp32``, ``bf16`` or ``bf16-dense``
        (:data:`PRECISIONS`), or :data:`UNRECORDED_PRECISION` for an entry stored before the memo recorded it
    :param fidelity_digest: the digest of the fidelity's settings (:attr:`Fidelity.digest`), part of the key;
        '' for an entry stored before the memo recorded it (then the registered fidelity of that id tells it)
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
    # fields a memo may lack (it is migrated): at the end, with the value such rows read as
    precision: str = UNRECORDED_PRECISION
    fidelity_digest: str = ""


_FIELDS = dataclasses.fields(MemoEntry)
MEMO_COLUMNS: tuple[str, ...] = tuple(f.name for f in _FIELDS)
_FIELD_TYPES: dict[str, type] = {
    name: hint for name, hint in typing.get_type_hints(MemoEntry).items() if name in MEMO_COLUMNS
}
# CSV columns a table may lack: the fields with a default (created_at: then now; precision and
# fidelity_digest: then the table predates them, and its rows are entries of unrecorded precision)
_OPTIONAL_COLUMNS = frozenset(
    f.name
    for f in _FIELDS
    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
)

# The column type of each field's Python type; the short identifiers of _SHORT_STRINGS are VARCHAR(255)
# (indexable on every backend; ``key`` is the primary key), other text is TEXT. Existing databases keep the
# table they were created with, so these stay as they are (tests/test_memo.py pins them); the one migration is
# adding the columns of _ADDED_COLUMNS, which have a server default so that rows stored before them (and rows
# written by an older version of this code) read as entries of unrecorded precision.
_SQL_TYPES: dict[type, Callable[[], sa.types.TypeEngine[Any]]] = {
    str: sa.Text,
    float: sa.Float,
    int: sa.BigInteger,
    bool: sa.Boolean,
}
_SHORT_STRINGS = ("key", "dataset", "dataset_fingerprint", "fidelity", "precision", "fidelity_digest")
_ADDED_COLUMNS: dict[str, str] = {"precision": UNRECORDED_PRECISION, "fidelity_digest": ""}


def _column(name: str) -> sa.Column[Any]:
    short = name in _SHORT_STRINGS and _FIELD_TYPES[name] is str
    column_type = sa.String(255) if short else _SQL_TYPES[_FIELD_TYPES[name]]()
    default = _ADDED_COLUMNS.get(name)
    return sa.Column(
        name,
        column_type,
        primary_key=name == "key",
        nullable=False,
        server_default=None if default is None else sa.text(f"'{default}'"),
    )


_metadata = sa.MetaData()
_table = sa.Table(TABLE_NAME, _metadata, *(_column(name) for name in MEMO_COLUMNS))
_SELECT_BY_KEY = sa.select(_table).where(_table.c.key == sa.bindparam("k"))


def _first_line(err: BaseException) -> str:
    """The driver's own message when there is one, on one line, without SQLAlchemy's boilerplate."""
    err = getattr(err, "orig", None) or err
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


_DIALECTS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql", "cockroachdb")
# a dialect (and driver) followed by ':' without '//', or by '//' without ':' — a URL with a typo, not a path
_MISTYPED_SCHEME = re.compile(rf"^(?:{'|'.join(_DIALECTS)})(?:\+[\w.]+)?(?::(?!//)|//)", re.IGNORECASE)


def database_url(url: str | os.PathLike[str]) -> str:
    """``url`` as an SQLAlchemy URL: a plain filesystem path means SQLite at that path.

    :raises MemoError: for a text that is no URL but looks like a mistyped one (``sqlite//:x``,
        ``sqlite:/x``, ``postgresql//host/db``: it contains ``//:``, or a database name is followed by ``:``
        without ``//`` or by ``//`` without ``:``), instead of taking it for a path and creating folders.
    """
    text = os.fspath(url)
    if "://" in text:
        return text
    if "//:" in text or _MISTYPED_SCHEME.match(text):
        raise MemoError(
            f"reward memo {text}: looks like a mistyped database URL, not a file path "
            "(a URL reads scheme://…, e.g. sqlite:///results/memo.sqlite)"
        )
    return f"sqlite:///{text}"


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
        try:
            values[name] = _PARSERS[_FIELD_TYPES[name]](row[name])
        except ValueError:
            raise ValueError(f"{name} {row[name]!r} is not a {_FIELD_TYPES[name].__name__}") from None
    return MemoEntry(**values)


def _is_finite_number(value: object) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


def entry_problem(entry: MemoEntry) -> str | None:
    """Why ``entry`` cannot be stored, in a few words, or None when its values are consistent.

    The accuracy is a finite number in [0, 1]; an invalid network scores 0 and a valid one has no reason; the
    counts and times are finite and not negative; the precision is one of :data:`KNOWN_PRECISIONS`. The key is
    not checked here (see :func:`key_problem`).
    """
    if not isinstance(entry.key, str) or not entry.key:
        return "the key is empty"
    numbers = ("accuracy", "n_params", "flops", "train_seconds", "created_at")
    for name in numbers:
        value = getattr(entry, name)
        if not _is_finite_number(value):
            return f"{name} {value!r} is not a finite number"
    if not 0.0 <= float(entry.accuracy) <= 1.0:
        return f"accuracy {entry.accuracy!r} is outside [0, 1]"
    if not entry.valid and float(entry.accuracy) != 0.0:
        return f"valid is False but accuracy is {entry.accuracy!r} (an invalid network scores 0)"
    if entry.valid and entry.reason:
        return f"valid is True but reason is {entry.reason!r} (only an invalid network has a reason)"
    for name in ("n_params", "flops", "train_seconds"):
        if getattr(entry, name) < 0:
            return f"{name} {getattr(entry, name)!r} is negative"
    if entry.precision not in KNOWN_PRECISIONS:
        return f"precision {entry.precision!r} is unknown (known: {', '.join(KNOWN_PRECISIONS)})"
    return None


def _registered_digest(fidelity_id: str) -> str:
    """The digest of the registered fidelity ``name@version``; ValueError when there is none of that id."""
    name, sep, _version = fidelity_id.rpartition("@")
    if not sep:
        raise ValueError(f"fidelity {fidelity_id!r} is not name@version")
    try:
        fidelity = get_fidelity(name)
    except InputError:
        fidelity = None
    if fidelity is None or fidelity.id != fidelity_id:
        registered = "" if fidelity is None else f" (registered here: {fidelity.id})"
        raise ValueError(
            f"fidelity {fidelity_id} has no fidelity_digest and is not registered here{registered}, "
            "so the key cannot be checked"
        )
    return fidelity.digest


def key_problem(entry: MemoEntry) -> str | None:
    """Why ``entry``'s key is not the key of its content, or None when it is.

    The key is recomputed with :func:`entry_key` from the row's dataset fingerprint, fidelity id and digest,
    precision and the canonical network of its NSC (which must also be the row's ``network``). A row without a
    fidelity digest (stored before the memo recorded it) is checked with the digest of the fidelity registered
    under its id (``get_fidelity(name)``, overrides included); a fidelity id not registered here is refused.
    """
    try:
        rows = validate_nsc(json.loads(entry.nsc))
    except (TypeError, ValueError) as err:  # json.JSONDecodeError and InvalidNSC are ValueErrors
        return f"nsc {entry.nsc!r} is not an NSC state ({err})"
    network = canonical_network(rows)
    if network != entry.network:
        return f"network {entry.network!r} is not the network of its nsc ({network})"
    try:
        digest = entry.fidelity_digest or _registered_digest(entry.fidelity)
    except ValueError as err:
        return str(err)
    expected = entry_key(entry.dataset_fingerprint, entry.fidelity, digest, network, entry.precision)
    if entry.key != expected:
        return (
            f"key {entry.key} is not the key of the row's dataset_fingerprint, fidelity, fidelity_digest, "
            f"precision and nsc ({expected})"
        )
    return None


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
        """Create the table if absent and add the columns of _ADDED_COLUMNS an older table lacks; returns the
        memo columns the table still lacks."""
        try:
            _metadata.create_all(engine)
        except SQLAlchemyError:
            # another process may have created the table between the existence check and CREATE TABLE
            if not sa.inspect(engine).has_table(TABLE_NAME):
                raise
        columns = {c["name"] for c in sa.inspect(engine).get_columns(TABLE_NAME)}
        for name in _ADDED_COLUMNS:
            if name not in columns:
                RewardMemo._add_column(engine, name)
                columns.add(name)
        return [name for name in MEMO_COLUMNS if name not in columns]

    @staticmethod
    def _add_column(engine: Engine, name: str) -> None:
        """ALTER TABLE … ADD COLUMN with the column's server default, which existing rows take."""
        column = sa.schema.CreateColumn(_table.c[name]).compile(dialect=engine.dialect)
        table = engine.dialect.identifier_preparer.format_table(_table)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}"))
        except SQLAlchemyError:
            # another process opening the same old database may have added it first
            if name not in {c["name"] for c in sa.inspect(engine).get_columns(TABLE_NAME)}:
                raise

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

    def get_first(self, keys: Sequence[str]) -> MemoEntry | None:
        """The entry of the first of ``keys`` (in their order) that is stored, or None.

        One lookup for the counters of :attr:`stats`, at most one database query: the keys before the first
        one in this process's cache are looked up in the database (another process may have written them).
        """
        keys = list(dict.fromkeys(keys))
        cached_at = next((i for i, key in enumerate(keys) if key in self._cache), len(keys))
        entry = self._cache[keys[cached_at]] if cached_at < len(keys) else None
        if cached_at > 0:
            with self._transaction("read") as conn:
                rows = conn.execute(sa.select(_table).where(_table.c.key.in_(keys[:cached_at]))).all()
            found = {row._mapping["key"]: _entry_from_row(row) for row in rows}
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

        Every row is checked before anything is stored: its values (:func:`entry_problem`: accuracy a finite
        number in [0, 1], 0 for an invalid network, no reason for a valid one, counts and times not negative,
        a known precision) and its key, recomputed from its content (:func:`key_problem`). The first bad row
        raises a :class:`MemoError` naming the file, its line (the header is line 1) and the problem, and
        nothing of the file is stored. Keys already stored are skipped; ``created_at`` may be absent (then:
        now), and so may ``precision`` and ``fidelity_digest`` (a table exported before the memo recorded
        them: its rows are entries of unrecorded precision).
        """
        shown = os.fspath(path)
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                entries = self._read_csv(csv.reader(f), shown)
        except OSError as err:
            raise self._fail(f"cannot import {shown} ({err.strerror or err})") from None
        except UnicodeDecodeError as err:
            problem = f"not UTF-8 text ({err.reason} at byte {err.start})"
            raise self._fail(f"cannot import {shown}: {problem}") from None
        # all rows are valid: a database failure part way leaves whole, valid chunks (first write wins, so
        # importing the file again completes it)
        added = 0
        for start in range(0, len(entries), _IMPORT_CHUNK):
            with self._transaction("import") as conn:
                added += sum(self._insert_if_absent(conn, e) for e in entries[start : start + _IMPORT_CHUNK])
        return added

    def _read_csv(self, reader: Any, shown: str) -> list[MemoEntry]:
        """The checked entries of a CSV reader; the first bad row raises a MemoError naming its line."""
        try:
            header = next(reader, None)
        except csv.Error as err:
            raise self._fail(f"{shown} line 1: {err}") from None
        if not header:
            raise self._fail(f"{shown} has no header line")
        missing = [c for c in MEMO_COLUMNS if c not in header and c not in _OPTIONAL_COLUMNS]
        if missing:
            raise self._fail(f"{shown} lacks columns {', '.join(missing)}")
        entries = []
        while True:
            line = reader.line_num + 1  # where the next record starts, as a text editor counts lines
            try:
                row = next(reader)
            except StopIteration:
                return entries
            except csv.Error as err:
                raise self._fail(f"{shown} line {line}: {err}") from None
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
                raise self._fail(f"{shown} line {line}: {problem}")
            entries.append(entry)

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
