"""Where the memo lives: the default location, a plain path or a URL read as an SQLAlchemy URL, and a URL as
messages show it (no password)."""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from sb3_nas.estimation.memo._entry import MemoError

DEFAULT_MEMO_URL = "sqlite:///results/memo.sqlite"
MEMO_URL_ENV = "SB3_NAS_MEMO"

_DIALECTS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql", "cockroachdb")
# a dialect (and driver) followed by ':' without '//', or by '//' without ':' — a URL with a typo, not a path
_MISTYPED_SCHEME = re.compile(rf"^(?:{'|'.join(_DIALECTS)})(?:\+[\w.]+)?(?::(?!//)|//)", re.IGNORECASE)


def default_memo_url() -> str:
    """The memo URL to use when none is given: ``$SB3_NAS_MEMO`` if set, else :data:`DEFAULT_MEMO_URL`."""
    return os.environ.get(MEMO_URL_ENV) or DEFAULT_MEMO_URL


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
