"""The memo's tables and their numbered migrations.

``reward_memo`` has one column per :class:`MemoEntry` field. Its schema only grows, by migrations that add
columns with a server default, the value that the rows stored before them read as: an older version of this
code then keeps reading and writing a migrated table (its inserts leave the added columns to their defaults).
``reward_memo_version`` holds the versions the table has been migrated to, one row each; the highest is its
schema version, and a memo without one is at :data:`FIRST_VERSION`.

:func:`migrate` runs whenever a memo is opened: it creates the tables that are absent and applies the
migrations after the recorded version, in order. Each step finds out what is already done (a table or a
column that exists, a version that is recorded) instead of assuming it, so several processes opening one
database at once all succeed, and a table that already has a migration's columns has that migration only
recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from sb3_nas.estimation.memo._entry import FIELD_TYPES, MEMO_COLUMNS, UNRECORDED_PRECISION, MemoEntry

TABLE_NAME = "reward_memo"
VERSION_TABLE_NAME = "reward_memo_version"


@dataclass(frozen=True)
class Migration:
    """One numbered step of the memo table's schema.

    :param version: the schema version the table has once the step is applied
    :param columns: the columns it adds (fields of :class:`MemoEntry`), each with the text that the rows
        stored before it read as
    """

    version: int
    columns: Mapping[str, str]


FIRST_VERSION = 1  # the table of the first release: the fields of MemoEntry without the migrations' columns
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, {"precision": UNRECORDED_PRECISION, "fidelity_digest": ""}),  # both part of the key
)
SCHEMA_VERSION = MIGRATIONS[-1].version
_SERVER_DEFAULTS = {name: default for migration in MIGRATIONS for name, default in migration.columns.items()}

# The column type of each field's Python type; the short identifiers of _SHORT_STRINGS are VARCHAR(255)
# (indexable on every backend; ``key`` is the primary key), other text is TEXT. Existing databases keep the
# table they were created with, so these stay as they are (tests/test_memo.py pins them).
_SQL_TYPES: dict[type, Callable[[], sa.types.TypeEngine[Any]]] = {
    str: sa.Text,
    float: sa.Float,
    int: sa.BigInteger,
    bool: sa.Boolean,
}
_SHORT_STRINGS = ("key", "dataset", "dataset_fingerprint", "fidelity", "precision", "fidelity_digest")


def _column(name: str) -> sa.Column[Any]:
    short = name in _SHORT_STRINGS and FIELD_TYPES[name] is str
    column_type = sa.String(255) if short else _SQL_TYPES[FIELD_TYPES[name]]()
    default = _SERVER_DEFAULTS.get(name)
    return sa.Column(
        name,
        column_type,
        primary_key=name == "key",
        nullable=False,
        server_default=None if default is None else sa.text(f"'{default}'"),
    )


metadata = sa.MetaData()
table = sa.Table(TABLE_NAME, metadata, *(_column(name) for name in MEMO_COLUMNS))
version_table = sa.Table(
    VERSION_TABLE_NAME, metadata, sa.Column("version", sa.Integer, primary_key=True, autoincrement=False)
)
SELECT_BY_KEY = sa.select(table).where(table.c.key == sa.bindparam("k"))


def entry_from_row(row: Any) -> MemoEntry:
    """The entry of a database row, each value as its field's Python type (drivers differ, e.g. 0/1)."""
    m = row._mapping
    return MemoEntry(**{name: FIELD_TYPES[name](m[name]) for name in MEMO_COLUMNS})


def insert_if_absent(conn: Connection, target: sa.Table, values: dict[str, Any]) -> bool:
    """Insert the row ``values`` into ``target`` unless its primary key exists; True when this call inserted
    it."""
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        keys = [column.name for column in target.primary_key]
        stmt = insert(target).values(values).on_conflict_do_nothing(index_elements=keys)
        return conn.execute(stmt).rowcount == 1
    try:  # portable fallback: a savepoint keeps the surrounding transaction usable after a conflict
        with conn.begin_nested():
            conn.execute(target.insert().values(values))
    except IntegrityError:
        return False
    return True


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(TABLE_NAME)}


def _create(engine: Engine, target: sa.Table) -> None:
    """CREATE TABLE ``target`` unless it exists."""
    try:
        target.create(engine, checkfirst=True)
    except SQLAlchemyError:
        # another process may have created it between the existence check and CREATE TABLE
        if not sa.inspect(engine).has_table(target.name):
            raise


def add_column(engine: Engine, name: str) -> None:
    """ALTER TABLE … ADD COLUMN with the column's server default, which existing rows take."""
    column = sa.schema.CreateColumn(table.c[name]).compile(dialect=engine.dialect)
    quoted = engine.dialect.identifier_preparer.format_table(table)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {quoted} ADD COLUMN {column}"))
    except SQLAlchemyError:
        # another process migrating the same database may have added it first
        if name not in _columns(engine):
            raise


def migrate(engine: Engine) -> list[str]:
    """Create the memo's tables if absent and apply the migrations after the table's recorded version; returns
    the memo columns the table still lacks."""
    _create(engine, table)
    _create(engine, version_table)
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(sa.func.max(version_table.c.version))).scalar()
    version = FIRST_VERSION if recorded is None else recorded
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        present = _columns(engine)
        for name in migration.columns:
            if name not in present:
                add_column(engine, name)
        with engine.begin() as conn:
            insert_if_absent(conn, version_table, {"version": migration.version})
    present = _columns(engine)
    return [name for name in MEMO_COLUMNS if name not in present]
