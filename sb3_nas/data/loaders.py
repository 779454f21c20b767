"""Loaders for user data sets: NumPy archives, image folders, meta-dataset TFRecords and torchvision datasets.

:func:`load_spec` reads a dataset spec (see :mod:`sb3_nas.data.specs`). A NumPy archive is read as it is;
image folders, TFRecords and torchvision datasets are sources (:mod:`sb3_nas.data.sources`, one module each)
that :func:`load_source` decodes once, with a progress bar, into the on-disk cache of
:mod:`sb3_nas.data.cache`; later loads (other runs, worker processes, sweep trials) map the cached arrays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from sb3_nas.data import cache
from sb3_nas.data.base import ImageDataset
from sb3_nas.data.decode import ImageCollector, open_image, to_pixels
from sb3_nas.data.sources import (
    EncodedImage,
    FolderSource,
    Source,
    TFRecordSource,
    TorchvisionSource,
    load_npz,
)
from sb3_nas.data.sources.folder import IMAGE_SUFFIXES
from sb3_nas.data.sources.npz import NPZ_IMAGE_KEYS, NPZ_LABEL_KEYS
from sb3_nas.data.sources.tfrecords import DATASET_SPEC_FILE, TFRECORD_SUFFIX
from sb3_nas.data.sources.torchvision import TORCHVISION_FOLDERS, TORCHVISION_SPLITS
from sb3_nas.data.specs import DatasetSpec, parse_spec

__all__ = [
    "DATASET_SPEC_FILE",
    "IMAGE_SUFFIXES",
    "NPZ_IMAGE_KEYS",
    "NPZ_LABEL_KEYS",
    "TFRECORD_SUFFIX",
    "TORCHVISION_FOLDERS",
    "TORCHVISION_SPLITS",
    "load_folder",
    "load_npz",
    "load_source",
    "load_spec",
    "load_tfrecords",
    "load_torchvision",
]


def load_spec(text: str) -> ImageDataset:
    """The dataset a spec names (``folder:``, ``npz:``, ``tfrecords:`` or ``torchvision:``)."""
    spec = parse_spec(text)
    if spec.kind == "npz":
        return load_npz(spec.target)
    loader = {"folder": load_folder, "tfrecords": load_tfrecords, "torchvision": load_torchvision}[spec.kind]
    return loader(spec)


def load_folder(spec: DatasetSpec | str) -> ImageDataset:
    """``folder:PATH``: one sub-folder per class (sorted names are labels 0..K-1), each holding image files
    (JPEG, PNG, … at any depth below it), decoded once into the cache."""
    return load_source(FolderSource(_parsed(spec)))


def load_tfrecords(spec: DatasetSpec | str) -> ImageDataset:
    """``tfrecords:PATH``: a source as meta-dataset's conversion writes it — one ``.tfrecords`` file per
    class of ``tf.train.Example`` records with the encoded image under ``image`` and the class under
    ``label`` — and its ``dataset_spec.json`` when there is one (its name and image counts are used and
    checked). Read without TensorFlow, every record's CRCs checked, decoded once into the cache."""
    return load_source(TFRecordSource(_parsed(spec)))


def load_torchvision(spec: DatasetSpec | str) -> ImageDataset:
    """``torchvision:NAME[:ROOT]``: a torchvision image-classification dataset class by name (Omniglot,
    Flowers102, DTD, FGVCAircraft, MNIST, ImageFolder, …), files under ROOT (default ``data``). Every split
    is concatenated (the search makes its own stratified split) unless ``split=`` names some; files are
    downloaded only with ``download=true``. A cached dataset loads without importing torchvision."""
    return load_source(TorchvisionSource(_parsed(spec)))


def load_source(source: Source) -> ImageDataset:
    """A source's dataset: its cache entry when there is one, else every item decoded (an encoded file with
    Pillow), the images collected into one array, the labels into classes 0..K-1 in sorted order, and the
    result stored as the entry of the source's key with its metadata."""
    key = _key(source)
    cached = cache.load_cached(source.name, key)
    if cached is not None:
        return cached
    n_images = source.open()
    if source.open_adds_files:
        key = _key(source)
        cached = cache.load_cached(source.name, key)
        if cached is not None:
            return cached
    raw_labels: list[Any] = []

    def decode() -> Iterator[np.ndarray]:
        for image, label in source.items():
            raw_labels.append(label)
            yield to_pixels(open_image(image.data, image.what)) if isinstance(image, EncodedImage) else image

    started = time.perf_counter()
    images = _collect(source.name, n_images, source.spec.size, decode())
    distinct, labels = np.unique(np.asarray(raw_labels), return_inverse=True)
    labels = labels.reshape(-1)
    meta = {
        "spec": source.spec.text,
        "kind": source.kind,
        "source": str(source.root),
        "options": source.options(),
        "classes": source.class_names(distinct, labels),
        "n_images": n_images,
        "decode_seconds": round(time.perf_counter() - started, 3),
    }
    return cache.store(source.name, key, images, labels, meta)


def _parsed(spec: DatasetSpec | str) -> DatasetSpec:
    return parse_spec(spec) if isinstance(spec, str) else spec


def _key(source: Source) -> str:
    return cache.source_key(source.kind, source.root, source.options(), source.files())


def _collect(name: str, n_images: int, size: int | None, pixels: Iterator[np.ndarray]) -> np.ndarray:
    """Decode every image into one array, with a progress bar on a terminal."""
    from tqdm.auto import tqdm

    collector = ImageCollector(n_images, size, name)
    with tqdm(total=n_images, desc=f"decoding {name}", unit="img", disable=None, leave=False) as bar:
        for image in pixels:
            collector.add(image)
            bar.update()
    return collector.finish()
