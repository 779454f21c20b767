"""``torchvision:NAME[:ROOT]``: a torchvision image-classification dataset class by name."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sb3_nas.data import cache
from sb3_nas.data.base import DatasetError
from sb3_nas.data.decode import to_pixels
from sb3_nas.data.sources.base import Source, check_classes
from sb3_nas.data.specs import DEFAULT_TORCHVISION_ROOT, DatasetSpec

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


class TorchvisionSource(Source):
    """A torchvision dataset class by name (Omniglot, Flowers102, DTD, FGVCAircraft, MNIST, ImageFolder, …),
    files under ROOT (default ``data``). Every split is concatenated (the search makes its own stratified
    split) unless ``split=`` names some; files are downloaded only with ``download=true``. torchvision is
    imported by :meth:`open` only, so that a cached dataset loads without it."""

    kind = "torchvision"
    open_adds_files = True

    def __init__(self, spec: DatasetSpec) -> None:
        root = Path(spec.root or DEFAULT_TORCHVISION_ROOT).expanduser().absolute()
        super().__init__(spec, spec.target.lower(), root)
        self.parts: list[Any] = []  # the dataset class's instances, one per split

    def options(self) -> dict[str, Any]:
        return {"size": self.spec.size, "name": self.spec.target, "split": list(self.spec.split)}

    def files(self) -> list[tuple[str, int, int]]:
        """The files of the dataset: its own folder under ROOT when there is one, else all of ROOT."""
        folder = self.root / TORCHVISION_FOLDERS.get(self.name, self.name)
        if folder.is_dir():
            return [(f"{folder.name}/{path}", size, mtime) for path, size, mtime in cache.list_files(folder)]
        return cache.list_files(self.root) if self.root.is_dir() else []

    def open(self) -> int:
        spec = self.spec
        dataset_class = _torchvision_class(spec)
        self.parts = [
            _construct(spec, dataset_class, self.root, kwargs)
            for kwargs in _split_kwargs(spec, dataset_class)
        ]
        n_images = sum(len(part) for part in self.parts)
        if n_images == 0:
            raise DatasetError(
                f"dataset {spec.text!r}: torchvision's {dataset_class.__name__} under {self.root} is empty"
            )
        return n_images

    def items(self) -> Iterator[tuple[np.ndarray, str]]:
        """Every item's pixels with its class: the class's name where the dataset names them, else its
        zero-padded index."""
        spec = self.spec
        for part in self.parts:
            names = getattr(part, "classes", None) or getattr(part, "_characters", None)
            for index in range(len(part)):
                try:
                    image, target = part[index]
                except Exception as error:
                    raise DatasetError(
                        f"dataset {spec.text!r}: cannot read item {index} ({' '.join(str(error).split())})"
                    ) from None
                label = _class_key(spec, target, names)
                yield _torchvision_pixels(spec, image, index), label

    def class_names(self, distinct: np.ndarray, labels: np.ndarray) -> list[str]:
        counts = np.bincount(labels, minlength=len(distinct))
        check_classes(
            self.spec, [(f"class {c}", int(n)) for c, n in zip(distinct, counts, strict=True)], "torchvision"
        )
        return [str(int(c)) if c.isdigit() else str(c) for c in distinct]


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
