"""What the memo stores: :class:`MemoEntry`, the precisions an entry can record and the check of its values;
and :class:`MemoError`, the memo's one error."""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from dataclasses import dataclass, field

from sb3_nas.errors import InputError

# what a training can run in (SpeedSettings: autocast_dtype, bf16_dense); estimator.precision_of names them
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "bf16-dense")
UNRECORDED_PRECISION = "unrecorded"  # an entry stored before the memo recorded the precision
KNOWN_PRECISIONS: tuple[str, ...] = (*PRECISIONS, UNRECORDED_PRECISION)


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


FIELDS = dataclasses.fields(MemoEntry)
MEMO_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
FIELD_TYPES: dict[str, type] = {
    name: hint for name, hint in typing.get_type_hints(MemoEntry).items() if name in MEMO_COLUMNS
}


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
