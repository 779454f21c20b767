"""Riding out database outages: transient errors retried with capped exponential backoff and jitter.

A multi-day run on a database server must not end because the server restarted, a connection was dropped or
two transactions collided; nor a run on a SQLite file whose lock another process held past the busy timeout.
:func:`is_transient` tells these errors from the ones that retrying cannot cure (a wrong password, a missing
table, a full disk), and :class:`Retry` repeats an action on them for up to its budget
(``--memo-retry SECONDS``, :data:`MEMO_RETRY_ENV`), each wait twice the one before up to a cap, drawn with
full jitter so that many workers do not knock at once. Each retry is logged once, with what failed.

Retrying is safe because every memo write is idempotent (an insert that keeps the first entry of a key), so a
write whose commit was lost with the connection and that is made again changes nothing.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy.exc as sa_exc

from sb3_nas.estimation.database import error_line

MEMO_RETRY_ENV = "SB3_NAS_MEMO_RETRY"  # seconds; the commands' --memo-retry sets it for their workers too
DEFAULT_RETRY_S = 600.0
BACKOFF_FIRST_S = 0.5  # the first wait
BACKOFF_CAP_S = 30.0  # no wait longer than this

# SQLSTATEs of a transaction the server rolled back for colliding with another: serialization failure,
# deadlock; and of a server going away: admin shutdown, crash shutdown, cannot connect now
TRANSIENT_SQLSTATES = frozenset(
    {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08001", "08003", "08006"}
)
# the drivers' words for the same, and SQLite's lock held past its busy timeout
TRANSIENT_MESSAGE = re.compile(
    "|".join(
        (
            r"connection refused",
            r"could not connect",
            r"can't connect",
            r"server closed the connection",
            r"terminating connection",
            r"the database system is (shutting down|starting up|in recovery mode)",
            r"connection (already closed|reset|timed out|is closed)",
            r"no connection to the server",
            r"lost connection",
            r"server has gone away",
            r"broken pipe",
            r"ssl syscall error",
            r"could not serialize access",
            r"deadlock detected",
            r"database is locked",
            r"timeout expired",
        )
    ),
    re.IGNORECASE,
)

logger = logging.getLogger("sb3_nas.memo")

T = TypeVar("T")


def retry_budget() -> float:
    """The seconds of retrying that :data:`MEMO_RETRY_ENV` allows (default :data:`DEFAULT_RETRY_S`); an
    unreadable or negative value is a ``ValueError`` naming the variable."""
    text = os.environ.get(MEMO_RETRY_ENV)
    if text is None or text.strip() == "":
        return DEFAULT_RETRY_S
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{MEMO_RETRY_ENV}={text!r} is not a number of seconds") from None
    if not seconds >= 0:
        raise ValueError(f"{MEMO_RETRY_ENV}={text!r} must be 0 or more seconds")
    return seconds


def _sqlstate(error: BaseException) -> str | None:
    original = getattr(error, "orig", None)
    for candidate in (original, error):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database failure that may pass: a lost or refused connection, a server shutting
    down or starting, a serialization failure or deadlock, SQLite's ``database is locked``."""
    if not isinstance(error, sa_exc.DBAPIError | sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return False
    if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True  # a pool checkout that found the connection dead, or waited too long for one
    if getattr(error, "connection_invalidated", False):
        return True
    if _sqlstate(error) in TRANSIENT_SQLSTATES:
        return True
    return bool(TRANSIENT_MESSAGE.search(str(getattr(error, "orig", None) or error)))


@dataclass
class Retry:
    """Repeat an action on :func:`is_transient` errors for up to ``budget_s`` seconds, then let the last one
    through. Waits grow from ``first_s`` by doubling up to ``cap_s``, each drawn uniformly from (0, wait]
    (full jitter) and never past the budget's end."""

    budget_s: float = field(default_factory=retry_budget)
    first_s: float = BACKOFF_FIRST_S
    cap_s: float = BACKOFF_CAP_S
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def call(self, action: Callable[[], T], what: str) -> T:
        """``action()``, retried as the class says; ``what`` names it in the log (``write an entry``)."""
        deadline: float | None = None
        attempt = 0
        while True:
            try:
                return action()
            except Exception as error:
                if not is_transient(error):
                    raise
                now = self.clock()
                if deadline is None:
                    deadline = now + self.budget_s
                left = deadline - now
                if left <= 0:
                    raise
                wait = min(left, self.rng.uniform(0, min(self.cap_s, self.first_s * 2**attempt)))
                attempt += 1
                logger.warning(
                    "reward memo: %s failed (%s); retry %d in %.1f s (%.0f s of %.0f s left)",
                    what, error_line(error), attempt, wait, left, self.budget_s,
                )  # fmt: skip
                self.sleep(wait)
