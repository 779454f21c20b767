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

The parts, one module each: the entry and its checks (``_entry``), its key (``_keys``), where the memo lives
(``_urls``), the tables and their numbered migrations (``_schema``), CSV export and import (``_csv``) and the
store (``_store``). The database engine comes from :mod:`sb3_nas.estimation.database`, which the study
storage shares.
"""

from sb3_nas.estimation.memo._entry import (
    KNOWN_PRECISIONS,
    MEMO_COLUMNS,
    PRECISIONS,
    UNRECORDED_PRECISION,
    MemoEntry,
    MemoError,
    entry_problem,
)
from sb3_nas.estimation.memo._keys import entry_key, key_problem
from sb3_nas.estimation.memo._schema import TABLE_NAME
from sb3_nas.estimation.memo._store import RewardMemo
from sb3_nas.estimation.memo._urls import (
    DEFAULT_MEMO_URL,
    MEMO_URL_ENV,
    database_url,
    default_memo_url,
    masked_url,
)

__all__ = [
    "DEFAULT_MEMO_URL",
    "KNOWN_PRECISIONS",
    "MEMO_COLUMNS",
    "MEMO_URL_ENV",
    "PRECISIONS",
    "TABLE_NAME",
    "UNRECORDED_PRECISION",
    "MemoEntry",
    "MemoError",
    "RewardMemo",
    "database_url",
    "default_memo_url",
    "entry_key",
    "entry_problem",
    "key_problem",
    "masked_url",
]
