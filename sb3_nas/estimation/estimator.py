"""Performance estimation with the reward memo in front: no network is ever trained twice (§5)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from sb3_nas.data import DEFAULT_DATASET, ImageDataset, load_dataset
from sb3_nas.errors import InputError
from sb3_nas.estimation.device import AUTO, SpeedSettings, resolve_device
from sb3_nas.estimation.fidelity import Fidelity, get_fidelity
from sb3_nas.estimation.memo import (
    KNOWN_PRECISIONS,
    MemoEntry,
    RewardMemo,
    default_memo_url,
    entry_key,
)
from sb3_nas.estimation.trainer import evaluate_nsc
from sb3_nas.space import canonical_network, validate_nsc

ANY_PRECISION = "any"
_PRECISION_OF_SETTINGS: dict[tuple[torch.dtype | None, bool], str] = {  # (autocast_dtype, bf16_dense)
    (None, False): "fp32",
    (torch.float32, False): "fp32",
    (torch.bfloat16, False): "bf16",
    (torch.bfloat16, True): "bf16-dense",
}


@dataclass(frozen=True)
class Estimate:
    """A memo entry and whether it came from the memo (``memo_hit``) or was just trained."""

    entry: MemoEntry
    memo_hit: bool


def memo_key(dataset_fingerprint: str, network: str, fidelity: Fidelity, precision: str) -> str:
    """The memo's key: dataset content, canonical network, fidelity settings and the numeric precision of
    the training: ``fp32``, ``bf16``, ``bf16-dense``, or ``unrecorded`` for the key entries had
    before the memo recorded the precision (:func:`entry_key`)."""
    return entry_key(dataset_fingerprint, fidelity.id, fidelity.digest, network, precision)


def precision_of(settings: SpeedSettings) -> str:
    """The memo's name for the numeric precision ``settings`` train in: ``fp32``, ``bf16`` (autocast) or
    ``bf16-dense`` (autocast, and the dense layers' weights in bf16)."""
    name = _PRECISION_OF_SETTINGS.get((settings.autocast_dtype, settings.bf16_dense))
    if name is None:
        raise ValueError(
            f"the trainer computes in {settings.autocast_dtype}, which the memo has no precision name for"
        )
    return name


def training_precision(device: str | torch.device | None = AUTO) -> str:
    """The precision the trainer computes in on ``device`` (:func:`precision_of` its
    :meth:`SpeedSettings.for_device`): ``bf16-dense`` on CPUs with native bf16, ``bf16`` on GPUs that run it,
    else ``fp32``."""
    return precision_of(SpeedSettings.for_device(resolve_device(device)))


def accepted_precisions(own: str, accept: str | Iterable[str] | None = None) -> tuple[str, ...]:
    """The precisions whose memo entries answer a request in precision ``own``, ``own`` first.

    :param accept: ``None`` (the default): ``own`` only; ``"any"``: every precision, entries of unrecorded
        precision included; a precision name or several (``"bf16"``, ``["bf16", "unrecorded"]``): those too,
        looked up in that order after ``own``.
    :raises InputError: for a name that is not a precision
    """
    if accept is None:
        names: list[str] = []
    elif accept == ANY_PRECISION:
        names = list(KNOWN_PRECISIONS)
    elif isinstance(accept, str):
        names = [accept]
    else:
        names = list(accept)
    unknown = [name for name in names if name not in KNOWN_PRECISIONS]
    if unknown:
        raise InputError(
            f"accept_precision: unknown precision {unknown[0]!r} (known: {', '.join(KNOWN_PRECISIONS)}, "
            f"or {ANY_PRECISION!r})"
        )
    return tuple(dict.fromkeys([own, *names]))


def parse_precisions(names: str | Sequence[str]) -> tuple[str, ...]:
    """Memo precisions other than the device's own that may answer (``"any"``: all of them, spelled out);
    raises a one-line :class:`~sb3_nas.errors.InputError` naming an unknown precision."""
    names = [names] if isinstance(names, str) else [str(name) for name in names]
    if names == [ANY_PRECISION]:
        return KNOWN_PRECISIONS
    return accepted_precisions(names[0], names) if names else ()


def open_memo(memo: RewardMemo | str | None) -> RewardMemo:
    """A ``RewardMemo`` from an instance, a URL or path, or ``None`` for the default location."""
    if isinstance(memo, RewardMemo):
        return memo
    return RewardMemo(default_memo_url() if memo is None else memo)


class PerformanceEstimator:
    """Scores NSC states on one dataset at one fidelity, through the reward memo.

    :param dataset: a registered dataset name or an ``ImageDataset`` (``None``: the default task)
    :param fidelity: a fidelity name or ``Fidelity`` (``None``: the CPU default)
    :param memo: a ``RewardMemo``, a memo URL or path, or ``None`` for ``results/memo.sqlite``
    :param device: where networks train: ``"auto"`` (the GPU when there is one), ``"cpu"``, ``"cuda:1"``…
    :param accept_precision: memo entries trained in another numeric precision that may answer (see
        :func:`accepted_precisions`). A reward is trained in the precision the device runs
        (:func:`training_precision`: bf16 autocast where the hardware runs it natively, else ``fp32``)
        and stored under a key that includes it. By default (``None``) only entries of that precision
        answer; with ``"any"``, or a list such as ``["bf16", "unrecorded"]``, a miss looks up those
        precisions' keys, in that order, before training. ``"unrecorded"`` names the entries stored before
        the memo recorded a precision.
    """

    def __init__(
        self,
        dataset: ImageDataset | str | None = None,
        fidelity: Fidelity | str | None = None,
        memo: RewardMemo | str | None = None,
        device: str | torch.device | None = AUTO,
        *,
        accept_precision: str | Iterable[str] | None = None,
    ) -> None:
        self.dataset = load_dataset(DEFAULT_DATASET if dataset is None else dataset)
        self.fidelity = get_fidelity(fidelity)
        self.device = resolve_device(device)
        self.precision = training_precision(self.device)
        self.accept_precision = accepted_precisions(self.precision, accept_precision)
        self.memo = open_memo(memo)
        self.n_trained = 0

    def _keys(self, network: str) -> list[str]:
        """The memo keys that answer for ``network``: this estimator's precision, then the accepted ones."""
        return [memo_key(self.dataset.fingerprint, network, self.fidelity, p) for p in self.accept_precision]

    def lookup(self, nsc: Sequence[Sequence[int]]) -> MemoEntry | None:
        """The memo's entry for ``nsc`` (any equivalent state) in a precision this estimator accepts, or
        ``None``; never trains."""
        return self.memo.get_first(self._keys(canonical_network(validate_nsc(nsc))))

    def estimate(self, nsc: Sequence[Sequence[int]]) -> Estimate:
        """The reward entry of ``nsc``: from the memo when any equivalent state was scored before, in this
        estimator's precision or one it accepts (``accept_precision``)."""
        rows = validate_nsc(nsc)
        network = canonical_network(rows)
        keys = self._keys(network)
        stored = self.memo.get_first(keys)
        if stored is not None:
            return Estimate(stored, True)
        evaluation = evaluate_nsc(rows, self.dataset, self.fidelity, self.device)
        self.n_trained += evaluation.n_params > 0  # a network was built and trained
        entry = MemoEntry(
            key=keys[0],
            dataset=self.dataset.name,
            dataset_fingerprint=self.dataset.fingerprint,
            fidelity=self.fidelity.id,
            network=network,
            nsc=json.dumps([list(row) for row in rows]),
            accuracy=evaluation.accuracy,
            valid=evaluation.valid,
            reason=evaluation.reason,
            n_params=evaluation.n_params,
            flops=evaluation.flops,
            train_seconds=evaluation.train_seconds,
            precision=self.precision,
            fidelity_digest=self.fidelity.digest,
        )
        return Estimate(self.memo.put(entry), False)
