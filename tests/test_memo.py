"""The reward memo (§5 of the paper): persistent, first-write-wins, cached, shareable between processes."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import multiprocessing as mp
import pickle
import queue
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from sb3_nas import estimation
from sb3_nas.estimation import get_fidelity
from sb3_nas.estimation.memo import (
    DEFAULT_MEMO_URL,
    UNRECORDED_PRECISION,
    MemoEntry,
    MemoError,
    RewardMemo,
    database_url,
    default_memo_url,
    entry_key,
    masked_url,
)
from sb3_nas.estimation.memo import _schema as memo_schema

# The memo table's columns since the first release: (name, type); "key" is the primary key, none is nullable.
# Existing databases, SQLite and PostgreSQL, have exactly these: the table must not drift from them.
FIRST_MEMO_COLUMN_TYPES = [
    ("key", "VARCHAR(255)"),
    ("dataset", "VARCHAR(255)"),
    ("dataset_fingerprint", "VARCHAR(255)"),
    ("fidelity", "VARCHAR(255)"),
    ("network", "TEXT"),
    ("nsc", "TEXT"),
    ("accuracy", "FLOAT"),
    ("valid", "BOOLEAN"),
    ("reason", "TEXT"),
    ("n_params", "BIGINT"),
    ("flops", "BIGINT"),
    ("train_seconds", "FLOAT"),
    ("created_at", "FLOAT"),
]
# The columns added since, at the end, with the default that rows stored before them read as.
ADDED_MEMO_COLUMNS = [
    ("precision", "VARCHAR(255)", "'unrecorded'"),
    ("fidelity_digest", "VARCHAR(255)", "''"),
]
MEMO_COLUMN_TYPES = FIRST_MEMO_COLUMN_TYPES + [(name, kind) for name, kind, _ in ADDED_MEMO_COLUMNS]
TINY = get_fidelity("tiny")
# The SQLite table as the memo created it before its columns were derived from MemoEntry.
LEGACY_SQLITE_DDL = """
CREATE TABLE reward_memo (
    "key" VARCHAR(255) NOT NULL, dataset VARCHAR(255) NOT NULL, dataset_fingerprint VARCHAR(255) NOT NULL,
    fidelity VARCHAR(255) NOT NULL, network TEXT NOT NULL, nsc TEXT NOT NULL, accuracy FLOAT NOT NULL,
    valid BOOLEAN NOT NULL, reason TEXT NOT NULL, n_params BIGINT NOT NULL, flops BIGINT NOT NULL,
    train_seconds FLOAT NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY ("key")
)
"""


def make_entry(key: str, accuracy: float = 0.5, **changes) -> MemoEntry:
    entry = MemoEntry(
        key=key,
        dataset="digits",
        dataset_fingerprint="sha256:ab12",
        fidelity=TINY.id,
        network="1k3<0|3k2<1",
        nsc=json.dumps([[1, 1, 3, 0, 0], [2, 3, 2, 1, 0]]),
        accuracy=accuracy,
        valid=True,
        reason="",
        n_params=123_456,
        flops=9_876_543_210,  # beyond 32 bits
        train_seconds=1.0 / 3.0,
        created_at=1_700_000_000.123456,
        precision="fp32",
        fidelity_digest=TINY.digest,
    )
    return dataclasses.replace(entry, **changes)


def keyed(entry: MemoEntry) -> MemoEntry:
    """``entry`` under the key of its content, as the estimator stores it (import_csv checks it)."""
    digest = entry.fidelity_digest or TINY.digest
    key = entry_key(entry.dataset_fingerprint, entry.fidelity, digest, entry.network, entry.precision)
    return dataclasses.replace(entry, key=key)


@pytest.fixture
def memo_path(tmp_path):
    return tmp_path / "sub" / "memo.sqlite"


def count_statements(memo: RewardMemo) -> list[str]:
    """Every SQL statement the memo's engine runs from now on."""
    statements: list[str] = []
    sa.event.listen(memo._engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


def test_put_get_roundtrip_keeps_every_field(memo_path):
    memo = RewardMemo(f"sqlite:///{memo_path}")
    invalid = make_entry("k2", accuracy=0.0, valid=False, reason="spatial size below 1", nsc='["x, \\"y\\""]')
    memo.put(make_entry("k1"))
    memo.put(invalid)
    fresh = RewardMemo(memo_path)  # a plain path means sqlite there; reads the database, not a cache
    assert fresh.get("k1") == make_entry("k1")
    assert fresh.get("k2") == invalid
    assert fresh.get("absent") is None
    assert "k1" in fresh and "absent" not in fresh
    assert len(fresh) == 2


def test_put_of_existing_key_keeps_the_first(memo_path):
    first, second = RewardMemo(memo_path), RewardMemo(memo_path)
    assert first.put(make_entry("k", accuracy=0.25)).accuracy == 0.25
    # the second object has never seen "k": the database, not its cache, must refuse the overwrite
    assert second.put(make_entry("k", accuracy=0.75)).accuracy == 0.25
    assert first.put(make_entry("k", accuracy=0.9)).accuracy == 0.25
    assert [e.accuracy for e in RewardMemo(memo_path).entries()] == [0.25]
    assert first.stats["writes"] == 1 and second.stats["writes"] == 0


def test_persists_across_objects_and_sees_other_writers(memo_path):
    reader, writer = RewardMemo(memo_path), RewardMemo(memo_path)
    assert reader.get("k") is None  # a miss must not be remembered: another process may write it later
    writer.put(make_entry("k"))
    writer.close()
    assert reader.get("k") == make_entry("k")
    assert RewardMemo(f"sqlite:///{memo_path}").get("k") == make_entry("k")


def test_cache_hit_avoids_the_database(memo_path):
    memo = RewardMemo(memo_path)
    RewardMemo(memo_path).put(make_entry("k"))
    statements = count_statements(memo)
    assert memo.get("k") == make_entry("k")
    assert len(statements) == 1
    for _ in range(100):
        assert memo.get("k") == make_entry("k")
    assert "k" in memo
    assert memo.put(make_entry("k", accuracy=0.9)).accuracy == 0.5
    assert len(statements) == 1
    assert memo.stats == {"hits": 101, "misses": 0, "writes": 0}
    memo.get("absent")
    assert memo.stats["misses"] == 1


def test_csv_export_import_roundtrip(memo_path, tmp_path):
    memo = RewardMemo(memo_path)
    for i in range(5):
        valid = i % 2 == 0
        nsc = [[1, 1, (1, 3, 5)[i % 3], 0, 0]]
        entry = make_entry(
            "",
            accuracy=i / 7 if valid else 0.0,
            valid=valid,
            reason="" if valid else "NA",
            nsc=json.dumps(nsc),
            network=f"1k{nsc[0][2]}<0",
            precision=("fp32", "bf16")[i // 3],
            created_at=1_700_000_000.123456 + i,
        )
        memo.put(keyed(entry))
    csv_path = tmp_path / "out" / "memo.csv"
    assert memo.export_csv(csv_path) == 5

    copy = RewardMemo("sqlite://")
    assert copy.import_csv(csv_path) == 5
    assert copy.entries() == memo.entries()  # keys stay strings, '' stays '', floats stay exact
    assert copy.import_csv(csv_path) == 0
    assert len(copy) == 5
    frame = copy.to_dataframe()
    assert list(frame.columns) == [f.name for f in dataclasses.fields(MemoEntry)]
    assert frame["accuracy"].tolist() == [i / 7 if i % 2 == 0 else 0.0 for i in range(5)]


def test_import_of_csv_missing_columns_names_them(tmp_path):
    path = tmp_path / "partial.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["key", "dataset", "accuracy"], ["k", "digits", "0.5"]])
    memo = RewardMemo("sqlite://")
    with pytest.raises(MemoError, match="fidelity") as info:
        memo.import_csv(path)
    assert "flops" in str(info.value) and "train_seconds" in str(info.value)
    assert len(memo) == 0


def test_unwritable_location_raises_memo_error_naming_it(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    path = blocker / "memo.sqlite"
    with pytest.raises(MemoError, match="cannot create folder") as info:
        RewardMemo(f"sqlite:///{path}")
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_file_that_is_not_a_database_raises_memo_error(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is certainly not an SQLite database file" * 100)
    with pytest.raises(MemoError, match="not a database") as info:
        RewardMemo(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [("nosuchdb://host/db", "no usable database driver"), ("mssql+nosuchdriver://h/db", "no usable")],
)
def test_unknown_scheme_or_driver_raises_memo_error(url, problem):
    with pytest.raises(MemoError, match=problem) as info:
        RewardMemo(url)
    assert url in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="the driver is installed")
def test_missing_driver_raises_memo_error_without_the_password():
    with pytest.raises(MemoError, match="psycopg2") as info:
        RewardMemo("postgresql+psycopg2://user:secret@localhost/db")
    assert "secret" not in str(info.value)


def test_default_url_follows_environment(monkeypatch):
    monkeypatch.delenv("SB3_NAS_MEMO", raising=False)
    assert default_memo_url() == DEFAULT_MEMO_URL == "sqlite:///results/memo.sqlite"
    monkeypatch.setenv("SB3_NAS_MEMO", "sqlite://")
    assert default_memo_url() == "sqlite://"
    assert RewardMemo().url == "sqlite://"


def test_pickle_roundtrip_reconnects_by_url(memo_path):
    memo = RewardMemo(memo_path)
    memo.put(make_entry("k"))
    memo.get("k")
    clone = pickle.loads(pickle.dumps(memo))
    assert clone.url == memo.url
    assert clone.stats == {"hits": 0, "misses": 0, "writes": 0}
    assert clone.get("k") == make_entry("k")
    clone.put(make_entry("k2"))
    assert memo.get("k2") == make_entry("k2")


def _writer(memo: RewardMemo, first: int, count: int, tag: float, barrier, results) -> None:
    """Child process: put `count` entries, report what the memo said is stored for each key."""
    try:
        barrier.wait(timeout=60)
        stored = {}
        for i in range(first, first + count):
            stored[f"net-{i}"] = memo.put(make_entry(f"net-{i}", accuracy=tag)).accuracy
        results.put((tag, stored, None))
    except BaseException as err:  # report, so the parent fails with the child's reason
        results.put((tag, {}, repr(err)))


WRITERS = [
    (0, 0.1),
    (100, 0.2),
    (200, 0.3),
    (300, 0.4),
]  # first key, accuracy written: each overlaps the next


def test_four_writer_processes_store_exactly_the_union(memo_path):
    memo = RewardMemo(memo_path)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(WRITERS)), ctx.Queue()
    # overlapping key sets 0..199, 100..299, 200..399, 300..499; the memo itself is pickled into each child
    workers = [
        ctx.Process(target=_writer, args=(memo, first, 200, tag, barrier, results)) for first, tag in WRITERS
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=180) for _ in workers]
    except queue.Empty:
        pytest.fail("a writer process did not report")
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert [error for _, _, error in reports] == [None] * len(WRITERS)
    assert all(worker.exitcode == 0 for worker in workers)

    shared = {f"net-{i}" for i in range(100, 400)}  # written by two processes each
    final = {e.key: e.accuracy for e in RewardMemo(memo_path).entries()}
    assert sorted(final) == sorted(f"net-{i}" for i in range(500))
    assert len(RewardMemo(memo_path)) == 500
    for tag, stored, _ in reports:
        assert len(stored) == 200
        # each process was told the entry that won, which is the one on disk
        assert all(final[key] == accuracy for key, accuracy in stored.items())
        assert all(final[key] == tag for key in stored.keys() - shared)


def test_database_url_reads_a_plain_path_as_sqlite(tmp_path):
    assert database_url("results/memo.sqlite") == "sqlite:///results/memo.sqlite"
    assert database_url(tmp_path / "memo.sqlite") == f"sqlite:///{tmp_path / 'memo.sqlite'}"
    for url in ("sqlite:///results/memo.sqlite", "sqlite://", "postgresql+psycopg2://u:pw@host:5432/nas"):
        assert database_url(url) == url
    assert estimation.database_url is database_url and estimation.masked_url is masked_url


def test_masked_url_hides_only_the_password():
    assert masked_url("postgresql://nas:s3cret@db.example.org:5432/memo") == (
        "postgresql://nas:***@db.example.org:5432/memo"
    )
    assert masked_url("postgresql+psycopg2://nas:p%40ss@db/memo") == "postgresql+psycopg2://nas:***@db/memo"
    for unchanged in (
        "sqlite:///results/memo.sqlite",
        "sqlite:////abs/path with space/memo.sqlite",
        "sqlite:///C:\\memo\\memo.sqlite",  # rendering would percent-encode it
        "sqlite://",
        "postgresql://nas@db.example.org/memo",  # a user without a password
        "results/memo.sqlite",  # not a URL
        "",
    ):
        assert masked_url(unchanged) == unchanged


def test_memo_repr_and_errors_hide_the_password():
    with pytest.raises(MemoError) as info:
        RewardMemo("nosuchdb://nas:s3cret@host/db")
    assert "s3cret" not in str(info.value) and "nosuchdb://nas:***@host/db" in str(info.value)


def test_the_table_keeps_its_column_types(memo_path):
    """New databases get the same table as before, so old and new memo databases stay interchangeable."""
    memo = RewardMemo(memo_path)
    columns = sa.inspect(memo._engine).get_columns("reward_memo")
    assert [(c["name"], str(c["type"])) for c in columns] == MEMO_COLUMN_TYPES
    assert not any(c["nullable"] for c in columns)
    assert sa.inspect(memo._engine).get_pk_constraint("reward_memo")["constrained_columns"] == ["key"]
    ddl = str(CreateTable(memo_schema.table).compile(dialect=postgresql.dialect()))
    for name, column_type in FIRST_MEMO_COLUMN_TYPES:
        assert f"\t{name} {column_type} NOT NULL" in ddl
    for name, column_type, default in ADDED_MEMO_COLUMNS:
        assert f"\t{name} {column_type} DEFAULT {default} NOT NULL" in ddl
    assert "PRIMARY KEY (key)" in ddl
    assert [name for name, _ in MEMO_COLUMN_TYPES] == [f.name for f in dataclasses.fields(MemoEntry)]


def test_a_memo_database_from_before_still_opens(memo_path):
    memo_path.parent.mkdir(parents=True)
    old = make_entry("old", flops=2**40, precision=UNRECORDED_PRECISION, fidelity_digest="")
    with sqlite3.connect(memo_path) as conn:
        conn.execute(LEGACY_SQLITE_DDL)
        conn.execute(
            "INSERT INTO reward_memo VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            dataclasses.astuple(old)[: len(FIRST_MEMO_COLUMN_TYPES)],
        )
    conn.close()
    memo = RewardMemo(memo_path)
    assert memo.get("old") == old  # the added columns read as "recorded before they existed"
    columns = sa.inspect(memo._engine).get_columns("reward_memo")
    assert [(c["name"], str(c["type"])) for c in columns] == MEMO_COLUMN_TYPES
    new = make_entry("new", accuracy=0.0, valid=False, reason="training failed: x")
    memo.put(new)
    stored = {entry.key: entry for entry in RewardMemo(memo_path).entries()}
    assert stored == {"old": old, "new": new}


def test_a_memo_records_its_schema_version_once(memo_path, tmp_path):
    """A new memo and a migrated old one are both recorded at the last migration's version; opening a memo
    at that version alters nothing."""
    versions = sa.select(memo_schema.version_table.c.version)
    memo = RewardMemo(memo_path)
    with memo._engine.connect() as conn:
        assert conn.execute(versions).scalars().all() == [memo_schema.SCHEMA_VERSION]
    old_path = tmp_path / "old.sqlite"
    with sqlite3.connect(old_path) as conn:
        conn.execute(LEGACY_SQLITE_DDL)
    conn.close()
    old = RewardMemo(old_path)
    with old._engine.connect() as conn:
        assert conn.execute(versions).scalars().all() == [memo_schema.SCHEMA_VERSION]
    statements: list[str] = []
    engine = sa.create_engine(f"sqlite:///{old_path}")
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert memo_schema.migrate(engine) == []
    engine.dispose()
    assert not any(s.lstrip().upper().startswith(("ALTER", "CREATE", "INSERT")) for s in statements)


def test_csv_without_created_at_imports_with_now(tmp_path):
    path = tmp_path / "no_time.csv"
    names = [f.name for f in dataclasses.fields(MemoEntry) if f.name != "created_at"]
    entry = keyed(make_entry("k"))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([names, [getattr(entry, name) for name in names]])
    memo = RewardMemo("sqlite://")
    assert memo.import_csv(path) == 1
    (stored,) = memo.entries()
    assert dataclasses.replace(stored, created_at=entry.created_at) == entry
    assert stored.created_at > entry.created_at
