"""Datasets: the ``ImageDataset`` interface, a registry of loaders by name, and the built-in offline tasks.

Importing the package registers the built-in tasks (see :mod:`sb3_nas.data.builtin`).
"""

from sb3_nas.data.base import DatasetError, ImageDataset, UnknownDatasetError
from sb3_nas.data.builtin import DEFAULT_DATASET, EVAL_TASKS, TRAIN_TASKS
from sb3_nas.data.registry import (
    DatasetLoader,
    clear_dataset_cache,
    describe_dataset,
    list_datasets,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DEFAULT_DATASET",
    "EVAL_TASKS",
    "TRAIN_TASKS",
    "DatasetError",
    "DatasetLoader",
    "ImageDataset",
    "UnknownDatasetError",
    "clear_dataset_cache",
    "describe_dataset",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
