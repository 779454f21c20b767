"""The early-stop trainer of §4.1.2: train a sampled network briefly, reward = test accuracy.

Three entry points return an :class:`Evaluation` (a failure is a reward of 0 with its reason), each named by
what it is given, each calling the next:

* :func:`evaluate_nsc` — NSC rows and a dataset: prepares the data, plans the network;
* :func:`evaluate_plan` — a planned network and prepared data: refuses one above the parameter limit unbuilt;
* :func:`evaluate_network` — a function building any ``nn.Module``: seeds the build, catches the failures;

and :func:`train_and_test` is the training loop itself: it trains a built network and returns its test
accuracy, raising on a failure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sb3_nas.data import ImageDataset
from sb3_nas.estimation.device import SpeedSettings, resolve_device
from sb3_nas.estimation.fidelity import Fidelity, FidelityError
from sb3_nas.space import InvalidArchitecture, NetworkPlan, NSCNetwork, plan_network

EVAL_BATCH = 1024  # test images per forward pass (no gradients, so memory allows large batches)


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

    def to(self, device: torch.device) -> PreparedData:
        """The same tensors on ``device`` (still uint8: converted to float per batch)."""
        moved = [t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)]
        return PreparedData(*moved, self.n_classes)

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

    try:
        kept, _ = train_test_split(train_idx, train_size=cap, stratify=labels[train_idx], random_state=seed)
    except ValueError:
        # scikit-learn needs every class on both sides; when fewer images are left out than there are
        # classes, deal each class's images in a seeded order, and keep the first ``cap`` dealt
        order = np.random.default_rng(seed).permutation(train_idx)
        classes = labels[order]
        rank = np.zeros(len(order))
        for label in np.unique(classes):
            members = classes == label
            rank[members] = (np.arange(members.sum()) + 0.5) / members.sum()
        kept = order[np.argsort(rank, kind="stable")[:cap]]
    return np.sort(kept)


_PREPARED: dict[tuple[str, str, str], PreparedData] = {}


def prepare_data(
    dataset: ImageDataset, fidelity: Fidelity, device: str | torch.device | None = None
) -> PreparedData:
    """Split (stratified, deterministic, 1/3 test) and resize once per dataset and fidelity, then keep the
    uint8 tensors on ``device`` (``None``/``"auto"``: the GPU when there is one)."""
    device = resolve_device(device)
    key = (dataset.fingerprint, fidelity.digest, str(device))
    if key not in _PREPARED:
        host_key = (dataset.fingerprint, fidelity.digest, "cpu")
        if host_key not in _PREPARED:
            _PREPARED[host_key] = _prepare(dataset, fidelity)
        _PREPARED[key] = _PREPARED[host_key].to(device)
    return _PREPARED[key]


def check_data_fits(dataset: ImageDataset, fidelity: Fidelity) -> None:
    """Raise :class:`FidelityError` (one line) when ``fidelity`` cannot prepare ``dataset``: colour images
    asked for as grey, or a training cap below the number of classes. Cheap: nothing is resized."""
    channels = dataset.image_shape[2]
    if fidelity.channels is not None and channels not in (1, fidelity.channels):
        raise FidelityError(
            f"fidelity {fidelity.name!r} makes {fidelity.channels}-channel images, but dataset "
            f"{dataset.name!r} has {channels} channels"
        )
    cap = fidelity.max_train_images
    if cap is not None and cap < dataset.n_classes:
        raise FidelityError(
            f"fidelity {fidelity.name!r}: max_train_images={cap} cannot keep an image of each of the "
            f"{dataset.n_classes} classes of dataset {dataset.name!r}"
        )


def _prepare(dataset: ImageDataset, fidelity: Fidelity) -> PreparedData:
    check_data_fits(dataset, fidelity)
    train_idx, test_idx = dataset.split(fidelity.test_fraction, fidelity.split_seed)
    train_idx = _cap_stratified(train_idx, dataset.labels, fidelity.max_train_images, fidelity.split_seed)
    try:
        x = _resize(dataset.images, fidelity.image_size, fidelity.channels)
    except (MemoryError, RuntimeError) as error:  # an allocation that fails: the image size is too large
        size = fidelity.image_size
        raise FidelityError(
            f"fidelity {fidelity.name!r}: dataset {dataset.name!r} at {size}x{size} does not fit in memory "
            f"({_failure_reason(error)})"
        ) from None
    y = torch.tensor(dataset.labels, dtype=torch.int64)
    train_t, test_t = torch.tensor(train_idx), torch.tensor(test_idx)
    return PreparedData(x[train_t], y[train_t], x[test_t], y[test_t], dataset.n_classes)


def _batch(images: torch.Tensor, index: torch.Tensor, settings: SpeedSettings) -> torch.Tensor:
    """uint8 rows → float in [0, 1] (§4.1.2), converted per batch on the device."""
    x = images.index_select(0, index).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if settings.channels_last else x


@torch.enable_grad()  # a caller may hold gradients off: sb3-contrib's ARS evaluates its candidates so
def train_and_test(
    network: nn.Module, data: PreparedData, fidelity: Fidelity, settings: SpeedSettings | None = None
) -> float:
    """Train ``network`` as §4.1.2 prescribes and return its accuracy on the test third.

    Runs where ``data`` lives. Batches are slices of a permutation drawn on the device, so the epoch loop
    never waits for the host; divergence is checked once, after training.
    """
    device = data.train_x.device
    settings = SpeedSettings.for_device(device) if settings is None else settings
    settings.apply(network, device)
    generator = torch.Generator(device=device).manual_seed(fidelity.seed)
    optimizer = torch.optim.Adam(
        network.parameters(),
        lr=fidelity.learning_rate,
        betas=(fidelity.beta1, fidelity.beta2),
        eps=fidelity.adam_eps,
        fused=settings.fused_adam or None,
    )
    schedule = (
        torch.optim.lr_scheduler.StepLR(optimizer, fidelity.lr_decay_every, fidelity.lr_decay_factor)
        if fidelity.lr_schedule
        else None
    )
    dtype = settings.autocast_dtype
    autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    n_train = data.train_x.shape[0]
    finite = torch.ones((), dtype=torch.bool, device=device)
    for _ in range(fidelity.epochs):
        network.train()
        order = torch.randperm(n_train, generator=generator, device=device)
        for start in range(0, n_train, fidelity.batch_size):
            index = order[start : start + fidelity.batch_size]
            if len(index) < 2 and start > 0:
                break  # BatchNorm cannot train on a single image
            with autocast:
                loss = F.cross_entropy(network(_batch(data.train_x, index, settings)), data.train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        finite &= torch.isfinite(loss.detach())
        if schedule is not None:
            schedule.step()
    if not bool(finite):  # the one host synchronisation of the training
        raise FloatingPointError("the training loss diverged (non-finite)")
    return _test_accuracy(network, data, settings, autocast)


def _test_accuracy(network: nn.Module, data: PreparedData, settings: SpeedSettings, autocast) -> float:
    network.eval()
    correct = torch.zeros((), dtype=torch.int64, device=data.test_x.device)
    n_test = data.test_x.shape[0]
    with torch.inference_mode(), autocast:
        for start in range(0, n_test, EVAL_BATCH):
            index = torch.arange(start, min(start + EVAL_BATCH, n_test), device=data.test_x.device)
            logits = network(_batch(data.test_x, index, settings))
            correct += (logits.argmax(dim=1) == data.test_y[index]).sum()
    return int(correct) / n_test


def evaluate_nsc(
    nsc: Sequence[Sequence[int]],
    dataset: ImageDataset,
    fidelity: Fidelity,
    device: str | torch.device | None = None,
) -> Evaluation:
    """Build, train and score the network of ``nsc``; any failure is a reward of 0 with its reason.

    ``device``: where to train (``None``/``"auto"``: the GPU when there is one, else the CPU).
    """
    data = prepare_data(dataset, fidelity, device)
    try:
        plan = plan_network(nsc, data.input_shape, data.n_classes)
    except InvalidArchitecture as error:
        return Evaluation(0.0, False, error.reason)
    return evaluate_plan(plan, data, fidelity)


# failures the trainer expects (divergence, out of memory, CUDA errors): their message says what happened
EXPECTED_FAILURES = (FloatingPointError, RuntimeError, MemoryError)


def _failure_reason(error: BaseException) -> str:
    """The first line of ``error``'s message (or its type's name when it has none); another kind of
    exception than :data:`EXPECTED_FAILURES` is named by its type first, ``ValueError: …``."""
    message = str(error).strip()
    first = message.splitlines()[0] if message else type(error).__name__
    if message and not isinstance(error, EXPECTED_FAILURES):
        first = f"{type(error).__name__}: {first}"
    return first


def too_many_parameters(n_params: int, fidelity: Fidelity) -> str:
    """The reason a network of ``n_params`` parameters may not be trained at ``fidelity``, or ``""``."""
    limit = fidelity.max_params
    return f"too many parameters: {n_params} > {limit}" if limit is not None and n_params > limit else ""


def evaluate_network(
    build: Callable[[], nn.Module],
    data: PreparedData,
    fidelity: Fidelity,
    settings: SpeedSettings | None = None,
) -> Evaluation:
    """Build a network with the torch RNG seeded by ``fidelity.seed``, train it and score it (§4.1.2).

    The seeding happens on a private copy of the RNG: the same ``build``, data and fidelity give the same
    accuracy, and the caller's RNG is left untouched. Any failure of the building or the training (an
    exception such as a non-finite loss or out of memory, a network above ``fidelity.max_params``) gives an
    invalid :class:`Evaluation` with accuracy 0 and a one-line reason: ``training failed: <first line>`` or
    ``too many parameters: N > LIMIT``. ``train_seconds`` is the time spent building and training, also for a
    failed training; ``flops`` is left 0 (a module alone does not tell it).

    :param build: makes the untrained network; it may raise :class:`InvalidArchitecture`, which propagates
    :param settings: how to run the training (``None``: the best for the data's device)
    """
    start = time.perf_counter()
    n_params, accuracy, reason = 0, 0.0, ""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fidelity.seed)
        network: nn.Module | None = None
        try:
            network = build()
            n_params = sum(p.numel() for p in network.parameters())
            reason = too_many_parameters(n_params, fidelity)
            if not reason:
                accuracy = train_and_test(network, data, fidelity, settings)
        except InvalidArchitecture:
            raise
        except Exception as error:  # any failure scores 0 with its reason, and the run goes on
            reason = f"training failed: {_failure_reason(error)}"
    seconds = time.perf_counter() - start
    if reason:
        del network  # with the exception gone, nothing holds the failed network's memory any more
        if data.train_x.is_cuda:
            torch.cuda.empty_cache()  # an out-of-memory network must not starve the next one
        return Evaluation(0.0, False, reason, n_params, train_seconds=seconds)
    return Evaluation(accuracy, True, "", n_params, train_seconds=seconds)


def evaluate_plan(
    plan: NetworkPlan, data: PreparedData, fidelity: Fidelity, settings: SpeedSettings | None = None
) -> Evaluation:
    """Train and score a planned network (:func:`evaluate_network`), turning failures (NaN, out of memory, any
    exception of the training) into reward 0; a failed training records no training time.

    A plan above ``fidelity.max_params`` parameters is refused before anything is built: reward 0, the
    reason ``too many parameters: N > LIMIT`` and ``n_params`` 0, as for any network that was not built.
    ``settings``: how to run the training (``None``: the best for the data's device).
    """
    refused = too_many_parameters(plan.n_params, fidelity)
    if refused:
        return Evaluation(0.0, False, refused, flops=plan.flops)
    evaluation = evaluate_network(lambda: NSCNetwork(plan), data, fidelity, settings)
    seconds = evaluation.train_seconds if evaluation.valid else 0.0
    return dataclasses.replace(evaluation, flops=plan.flops, train_seconds=seconds)
