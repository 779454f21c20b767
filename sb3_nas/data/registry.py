"""Datasets by name: a registry of zero-argument loaders whose results are cached in-process."""

from __future__ import annotations

from collections.abc import Callable

from sb3_nas.data.base import DatasetError, ImageDataset, UnknownDatasetError
from sb3_nas.data.specs import is_spec

DatasetLoader = Callable[[], ImageDataset]

_LOADERS: dict[str, DatasetLoader] = {}
_DESCRIPTIONS: dict[str, str] = {}
_LOADED: dict[str, ImageDataset] = {}


def register_dataset(
    name: str, loader: DatasetLoader, description: str = "", *, overwrite: bool = False
) -> None:
    """Make ``load_dataset(name)`` call ``loader()`` (once per process); ``overwrite`` replaces a name."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise DatasetError(f"dataset name must be a non-empty string without outer spaces, got {name!r}")
    if not callable(loader):
        raise DatasetError(f"dataset {name!r}: loader must be a zero-argument callable, got {loader!r}")
    if name in _LOADERS and not overwrite:
        raise DatasetError(f"dataset {name!r} is already registered; pass overwrite=True to replace it")
    _LOADERS[name] = loader
    _DESCRIPTIONS[name] = description
    _LOADED.pop(name, None)


def list_datasets() -> list[str]:
    """Sorted names of the registered datasets."""
    return sorted(_LOADERS)


def describe_dataset(name: str) -> str:
    """The one-line description a dataset was registered with."""
    _check_known(name)
    return _DESCRIPTIONS[name]


def load_dataset(dataset: str | ImageDataset) -> ImageDataset:
    """The dataset registered under a name, named by a spec, or stored at a ``.npz`` path (loaded once per
    process), or an ``ImageDataset`` as is.

    Specs (see :mod:`sb3_nas.data.specs`): ``folder:PATH``, ``npz:PATH``, ``tfrecords:PATH`` and
    ``torchvision:NAME[:ROOT]``, with options such as ``:size=84`` or ``:download=true``. Image folders,
    TFRecords and torchvision datasets are decoded once into the on-disk cache (:mod:`sb3_nas.data.cache`).
    """
    if isinstance(dataset, ImageDataset):
        return dataset
    if not isinstance(dataset, str):
        raise TypeError(f"expected a dataset name or an ImageDataset, got {type(dataset).__name__}")
    if dataset not in _LOADED and dataset not in _LOADERS and is_spec(dataset):
        from sb3_nas.data.loaders import load_spec

        _LOADED[dataset] = load_spec(dataset)
    if dataset not in _LOADED and dataset not in _LOADERS and dataset.endswith(".npz"):
        from sb3_nas.data.loaders import load_npz

        _LOADED[dataset] = load_npz(dataset)  # a NumPy archive given by its path
    if dataset not in _LOADED:
        _check_known(dataset)
        loaded = _LOADERS[dataset]()
        if not isinstance(loaded, ImageDataset):
            raise DatasetError(
                f"dataset {dataset!r}: loader returned {type(loaded).__name__}, not ImageDataset"
            )
        _LOADED[dataset] = loaded
    return _LOADED[dataset]


def clear_dataset_cache(name: str | None = None) -> None:
    """Forget loaded datasets (one name, or all), so the next ``load_dataset`` runs the loader again."""
    if name is None:
        _LOADED.clear()
    else:
        _LOADED.pop(name, None)


def _check_known(name: str) -> None:
    if name not in _LOADERS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
