"""What a decoded source contributes to the shared load of :func:`sb3_nas.data.loaders.load_source`.

A source names its dataset and cache entry, lists the files its cache key hashes, prepares decoding after a
cache miss, yields every image with its label, and checks and names the classes the labels make. The loader
does the rest, the same for every source: the cache look-up, decoding every item, collecting the images into
one array, the entry's metadata and storing it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from sb3_nas.data.base import MIN_EXAMPLES_PER_CLASS, DatasetError
from sb3_nas.data.specs import DatasetSpec


class EncodedImage(NamedTuple):
    """An image file's contents (its path, or its encoded bytes) and what names it in a decoding error."""

    data: Path | bytes
    what: str


class Source(ABC):
    """A dataset source decoded once into the cache.

    :param spec: the spec that names the source
    :param name: the dataset's name, which also names its cache entry
    :param root: the source's absolute path, in the cache key and the metadata
    """

    kind: ClassVar[str]  # the spec kind, in the cache key and the metadata
    # whether :meth:`open` can add files under the root (a download), so that the key is taken again after it
    open_adds_files: ClassVar[bool] = False

    def __init__(self, spec: DatasetSpec, name: str, root: Path) -> None:
        self.spec = spec
        self.name = name
        self.root = root

    def options(self) -> dict[str, Any]:
        """The spec's options that the cache key and the metadata record."""
        return {"size": self.spec.size}

    @abstractmethod
    def files(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime in ns) of the files the cache key hashes."""

    @abstractmethod
    def open(self) -> int:
        """Prepare decoding after a cache miss, checking what can be checked before it; returns the number of
        images."""

    @abstractmethod
    def items(self) -> Iterator[tuple[EncodedImage | np.ndarray, Any]]:
        """Every image, in order, with its label: an encoded file for the loader to decode, or its pixels
        (uint8 (H, W, C) as :func:`sb3_nas.data.decode.to_pixels` gives them)."""

    @abstractmethod
    def class_names(self, distinct: np.ndarray, labels: np.ndarray) -> list[str]:
        """The names of the classes, after checking them: ``distinct`` are the sorted labels :meth:`items`
        gave, ``labels`` the images' indexes into them."""


def existing_folder(spec: DatasetSpec) -> Path:
    """The folder a spec's target names, resolved; one-line errors when it is missing or a file."""
    root = Path(spec.target).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset {spec.text!r}: {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset {spec.text!r}: {root} is not a folder")
    return root.resolve()


def check_classes(spec: DatasetSpec, classes: list[tuple[str, int]], what: str) -> None:
    """One-line errors naming the culprit before anything is stored: a single class, an empty one, one too
    small for the stratified split. ``classes`` are (where, number of images), ``what`` names a class."""
    for where, count in classes:
        if count == 0:
            raise DatasetError(f"dataset {spec.text!r}: {what} {where} is empty (a class without images)")
    if len(classes) < 2:
        where = classes[0][0] if classes else "none"
        raise DatasetError(
            f"dataset {spec.text!r} has a single class ({what} {where}); a task needs at least 2 classes"
        )
    for where, count in classes:
        if count < MIN_EXAMPLES_PER_CLASS:
            raise DatasetError(
                f"dataset {spec.text!r}: {what} {where} holds {count} images; every class needs at least "
                f"{MIN_EXAMPLES_PER_CLASS} for the stratified split"
            )
