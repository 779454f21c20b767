"""``tfrecords:PATH``: a meta-dataset source, one ``.tfrecords`` file of ``tf.train.Example`` records per
class."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sb3_nas.data import cache
from sb3_nas.data.base import DatasetError
from sb3_nas.data.sources.base import EncodedImage, Source, check_classes, existing_folder
from sb3_nas.data.specs import DatasetSpec
from sb3_nas.data.tfrecord import count_records, iter_records, parse_example

TFRECORD_SUFFIX = ".tfrecords"
DATASET_SPEC_FILE = "dataset_spec.json"  # what meta-dataset's conversion writes beside the records


class TFRecordSource(Source):
    """A source as meta-dataset's conversion writes it — one ``.tfrecords`` file per class of
    ``tf.train.Example`` records with the encoded image under ``image`` and the class under ``label`` — and
    its ``dataset_spec.json`` when there is one (its name and image counts are used and checked). Read
    without TensorFlow, every record's CRCs checked. The cache key hashes the files beside the records only.
    """

    kind = "tfrecords"

    def __init__(self, spec: DatasetSpec) -> None:
        root = existing_folder(spec)
        self.record_files = sorted(
            (path for path in root.iterdir() if path.is_file() and path.name.endswith(TFRECORD_SUFFIX)),
            key=lambda path: (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.name),
        )
        if not self.record_files:
            raise DatasetError(f"dataset {spec.text!r}: {root} holds no {TFRECORD_SUFFIX} files")
        self.dataset_spec = _read_dataset_spec(root)
        self._files = [entry for entry in cache.list_files(root) if "/" not in entry[0]]
        super().__init__(spec, str(self.dataset_spec.get("name") or root.name), root)

    def files(self) -> list[tuple[str, int, int]]:
        return self._files

    def open(self) -> int:
        counts = [count_records(path) for path in self.record_files]
        _check_against_dataset_spec(self.root, self.dataset_spec, self.record_files, counts)
        check_classes(
            self.spec,
            [(str(path), n) for path, n in zip(self.record_files, counts, strict=True)],
            "tfrecords file",
        )
        return sum(counts)

    def items(self) -> Iterator[tuple[EncodedImage, int]]:
        for path in self.record_files:
            for index, data in enumerate(iter_records(path)):
                image, label = _example_fields(path, index, data)
                yield EncodedImage(image, f"in record {index} of {path}"), label

    def class_names(self, distinct: np.ndarray, labels: np.ndarray) -> list[str]:
        if len(distinct) < 2:
            raise DatasetError(
                f"dataset {self.spec.text!r}: every record of {self.root} has label {distinct[0]}; "
                "a task needs at least 2 classes"
            )
        names = self.dataset_spec.get("class_names", {})
        return [str(names.get(str(label), label)) for label in distinct]


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
