"""The baseline of benchmarks/run.py: the early-stop training written as a user would write it in PyTorch.

Same network, initial weights, epochs, batch size, Adam settings, StepLR schedule, split and images as
``sb3_nas.estimation.train_and_test``; the differences are the ones a first implementation has: float32
images in a ``TensorDataset`` served by a ``DataLoader`` (per-sample indexing and collation, a host-side
shuffle), every batch copied to the device, default Adam, no mixed precision, ``.item()`` per test batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sb3_nas.estimation import Fidelity, PreparedData


def to_float_datasets(data: PreparedData) -> tuple[TensorDataset, TensorDataset]:
    """The prepared images as float32 in [0, 1] on the host, once per dataset (not timed)."""
    train = TensorDataset(data.train_x.cpu().float() / 255.0, data.train_y.cpu())
    test = TensorDataset(data.test_x.cpu().float() / 255.0, data.test_y.cpu())
    return train, test


def plain_train_and_test(
    network: nn.Module,
    train: TensorDataset,
    test: TensorDataset,
    fidelity: Fidelity,
    device: torch.device,
) -> float:
    """Train as §4.1.2 prescribes with a DataLoader loop; return the test accuracy."""
    network.to(device)
    generator = torch.Generator().manual_seed(fidelity.seed)
    loader = DataLoader(train, batch_size=fidelity.batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(
        network.parameters(),
        lr=fidelity.learning_rate,
        betas=(fidelity.beta1, fidelity.beta2),
        eps=fidelity.adam_eps,
    )
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, fidelity.lr_decay_every, fidelity.lr_decay_factor)
    for _ in range(fidelity.epochs):
        network.train()
        for x, y in loader:
            if len(x) < 2:
                continue  # BatchNorm cannot train on a single image
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(network(x), y)
            loss.backward()
            optimizer.step()
        if fidelity.lr_schedule:
            schedule.step()
    network.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test, batch_size=fidelity.batch_size):
            correct += (network(x.to(device)).argmax(dim=1) == y.to(device)).sum().item()
    return correct / len(test)
