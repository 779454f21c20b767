"""Loaders for user data sets: NumPy archives, image folders, meta-dataset TFRecords and torchvision datasets.

:func:`load_spec` reads a dataset spec (see :mod:`sb3_nas.data.specs`). Image folders, TFRecords and
torchvision datasets are decoded once, with a progress bar, into the on-disk cache of
:mod:`sb3_nas.data.cache`; later loads (other runs, worker processes, sweep trials) map the cached arrays.
"""

from __future__ import annotations

import inspect
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sb3_nas.data import cache
from sb3_nas.data.base import MIN_EXAMPLES_PER_CLASS, DatasetError, ImageDataset
from sb3_nas.data.decode import ImageCollector, open_image, to_pixels
from sb3_nas.data.specs import DatasetSpec, parse_spec
from sb3_nas.data.tfrecord import count_records, iter_records, parse_example

NPZ_IMAGE_KEYS = ("images", "x")
NPZ_LABEL_KEYS = ("labels", "y")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
TFRECORD_SUFFIX = ".tfrecords"
DATASET_SPEC_FILE = "dataset_spec.json"  # what meta-dataset's conversion writes beside the records
# every split of the paper's torchvision datasets, concatenated by default (the search splits them itself)
TORCHVISION_SPLITS = {
    "Omniglot": ("background", "evaluation"),
    "Flowers102": ("train", "val", "test"),
    "DTD": ("train", "val", "test"),
    "FGVCAircraft": ("train", "val", "test"),
}
# the folder under ROOT where torchvision keeps a dataset's files (else ROOT/<name in lower case>, else ROOT):
# the cache key lists only it, so that another dataset downloaded into the same ROOT does not invalidate it
TORCHVISION_FOLDERS = {
    "omniglot": "omniglot-py",
    "flowers102": "flowers-102",
    "dtd": "dtd",
    "fgvcaircraft": "fgvc-aircraft-2013b",
}


def load_spec(text: str) -> ImageDataset:
    """The dataset a spec names (``folder:``, ``npz:``, ``tfrecords:`` or ``torchvision:``)."""
    spec = parse_spec(text)
    if spec.kind == "npz":
        return load_npz(spec.target)
    loader = {"folder": load_folder, "tfrecords": load_tfrecords, "torchvision": load_torchvision}[spec.kind]
    return loader(spec)


# --- NumPy archives ---------------------------------------------------------------------------------------


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


# --- image folders ----------------------------------------------------------------------------------------


def load_folder(spec: DatasetSpec | str) -> ImageDataset:
    """``folder:PATH``: one sub-folder per class (sorted names are labels 0..K-1), each holding image files
    (JPEG, PNG, … at any depth below it), decoded once into the cache."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    root = _existing_folder(spec)
    files = cache.list_files(root)
    classes: dict[str, list[str]] = {
        entry.name: [] for entry in sorted(root.iterdir(), key=lambda p: p.name) if entry.is_dir()
    }
    classes = {name: members for name, members in classes.items() if not name.startswith(".")}
    for relative, _, _ in files:
        head, sep, _ = relative.partition("/")
        if sep and head in classes and relative.lower().endswith(IMAGE_SUFFIXES):
            classes[head].append(relative)
    if not classes:
        raise DatasetError(
            f"dataset {spec.text!r}: {root} has no class sub-folders "
            "(expected one sub-folder of images per class)"
        )
    for name, members in classes.items():
        if not members:
            raise DatasetError(
                f"dataset {spec.text!r}: class folder {root / name} holds no JPEG or PNG images"
            )
    _check_classes(
        spec, [(str(root / name), len(members)) for name, members in classes.items()], "class folder"
    )
    name = root.name
    key = cache.source_key("folder", root, {"size": spec.size}, files)
    cached = cache.load_cached(name, key)
    if cached is not None:
        return cached
    paths = [root / relative for members in classes.values() for relative in members]
    labels = np.repeat(np.arange(len(classes)), [len(members) for members in classes.values()])

    def decode() -> Iterator[np.ndarray]:
        for path in paths:
            yield to_pixels(open_image(path, str(path)))

    started = time.perf_counter()
    images = _collect(name, len(paths), spec.size, decode())
    meta = _meta(spec, "folder", root, list(classes), len(paths), started)
    return cache.store(name, key, images, labels, meta)


# --- meta-dataset TFRecords -------------------------------------------------------------------------------


def load_tfrecords(spec: DatasetSpec | str) -> ImageDataset:
    """``tfrecords:PATH``: a source as meta-dataset's conversion writes it — one ``.tfrecords`` file per
    class of ``tf.train.Example`` records with the encoded image under ``image`` and the class under
    ``label`` — and its ``dataset_spec.json`` when there is one (its name and image counts are used and
    checked). Read without TensorFlow, every record's CRCs checked, decoded once into the cache."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    root = _existing_folder(spec)
    record_files = sorted(
        (path for path in root.iterdir() if path.is_file() and path.name.endswith(TFRECORD_SUFFIX)),
        key=lambda path: (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.name),
    )
    if not record_files:
        raise DatasetError(f"dataset {spec.text!r}: {root} holds no {TFRECORD_SUFFIX} files")
    source_spec = _read_dataset_spec(root)
    name = str(source_spec.get("name") or root.name)
    files = [entry for entry in cache.list_files(root) if "/" not in entry[0]]
    key = cache.source_key("tfrecords", root, {"size": spec.size}, files)
    cached = cache.load_cached(name, key)
    if cached is not None:
        return cached
    counts = [count_records(path) for path in record_files]
    _check_against_dataset_spec(root, source_spec, record_files, counts)
    _check_classes(
        spec, [(str(path), n) for path, n in zip(record_files, counts, strict=True)], "tfrecords file"
    )
    raw_labels: list[int] = []

    def decode() -> Iterator[np.ndarray]:
        for path in record_files:
            for index, data in enumerate(iter_records(path)):
                image, label = _example_fields(path, index, data)
                raw_labels.append(label)
                yield to_pixels(open_image(image, f"in record {index} of {path}"))

    started = time.perf_counter()
    images = _collect(name, sum(counts), spec.size, decode())
    distinct, labels = np.unique(np.asarray(raw_labels, dtype=np.int64), return_inverse=True)
    if len(distinct) < 2:
        raise DatasetError(
            f"dataset {spec.text!r}: every record of {root} has label {distinct[0]}; "
            "a task needs at least 2 classes"
        )
    class_names = source_spec.get("class_names", {})
    names = [str(class_names.get(str(label), label)) for label in distinct]
    meta = _meta(spec, "tfrecords", root, names, len(labels), started)
    return cache.store(name, key, images, labels.reshape(-1), meta)


def _read_dataset_spec(root: Path) -> dict[str, Any]:
    path = root / DATASET_SPEC_FILE
    if not path.is_file():
        return {}
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path} is not readable JSON ({' '.join(str(error).split())})") from None
    if not isinstance(spec, dict):
        raise DatasetError(f"{path} is not a meta-dataset dataset spec (a JSON object)")
    return spec


def _check_against_dataset_spec(
    root: Path, source_spec: dict[str, Any], record_files: list[Path], counts: list[int]
) -> None:
    expected = source_spec.get("images_per_class")
    if not isinstance(expected, dict):
        return
    by_label = {path.stem: count for path, count in zip(record_files, counts, strict=True)}
    for label, n_images in expected.items():
        if str(label) not in by_label:
            raise DatasetError(
                f"{root / DATASET_SPEC_FILE} lists class {label} ({n_images} images) but "
                f"{root / (str(label) + TFRECORD_SUFFIX)} does not exist"
            )
        if by_label[str(label)] != n_images:
            raise DatasetError(
                f"{root / DATASET_SPEC_FILE} says class {label} has {n_images} images, but "
                f"{root / (str(label) + TFRECORD_SUFFIX)} holds {by_label[str(label)]} records"
            )


def _example_fields(path: Path, index: int, data: bytes) -> tuple[bytes, int]:
    try:
        features = parse_example(data)
    except ValueError as error:
        raise DatasetError(
            f"tfrecords file {path}: record {index} is not a tf.train.Example ({error})"
        ) from None
    image, label = features.get("image"), features.get("label")
    present = ", ".join(sorted(features)) or "none"
    if not image or not isinstance(image[0], bytes):
        raise DatasetError(
            f"tfrecords file {path}: record {index} has no 'image' bytes feature (its features: {present})"
        )
    if not label or not isinstance(label[0], int):
        raise DatasetError(
            f"tfrecords file {path}: record {index} has no 'label' int64 feature (its features: {present})"
        )
    return image[0], label[0]


# --- torchvision ------------------------------------------------------------------------------------------


def load_torchvision(spec: DatasetSpec | str) -> ImageDataset:
    """``torchvision:NAME[:ROOT]``: a torchvision image-classification dataset class by name (Omniglot,
    Flowers102, DTD, FGVCAircraft, MNIST, ImageFolder, …), files under ROOT (default ``data``). Every split
    is concatenated (the search makes its own stratified split) unless ``split=`` names some; files are
    downloaded only with ``download=true``. A cached dataset loads without importing torchvision."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    root = Path(spec.root or "data").expanduser().absolute()
    name = spec.target.lower()
    options = {"name": spec.target, "split": list(spec.split), "size": spec.size}
    cached = cache.load_cached(name, cache.source_key("torchvision", root, options, _listing(root, name)))
    if cached is not None:
        return cached
    dataset_class = _torchvision_class(spec)
    parts = [_construct(spec, dataset_class, root, kwargs) for kwargs in _split_kwargs(spec, dataset_class)]
    key = cache.source_key("torchvision", root, options, _listing(root, name))  # a download adds files
    cached = cache.load_cached(name, key)
    if cached is not None:
        return cached
    n_images = sum(len(part) for part in parts)
    if n_images == 0:
        raise DatasetError(
            f"dataset {spec.text!r}: torchvision's {dataset_class.__name__} under {root} is empty"
        )
    keys: list[str] = []

    def decode() -> Iterator[np.ndarray]:
        for part in parts:
            names = getattr(part, "classes", None) or getattr(part, "_characters", None)
            for index in range(len(part)):
                try:
                    image, target = part[index]
                except Exception as error:
                    raise DatasetError(
                        f"dataset {spec.text!r}: cannot read item {index} ({' '.join(str(error).split())})"
                    ) from None
                keys.append(_class_key(spec, target, names))
                yield _torchvision_pixels(spec, image, index)

    started = time.perf_counter()
    images = _collect(name, n_images, spec.size, decode())
    classes, labels = np.unique(np.asarray(keys), return_inverse=True)
    counts = np.bincount(labels.reshape(-1), minlength=len(classes))
    _check_classes(
        spec, [(f"class {c}", int(n)) for c, n in zip(classes, counts, strict=True)], "torchvision"
    )
    meta = _meta(
        spec,
        "torchvision",
        root,
        [str(int(c)) if c.isdigit() else str(c) for c in classes],
        n_images,
        started,
    )
    return cache.store(name, key, images, labels.reshape(-1), meta)


def _listing(root: Path, name: str) -> list[tuple[str, int, int]]:
    """The files of a torchvision dataset: its own folder under ROOT when there is one, else all of ROOT."""
    folder = root / TORCHVISION_FOLDERS.get(name, name)
    if folder.is_dir():
        return [(f"{folder.name}/{path}", size, mtime) for path, size, mtime in cache.list_files(folder)]
    return cache.list_files(root) if root.is_dir() else []


def _torchvision_class(spec: DatasetSpec) -> type:
    import torch

    hint = f"the torchvision build made for your torch {torch.__version__} (the `torchvision` extra)"
    try:
        import torchvision.datasets as tv_datasets
    except ImportError:
        raise DatasetError(
            f"dataset {spec.text!r} needs torchvision, which is not installed: {hint}"
        ) from None
    except Exception as error:  # a build for another torch fails while registering its operators
        message = " ".join(str(error).split())
        raise DatasetError(
            f"dataset {spec.text!r} needs torchvision, which is installed but does not import "
            f"({type(error).__name__}: {message}): install {hint}"
        ) from None
    classes = {
        attribute: value
        for attribute in dir(tv_datasets)
        if isinstance(value := getattr(tv_datasets, attribute), type) and not attribute.startswith("_")
    }
    match = classes.get(spec.target) or next(
        (value for attribute, value in classes.items() if attribute.lower() == spec.target.lower()), None
    )
    if match is None:
        known = ", ".join(sorted(a for a, v in classes.items() if hasattr(v, "__getitem__")))
        raise DatasetError(
            f"dataset {spec.text!r}: torchvision has no dataset {spec.target!r}; known: {known}"
        )
    return match


def _split_kwargs(spec: DatasetSpec, dataset_class: type) -> list[dict[str, Any]]:
    parameters = inspect.signature(dataset_class).parameters
    if "background" in parameters:  # Omniglot: background (964 characters) and evaluation (659)
        choices = {"background": True, "evaluation": False}
        names = spec.split or TORCHVISION_SPLITS["Omniglot"]
        _check_split_names(spec, names, choices)
        return [{"background": choices[name]} for name in names]
    if "train" in parameters:  # MNIST, CIFAR10, …: train=True and train=False
        choices = {"train": True, "test": False}
        names = spec.split or ("train", "test")
        _check_split_names(spec, names, choices)
        return [{"train": choices[name]} for name in names]
    if "split" in parameters:
        names = spec.split or TORCHVISION_SPLITS.get(dataset_class.__name__, ())
        return [{"split": name} for name in names] or [{}]
    if spec.split:
        raise DatasetError(f"dataset {spec.text!r}: torchvision's {dataset_class.__name__} has no splits")
    return [{}]


def _check_split_names(spec: DatasetSpec, names: tuple[str, ...], choices: dict[str, bool]) -> None:
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise DatasetError(
            f"dataset {spec.text!r}: unknown split {unknown[0]!r}; choose among {', '.join(choices)}"
        )


def _construct(spec: DatasetSpec, dataset_class: type, root: Path, kwargs: dict[str, Any]) -> Any:
    parameters = inspect.signature(dataset_class).parameters
    if "download" in parameters:
        kwargs = {**kwargs, "download": spec.download}
    elif spec.download:
        raise DatasetError(f"dataset {spec.text!r}: torchvision's {dataset_class.__name__} cannot download")
    arguments = {"root": str(root)} if "root" in parameters else {}
    try:
        return dataset_class(**arguments, **kwargs)
    except (RuntimeError, OSError, ValueError) as error:
        message = " ".join(str(error).split())
        if spec.download:
            raise DatasetError(f"dataset {spec.text!r}: download into {root} failed ({message})") from None
        raise DatasetError(
            f"dataset {spec.text!r}: files not found under {root} ({message}); put them there as torchvision "
            f"lays them out, or add :download=true to fetch them"
        ) from None


def _class_key(spec: DatasetSpec, target: Any, names: Any) -> str:
    try:
        value = int(target)
    except (TypeError, ValueError):
        raise DatasetError(
            f"dataset {spec.text!r} is not an image-classification dataset: its target is "
            f"{type(target).__name__}, not a class index"
        ) from None
    if names is not None and 0 <= value < len(names):
        return str(names[value])
    return f"{value:09d}"  # zero-padded: the sorted classes keep numeric order


def _torchvision_pixels(spec: DatasetSpec, image: Any, index: int) -> np.ndarray:
    if hasattr(image, "mode") and hasattr(image, "size"):  # a Pillow image
        return to_pixels(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):  # CHW tensors
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[..., np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3) or array.dtype != np.uint8:
        raise DatasetError(
            f"dataset {spec.text!r}: item {index} is not an image (got {array.dtype} of shape {array.shape})"
        )
    return array


# --- shared -----------------------------------------------------------------------------------------------


def _existing_folder(spec: DatasetSpec) -> Path:
    root = Path(spec.target).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset {spec.text!r}: {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset {spec.text!r}: {root} is not a folder")
    return root.resolve()


def _check_classes(spec: DatasetSpec, classes: list[tuple[str, int]], what: str) -> None:
    """One-line errors naming the culprit before anything is decoded: a single class, an empty one, one
    too small for the stratified split."""
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


def _collect(name: str, n_images: int, size: int | None, pixels: Iterator[np.ndarray]) -> np.ndarray:
    """Decode every image into one array, with a progress bar on a terminal."""
    from tqdm.auto import tqdm

    collector = ImageCollector(n_images, size, name)
    with tqdm(total=n_images, desc=f"decoding {name}", unit="img", disable=None, leave=False) as bar:
        for image in pixels:
            collector.add(image)
            bar.update()
    return collector.finish()


def _meta(
    spec: DatasetSpec, kind: str, source: Path, classes: list[str], n_images: int, started: float
) -> dict:
    return {
        "spec": spec.text,
        "kind": kind,
        "source": str(source),
        "options": {
            "size": spec.size,
            **({"name": spec.target, "split": list(spec.split)} if kind == "torchvision" else {}),
        },
        "classes": classes,
        "n_images": n_images,
        "decode_seconds": round(time.perf_counter() - started, 3),
    }
