"""The state encoding of §4.2.1: each NSC row as concatenated one-hot vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sb3_nas.space.nsc import MAX_KERNEL, N_TYPES, NSC


def row_width(max_depth: int, multi_branch: bool) -> int:
    """Width of one encoded row: d + k + 10 (chain) or 2d + k + 11 (multi-branch)."""
    predecessors = 2 if multi_branch else 1
    return N_TYPES + (MAX_KERNEL + 1) + predecessors * (max_depth + 1)


def encode_state(rows: Sequence[NSC], max_depth: int, multi_branch: bool) -> np.ndarray:
    """Encode up to ``max_depth`` NSC rows as a ``(max_depth, row_width)`` float32 array.

    Missing rows are empty (type 0, kernel 0, predecessors 0); the index is dropped because rows are
    sorted. Chain spaces omit the second predecessor.
    """
    width = row_width(max_depth, multi_branch)
    encoded = np.zeros((max_depth, width), dtype=np.float32)
    kernel_at = N_TYPES
    pred1_at = kernel_at + MAX_KERNEL + 1
    pred2_at = pred1_at + max_depth + 1
    for position in range(max_depth):
        row = rows[position] if position < len(rows) else NSC(position + 1, 0, 0, 0, 0)
        encoded[position, row.type] = 1.0
        encoded[position, kernel_at + row.kernel] = 1.0
        encoded[position, pred1_at + row.pred1] = 1.0
        if multi_branch:
            encoded[position, pred2_at + row.pred2] = 1.0
    return encoded
