"""The memo key of a reward (:func:`entry_key`) and the check that an entry is stored under its own key."""

from __future__ import annotations

import hashlib
import json

from sb3_nas.errors import InputError
from sb3_nas.estimation.fidelity import get_fidelity
from sb3_nas.estimation.memo._entry import KNOWN_PRECISIONS, UNRECORDED_PRECISION, MemoEntry
from sb3_nas.space.nsc import canonical_network, validate_nsc


def entry_key(
    dataset_fingerprint: str, fidelity_id: str, fidelity_digest: str, network: str, precision: str
) -> str:
    """The memo key of a reward: dataset content, fidelity (``name@version`` and the digest of its settings),
    numeric precision and canonical network.

    For :data:`UNRECORDED_PRECISION` it is the key of the memo before the precision was recorded (the
    precision is left out of the hashed text), so the entries stored then keep answering to their keys; a
    canonical network never starts with a precision's name, so the two kinds of key never collide.
    """
    if precision not in KNOWN_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(KNOWN_PRECISIONS)})")
    parts = [dataset_fingerprint, fidelity_id, fidelity_digest]
    if precision != UNRECORDED_PRECISION:
        parts.append(precision)
    return hashlib.sha256("|".join([*parts, network]).encode()).hexdigest()


def _registered_digest(fidelity_id: str) -> str:
    """The digest of the registered fidelity ``name@version``; ValueError when there is none of that id."""
    name, sep, _version = fidelity_id.rpartition("@")
    if not sep:
        raise ValueError(f"fidelity {fidelity_id!r} is not name@version")
    try:
        fidelity = get_fidelity(name)
    except InputError:
        fidelity = None
    if fidelity is None or fidelity.id != fidelity_id:
        registered = "" if fidelity is None else f" (registered here: {fidelity.id})"
        raise ValueError(
            f"fidelity {fidelity_id} has no fidelity_digest and is not registered here{registered}, "
            "so the key cannot be checked"
        )
    return fidelity.digest


def key_problem(entry: MemoEntry) -> str | None:
    """Why ``entry``'s key is not the key of its content, or None when it is.

    The key is recomputed with :func:`entry_key` from the row's dataset fingerprint, fidelity id and digest,
    precision and the canonical network of its NSC (which must also be the row's ``network``). A row without a
    fidelity digest (stored before the memo recorded it) is checked with the digest of the fidelity registered
    under its id (``get_fidelity(name)``, overrides included); a fidelity id not registered here is refused.
    """
    try:
        rows = validate_nsc(json.loads(entry.nsc))
    except (TypeError, ValueError) as err:  # json.JSONDecodeError and InvalidNSC are ValueErrors
        return f"nsc {entry.nsc!r} is not an NSC state ({err})"
    network = canonical_network(rows)
    if network != entry.network:
        return f"network {entry.network!r} is not the network of its nsc ({network})"
    try:
        digest = entry.fidelity_digest or _registered_digest(entry.fidelity)
    except ValueError as err:
        return str(err)
    expected = entry_key(entry.dataset_fingerprint, entry.fidelity, digest, network, entry.precision)
    if entry.key != expected:
        return (
            f"key {entry.key} is not the key of the row's dataset_fingerprint, fidelity, fidelity_digest, "
            f"precision and nsc ({expected})"
        )
    return None
