"""The reward memo survives database outages: a PostgreSQL restart in the middle of a run, and an SQLite
lock held past its busy timeout, are retried until they pass, with every step recorded once."""

import os
import shlex
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from sb3_nas.estimation import RewardMemo, get_fidelity
from sb3_nas.estimation import database as database_module
from sb3_nas.estimation.memo import MemoEntry, MemoError, entry_key

RESTART_ENV = "SB3_NAS_TEST_POSTGRES_CTL"  # e.g. "pg_ctlcluster 15 main": stops and starts the test server
OUTAGE_S = 15.0
STEPS = 60


def _steps_recorded(path) -> int:
    try:
        return max(0, sum(1 for _ in path.open()) - 1)
    except OSError:
        return 0


def test_a_postgresql_restart_in_the_middle_of_a_run_is_survived(postgres_database, tmp_path):
    control = os.environ.get(RESTART_ENV)
    if not control:
        pytest.skip(f"set {RESTART_ENV} to the command that stops and starts the test server (.ci/run does)")
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "sb3_nas.train", "--algo", "random", "--envs", "digits", "--timesteps",
            str(STEPS), "--fidelity", "tiny", "--memo", postgres_database, "--memo-retry", "120", "--out",
            str(out), "--no-progress"]  # fmt: skip
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while _steps_recorded(out / "steps.csv") < 10 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run.poll() is None, "the run ended before the outage"
        subprocess.run([*shlex.split(control), "stop", "-m", "fast"], check=True, timeout=60)
        stopped_at = _steps_recorded(out / "steps.csv")
        time.sleep(OUTAGE_S)
        during = _steps_recorded(out / "steps.csv")
        subprocess.run([*shlex.split(control), "start"], check=True, timeout=60)
        stdout, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
        subprocess.run([*shlex.split(control), "start"], timeout=60)  # the server is up for the other tests
    assert run.returncode == 0, stderr
    assert during <= stopped_at + 1  # the run waited for the server (a step in flight may land)
    assert "reward memo:" in stderr and "failed (" in stderr and "retry 1 in" in stderr
    steps = pd.read_csv(out / "steps.csv")
    assert list(steps["step"]) == list(range(1, STEPS + 1))  # every step once, in order
    trained = steps[~steps["memo_hit"].astype(bool)]
    with sa.create_engine(postgres_database).connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM reward_memo")).scalar_one()
    assert count == trained["network"].nunique()  # nothing written twice, nothing lost


def make_entry() -> MemoEntry:
    tiny = get_fidelity("tiny")
    key = entry_key("sha256:ab12", tiny.id, tiny.digest, "1k3<0", "fp32")
    return MemoEntry(key, "digits", "sha256:ab12", tiny.id, "1k3<0", "[[1, 1, 3, 0, 0]]", 0.5, True, "",
                     1234, 5678, 0.25, precision="fp32", fidelity_digest=tiny.digest)  # fmt: skip


def test_an_sqlite_lock_held_past_the_busy_timeout_is_retried(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "memo.sqlite"
    memo = RewardMemo(f"sqlite:///{path}")
    entry = make_entry()
    key = entry.key
    len(memo)  # the table exists
    holder = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    conn = holder.connect()
    conn.exec_driver_sql("BEGIN EXCLUSIVE")  # another process holds the write lock …

    def release():
        time.sleep(1.5)  # … for far longer than the memo's busy timeout
        conn.exec_driver_sql("COMMIT")
        conn.close()

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        with caplog.at_level("WARNING", logger="sb3_nas.memo"):
            assert memo.put(entry) == entry
    finally:
        releaser.join()
    assert "database is locked" in caplog.text and "retry 1 in" in caplog.text
    assert memo.get(key) == entry and len(memo) == 1
    memo.close()


def test_with_no_retry_budget_an_outage_is_the_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setenv("SB3_NAS_MEMO_RETRY", "0")
    path = tmp_path / "memo.sqlite"
    memo = RewardMemo(f"sqlite:///{path}")
    len(memo)  # the table exists
    holder = sa.create_engine(f"sqlite:///{path}").connect()
    holder.exec_driver_sql("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MemoError, match=r"cannot write \(OperationalError: database is locked\)"):
            memo.put(make_entry())
    finally:
        holder.exec_driver_sql("ROLLBACK")
        holder.close()
        memo.close()


def test_a_bad_retry_budget_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_NAS_MEMO_RETRY", "soon")
    message = r"reward memo .*: SB3_NAS_MEMO_RETRY='soon' is not a number of seconds"
    with pytest.raises(MemoError, match=message):
        RewardMemo(f"sqlite:///{tmp_path / 'memo.sqlite'}")
