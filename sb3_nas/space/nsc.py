"""Network Structure Code (NSC) vectors: the search space of §4.1.1, Table 1."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum
from numbers import Integral, Real
from typing import NamedTuple

MAX_DEPTH = 10  # d, §6.1


class LayerType(IntEnum):
    """Layer type codes of Table 1 (4, identity, is omitted by the paper)."""

    EMPTY = 0
    CONVOLUTION = 1
    MAX_POOLING = 2
    AVG_POOLING = 3
    ADDITION = 5
    CONCATENATION = 6
    TERMINAL = 7


N_TYPES = 8  # one-hot size of the type: codes 0..7, §4.2.1 footnote 6
KERNELS: dict[LayerType, tuple[int, ...]] = {
    LayerType.CONVOLUTION: (1, 3, 5),
    LayerType.MAX_POOLING: (2, 3),
    LayerType.AVG_POOLING: (2, 3),
}
MAX_KERNEL = 5  # k of §4.2.1
SINGLE_INPUT = frozenset({LayerType.CONVOLUTION, LayerType.MAX_POOLING, LayerType.AVG_POOLING})
MERGE = frozenset({LayerType.ADDITION, LayerType.CONCATENATION})


class InvalidArchitecture(ValueError):
    """An NSC state that cannot be built into a network; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidNSC(InvalidArchitecture):
    """An NSC row that breaks the rules of Table 1 (illegal type, kernel or predecessor)."""


class NSC(NamedTuple):
    """One NSC vector ``(index, type, kernel, pred1, pred2)``."""

    index: int
    type: int
    kernel: int
    pred1: int
    pred2: int


def validate_nsc(nsc: Iterable[Sequence[int]], max_depth: int | None = None) -> tuple[NSC, ...]:
    """Check a sequence of NSC 5-tuples against Table 1 and return them as ``NSC`` rows.

    Rows are in index order starting at 1; ``EMPTY`` rows (type 0) are only allowed as padding
    after the last real row and are dropped; nothing may follow a terminal row.
    """
    if isinstance(nsc, str | bytes) or not isinstance(nsc, Iterable):
        raise InvalidNSC(f"an NSC state is a sequence of rows, got {type(nsc).__name__}")
    rows: list[NSC] = []
    padding = False
    for position, raw in enumerate(nsc, start=1):
        row = NSC(*_row_values(position, raw))
        if row.type == LayerType.EMPTY:
            padding = True
            continue
        if padding:
            raise InvalidNSC(f"NSC row {position} follows an empty row: {tuple(row)}")
        if rows and rows[-1].type == LayerType.TERMINAL:
            raise InvalidNSC(f"NSC row {position} follows a terminal row: {tuple(row)}")
        if row.index != position:
            raise InvalidNSC(f"NSC row {position} has index {row.index}, expected {position}")
        if max_depth is not None and row.index > max_depth:
            raise InvalidNSC(f"NSC row {position} exceeds the maximum depth {max_depth}")
        try:
            layer_type = LayerType(row.type)
        except ValueError:
            legal = ", ".join(str(int(t)) for t in LayerType if t != LayerType.EMPTY)
            raise InvalidNSC(f"NSC row {position} has illegal type {row.type} (legal: {legal})") from None
        legal_kernels = KERNELS.get(layer_type, (0,))
        if row.kernel not in legal_kernels:
            raise InvalidNSC(
                f"NSC row {position}: kernel {row.kernel} is illegal for {layer_type.name.lower()} "
                f"(legal: {', '.join(map(str, legal_kernels))})"
            )
        needed = (row.pred1, row.pred2) if layer_type in MERGE else (row.pred1,)
        if layer_type != LayerType.TERMINAL:
            for pred in needed:
                if not 0 <= pred < row.index:
                    raise InvalidNSC(f"NSC row {position}: predecessor {pred} is outside 0..{row.index - 1}")
        rows.append(row)
    return tuple(rows)


def _row_values(position: int, raw: object) -> tuple[int, ...]:
    """The five integers of NSC row ``position`` (integral floats such as 3.0 pass); ``InvalidNSC`` else."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
        raise InvalidNSC(f"NSC row {position} is not a sequence of 5 integers: {raw!r}")
    values = tuple(raw)
    if len(values) != 5:
        raise InvalidNSC(f"NSC row {position} has {len(values)} values, expected 5: {values}")
    integers = []
    for value in values:
        try:
            integral = isinstance(value, Integral) or (isinstance(value, Real) and float(value).is_integer())
        except (OverflowError, ValueError):
            integral = False
        if isinstance(value, bool) or not integral:
            raise InvalidNSC(f"NSC row {position} holds {value!r}, not an integer: {values}")
        integers.append(int(value))
    return tuple(integers)


def layers_of(rows: Sequence[NSC]) -> tuple[NSC, ...]:
    """The rows that are layers, i.e. everything before a terminal row."""
    for position, row in enumerate(rows):
        if row.type == LayerType.TERMINAL:
            return tuple(rows[:position])
    return tuple(rows)


def canonical_network(rows: Sequence[NSC]) -> str:
    """A string naming the network that ``rows`` build, equal for states that build the same network.

    A trailing terminal is dropped, the unused predecessor of single-input layers is ignored and the
    (commutative) inputs of an addition are sorted.
    """
    parts = []
    for row in layers_of(rows):
        layer_type = LayerType(row.type)
        if layer_type in SINGLE_INPUT:
            parts.append(f"{int(layer_type)}k{row.kernel}<{row.pred1}")
        elif layer_type == LayerType.ADDITION:
            low, high = sorted((row.pred1, row.pred2))
            parts.append(f"5<{low},{high}")
        else:
            parts.append(f"6<{row.pred1},{row.pred2}")
    return "|".join(parts) or "empty"


def is_multi_branch(rows: Sequence[NSC]) -> bool:
    """True when the network is not a plain chain: some layer reads anything but the layer before it."""
    for row in layers_of(rows):
        inputs = {row.pred1, row.pred2} if row.type in MERGE else {row.pred1}
        if inputs != {row.index - 1}:
            return True
    return False
