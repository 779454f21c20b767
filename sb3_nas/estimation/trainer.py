"""The early-stop trainer of §4.1.2: train a sampled network briefly, reward = test accuracy."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sb3_nas.data import ImageDataset
from sb3_nas.estimation.fidelity import Fidelity
from sb3_nas.space import InvalidArchitecture, NetworkPlan, NSCNetwork, plan_network


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one early-stop training; ``accuracy`` is 0 when ``valid`` is False."""

    accuracy: float
    valid: bool
    reason: str = ""
    n_params: int = 0
    flops: int = 0
    train_seconds: float = 0.0


@dataclass(frozen=True)
class PreparedData:
    """A dataset split and resized for one fidelity, held as uint8 NCHW tensors."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def _resize(images: np.ndarray, size: int, channels: int | None) -> torch.Tensor:
    x = torch.tensor(images).permute(0, 3, 1, 2).float()  # a copy: dataset arrays are read-only
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ValueError(f"cannot turn {x.shape[1]}-channel images into {channels} channels")
        x = x.expand(-1, channels, -1, -1)
    if x.shape[2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8).contiguous()


def _cap_stratified(train_idx: np.ndarray, labels: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Keep at most ``cap`` training images, the same share of each class."""
    if cap is None or len(train_idx) <= cap:
        return train_idx
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(train_idx, train_size=cap, stratify=labels[train_idx], random_state=seed)
    return np.sort(kept)


_PREPARED: dict[tuple[str, str], PreparedData] = {}


def prepare_data(dataset: ImageDataset, fidelity: Fidelity) -> PreparedData:
    """Split (stratified, deterministic, 1/3 test) and resize, once per dataset and fidelity."""
    key = (dataset.fingerprint, fidelity.digest)
    if key not in _PREPARED:
        _PREPARED[key] = _prepare(dataset, fidelity)
    return _PREPARED[key]


def _prepare(dataset: ImageDataset, fidelity: Fidelity) -> PreparedData:
    train_idx, test_idx = dataset.split(fidelity.test_fraction, fidelity.split_seed)
    train_idx = _cap_stratified(train_idx, dataset.labels, fidelity.max_train_images, fidelity.split_seed)
    x = _resize(dataset.images, fidelity.image_size, fidelity.channels)
    y = torch.tensor(dataset.labels, dtype=torch.int64)
    train_t, test_t = torch.tensor(train_idx), torch.tensor(test_idx)
    return PreparedData(x[train_t], y[train_t], x[test_t], y[test_t], dataset.n_classes)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0)  # §4.1.2: images scaled to [0, 1]


def train_and_score(network: nn.Module, data: PreparedData, fidelity: Fidelity) -> float:
    """Train ``network`` as §4.1.2 prescribes and return its accuracy on the test third."""
    generator = torch.Generator().manual_seed(fidelity.seed)
    optimizer = torch.optim.Adam(
        network.parameters(),
        lr=fidelity.learning_rate,
        betas=(fidelity.beta1, fidelity.beta2),
        eps=fidelity.adam_eps,
    )
    schedule = (
        torch.optim.lr_scheduler.StepLR(optimizer, fidelity.lr_decay_every, fidelity.lr_decay_factor)
        if fidelity.lr_schedule
        else None
    )
    n_train = data.train_x.shape[0]
    for _ in range(fidelity.epochs):
        network.train()
        order = torch.randperm(n_train, generator=generator)
        for start in range(0, n_train, fidelity.batch_size):
            batch = order[start : start + fidelity.batch_size]
            if len(batch) < 2 and start > 0:
                break  # BatchNorm cannot train on a single image
            loss = F.cross_entropy(network(_to_float(data.train_x[batch])), data.train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if not torch.isfinite(loss):
            raise FloatingPointError("the training loss diverged (non-finite)")
        if schedule is not None:
            schedule.step()
    network.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, data.test_x.shape[0], 1024):
            logits = network(_to_float(data.test_x[start : start + 1024]))
            correct += int((logits.argmax(dim=1) == data.test_y[start : start + 1024]).sum())
    return correct / data.test_x.shape[0]


def evaluate_nsc(nsc: Sequence[Sequence[int]], dataset: ImageDataset, fidelity: Fidelity) -> Evaluation:
    """Build, train and score the network of ``nsc``; any failure is a reward of 0 with its reason."""
    data = prepare_data(dataset, fidelity)
    try:
        plan = plan_network(nsc, data.input_shape, data.n_classes)
    except InvalidArchitecture as error:
        return Evaluation(0.0, False, error.reason)
    return evaluate_plan(plan, data, fidelity)


def evaluate_plan(plan: NetworkPlan, data: PreparedData, fidelity: Fidelity) -> Evaluation:
    """Train and score a planned network, turning failures (NaN, out of memory) into reward 0."""
    start = time.perf_counter()
    # A private RNG: same network, data, fidelity and seed → same accuracy, and the agent's RNG is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fidelity.seed)
        network = NSCNetwork(plan)
        n_params = sum(p.numel() for p in network.parameters())
        try:
            accuracy = train_and_score(network, data, fidelity)
        except (FloatingPointError, RuntimeError, MemoryError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return Evaluation(0.0, False, f"training failed: {reason}", n_params, plan.flops)
    return Evaluation(accuracy, True, "", n_params, plan.flops, time.perf_counter() - start)
