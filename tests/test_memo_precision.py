"""A memo that answers only for what it measured: precision in the key, checked imports, mistyped URLs."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import sqlite3

import pytest
import sqlalchemy as sa
import torch

from sb3_nas.errors import InputError
from sb3_nas.estimation import (
    Evaluation,
    MemoEntry,
    MemoError,
    PerformanceEstimator,
    RewardMemo,
    SpeedSettings,
    accepted_precisions,
    database_url,
    entry_key,
    get_fidelity,
    memo_key,
    precision_of,
    training_precision,
)
from sb3_nas.estimation import estimator as estimator_module
from sb3_nas.estimation.memo import MEMO_COLUMNS, PRECISIONS, UNRECORDED_PRECISION
from sb3_nas.estimation.memo import _schema as memo_schema

CHAIN3 = [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0), (3, 1, 1, 2, 0)]
CHAIN3_NETWORK = "1k3<0|2k2<1|1k1<2"
TOO_SMALL = [(1, 2, 3, 0, 0), (2, 2, 3, 1, 0), (3, 2, 3, 2, 0)]  # pools 12×12 below 1×1: invalid
# the table as the memo created it before it recorded precision and fidelity digest
OLD_DDL = """
CREATE TABLE reward_memo (
    "key" VARCHAR(255) NOT NULL, dataset VARCHAR(255) NOT NULL, dataset_fingerprint VARCHAR(255) NOT NULL,
    fidelity VARCHAR(255) NOT NULL, network TEXT NOT NULL, nsc TEXT NOT NULL, accuracy FLOAT NOT NULL,
    valid BOOLEAN NOT NULL, reason TEXT NOT NULL, n_params BIGINT NOT NULL, flops BIGINT NOT NULL,
    train_seconds FLOAT NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY ("key")
)
"""
OLD_COLUMNS = MEMO_COLUMNS[:13]


def computes_in(monkeypatch, dtype: torch.dtype | None) -> None:
    """Make every device's speed settings train in ``dtype`` (None: fp32), whatever this CPU supports."""
    monkeypatch.setattr(
        SpeedSettings, "for_device", classmethod(lambda cls, device: cls(autocast_dtype=dtype))
    )


@pytest.fixture
def fake_training(monkeypatch):
    """No training: every network scores 0.42; returns the list of NSCs that would have been trained."""
    trained = []

    def evaluate(rows, dataset, fidelity, device):
        trained.append(rows)
        return Evaluation(0.42, True, "", n_params=10, flops=100, train_seconds=0.01)

    monkeypatch.setattr(estimator_module, "evaluate_nsc", evaluate)
    return trained


def stored_entry(dataset, fidelity, precision: str, accuracy: float, network=CHAIN3_NETWORK, nsc=CHAIN3):
    """The entry the estimator would store for ``nsc`` trained in ``precision``."""
    return MemoEntry(
        key=memo_key(dataset.fingerprint, network, fidelity, precision),
        dataset=dataset.name,
        dataset_fingerprint=dataset.fingerprint,
        fidelity=fidelity.id,
        network=network,
        nsc=json.dumps([list(row) for row in nsc]),
        accuracy=accuracy,
        valid=True,
        reason="",
        n_params=10,
        flops=100,
        train_seconds=0.5,
        created_at=1_700_000_000.0,
        precision=precision,
        fidelity_digest="" if precision == UNRECORDED_PRECISION else fidelity.digest,
    )


# -- precision is part of what an entry answers for --------------------------------------------------------


@pytest.mark.parametrize(("own", "other"), [(None, "bf16"), (torch.bfloat16, "fp32")])
def test_an_entry_of_another_precision_answers_only_with_the_opt_in(
    monkeypatch, fake_training, small_digits, tiny_fidelity, memo, own, other
):
    computes_in(monkeypatch, own)
    own_name = "fp32" if own is None else "bf16"
    memo.put(stored_entry(small_digits, tiny_fidelity, other, accuracy=0.9))

    strict = PerformanceEstimator(small_digits, tiny_fidelity, memo)
    assert strict.precision == own_name and strict.accept_precision == (own_name,)
    fresh = strict.estimate(CHAIN3)
    assert not fresh.memo_hit and len(fake_training) == 1  # the other precision's reward was not served
    assert fresh.entry.precision == own_name and fresh.entry.accuracy == 0.42
    assert fresh.entry.key == memo_key(small_digits.fingerprint, CHAIN3_NETWORK, tiny_fidelity, own_name)
    assert fresh.entry.fidelity_digest == tiny_fidelity.digest
    assert {e.precision: e.accuracy for e in memo.entries()} == {other: 0.9, own_name: 0.42}

    # with the opt-in its own precision still comes first when both are stored ...
    for accept in (other, "any", [UNRECORDED_PRECISION, other]):
        both = PerformanceEstimator(
            small_digits, tiny_fidelity, RewardMemo(memo.url), accept_precision=accept
        )
        assert both.estimate(CHAIN3).entry.precision == own_name
    # ... and the other precision answers when its own is absent
    only_other = RewardMemo("sqlite://")
    only_other.put(stored_entry(small_digits, tiny_fidelity, other, accuracy=0.9))
    lenient = PerformanceEstimator(small_digits, tiny_fidelity, only_other, accept_precision=other)
    served = lenient.estimate(CHAIN3)
    assert served.memo_hit and served.entry.precision == other and served.entry.accuracy == 0.9
    assert len(fake_training) == 1 and len(only_other) == 1


def test_the_precision_is_the_one_the_trainer_computes_in(monkeypatch):
    computes_in(monkeypatch, torch.bfloat16)
    assert training_precision("cpu") == "bf16"
    computes_in(monkeypatch, None)
    assert training_precision("cpu") == "fp32"
    computes_in(monkeypatch, torch.float16)
    with pytest.raises(ValueError, match="no precision name"):
        training_precision("cpu")


def test_every_speed_setting_has_a_precision_name_the_memo_knows():
    names = {
        precision_of(SpeedSettings(autocast_dtype=dtype, bf16_dense=dense))
        for dtype, dense in [
            (None, False),
            (torch.float32, False),
            (torch.bfloat16, False),
            (torch.bfloat16, True),
        ]
    }
    assert names == {"fp32", "bf16", "bf16-dense"} == set(PRECISIONS)
    dense = SpeedSettings(autocast_dtype=torch.bfloat16, bf16_dense=True)
    assert memo_key("fp", CHAIN3_NETWORK, get_fidelity("tiny"), precision_of(dense)) != memo_key(
        "fp", CHAIN3_NETWORK, get_fidelity("tiny"), "bf16"
    )


def test_accepted_precisions_are_checked_and_put_the_own_first():
    assert accepted_precisions("fp32") == ("fp32",)
    assert accepted_precisions("bf16-dense", "any") == ("bf16-dense", "fp32", "bf16", "unrecorded")
    assert accepted_precisions("fp32", ["unrecorded", "bf16", "fp32"]) == ("fp32", "unrecorded", "bf16")
    with pytest.raises(InputError, match="accept_precision: unknown precision 'fp16'"):
        accepted_precisions("fp32", ["bf16", "fp16"])
    with pytest.raises(InputError, match="unknown precision 'al'"):
        PerformanceEstimator("digits", "tiny", "sqlite://", "cpu", accept_precision="al")


def test_precision_separates_keys_and_unrecorded_keeps_the_old_key(small_digits, tiny_fidelity):
    keys = {p: memo_key("fp", CHAIN3_NETWORK, tiny_fidelity, p) for p in ("fp32", "bf16", "unrecorded")}
    assert len(set(keys.values())) == 3
    # the key the memo computed before it recorded precision: entries stored then keep answering to it
    old = f"fp|{tiny_fidelity.id}|{tiny_fidelity.digest}|{CHAIN3_NETWORK}"
    assert keys["unrecorded"] == hashlib.sha256(old.encode()).hexdigest()
    with pytest.raises(ValueError, match="unknown precision"):
        entry_key("fp", "tiny@1", "d", CHAIN3_NETWORK, "fp16")


def test_get_first_prefers_the_earlier_key_even_when_a_later_one_is_cached(tmp_path):
    memo, other_process = RewardMemo(tmp_path / "memo.sqlite"), RewardMemo(tmp_path / "memo.sqlite")
    a = MemoEntry("a", "d", "f", "tiny@1", "n", "[]", 0.1, True, "", 1, 1, 1.0, 1.0, "fp32", "x")
    b = dataclasses.replace(a, key="b", accuracy=0.2, precision="bf16")
    memo.put(b)  # cached here
    assert memo.get_first(["a", "b"]) == b
    other_process.put(a)  # behind this object's cache: the earlier key still wins
    assert memo.get_first(["a", "b"]) == a
    assert memo.get_first(["zz", "yy"]) is None
    assert memo.stats == {"hits": 2, "misses": 1, "writes": 1}


# -- put and import_csv store only consistent entries ----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"accuracy": float("inf")}, "accuracy inf is not a finite number"),
        ({"accuracy": float("nan")}, "accuracy nan is not a finite number"),
        ({"accuracy": 9.99}, "accuracy 9.99 is outside [0, 1]"),
        ({"accuracy": 0.5, "valid": False, "reason": "x"}, "valid is False but accuracy is 0.5"),
        ({"reason": "x"}, "valid is True but reason is 'x'"),
        ({"n_params": -1}, "n_params -1 is negative"),
        ({"precision": "fp16"}, "precision 'fp16' is unknown"),
    ],
)
def test_put_refuses_an_inconsistent_entry(small_digits, tiny_fidelity, changes, problem):
    memo = RewardMemo("sqlite://")
    entry = dataclasses.replace(stored_entry(small_digits, tiny_fidelity, "fp32", 0.5), **changes)
    with pytest.raises(MemoError, match="cannot store the entry") as info:
        memo.put(entry)
    assert problem in str(info.value)
    assert len(memo) == 0 and memo.get(entry.key) is None


@pytest.fixture
def real_entries(small_digits, tiny_fidelity, memo):
    """Entries the estimator stored after real trainings: a valid network, an invalid one, another fidelity
    (not registered: its digest makes the key checkable), and a bf16 entry."""
    estimator = PerformanceEstimator(small_digits, tiny_fidelity, memo, "cpu")
    estimator.estimate(CHAIN3)
    estimator.estimate(TOO_SMALL)
    PerformanceEstimator(small_digits, tiny_fidelity.replace(seed=7), memo, "cpu").estimate(CHAIN3)
    other = "bf16" if estimator.precision == "fp32" else "fp32"
    memo.put(stored_entry(small_digits, tiny_fidelity, other, accuracy=0.75))
    entries = memo.entries()
    assert len(entries) == 4 and not all(e.valid for e in entries)
    return entries


def test_export_import_roundtrip_of_real_entries(memo, real_entries, tmp_path):
    path = tmp_path / "memo.csv"
    assert memo.export_csv(path) == 4
    copy = RewardMemo("sqlite://")
    assert copy.import_csv(path) == 4
    assert copy.entries() == real_entries
    assert copy.import_csv(path) == 0


def write_csv(path, rows: list[dict[str, object]], columns=MEMO_COLUMNS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows([{name: row[name] for name in columns} for row in rows])


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"accuracy": "9.99"}, "accuracy 9.99 is outside [0, 1]"),
        ({"accuracy": "inf"}, "accuracy inf is not a finite number"),
        ({"accuracy": "-1e308"}, "accuracy -1e+308 is outside [0, 1]"),
        ({"accuracy": "NaN"}, "accuracy nan is not a finite number"),
        ({"accuracy": "0.5", "valid": "False", "reason": "x"}, "valid is False but accuracy is 0.5"),
        ({"accuracy": "high"}, "accuracy 'high' is not a float"),
        ({"flops": "-5"}, "flops -5 is negative"),
        ({"precision": "fp16"}, "precision 'fp16' is unknown"),
        ({"key": "0" * 64}, f"key {'0' * 64} is not the key of the row's"),
        ({"dataset_fingerprint": "sha256:other"}, "is not the key of the row's"),
        ({"precision": "RELABEL"}, "is not the key of the row's"),  # a bf16 reward relabelled fp32
        ({"fidelity_digest": "0123456789abcdef"}, "is not the key of the row's"),
        ({"network": "1k5<0"}, "network '1k5<0' is not the network of its nsc (1k3<0|2k2<1|1k1<2)"),
        ({"nsc": "[[1, 9, 3, 0, 0]]"}, "is not an NSC state (NSC row 1 has illegal type 9"),
        ({"fidelity_digest": "", "fidelity": "nosuch@1"}, "fidelity nosuch@1 has no fidelity_digest and is"),
    ],
)
def test_import_refuses_a_bad_row_naming_its_line_and_stores_nothing(
    small_digits, tiny_fidelity, tmp_path, changes, problem
):
    good = [stored_entry(small_digits, tiny_fidelity, p, 0.5) for p in ("fp32", "bf16")]
    bad = dataclasses.asdict(good[0])
    if changes.get("precision") == "RELABEL":
        bad = dataclasses.asdict(good[1]) | {"precision": "fp32"}
    else:
        bad |= changes
    # an invalid row whose reason spans two lines: the bad row starts on line 5 of the file
    invalid = dataclasses.replace(
        stored_entry(small_digits, tiny_fidelity, "fp32", 0.0, "1k5<0", [(1, 1, 5, 0, 0)]),
        valid=False,
        reason="training failed: first line\nsecond line",
    )
    path = tmp_path / "table.csv"
    write_csv(
        path, [dataclasses.asdict(good[0]), dataclasses.asdict(invalid), bad, dataclasses.asdict(good[1])]
    )
    memo = RewardMemo("sqlite://")
    with pytest.raises(MemoError) as info:
        memo.import_csv(path)
    message = str(info.value)
    assert f"{path} line 5: " in message and problem in message and "\n" not in message
    assert len(memo) == 0  # not even the good rows before it


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "has no header line"),
        (b"key," + b"x" * 200_000 + b"\n", r"line 1: field larger than field limit"),
        (b"\xff\xfekey\n", "not UTF-8 text"),
        (",".join(MEMO_COLUMNS).encode() + b"\n\n" + b"a,b\n", "line 3: 2 fields, the header has 15"),
    ],
)
def test_import_of_a_malformed_file_is_one_memo_error(tmp_path, content, problem):
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    with pytest.raises(MemoError, match=problem):
        RewardMemo("sqlite://").import_csv(path)


def test_import_of_a_table_exported_before_precision_was_recorded(small_digits, tiny_fidelity, tmp_path):
    old = stored_entry(small_digits, tiny_fidelity, UNRECORDED_PRECISION, 0.5)
    path = tmp_path / "old.csv"
    write_csv(path, [dataclasses.asdict(old)], columns=OLD_COLUMNS)
    memo = RewardMemo("sqlite://")
    assert memo.import_csv(path) == 1
    assert memo.entries() == [old]  # checked with the registered fidelity tiny@1
    unregistered = dataclasses.replace(old, fidelity="tiny@2")
    write_csv(path, [dataclasses.asdict(unregistered)], columns=OLD_COLUMNS)
    with pytest.raises(
        MemoError, match="line 2: fidelity tiny@2 has no fidelity_digest and is not registered"
    ):
        RewardMemo("sqlite://").import_csv(path)


# -- databases from before: the columns are added, the old entries answer only an opt-in ---------------


def test_an_old_sqlite_memo_gains_the_columns_and_its_entries_answer_only_the_opt_in(
    monkeypatch, fake_training, small_digits, tiny_fidelity, tmp_path
):
    computes_in(monkeypatch, None)
    path = tmp_path / "old.sqlite"
    old = stored_entry(small_digits, tiny_fidelity, UNRECORDED_PRECISION, 0.8)
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_DDL)
        conn.execute(f"INSERT INTO reward_memo VALUES ({', '.join('?' * 13)})", dataclasses.astuple(old)[:13])
    conn.close()

    memo = RewardMemo(path)
    assert memo.get(old.key) == old  # precision "unrecorded", fidelity_digest ""
    assert [c["name"] for c in sa.inspect(memo._engine).get_columns("reward_memo")] == list(MEMO_COLUMNS)
    memo_schema.add_column(memo._engine, "precision")  # a second process migrating at once: no error
    assert RewardMemo(path).get(old.key) == old  # opens again, already migrated

    default = PerformanceEstimator(small_digits, tiny_fidelity, RewardMemo(path))
    assert not default.estimate(CHAIN3).memo_hit and len(fake_training) == 1
    for accept in (UNRECORDED_PRECISION, "any"):
        estimate = PerformanceEstimator(small_digits, "tiny", path, accept_precision=accept).estimate(CHAIN3)
        assert estimate.memo_hit and estimate.entry.precision == "fp32"  # its own precision first
    only_old = RewardMemo(tmp_path / "only_old.sqlite")
    only_old.put(old)
    lenient = PerformanceEstimator(small_digits, tiny_fidelity, only_old, accept_precision="any")
    served = lenient.estimate(CHAIN3)
    assert served.memo_hit and served.entry == old and len(fake_training) == 1

    # an older version of the code writing into the migrated table stores an unrecorded entry
    with sqlite3.connect(path) as conn:
        values = dataclasses.astuple(dataclasses.replace(old, key="older writer"))[:13]
        conn.execute(
            f"INSERT INTO reward_memo ({', '.join(OLD_COLUMNS)}) VALUES ({', '.join('?' * 13)})", values
        )
    conn.close()
    assert RewardMemo(path).get("older writer").precision == UNRECORDED_PRECISION


def test_an_old_postgresql_memo_gains_the_columns(postgres_database, small_digits, tiny_fidelity):
    old = stored_entry(small_digits, tiny_fidelity, UNRECORDED_PRECISION, 0.8)
    engine = sa.create_engine(postgres_database)
    with engine.begin() as conn:
        conn.execute(sa.text(OLD_DDL))
        placeholders = ", ".join(f":{name}" for name in OLD_COLUMNS)
        conn.execute(sa.text(f"INSERT INTO reward_memo VALUES ({placeholders})"), dataclasses.asdict(old))
    engine.dispose()
    memo = RewardMemo(postgres_database)
    assert memo.get(old.key) == old
    new = stored_entry(small_digits, tiny_fidelity, "bf16", 0.7)
    memo.put(new)
    memo.close()
    assert {e.key: e for e in RewardMemo(postgres_database).entries()} == {old.key: old, new.key: new}


# -- a mistyped URL is not a path --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["sqlite//:x", "sqlite:/results/memo.sqlite", "sqlite:memo", "sqlite///x", "postgresql//h/db", "a//:b"],
)
def test_a_mistyped_url_is_refused_and_creates_nothing(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MemoError, match="looks like a mistyped database URL") as info:
        RewardMemo(text)
    assert text in str(info.value) and "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_paths_that_only_resemble_a_scheme_stay_paths():
    assert database_url("sqlite/memo.sqlite") == "sqlite:///sqlite/memo.sqlite"  # a folder named sqlite
    assert database_url("results/sqlite.db") == "sqlite:///results/sqlite.db"
    assert database_url("C:\\memo\\memo.sqlite") == "sqlite:///C:\\memo\\memo.sqlite"
