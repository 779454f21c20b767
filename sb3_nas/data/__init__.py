"""Datasets: the ``ImageDataset`` interface, a registry of loaders by name, the built-in offline tasks, and
specs for the user's data (``folder:PATH``, ``npz:PATH``, ``tfrecords:PATH``, ``torchvision:NAME[:ROOT]``)
decoded once into an on-disk cache.

Importing the package registers the built-in tasks (see :mod:`sb3_nas.data.builtin`).
"""

from sb3_nas.data.base import DatasetError, DatasetWarning, ImageDataset, UnknownDatasetError
from sb3_nas.data.builtin import DEFAULT_DATASET, EVAL_TASKS, TRAIN_TASKS
from sb3_nas.data.registry import (
    DatasetLoader,
    clear_dataset_cache,
    describe_dataset,
    list_datasets,
    load_dataset,
    register_dataset,
)
from sb3_nas.data.specs import SPEC_KINDS, parse_spec

__all__ = [
    "DEFAULT_DATASET",
    "EVAL_TASKS",
    "TRAIN_TASKS",
    "DatasetError",
    "DatasetLoader",
    "DatasetWarning",
    "ImageDataset",
    "SPEC_KINDS",
    "UnknownDatasetError",
    "clear_dataset_cache",
    "describe_dataset",
    "list_datasets",
    "load_dataset",
    "parse_spec",
    "register_dataset",
]
