"""The dataset interface every loader produces: validated, read-only uint8 NHWC images with integer labels."""

from __future__ import annotations

import hashlib
import mmap
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sb3_nas.errors import InputError

# A stratified 1/3 test split needs at least one test and two training examples of every class (§4.1.2).
MIN_EXAMPLES_PER_CLASS = 3
# classes are called unbalanced (a warning, not an error) when the largest holds more than this many times
# the images of the smallest
UNBALANCED_RATIO = 2.0


class DatasetError(InputError):
    """A dataset that cannot be built, loaded or split; the message names the dataset and the problem."""


class UnknownDatasetError(DatasetError):
    """A dataset name that is not in the registry."""


class DatasetWarning(UserWarning):
    """A dataset that can be used but may mislead: unbalanced classes, a cache that cannot be written."""


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """An image classification task: uint8 images (N, H, W, C) with C in {1, 3} and int64 labels 0..K-1.

    The constructor copies and validates its inputs and makes both arrays read-only, so a dataset never
    changes after it is built and its :attr:`fingerprint` can key cached results. Images memory-mapped
    read-only from a file (``np.load(path, mmap_mode="r")``, as the decode-once cache does) are not copied:
    no process can write through such a mapping. Classes whose sizes differ by more than
    :data:`UNBALANCED_RATIO` times raise a :class:`DatasetWarning`.

    :param name: the dataset's name, used in messages and records
    :param images: uint8 (or losslessly convertible) images, (N, H, W, C) or grey (N, H, W)
    :param labels: integer labels 0..K-1, one per image; every class needs at least 3 examples
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    n_classes: int = field(init=False)
    _splits: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DatasetError(f"dataset name must be a non-empty string, got {self.name!r}")
        images = _as_images(self.name, self.images)
        labels, n_classes = _as_labels(self.name, self.labels, len(images))
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "n_classes", n_classes)
        _warn_if_unbalanced(self.name, labels)

    @classmethod
    def from_arrays(cls, name: str, images: np.ndarray, labels: np.ndarray) -> ImageDataset:
        """Build a dataset from float images in [0, 1] or [0, 255] (or integers) and labels of any kind.

        Float images whose maximum is at most 1 are scaled by 255, others are taken as 0..255; both are
        rounded to uint8. Labels are encoded as their rank among the sorted distinct values.
        """
        images = np.asarray(images)
        if images.dtype.kind == "f":
            images = _float_to_uint8(name, images)
        labels = np.asarray(labels)
        if labels.dtype.kind in "fc" and not np.all(np.isfinite(labels)):
            raise DatasetError(f"dataset {name!r}: labels contain NaN or infinite values")
        if labels.ndim == 1 and len(labels):
            try:
                labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
            except TypeError as error:
                raise DatasetError(f"dataset {name!r}: labels cannot be sorted ({error})") from None
        return cls(name, images, labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        _, height, width, channels = self.images.shape
        return height, width, channels

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def fingerprint(self) -> str:
        """Hex sha256 of the content (shapes, dtypes, image and label bytes), not of the name."""
        digest = hashlib.sha256()
        for array in (self.images, self.labels):
            digest.update(f"{array.shape}|{array.dtype.str};".encode())
            digest.update(memoryview(array))  # the bytes of tobytes() without a copy (C-contiguous)
        return digest.hexdigest()

    def split(self, test_fraction: float = 1 / 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic stratified (train_idx, test_idx), sorted read-only int64, cached per arguments."""
        key = (float(test_fraction), int(seed))
        if key not in self._splits:
            self._splits[key] = self._stratified_split(*key)
        return self._splits[key]

    def _stratified_split(self, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        # imported here so that importing the package stays cheap
        from sklearn.model_selection import train_test_split

        if not 0.0 < test_fraction < 1.0:
            raise DatasetError(f"dataset {self.name!r}: test_fraction must be in (0, 1), got {test_fraction}")
        try:
            train, test = train_test_split(
                np.arange(len(self)), test_size=test_fraction, random_state=seed, stratify=self.labels
            )
        except ValueError as error:
            message = " ".join(str(error).split())
            raise DatasetError(f"dataset {self.name!r}: cannot split {test_fraction:g}: {message}") from None
        return _frozen(np.sort(train).astype(np.int64)), _frozen(np.sort(test).astype(np.int64))

    def __reduce__(self) -> tuple[type[ImageDataset], tuple[str, np.ndarray, np.ndarray]]:
        # unpickled arrays would be writable: rebuild through the constructor instead
        return type(self), (self.name, self.images, self.labels)

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, n_images={len(self)}, image_shape={self.image_shape}, "
            f"n_classes={self.n_classes})"
        )


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _as_images(name: str, images: object) -> np.ndarray:
    try:
        array = np.asarray(images)
    except ValueError as error:
        raise DatasetError(f"dataset {name!r}: images are not one array ({error})") from None
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise DatasetError(
            f"dataset {name!r}: images must be (N, H, W, C) with C in {{1, 3}} or (N, H, W), "
            f"got shape {array.shape}"
        )
    if 0 in array.shape:
        raise DatasetError(f"dataset {name!r}: images must not be empty, got shape {array.shape}")
    if array.dtype == np.uint8 and array.flags.c_contiguous and _read_only_mapping(array):
        return _frozen(array.view(np.ndarray))  # a read-only file mapping cannot change under us: no copy
    if array.dtype != np.uint8:
        lossless = array.dtype.kind in "iuf" and bool(
            np.all((array >= 0) & (array <= 255) & (np.floor(array) == array))
        )
        if not lossless:
            raise DatasetError(
                f"dataset {name!r}: images must be uint8 or whole numbers in 0..255, got {array.dtype}; "
                "ImageDataset.from_arrays scales float images"
            )
    return _frozen(np.array(array, dtype=np.uint8, order="C", copy=True))


def _read_only_mapping(array: np.ndarray) -> bool:
    """Whether ``array`` is a read-only view of a file mapped read-only (``np.memmap`` of mode ``"r"``)."""
    node: object = array
    while isinstance(node, np.ndarray):
        if node.flags.writeable:
            return False
        if isinstance(node, np.memmap) and isinstance(node.base, mmap.mmap):
            return node.mode == "r"
        node = node.base
    return False


def _warn_if_unbalanced(name: str, labels: np.ndarray) -> None:
    counts = np.bincount(labels)
    smallest, largest = int(np.argmin(counts)), int(np.argmax(counts))
    if counts[largest] > UNBALANCED_RATIO * counts[smallest]:
        warnings.warn(
            f"dataset {name!r}: unbalanced classes, from {counts[smallest]} images (class {smallest}) to "
            f"{counts[largest]} (class {largest}); the stratified split keeps these shares, so accuracy "
            "weighs the large classes more",
            DatasetWarning,
            stacklevel=4,
        )


def _as_labels(name: str, labels: object, n_images: int) -> tuple[np.ndarray, int]:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise DatasetError(f"dataset {name!r}: labels must be 1-D, got shape {array.shape}")
    if len(array) != n_images:
        raise DatasetError(f"dataset {name!r}: {len(array)} labels for {n_images} images")
    whole = array.dtype.kind in "biu" or (
        array.dtype.kind == "f" and bool(np.all(np.isfinite(array) & (np.floor(array) == array)))
    )
    if not whole:
        raise DatasetError(
            f"dataset {name!r}: labels must be integers 0..K-1, got {array.dtype}; "
            "ImageDataset.from_arrays encodes any labels"
        )
    if array.min() < 0 or array.max() >= len(array):  # K classes need K ≤ N labels (no bincount of 10**12)
        extreme = array.min() if array.min() < 0 else array.max()
        raise DatasetError(f"dataset {name!r}: labels must be 0..K-1, got {extreme} among {len(array)}")
    array = array.astype(np.int64)
    if len(np.unique(array)) < 2:
        raise DatasetError(f"dataset {name!r}: needs at least 2 classes, got 1")
    counts = np.bincount(array)
    (small,) = np.nonzero(counts < MIN_EXAMPLES_PER_CLASS)
    if len(small):
        shown = ", ".join(f"class {k} has {counts[k]}" for k in small[:5])
        raise DatasetError(
            f"dataset {name!r}: every class 0..{len(counts) - 1} needs at least {MIN_EXAMPLES_PER_CLASS} "
            f"examples for a stratified split; {shown}"
        )
    return _frozen(array), len(counts)


def _float_to_uint8(name: str, images: np.ndarray) -> np.ndarray:
    if images.size == 0:
        return images
    if not np.all(np.isfinite(images)):
        raise DatasetError(f"dataset {name!r}: images contain NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 255.0:
        raise DatasetError(
            f"dataset {name!r}: float images must lie in [0, 1] or [0, 255], got [{low}, {high}]"
        )
    scale = 255.0 if high <= 1.0 else 1.0
    return np.rint(images * scale).astype(np.uint8)
