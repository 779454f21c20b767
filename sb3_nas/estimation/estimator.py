"""Performance estimation with the reward memo in front: no network is ever trained twice (§5)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sb3_nas.data import DEFAULT_DATASET, ImageDataset, load_dataset
from sb3_nas.estimation.device import AUTO, resolve_device
from sb3_nas.estimation.fidelity import Fidelity, get_fidelity
from sb3_nas.estimation.memo import MemoEntry, RewardMemo, default_memo_url
from sb3_nas.estimation.trainer import evaluate_nsc
from sb3_nas.space import canonical_network, validate_nsc


@dataclass(frozen=True)
class Estimate:
    """A memo entry and whether it came from the memo (``memo_hit``) or was just trained."""

    entry: MemoEntry
    memo_hit: bool


def memo_key(dataset_fingerprint: str, network: str, fidelity: Fidelity) -> str:
    """The memo's key: dataset content, canonical network and fidelity settings (SPEC §5)."""
    text = f"{dataset_fingerprint}|{fidelity.id}|{fidelity.digest}|{network}"
    return hashlib.sha256(text.encode()).hexdigest()


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
    """

    def __init__(
        self,
        dataset: ImageDataset | str | None = None,
        fidelity: Fidelity | str | None = None,
        memo: RewardMemo | str | None = None,
        device: str | torch.device | None = AUTO,
    ) -> None:
        self.dataset = load_dataset(DEFAULT_DATASET if dataset is None else dataset)
        self.fidelity = get_fidelity(fidelity)
        self.memo = open_memo(memo)
        self.device = resolve_device(device)
        self.n_trained = 0

    def estimate(self, nsc: Sequence[Sequence[int]]) -> Estimate:
        """The reward entry of ``nsc``: from the memo when any equivalent state was scored before."""
        rows = validate_nsc(nsc)
        network = canonical_network(rows)
        key = memo_key(self.dataset.fingerprint, network, self.fidelity)
        stored = self.memo.get(key)
        if stored is not None:
            return Estimate(stored, True)
        evaluation = evaluate_nsc(rows, self.dataset, self.fidelity, self.device)
        self.n_trained += evaluation.n_params > 0  # a network was built and trained
        entry = MemoEntry(
            key=key,
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
        )
        return Estimate(self.memo.put(entry), False)
