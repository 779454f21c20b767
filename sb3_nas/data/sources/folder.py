"""``folder:PATH``: one sub-folder of image files per class."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sb3_nas.data import cache
from sb3_nas.data.base import DatasetError
from sb3_nas.data.sources.base import EncodedImage, Source, check_classes, existing_folder
from sb3_nas.data.specs import DatasetSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class FolderSource(Source):
    """One sub-folder per class (sorted names are labels 0..K-1), each holding image files (JPEG, PNG, … at
    any depth below it); hidden sub-folders are no classes. The classes are checked when it is built."""

    kind = "folder"

    def __init__(self, spec: DatasetSpec) -> None:
        root = existing_folder(spec)
        self._files = cache.list_files(root)
        members: dict[str, list[str]] = {
            entry.name: [] for entry in sorted(root.iterdir(), key=lambda p: p.name) if entry.is_dir()
        }
        members = {name: files for name, files in members.items() if not name.startswith(".")}
        for relative, _, _ in self._files:
            head, sep, _ = relative.partition("/")
            if sep and head in members and relative.lower().endswith(IMAGE_SUFFIXES):
                members[head].append(relative)
        if not members:
            raise DatasetError(
                f"dataset {spec.text!r}: {root} has no class sub-folders "
                "(expected one sub-folder of images per class)"
            )
        for name, files in members.items():
            if not files:
                raise DatasetError(
                    f"dataset {spec.text!r}: class folder {root / name} holds no JPEG or PNG images"
                )
        check_classes(
            spec, [(str(root / name), len(files)) for name, files in members.items()], "class folder"
        )
        super().__init__(spec, root.name, root)
        self.members = members  # class folder name → its image files (relative paths), sorted

    def files(self) -> list[tuple[str, int, int]]:
        return self._files

    def open(self) -> int:
        return sum(len(files) for files in self.members.values())

    def items(self) -> Iterator[tuple[EncodedImage, int]]:
        for label, files in enumerate(self.members.values()):
            for relative in files:
                path = self.root / relative
                yield EncodedImage(path, str(path)), label

    def class_names(self, distinct: np.ndarray, labels: np.ndarray) -> list[str]:
        return list(self.members)
