"""Database outages: which errors are retried, the capped and jittered backoff, the budget, the log."""

import logging
import random

import pytest
import sqlalchemy.exc as sa_exc

from sb3_nas.estimation.retry import MEMO_RETRY_ENV, Retry, is_transient, retry_budget


def operational(message: str, **attributes) -> sa_exc.OperationalError:
    original = Exception(message)
    for name, value in attributes.items():
        setattr(original, name, value)
    return sa_exc.OperationalError("INSERT …", {}, original)


TRANSIENT = [
    operational('connection to server at "127.0.0.1", port 5432 failed: Connection refused'),
    operational("FATAL:  the database system is shutting down"),
    operational("FATAL:  the database system is starting up"),
    operational("server closed the connection unexpectedly"),
    operational("terminating connection due to administrator command", sqlstate="57P01"),
    operational("could not serialize access due to concurrent update", sqlstate="40001"),
    operational("database is locked"),
    sa_exc.DisconnectionError("connection was invalidated"),
]
PERMANENT = [
    operational('password authentication failed for user "sb3_nas"'),
    operational("no such table: reward_memo"),
    operational("database or disk is full"),
    sa_exc.IntegrityError("INSERT …", {}, Exception("duplicate key")),
    ValueError("database is locked"),  # not a database error, whatever it says
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: str(e)[:40])
def test_transient_database_errors_are_retried(error):
    assert is_transient(error)


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: str(e)[:40])
def test_errors_retrying_cannot_cure_are_not(error):
    assert not is_transient(error)


class FakeTime:
    def __init__(self):
        self.now, self.waits = 0.0, []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.waits.append(seconds)
        self.now += seconds


def failing(times: int, error: BaseException):
    calls = []

    def action():
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return action, calls


def test_an_outage_shorter_than_the_budget_is_ridden_out_with_growing_capped_jittered_waits(caplog):
    fake = FakeTime()
    retry = Retry(
        budget_s=600, first_s=0.5, cap_s=30, sleep=fake.sleep, clock=fake.clock, rng=random.Random(0)
    )
    action, calls = failing(12, TRANSIENT[1])
    with caplog.at_level(logging.WARNING, logger="sb3_nas.memo"):
        assert retry.call(action, "write an entry") == "done"
    assert len(calls) == 13 and len(fake.waits) == 12
    ceilings = [min(30, 0.5 * 2**k) for k in range(12)]
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(fake.waits, ceilings, strict=True))
    assert max(fake.waits) > 15  # the waits do grow to the cap's range
    assert len(set(fake.waits)) == 12  # jittered: no two workers knock in step
    assert len(caplog.records) == 12  # each retry logged once, saying what failed
    assert "write an entry failed (Exception: FATAL:  the database system is shutting down)" in caplog.text
    assert "retry 1 in" in caplog.text and "retry 12 in" in caplog.text


def test_past_the_budget_the_last_error_goes_through():
    fake = FakeTime()
    retry = Retry(budget_s=20, sleep=fake.sleep, clock=fake.clock, rng=random.Random(1))
    action, calls = failing(10**6, TRANSIENT[0])
    with pytest.raises(sa_exc.OperationalError, match="Connection refused"):
        retry.call(action, "read an entry")
    assert fake.now == pytest.approx(20)  # waited exactly the budget, never past it
    assert len(calls) == len(fake.waits) + 1


def test_a_permanent_error_is_raised_at_once_and_a_zero_budget_never_waits():
    fake = FakeTime()
    action, calls = failing(1, PERMANENT[0])
    with pytest.raises(sa_exc.OperationalError, match="password authentication failed"):
        Retry(budget_s=600, sleep=fake.sleep, clock=fake.clock).call(action, "connect")
    assert len(calls) == 1 and fake.waits == []
    action, calls = failing(1, TRANSIENT[0])
    with pytest.raises(sa_exc.OperationalError):
        Retry(budget_s=0, sleep=fake.sleep, clock=fake.clock).call(action, "connect")
    assert len(calls) == 1 and fake.waits == []


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(MEMO_RETRY_ENV, raising=False)
    assert retry_budget() == 600
    monkeypatch.setenv(MEMO_RETRY_ENV, "45")
    assert retry_budget() == 45 and Retry().budget_s == 45
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(MEMO_RETRY_ENV, bad)
        with pytest.raises(ValueError, match=MEMO_RETRY_ENV):
            retry_budget()
