"""The decode-once cache: decoded image folders, TFRecords and torchvision datasets stored as ``.npy`` arrays.

An entry is three files in the cache folder (``$SB3_NAS_DATA_CACHE``, else ``results/data_cache``)::

    NAME-KEY.images.npy   uint8 (N, H, W, C)
    NAME-KEY.labels.npy   int64 (N,)
    NAME-KEY.json         what the entry holds and where it came from; written last

``KEY`` hashes the source's identity: its kind, absolute path and options, and every file under it (relative
path, size, modification time), so a changed, added or removed file makes a new entry (and the old one of the
same source is removed). Entries are written to temporary files and renamed into place, only after the
decoded arrays passed :class:`ImageDataset`'s checks, so a failed or interrupted decode leaves nothing behind
and a reader never sees half a file. A hit maps the images read-only (``np.load(mmap_mode="r")``, no pickle):
pages are read when used and shared by every process that loads the same entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sb3_nas.data.base import DatasetError, DatasetWarning, ImageDataset

CACHE_ENV = "SB3_NAS_DATA_CACHE"
DEFAULT_CACHE_DIR = Path("results") / "data_cache"
CACHE_FORMAT = 1  # bump when decoding changes, so that old entries are not reused


def cache_dir() -> Path:
    """Where entries live: ``$SB3_NAS_DATA_CACHE`` if set, else ``results/data_cache`` (from the working
    directory)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def list_files(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of every file under ``root``, sorted; hidden entries skipped."""
    found: list[tuple[str, int, int]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    stat = entry.stat()
                    found.append(
                        (Path(entry.path).relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns)
                    )
    return sorted(found)


def source_key(
    kind: str, source: Path, options: dict[str, Any], files: Iterable[tuple[str, int, int]]
) -> str:
    """The entry key of a source: a hash of its kind, absolute path, options and file listing."""
    digest = hashlib.sha256()
    identity = {"format": CACHE_FORMAT, "kind": kind, "source": str(source), "options": options}
    digest.update(json.dumps(identity, sort_keys=True).encode())
    for name, size, mtime in files:
        digest.update(f"\n{name}\t{size}\t{mtime}".encode())
    return digest.hexdigest()[:24]


def _stem(name: str, key: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:40]}-{key}"


def load_cached(name: str, key: str) -> ImageDataset | None:
    """The cached dataset of ``key``, its images memory-mapped read-only; ``None`` when there is none (or
    the entry is damaged: a warning says so and the source is decoded again)."""
    folder = cache_dir()
    meta_path = folder / f"{_stem(name, key)}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(folder / meta["images_file"], mmap_mode="r", allow_pickle=False)
        labels = np.load(folder / meta["labels_file"], mmap_mode="r", allow_pickle=False)
        if list(images.shape) != meta["images_shape"] or len(labels) != len(images):
            raise ValueError(f"arrays of shape {images.shape} and {labels.shape}, not as recorded")
        return ImageDataset(meta["name"], images, labels)
    except (OSError, ValueError, KeyError, TypeError, DatasetError) as error:
        warnings.warn(
            f"data cache entry {meta_path} is damaged ({' '.join(str(error).split())}); "
            "decoding its source again",
            DatasetWarning,
            stacklevel=3,
        )
        return None


def store(name: str, key: str, images: np.ndarray, labels: np.ndarray, meta: dict[str, Any]) -> ImageDataset:
    """Build the dataset (all of :class:`ImageDataset`'s checks), write it as the entry of ``key``, and return
    it read from the entry. Nothing is written when the checks fail; when the cache folder cannot be written
    a warning says so and the dataset is returned from memory."""
    folder = cache_dir()
    stem = _stem(name, key)
    token = f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    paths = {part: folder / f"{stem}.{part}" for part in ("images.npy", "labels.npy", "json")}
    temporary = {part: path.with_name(path.name + token) for part, path in paths.items()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for part, array in (("images.npy", images), ("labels.npy", labels)):
            with open(temporary[part], "wb") as file:
                np.save(file, array, allow_pickle=False)
                file.flush()
                os.fsync(file.fileno())
    except OSError as error:
        _remove(temporary.values())
        warnings.warn(
            f"cannot write the data cache in {folder} ({' '.join(str(error).split())}); dataset {name!r} "
            f"will be decoded again next time (set ${CACHE_ENV} to a writable folder)",
            DatasetWarning,
            stacklevel=3,
        )
        return ImageDataset(name, images, labels)
    del images  # from here on the entry's mapped pages stand for the decoded array
    try:
        dataset = ImageDataset(
            name,
            np.load(temporary["images.npy"], mmap_mode="r", allow_pickle=False),
            np.load(temporary["labels.npy"], mmap_mode="r", allow_pickle=False),
        )
        record = {
            **meta,
            "name": name,
            "key": key,
            "images_file": paths["images.npy"].name,
            "labels_file": paths["labels.npy"].name,
            "images_shape": list(dataset.images.shape),
            "n_classes": dataset.n_classes,
            "format": CACHE_FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        temporary["json"].write_text(json.dumps(record, indent=1) + "\n")
        for part in ("images.npy", "labels.npy", "json"):  # the JSON last: it marks a complete entry
            os.replace(temporary[part], paths[part])
    except BaseException:
        _remove(temporary.values())
        raise
    _remove_stale(folder, meta, keep=paths["json"])
    return dataset


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _remove_stale(folder: Path, meta: dict[str, Any], keep: Path) -> None:
    """Delete older entries of the same source and options (their files changed since)."""
    identity = (meta.get("kind"), meta.get("source"), meta.get("options"))
    for other in folder.glob("*.json"):
        if other == keep:
            continue
        try:
            record = json.loads(other.read_text())
            if (record.get("kind"), record.get("source"), record.get("options")) != identity:
                continue
            _remove([folder / record["images_file"], folder / record["labels_file"], other])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
