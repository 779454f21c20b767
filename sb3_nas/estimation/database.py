"""Database engines: the SQLAlchemy settings shared by the reward memo and the Optuna study storage.

Both are opened by URL, SQLite on one machine or a server for many, and both need the same two guarantees:
processes writing one SQLite file wait for each other instead of failing (:data:`SQLITE_BUSY_TIMEOUT_S`), and
an unreachable server fails the command quickly instead of hanging (:data:`CONNECT_TIMEOUT_S`).
:func:`engine_kwargs` is those settings as the keyword arguments of :func:`sqlalchemy.create_engine`, which is
what Optuna's ``RDBStorage(url, engine_kwargs=...)`` takes; :func:`create_engine` is the memo's engine, built
from the same arguments.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_S = 60.0  # how long an SQLite writer waits for another one's lock before failing
CONNECT_TIMEOUT_S = 10  # how long a connection to a server may take before the command fails
# the PostgreSQL drivers built on libpq, whose connect() takes libpq's connect_timeout
_LIBPQ_DRIVERS = ("psycopg2", "psycopg", "psycopg2cffi")


def sqlite_file(url: URL) -> str | None:
    """The database file of a SQLite URL; None for in-memory and URI-mode databases and other backends."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.database.startswith("file:") or "uri" in url.query:
        return None
    return url.database


def engine_kwargs(url: URL) -> dict[str, Any]:
    """The keyword arguments of :func:`sqlalchemy.create_engine` for ``url``.

    SQLite: the busy timeout (the driver's ``timeout``). A server: a ping before a pooled connection is reused
    (the server may have closed it) and, for PostgreSQL through libpq, its ``connect_timeout``.
    """
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in _LIBPQ_DRIVERS:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return kwargs


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside one writer; synchronous NORMAL is safe in WAL mode (an app crash loses
    nothing)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def create_engine(url: URL) -> Engine:
    """The engine of :func:`engine_kwargs` for a store that several processes write at once.

    A SQLite file runs in WAL mode. A SQLite database that is no file (``sqlite://``, URI mode) gets one
    shared connection, or each thread would see its own database. Optuna builds its own engine from
    :func:`engine_kwargs`, which cannot carry the connect hook, so its SQLite file keeps SQLite's default
    rollback journal.

    :raises sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError: when ``url`` names no usable driver
    """
    kwargs = engine_kwargs(url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, **kwargs)
    if sqlite_file(url) is None:
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    engine = sa.create_engine(url, **kwargs)
    sa.event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def error_line(error: BaseException) -> str:
    """The driver's own message when there is one, on one line, without SQLAlchemy's boilerplate."""
    cause = getattr(error, "orig", None) or error.__cause__ or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"
