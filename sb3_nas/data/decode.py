"""Decoding encoded images (JPEG, PNG, …) into one uint8 (N, H, W, C) array with Pillow.

Grey images (Pillow modes ``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``) stay one channel and every other mode
becomes RGB (an alpha channel is dropped, a palette expanded); a source that mixes grey and colour images is
stored as RGB. When every image has the same size they keep it, else every image is resized bilinearly (with
Pillow's antialiasing) to ``DEFAULT_IMAGE_SIZE`` square, the paper's input size; the fidelity resizes later.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from sb3_nas.data.base import DatasetError

DEFAULT_IMAGE_SIZE = 84  # the paper's 84×84 inputs (meta-dataset's decoder resizes to it too)
_GREY_MODES = {"1", "L", "LA", "I", "F"}
_PROBE = 32  # images looked at before the output array is allocated at their shared size


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow ships with scikit-image, a dependency
        raise DatasetError("decoding image files needs Pillow (pip install pillow)") from None
    return Image


def open_image(source: str | Path | bytes, what: str):
    """A Pillow image from a path or encoded bytes, fully decoded; ``what`` names it in the error."""
    Image = _pil()
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()
    except Exception as error:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, …)
        raise DatasetError(f"cannot read image {what} ({_one_line(error)})") from None
    return image


def to_pixels(image) -> np.ndarray:
    """A Pillow image as uint8 (H, W, 1) when it is grey, else (H, W, 3) RGB."""
    mode = image.mode
    if mode.startswith("I;16"):  # 16-bit grey: keep the high byte
        pixels = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
    elif mode in ("I", "F"):
        pixels = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
    elif mode in _GREY_MODES:
        pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    else:
        pixels = np.asarray(image if mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    return pixels.reshape(*pixels.shape[:2], -1)


def resize_pixels(pixels: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) uint8 resized to (size, size, C) by Pillow's bilinear filter (antialiased when shrinking)."""
    if pixels.shape[:2] == (size, size):
        return pixels
    Image = _pil()
    channels = pixels.shape[2]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return resized.reshape(size, size, channels)


class ImageCollector:
    """Gathers ``n`` decoded images into one uint8 (n, H, W, C) array, in order.

    ``size``: resize every image to size×size; ``None``: keep the shared size of the images, or resize all of
    them to :data:`DEFAULT_IMAGE_SIZE` as soon as two sizes differ. Grey images turn RGB once a colour image
    arrives. Images already stored are converted then, exactly as if they had arrived after.
    """

    def __init__(self, n_images: int, size: int | None = None, name: str = "dataset") -> None:
        self.n_images = n_images
        self.size = size
        self.name = name
        self.array: np.ndarray | None = None
        self._pending: list[np.ndarray] = []
        self._count = 0

    def add(self, pixels: np.ndarray) -> None:
        """Store the next image, (H, W, C) uint8 from :func:`to_pixels`."""
        if self._count >= self.n_images:
            raise DatasetError(f"{self.name}: more images than the {self.n_images} counted")
        if self.size is not None:
            pixels = resize_pixels(pixels, self.size)
        if self.array is None:
            self._pending.append(pixels)
            if len({p.shape[:2] for p in self._pending}) > 1:
                self.size = DEFAULT_IMAGE_SIZE
                self._pending = [resize_pixels(p, self.size) for p in self._pending]
            if len(self._pending) >= min(_PROBE, self.n_images):
                self._allocate()
            self._count += 1
            return
        height, width, channels = self.array.shape[1:]
        if pixels.shape[:2] != (height, width):  # a second size after the probe: resize what is stored
            self.size = DEFAULT_IMAGE_SIZE
            self._convert(self.size, self.size, channels)
            pixels = resize_pixels(pixels, self.size)
        if pixels.shape[2] > channels:
            self._convert(*self.array.shape[1:3], 3)
        self.array[self._count] = pixels
        self._count += 1

    def finish(self) -> np.ndarray:
        """The (n, H, W, C) array, once every image was added."""
        if self.array is None and self._pending:
            self._allocate()
        if self.array is None or self._count != self.n_images:
            raise DatasetError(f"{self.name}: {self._count} images decoded, {self.n_images} expected")
        array, self.array = self.array, None
        return array

    def _allocate(self) -> None:
        height, width = self._pending[0].shape[:2]
        channels = max(p.shape[2] for p in self._pending)
        try:
            self.array = np.empty((self.n_images, height, width, channels), dtype=np.uint8)
        except MemoryError:
            gib = self.n_images * height * width * channels / 2**30
            raise DatasetError(
                f"{self.name}: {self.n_images} images of {height}x{width}x{channels} need {gib:.1f} GiB; "
                "add :size=N to the spec to resize them to N×N"
            ) from None
        for index, pixels in enumerate(self._pending):
            self.array[index] = pixels
        self._pending = []

    def _convert(self, height: int, width: int, channels: int) -> None:
        """Convert the images stored so far to height×width (square when resized) with ``channels``."""
        old = self.array
        self.array = np.empty((self.n_images, height, width, channels), dtype=np.uint8)
        for index in range(self._count):
            pixels = old[index] if old.shape[1:3] == (height, width) else resize_pixels(old[index], height)
            self.array[index] = pixels  # a grey image broadcasts to RGB
        del old


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
