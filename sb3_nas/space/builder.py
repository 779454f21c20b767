"""The network builder of §4.1.1 (Fig. 4): NSC rows → a PyTorch CNN with its prediction module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sb3_nas.space.nsc import (
    MERGE,
    NSC,
    InvalidArchitecture,
    LayerType,
    canonical_network,
    layers_of,
    validate_nsc,
)

CONV_FILTERS = 32  # §4.1.1: PCC with 32 units
DENSE_UNITS = 1024  # §4.1.2 prediction module
DROPOUT = 0.4

Shape = tuple[int, int, int]  # (channels, height, width)


@dataclass(frozen=True)
class NetworkPlan:
    """The static description of a buildable network: every node's output shape and the cost."""

    rows: tuple[NSC, ...]  # the layers, terminal dropped
    input_shape: Shape
    shapes: tuple[Shape, ...]  # shapes[0] is the input, shapes[i] the output of layer i
    filters: tuple[int, ...]  # convolution filters per layer (0 for other layers)
    leaves: tuple[int, ...]  # nodes merged by concatenation before the prediction module
    feature_shape: Shape  # what the prediction module flattens
    n_classes: int
    dense_units: int
    conv_flops: int  # multiply-adds ×2 of the feature extractor for one image

    @property
    def network(self) -> str:
        """Canonical string of the network (the memo key's architecture part)."""
        return canonical_network(self.rows)

    @property
    def n_params(self) -> int:
        """Trainable parameters of the built network (:class:`NSCNetwork`), known without building it:
        each convolution's weights, bias and BatchNorm scale and shift, and the prediction module."""
        conv = sum(
            filters * (self.shapes[row.pred1][0] * row.kernel**2 + 3)
            for row, filters in zip(self.rows, self.filters, strict=True)
            if row.type == LayerType.CONVOLUTION
        )
        c, h, w = self.feature_shape
        return conv + (c * h * w + 1) * self.dense_units + (self.dense_units + 1) * self.n_classes

    @property
    def flops(self) -> int:
        """Forward FLOPs for one image, prediction module included."""
        c, h, w = self.feature_shape
        dense = c * h * w * self.dense_units + self.dense_units * self.n_classes
        return self.conv_flops + 2 * dense


def spatial_size(layer_type: LayerType, kernel: int, size: int) -> int:
    """The height (or width) after a single-input layer (§4.1.1): an unpadded convolution gives
    ``size - kernel + 1``, a pooling of stride ``kernel`` gives ``size // kernel``; below 1 is invalid."""
    if layer_type == LayerType.CONVOLUTION:
        return size - kernel + 1
    if layer_type in (LayerType.MAX_POOLING, LayerType.AVG_POOLING):
        return size // kernel
    raise ValueError(f"{LayerType(layer_type).name.lower()} is not a single-input layer")


def _padded(shapes: Sequence[Shape], pad_channels: bool) -> Shape:
    channels = max(s[0] for s in shapes) if pad_channels else sum(s[0] for s in shapes)
    return channels, max(s[1] for s in shapes), max(s[2] for s in shapes)


def _filters_for(conv_filters: int | Callable[[int], int], conv_count: int) -> int:
    return conv_filters(conv_count) if callable(conv_filters) else int(conv_filters)


def plan_network(
    nsc: Sequence[Sequence[int]],
    input_shape: Shape,
    n_classes: int,
    conv_filters: int | Callable[[int], int] = CONV_FILTERS,
    dense_units: int = DENSE_UNITS,
) -> NetworkPlan:
    """Infer every shape of the network of ``nsc`` without building it.

    ``conv_filters`` is a count or a function of the 1-based convolution count (for retraining).
    Raises ``InvalidArchitecture`` when a layer would produce a spatial size below 1, and its
    subclass ``InvalidNSC`` when a row breaks Table 1.
    """
    rows = layers_of(validate_nsc(nsc))
    c, h, w = (int(v) for v in input_shape)
    if min(c, h, w) < 1:
        raise InvalidArchitecture(f"input shape {tuple(input_shape)} is empty")
    shapes: list[Shape] = [(c, h, w)]
    filters: list[int] = []
    read: set[int] = set()
    conv_flops = 0
    conv_count = 0
    for row in rows:
        layer_type = LayerType(row.type)
        source = shapes[row.pred1]
        out_filters = 0
        if layer_type == LayerType.CONVOLUTION:
            conv_count += 1
            out_filters = _filters_for(conv_filters, conv_count)
            out_h, out_w = (spatial_size(layer_type, row.kernel, size) for size in source[1:])
            shape = (out_filters, out_h, out_w)
            conv_flops += 2 * out_h * out_w * out_filters * row.kernel**2 * source[0]
        elif layer_type in (LayerType.MAX_POOLING, LayerType.AVG_POOLING):
            shape = (source[0], *(spatial_size(layer_type, row.kernel, size) for size in source[1:]))
        else:
            shape = _padded((source, shapes[row.pred2]), pad_channels=layer_type == LayerType.ADDITION)
        if min(shape[1], shape[2]) < 1:
            name = layer_type.name.lower().replace("_", "-")
            raise InvalidArchitecture(
                f"layer {row.index} ({name} {row.kernel}) on a {source[1]}x{source[2]} input "
                "would produce a spatial size below 1"
            )
        read.update((row.pred1, row.pred2) if layer_type in MERGE else (row.pred1,))
        shapes.append(shape)
        filters.append(out_filters)
    leaves = tuple(i for i in range(1, len(shapes)) if i not in read) or (0,)
    feature_shape = shapes[leaves[0]] if len(leaves) == 1 else _padded([shapes[i] for i in leaves], False)
    return NetworkPlan(
        rows=rows,
        input_shape=shapes[0],
        shapes=tuple(shapes),
        filters=tuple(filters),
        leaves=leaves,
        feature_shape=feature_shape,
        n_classes=int(n_classes),
        dense_units=int(dense_units),
        conv_flops=conv_flops,
    )


def pad_to(x: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """Zero-pad an NCHW tensor: spatially centred, channels at the end (§4.1.1 rule 2)."""
    dc, dh, dw = channels - x.shape[1], height - x.shape[2], width - x.shape[3]
    if dc == dh == dw == 0:
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2, 0, dc))


class PreActivationConv(nn.Sequential):
    """Pre-activation convolutional cell: ReLU → Conv2d (no padding) → BatchNorm2d."""

    def __init__(self, in_channels: int, filters: int, kernel: int) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(in_channels, filters, kernel), nn.BatchNorm2d(filters))


class NSCNetwork(nn.Module):
    """A CNN built from NSC rows: the layers as a DAG over node 0 (the image), leaves merged, then
    the prediction module Flatten → Linear(1024) → ReLU → Dropout(0.4) → Linear(n_classes)."""

    def __init__(self, plan: NetworkPlan, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.plan = plan
        layers: list[nn.Module] = []
        for row, filters in zip(plan.rows, plan.filters, strict=True):
            layer_type = LayerType(row.type)
            if layer_type == LayerType.CONVOLUTION:
                layers.append(PreActivationConv(plan.shapes[row.pred1][0], filters, row.kernel))
            elif layer_type == LayerType.MAX_POOLING:
                layers.append(nn.MaxPool2d(row.kernel, stride=row.kernel))
            elif layer_type == LayerType.AVG_POOLING:
                layers.append(nn.AvgPool2d(row.kernel, stride=row.kernel))
            else:
                layers.append(nn.Identity())  # merges have no parameters
        self.layers = nn.ModuleList(layers)
        c, h, w = plan.feature_shape
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, plan.dense_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(plan.dense_units, plan.n_classes),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Run the searched layers and merge the leaves; returns the input of the prediction module."""
        outputs = [x]
        for row, layer, shape in zip(self.plan.rows, self.layers, self.plan.shapes[1:], strict=True):
            if row.type == LayerType.ADDITION:
                outputs.append(pad_to(outputs[row.pred1], *shape) + pad_to(outputs[row.pred2], *shape))
            elif row.type == LayerType.CONCATENATION:
                inputs = [outputs[row.pred1], outputs[row.pred2]]
                outputs.append(torch.cat([pad_to(t, t.shape[1], *shape[1:]) for t in inputs], dim=1))
            else:
                outputs.append(layer(outputs[row.pred1]))
        leaves = [outputs[i] for i in self.plan.leaves]
        if len(leaves) == 1:
            return leaves[0]
        _, height, width = self.plan.feature_shape
        return torch.cat([pad_to(t, t.shape[1], height, width) for t in leaves], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_network(
    nsc: Sequence[Sequence[int]],
    input_shape: Shape,
    n_classes: int,
    conv_filters: int | Callable[[int], int] = CONV_FILTERS,
    dense_units: int = DENSE_UNITS,
    dropout: float = DROPOUT,
) -> NSCNetwork:
    """Build the network of ``nsc`` for images of ``input_shape`` = (channels, height, width).

    Raises ``InvalidArchitecture`` (with ``.reason``) for anything that cannot be built, an illegal
    NSC row included.
    """
    return NSCNetwork(plan_network(nsc, input_shape, n_classes, conv_filters, dense_units), dropout)
