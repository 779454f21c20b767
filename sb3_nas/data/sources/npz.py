"""``npz:PATH``: a NumPy archive, read as it is (no decoding, no cache)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sb3_nas.data.base import DatasetError, ImageDataset

NPZ_IMAGE_KEYS = ("images", "x")
NPZ_LABEL_KEYS = ("labels", "y")


def load_npz(path: str | Path) -> ImageDataset:
    """A dataset from a ``.npz`` of ``images`` (N, H, W[, C]) and ``labels`` (N,) — or ``x`` and ``y`` —
    named by its file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"dataset file {path} is not a readable NumPy archive ({error})") from None
    images = next((arrays[k] for k in NPZ_IMAGE_KEYS if k in arrays), None)
    labels = next((arrays[k] for k in NPZ_LABEL_KEYS if k in arrays), None)
    if images is None or labels is None:
        raise DatasetError(
            f"dataset file {path} needs arrays 'images' and 'labels' (it has: {', '.join(arrays) or 'none'})"
        )
    try:
        return ImageDataset.from_arrays(path.stem, images, labels)
    except DatasetError as error:  # name the file, not only the dataset named after it
        problem = str(error).removeprefix(f"dataset {path.stem!r}: ")
        raise DatasetError(f"dataset file {path}: {problem}") from None
