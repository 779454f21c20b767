"""Where and how the early-stop trainer runs: device choice, CPU threads and the speed settings per device.

Device, threads, channels-last and fused Adam change how fast a reward is computed, not what it measures
(network, epochs, batch size, optimizer, schedule and split come from the fidelity), so the memo does not key
on them. The autocast precision changes an accuracy slightly: the memo keys on it (``MemoEntry.precision``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
from torch import nn

from sb3_nas.errors import InputError


class DeviceError(InputError):
    """A device that does not exist on this machine."""


AUTO = "auto"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: the first CUDA GPU when there is one, else the CPU; otherwise the named device."""
    if device is None or device == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise DeviceError(f"unknown device {device!r}: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} asked for, but this machine has no CUDA GPU (use cpu or auto)")
    return resolved


def worker_devices(device: str, count: int) -> list[str]:
    """The devices of ``count`` concurrent workers asked to train on ``device``: with ``auto`` and several
    visible GPUs, one GPU each in turn (worker ``i`` on ``cuda:{i % GPUs}``), so that they do not all queue on
    the first; otherwise ``device`` for every one."""
    gpus = torch.cuda.device_count() if device == AUTO and torch.cuda.is_available() else 0
    if gpus < 2:
        return [device] * count
    return [f"cuda:{index % gpus}" for index in range(count)]


def physical_cores() -> int:
    """Cores this process may use (affinity), counting each hyper-threaded pair once when Linux says so."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    try:
        with open("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list") as siblings:
            per_core = _count_cpu_list(siblings.read())
    except (OSError, ValueError):
        per_core = 1
    return max(1, usable // max(1, per_core))


def _count_cpu_list(text: str) -> int:
    """CPUs in a Linux cpu list such as ``0,4`` or ``0-3``."""
    count = 0
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def configure_threads(workers: int = 1) -> int:
    """Give each of ``workers`` concurrent trainers an equal share of the physical cores; returns the count.

    Intra-op threads beyond the physical cores only add contention for these small networks, and several
    worker processes each using every core would oversubscribe the machine.
    """
    threads = max(1, physical_cores() // max(1, workers))
    torch.set_num_threads(threads)
    return threads


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class _FlattenKeepingLayout(torch.autograd.Function):
    """``x.flatten(1)`` whose gradient comes back in ``x``'s channels_last layout."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.flatten(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.reshape(ctx.shape).contiguous(memory_format=torch.channels_last)


class LayoutKeepingFlatten(nn.Flatten):
    """``nn.Flatten`` (same features, same order) that gives a channels_last input a channels_last gradient.

    Flattening a channels_last feature map copies it to the NCHW order the dense layer reads; autograd then
    returns an NCHW gradient, and the BatchNorm before it runs its backward on mixed layouts, a slow path
    (on CPU, 250 ms per call, 40% of a paper-fidelity 1-layer network's step: benchmarks/RESULTS.md). Turning
    the gradient back to channels_last costs one copy of it; the values are the same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keeps_layout = (
            self.start_dim == 1
            and self.end_dim == -1
            and x.dim() == 4
            and x.requires_grad
            and torch.is_grad_enabled()
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
        )
        return _FlattenKeepingLayout.apply(x) if keeps_layout else super().forward(x)


def _keep_layout_through_flatten(network: nn.Module) -> None:
    """Replace every plain ``nn.Flatten`` of ``network`` by :class:`LayoutKeepingFlatten` (no parameters, so
    the ``state_dict`` is unchanged)."""
    for module in list(network.modules()):
        for name, child in module.named_children():
            if type(child) is nn.Flatten:
                setattr(module, name, LayoutKeepingFlatten(child.start_dim, child.end_dim))


@dataclass(frozen=True)
class SpeedSettings:
    """How the trainer runs on a device; ``for_device`` picks the measured best (benchmarks/RESULTS.md).

    bf16 autocast computes convolutions and matmuls in bfloat16; BatchNorm's weights and running statistics,
    the loss and the optimizer state stay fp32, so accuracies move by a few tenths of a point at most.
    ``bf16_dense`` (with bf16 autocast only) also holds the dense layers' weights, their gradients and their
    Adam state in bf16 instead of fp32: the prediction module's first layer, with 220 M weights behind an
    84×84 convolution, then no longer costs two casts of its weights per step and half the optimizer's memory
    traffic. It changes the reward's numerics (the memo's precision ``bf16-dense``);
    ``benchmarks/precision.py`` measures by how much against the seed-to-seed spread.
    """

    channels_last: bool = False
    autocast_dtype: torch.dtype | None = None
    fused_adam: bool = False
    bf16_dense: bool = False
    flatten_keeps_layout: bool = True  # with channels_last: LayoutKeepingFlatten instead of nn.Flatten

    def __post_init__(self) -> None:
        if self.bf16_dense and self.autocast_dtype != torch.bfloat16:
            raise ValueError(
                f"bf16_dense needs bf16 autocast (the dense layers read bf16), not {self.autocast_dtype}"
            )

    def apply(self, network: nn.Module, device: torch.device) -> nn.Module:
        """Move ``network`` to ``device`` laid out for these settings, in place: channels_last memory (with
        ``flatten_keeps_layout``, its flattening keeps the gradient's layout: :class:`LayoutKeepingFlatten`)
        and, with ``bf16_dense``, the dense layers in bfloat16. Returns ``network``."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        network.to(device=device, memory_format=memory_format)
        if self.channels_last and self.flatten_keeps_layout:
            _keep_layout_through_flatten(network)
        if self.bf16_dense:
            for module in network.modules():
                if isinstance(module, nn.Linear):
                    module.to(torch.bfloat16)
        return network

    @classmethod
    @functools.cache  # asked once per network trained; the answer depends on the device only
    def for_device(cls, device: torch.device) -> SpeedSettings:
        """channels_last and fused Adam everywhere; bf16 autocast where the hardware runs it natively; on
        those CPUs the dense layers in bf16 too (measured there; on GPUs not yet: they keep fp32 weights)."""
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            bf16 = torch.cuda.is_bf16_supported()
        else:
            bf16 = cpu_has_native_bf16()
        return cls(
            channels_last=True,
            autocast_dtype=torch.bfloat16 if bf16 else None,
            fused_adam=True,
            bf16_dense=bf16 and device.type == "cpu",
        )
