"""Small NumPy image operations used to build and probe the built-in tasks (no library-version drift)."""

from __future__ import annotations

import numpy as np


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (..., H, W, C) images to float (..., height, width, C), sampling bilinearly at pixel centres."""
    rows_lo, rows_hi, row_frac = _sample_points(images.shape[-3], height)
    cols_lo, cols_hi, col_frac = _sample_points(images.shape[-2], width)
    pixels = images.astype(np.float64)
    row_frac = row_frac[:, np.newaxis, np.newaxis]
    rows = pixels[..., rows_lo, :, :] * (1.0 - row_frac) + pixels[..., rows_hi, :, :] * row_frac
    col_frac = col_frac[:, np.newaxis]
    return rows[..., cols_lo, :] * (1.0 - col_frac) + rows[..., cols_hi, :] * col_frac


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Round and clip 0..255 float pixels to uint8."""
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _sample_points(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    low = np.floor(centres).astype(np.intp)
    return low, np.minimum(low + 1, size_in - 1), centres - low
