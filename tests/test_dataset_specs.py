"""Dataset specs: image folders, NumPy archives, meta-dataset TFRecords and torchvision datasets, decoded once
into the on-disk cache; each loader end to end through the environment, and every error naming its culprit.

Every fixture is written here: real JPEG and PNG files (Pillow), archives, and TFRecord files whose framing,
CRCs and ``tf.train.Example`` protobuf are encoded by hand below, independently of the package's reader.
"""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sb3_nas.data import (
    DatasetError,
    DatasetWarning,
    ImageDataset,
    clear_dataset_cache,
    load_dataset,
    parse_spec,
    registry,
)
from sb3_nas.data import loaders as loaders_module
from sb3_nas.data.tfrecord import crc32c, crc32c_python, parse_example
from sb3_nas.envs import NasEnv
from sb3_nas.errors import InputError

CONV3 = 1  # a 3x3 convolution: a valid one-layer network at any input size


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    """A fresh decode-once cache and in-process registry for every test."""
    folder = tmp_path / "data_cache"
    monkeypatch.setenv("SB3_NAS_DATA_CACHE", str(folder))
    monkeypatch.setattr(registry, "_LOADED", dict(registry._LOADED))
    return folder


def pixels(seed: int, shape=(10, 12, 3)) -> np.ndarray:
    """Smooth gradients plus a little noise: images a JPEG keeps close to the original."""
    rng = np.random.default_rng(seed)
    grid = np.add.outer(np.arange(shape[0]), np.arange(shape[1])) * rng.uniform(2, 8)
    image = grid[..., np.newaxis] + rng.integers(0, 40, size=shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    (image.convert(mode) if mode else image).save(path, quality=95)


def image_folder(root: Path, n_classes: int = 3, per_class: int = 6, shape=(10, 12, 3)) -> dict:
    """Class folders of PNG (lossless) images; returns {class name: [arrays in file order]}."""
    content = {}
    for label in range(n_classes):
        arrays = [pixels(100 * label + i, shape) for i in range(per_class)]
        for i, array in enumerate(arrays):
            save(root / f"class_{label}" / f"img_{i:02d}.png", array)
        content[f"class_{label}"] = arrays
    return content


# --- TFRecords written by hand ----------------------------------------------------------------------------


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    crc = crc32c_bitwise(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def example(features: dict, packed: bool = True) -> bytes:
    """tf.train.Example{features: Features{feature: map<string, Feature>}} with bytes and int64 values."""
    entries = b""
    for key, value in features.items():
        if isinstance(value, bytes):
            feature = field(1, field(1, value))  # Feature.bytes_list = BytesList{value: [value]}
        elif packed:
            feature = field(3, field(1, varint(value)))  # Feature.int64_list = Int64List{packed value}
        else:
            feature = field(3, varint(1 << 3 | 0) + varint(value))  # the unpacked form
        entries += field(1, field(1, key.encode()) + field(2, feature))
    return field(1, entries)


def frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked(length)) + data + struct.pack("<I", masked(data))


def encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def tfrecords_source(root: Path, n_classes: int = 3, per_class: int = 5, spec_json: bool = True) -> dict:
    """meta-dataset's layout: ``{label}.tfrecords`` per class, PNG bytes under ``image`` and the class under
    ``label`` (class 1 in JPEG, with the unpacked int64 form and an extra feature), ``dataset_spec.json``."""
    root.mkdir(parents=True)
    content = {}
    for label in range(n_classes):
        arrays = [pixels(1000 + 10 * label + i) for i in range(per_class)]
        fmt = "JPEG" if label == 1 else "PNG"
        records = b"".join(
            frame(example({"image": encode(a, fmt), "label": label, "id": i}, packed=label != 1))
            for i, a in enumerate(arrays)
        )
        (root / f"{label}.tfrecords").write_bytes(records)
        content[label] = arrays
    if spec_json:
        spec = {
            "name": "my_source",
            "images_per_class": {str(k): per_class for k in range(n_classes)},
            "class_names": {str(k): f"kind_{k}" for k in range(n_classes)},
            "file_pattern": "{}.tfrecords",
            "__class__": "DatasetSpecification",
        }
        (root / "dataset_spec.json").write_text(json.dumps(spec))
    return content


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert (
        "\n" not in message and isinstance(error.value, DatasetError) and isinstance(error.value, InputError)
    )
    return message


# --- the spec grammar -------------------------------------------------------------------------------------


def test_spec_grammar():
    spec = parse_spec("folder:data/my:images:size=32")
    assert (spec.kind, spec.target, spec.size) == ("folder", "data/my:images", 32)
    spec = parse_spec("torchvision:DTD:/data/dtd:download=true")
    assert (spec.target, spec.root, spec.download, spec.split) == ("DTD", "/data/dtd", True, ())
    spec = parse_spec("torchvision:Omniglot:split=background")
    assert (spec.root, spec.split) == ("data", ("background",))
    assert parse_spec("torchvision:Flowers102:r:split=train+val:size=84").split == ("train", "val")
    assert parse_spec("npz:a/b.npz").target == "a/b.npz" and parse_spec("tfrecords:x").size is None
    for bad, problem in [
        ("folder:", "names no path"),
        ("folder:x:download=true", "takes no option download"),
        ("folder:x:size=0", "size must be"),
        ("folder:x:size=84:size=32", "given twice"),
        ("torchvision:DTD:r:download=maybe", "download must be true or false"),
        ("npz:x.npz:size=3", "takes no option size"),
    ]:
        with pytest.raises(DatasetError, match=problem) as error:
            load_dataset(bad)
        assert bad in one_line(error)


# --- image folders ----------------------------------------------------------------------------------------


def test_folder_of_png_and_jpeg_in_grey_rgb_and_rgba_loads_as_rgb(tmp_path):
    root = tmp_path / "mixed"
    content = image_folder(root, n_classes=2, per_class=4)
    grey = pixels(7, (10, 12, 1))
    save(root / "class_0" / "img_04.png", grey)  # grey PNG among colour ones
    rgba = np.dstack([pixels(8), np.full((10, 12, 1), 90, np.uint8)])
    Image.fromarray(rgba).save(root / "class_1" / "img_04.png")
    save(root / "class_1" / "img_05.jpg", pixels(9))
    save(root / "class_2" / "a.jpeg", pixels(10))
    save(root / "class_2" / "sub" / "b.JPG", pixels(11))  # any depth, any case
    save(root / "class_2" / "c.png", pixels(12, (10, 12, 1)), mode="1")  # 1-bit PNG
    (root / "class_2" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("not a class")

    dataset = load_dataset(f"folder:{root}")
    assert dataset.name == "mixed" and dataset.image_shape == (10, 12, 3) and dataset.n_classes == 3
    assert dataset.images.dtype == np.uint8 and not dataset.images.flags.writeable
    assert np.array_equal(dataset.labels, [0] * 5 + [1] * 6 + [2] * 3)
    for i in range(4):  # PNG is lossless: exact pixels, in file-name order
        assert np.array_equal(dataset.images[i], content["class_0"][i])
    assert np.array_equal(dataset.images[4], np.repeat(grey, 3, axis=2))  # grey → RGB
    assert np.array_equal(dataset.images[9], rgba[..., :3])  # RGBA → RGB, alpha dropped
    jpeg = np.asarray(Image.open(root / "class_1" / "img_05.jpg"))
    assert np.array_equal(dataset.images[10], jpeg) and np.abs(jpeg - pixels(9).astype(int)).mean() < 20
    bits = dataset.images[12]  # class_2's files in path order: a.jpeg, c.png, sub/b.JPG
    assert set(np.unique(bits)) <= {0, 255} and np.all(bits[..., 0] == bits[..., 2])


def test_grey_folder_stays_one_channel_and_mixed_sizes_are_resized(tmp_path):
    image_folder(tmp_path / "grey", shape=(9, 9, 1))
    dataset = load_dataset(f"folder:{tmp_path / 'grey'}")
    assert dataset.image_shape == (9, 9, 1)
    assert np.array_equal(dataset.images[0], pixels(0, (9, 9, 1)))

    root = tmp_path / "sizes"
    image_folder(root)
    save(root / "class_1" / "wide.png", pixels(5, (20, 40, 3)))
    assert load_dataset(f"folder:{root}").image_shape == (84, 84, 3)  # two sizes: the paper's 84×84
    small = load_dataset(f"folder:{root}:size=16")
    assert small.image_shape == (16, 16, 3) and len(small) == 19


def test_folder_errors_name_the_culprit(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as error:
        load_dataset(f"folder:{tmp_path / 'missing'}")
    assert str(tmp_path / "missing") in one_line(error)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is not a folder"):
        load_dataset(f"folder:{tmp_path / 'file'}")

    root = tmp_path / "flat"
    save(root / "a.png", pixels(0))
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load_dataset(f"folder:{root}")

    root = tmp_path / "empty_class"
    image_folder(root, n_classes=2)
    (root / "class_9").mkdir()
    (root / "class_9" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError) as error:
        load_dataset(f"folder:{root}")
    assert f"class folder {root / 'class_9'} holds no JPEG or PNG images" in one_line(error)

    root = tmp_path / "single"
    image_folder(root, n_classes=1)
    with pytest.raises(DatasetError) as error:
        load_dataset(f"folder:{root}")
    assert f"single class (class folder {root / 'class_0'})" in one_line(error)

    root = tmp_path / "small_class"
    image_folder(root, n_classes=2)
    image_folder(tmp_path / "tmp2", n_classes=1, per_class=2)
    shutil.copytree(tmp_path / "tmp2" / "class_0", root / "class_2")
    with pytest.raises(DatasetError) as error:
        load_dataset(f"folder:{root}")
    assert f"class folder {root / 'class_2'} holds 2 images" in one_line(error)

    root = tmp_path / "corrupt"
    image_folder(root, n_classes=2)
    bad = root / "class_1" / "img_03.png"
    bad.write_bytes(bad.read_bytes()[:60])  # a truncated PNG
    with pytest.raises(DatasetError) as error:
        load_dataset(f"folder:{root}")
    assert f"cannot read image {bad}" in one_line(error)
    (root / "class_1" / "img_03.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="cannot read image .*img_03.png"):
        load_dataset(f"folder:{root}")


# --- NumPy archives ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("image_key", "label_key"), [("images", "labels"), ("x", "y")])
def test_npz_spec_under_both_key_conventions(tmp_path, image_key, label_key):
    images = np.stack([pixels(i) for i in range(12)])
    path = tmp_path / "arrays.npz"
    np.savez(path, **{image_key: images, label_key: np.arange(12) % 3})
    for text in (f"npz:{path}", str(path)):
        dataset = load_dataset(text)
        assert dataset.name == "arrays" and np.array_equal(dataset.images, images)
    np.savez(path, **{image_key: images, label_key: np.arange(11) % 3})
    clear_dataset_cache()
    with pytest.raises(DatasetError) as error:
        load_dataset(f"npz:{path}")
    assert one_line(error) == f"dataset file {path}: 11 labels for 12 images"
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")


# --- meta-dataset TFRecords -------------------------------------------------------------------------------


def test_crc32c_matches_the_standard_check_value():
    assert crc32c_python(b"123456789") == crc32c(b"123456789") == crc32c_bitwise(b"123456789") == 0xE3069283
    data = os.urandom(1000)
    assert crc32c_python(data) == crc32c_bitwise(data)


def test_tfrecords_source_as_meta_dataset_writes_it(tmp_path):
    content = tfrecords_source(tmp_path / "records")
    parsed = parse_example(example({"image": b"\x00\xff", "label": -3, "id": 7}))
    assert parsed == {"image": [b"\x00\xff"], "label": [-3], "id": [7]}

    dataset = load_dataset(f"tfrecords:{tmp_path / 'records'}")
    assert dataset.name == "my_source" and dataset.image_shape == (10, 12, 3) and dataset.n_classes == 3
    assert np.array_equal(dataset.labels, np.repeat([0, 1, 2], 5))
    assert np.array_equal(dataset.images[0], content[0][0]) and np.array_equal(
        dataset.images[14], content[2][4]
    )
    jpeg = np.asarray(Image.open(io.BytesIO(encode(content[1][0], "JPEG"))))
    assert np.array_equal(dataset.images[5], jpeg)  # the JPEG class, as Pillow decodes it
    meta = json.loads(next(Path(os.environ["SB3_NAS_DATA_CACHE"]).glob("*.json")).read_text())
    assert meta["classes"] == ["kind_0", "kind_1", "kind_2"] and meta["n_images"] == 15

    tfrecords_source(tmp_path / "plain", spec_json=False)  # without dataset_spec.json: named by its folder
    assert load_dataset(f"tfrecords:{tmp_path / 'plain'}").name == "plain"


def test_tfrecords_errors_name_the_file_and_record(tmp_path):
    def broken(name: str, change) -> Path:
        root = tmp_path / name
        tfrecords_source(root, spec_json=False)
        change(root / "1.tfrecords")
        return root

    def replace_record(path: Path, features: dict) -> None:
        path.write_bytes(frame(example(features)) + path.read_bytes())

    cases = [
        (
            "no_image",
            lambda p: replace_record(p, {"pixels": b"x", "label": 1}),
            "record 0 has no 'image' bytes",
        ),
        ("no_label", lambda p: replace_record(p, {"image": encode(pixels(0), "PNG")}), "no 'label' int64"),
        ("truncated", lambda p: p.write_bytes(p.read_bytes()[:-10]), "is truncated"),
        ("empty", lambda p: p.write_bytes(b""), "is empty (a class without images)"),
    ]
    for name, change, problem in cases:
        root = broken(name, change)
        with pytest.raises(DatasetError) as error:
            load_dataset(f"tfrecords:{root}")
        message = one_line(error)
        assert problem in message and str(root / "1.tfrecords") in message, message

    def flip(path: Path, offset: int) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    root = broken("bad_crc", lambda p: flip(p, 40))
    with pytest.raises(DatasetError, match=r"1.tfrecords: record 0 at byte 0: data CRC mismatch"):
        load_dataset(f"tfrecords:{root}")
    root = broken("bad_length_crc", lambda p: flip(p, 9))
    with pytest.raises(DatasetError, match="length CRC mismatch"):
        load_dataset(f"tfrecords:{root}")
    root = broken("bad_image", lambda p: replace_record(p, {"image": b"garbage", "label": 1}))
    with pytest.raises(DatasetError, match=r"cannot read image in record 0 of .*1.tfrecords"):
        load_dataset(f"tfrecords:{root}")

    root = tmp_path / "spec_mismatch"
    tfrecords_source(root)
    (root / "2.tfrecords").unlink()
    with pytest.raises(DatasetError) as error:
        load_dataset(f"tfrecords:{root}")
    assert "dataset_spec.json lists class 2 (5 images) but" in one_line(error)
    spec = json.loads((root / "dataset_spec.json").read_text())
    spec["images_per_class"] = {"0": 5, "1": 4}
    (root / "dataset_spec.json").write_text(json.dumps(spec))
    with pytest.raises(DatasetError, match=r"says class 1 has 4 images, but .*1.tfrecords holds 5 records"):
        load_dataset(f"tfrecords:{root}")

    root = tmp_path / "one_class"
    tfrecords_source(root, n_classes=1, spec_json=False)
    with pytest.raises(DatasetError, match="single class"):
        load_dataset(f"tfrecords:{root}")
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="holds no .tfrecords files"):
        load_dataset(f"tfrecords:{tmp_path / 'none'}")
    assert not any(Path(os.environ["SB3_NAS_DATA_CACHE"]).glob("*"))  # nothing cached from a failure


# --- the decode-once cache --------------------------------------------------------------------------------


def refuse_to_decode(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded although the dataset is cached")

    monkeypatch.setattr(loaders_module, "open_image", fail)


def test_second_load_comes_from_the_cache_without_decoding(tmp_path, data_cache, monkeypatch):
    root = tmp_path / "task"
    image_folder(root)
    decoder = loaders_module.open_image
    first = load_dataset(f"folder:{root}")
    entry = sorted(path.name for path in data_cache.iterdir())
    assert len(entry) == 3 and entry[0].startswith("task-") and entry[0].endswith(".images.npy")
    assert [p.suffix for p in map(Path, entry)] == [".npy", ".json", ".npy"]

    clear_dataset_cache()
    refuse_to_decode(monkeypatch)
    second = load_dataset(f"folder:{root}")
    assert second is not first and second.fingerprint == first.fingerprint
    base = second.images
    while not isinstance(base, np.memmap):
        base = base.base
    assert base.mode == "r" and np.shares_memory(base, second.images)  # mapped from the file, not copied
    with pytest.raises(ValueError):
        second.images[0, 0, 0, 0] = 1

    # a changed source is decoded again, and its old entry goes
    monkeypatch.setattr(loaders_module, "open_image", decoder)
    save(root / "class_0" / "img_99.png", pixels(99))
    clear_dataset_cache()
    assert len(load_dataset(f"folder:{root}")) == 19
    assert len(list(data_cache.iterdir())) == 3


def test_a_worker_process_loads_from_the_cache(tmp_path, data_cache):
    root = tmp_path / "task"
    image_folder(root)
    fingerprint = load_dataset(f"folder:{root}").fingerprint
    code = (
        "import sb3_nas.data.loaders as loaders\n"
        "loaders.open_image = None  # any decoding would fail\n"
        "from sb3_nas.data import load_dataset\n"
        f"print(load_dataset('folder:{root}').fingerprint)\n"
    )
    env = {**os.environ, "SB3_NAS_DATA_CACHE": str(data_cache)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == fingerprint


def test_an_unwritable_cache_warns_and_still_loads(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("SB3_NAS_DATA_CACHE", str(tmp_path / "a_file" / "cache"))
    image_folder(tmp_path / "task")
    with pytest.warns(DatasetWarning, match="cannot write the data cache"):
        dataset = load_dataset(f"folder:{tmp_path / 'task'}")
    assert len(dataset) == 18 and not dataset.images.flags.writeable


def test_a_damaged_cache_entry_is_decoded_again(tmp_path, data_cache):
    image_folder(tmp_path / "task")
    fingerprint = load_dataset(f"folder:{tmp_path / 'task'}").fingerprint
    images = next(data_cache.glob("*.images.npy"))
    images.unlink()  # a new file: truncating the mapped one in place would kill this process (SIGBUS)
    images.write_bytes(b"garbage")
    clear_dataset_cache()
    with pytest.warns(DatasetWarning, match="is damaged"):
        assert load_dataset(f"folder:{tmp_path / 'task'}").fingerprint == fingerprint


def test_copies_of_the_same_images_share_the_fingerprint_and_memo_entries(tmp_path):
    image_folder(tmp_path / "original")
    shutil.copytree(tmp_path / "original", tmp_path / "renamed")
    original, renamed = (
        load_dataset(f"folder:{tmp_path / 'original'}"),
        load_dataset(f"folder:{tmp_path / 'renamed'}"),
    )
    assert original.name != renamed.name and original.fingerprint == renamed.fingerprint
    assert original.split()[1].tolist() == renamed.split()[1].tolist()  # ImageDataset's stratified split

    memo = f"sqlite:///{tmp_path / 'm.sqlite'}"
    rewards = []
    for spec in (f"folder:{tmp_path / 'original'}", f"folder:{tmp_path / 'renamed'}"):
        env = NasEnv(dataset=spec, fidelity="tiny", memo=memo, memo_info=True)
        env.reset(seed=0)
        _, reward, *_, info = env.step(CONV3)
        rewards.append((reward, info["memo_hit"]))
        env.estimator.memo.close()
    assert rewards[0][1] is False and rewards[1] == (rewards[0][0], True)


# --- unbalanced classes -----------------------------------------------------------------------------------


def test_unbalanced_classes_warn():
    images = np.zeros((10, 4, 4), np.uint8)
    with pytest.warns(
        DatasetWarning, match=r"'lopsided': unbalanced classes, from 3 images \(class 0\) to 7"
    ):
        ImageDataset("lopsided", images, np.r_[[0] * 3, [1] * 7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageDataset("even", images, np.r_[[0] * 4, [1] * 6])


# --- torchvision ------------------------------------------------------------------------------------------


def fake_torchvision(monkeypatch, base: Path) -> types.ModuleType:
    """A stand-in torchvision: DTD-like (split, classes, download) and Omniglot-like (background) classes
    that read PNG folders under root as torchvision lays them out."""

    class FolderDataset:
        folder = "dtd"

        def __init__(self, root, split="train", transform=None, download=False):
            self.root = Path(root) / self.folder / split
            if download:
                image_folder(self.root, n_classes=3, per_class=4 if split != "test" else 3)
            if not self.root.is_dir():
                raise RuntimeError("Dataset not found. You can use download=True to download it")
            self.classes = sorted(p.name for p in self.root.iterdir())
            self.items = [
                (f, self.classes.index(c.name))
                for c in sorted(self.root.iterdir())
                for f in sorted(c.iterdir())
            ]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            path, target = self.items[index]
            return Image.open(path).convert("RGB"), target

    class DTD(FolderDataset):
        pass

    class Omniglot(FolderDataset):
        folder = "omniglot-py"

        def __init__(self, root, background=True, download=False):
            half = "images_background" if background else "images_evaluation"
            super().__init__(root, half, None, download)
            # as torchvision's: no classes, characters named by their path, labels from 0 in each half
            self._characters, self.classes = [f"{half}/{name}" for name in self.classes], None

    module = types.ModuleType("torchvision")
    module.datasets = types.ModuleType("torchvision.datasets")
    module.datasets.DTD, module.datasets.Omniglot = DTD, Omniglot
    monkeypatch.setitem(sys.modules, "torchvision", module)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", module.datasets)
    return module


def test_torchvision_dataset_by_name_all_splits_download_only_when_asked(tmp_path, monkeypatch):
    fake_torchvision(monkeypatch, tmp_path)
    root = tmp_path / "tv"
    with pytest.raises(DatasetError) as error:
        load_dataset(f"torchvision:DTD:{root}")
    message = one_line(error)
    assert f"files not found under {root}" in message and ":download=true" in message

    dataset = load_dataset(f"torchvision:dtd:{root}:download=true")  # the class name in any case
    assert dataset.name == "dtd" and len(dataset) == 3 * (4 + 4 + 3) and dataset.n_classes == 3
    assert len(load_dataset(f"torchvision:DTD:{root}:split=test")) == 9

    # Omniglot's two halves number their characters from 0 each: they stay apart
    omniglot = load_dataset(f"torchvision:Omniglot:{root}:download=true")
    assert omniglot.n_classes == 6 and len(omniglot) == 24
    with pytest.raises(DatasetError, match="unknown split 'train'; choose among background, evaluation"):
        load_dataset(f"torchvision:Omniglot:{root}:split=train")
    with pytest.raises(DatasetError, match="torchvision has no dataset 'CUB200'"):
        load_dataset(f"torchvision:CUB200:{root}")

    # cached: loads without torchvision at all
    clear_dataset_cache()
    monkeypatch.setitem(sys.modules, "torchvision", None)
    refuse_to_decode(monkeypatch)
    assert load_dataset(f"torchvision:dtd:{root}:download=true").fingerprint == dataset.fingerprint


def test_torchvision_missing_or_broken_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(DatasetError) as error:
        load_dataset(f"torchvision:DTD:{tmp_path}")
    assert "needs torchvision, which is not installed" in one_line(error)

    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name.startswith("torchvision"):
                raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.delitem(sys.modules, "torchvision")
    monkeypatch.delitem(sys.modules, "torchvision.datasets")
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(DatasetError) as error:
        load_dataset(f"torchvision:Flowers102:{tmp_path}")
    assert "installed but does not import (RuntimeError: operator torchvision::nms" in one_line(error)


def test_real_torchvision_image_folder_when_installed(tmp_path):
    try:
        import torchvision.datasets  # noqa: F401
    except Exception as error:  # absent, or a build for another torch
        pytest.skip(f"torchvision does not import here ({type(error).__name__})")
    image_folder(tmp_path / "folder")
    dataset = load_dataset(f"torchvision:ImageFolder:{tmp_path / 'folder'}")
    assert len(dataset) == 18 and dataset.n_classes == 3 and dataset.image_shape == (10, 12, 3)


# --- every loader end to end through the environment ------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "npz", "tfrecords", "torchvision"])
def test_every_loader_through_the_environment(tmp_path, monkeypatch, kind):
    if kind == "folder":
        image_folder(tmp_path / "source", per_class=8)
        spec = f"folder:{tmp_path / 'source'}"
    elif kind == "npz":
        np.savez(tmp_path / "source.npz", x=np.stack([pixels(i) for i in range(24)]), y=np.arange(24) % 3)
        spec = f"npz:{tmp_path / 'source.npz'}"
    elif kind == "tfrecords":
        tfrecords_source(tmp_path / "source", per_class=8)
        spec = f"tfrecords:{tmp_path / 'source'}"
    else:
        fake_torchvision(monkeypatch, tmp_path)
        spec = f"torchvision:DTD:{tmp_path / 'tv'}:download=true"
    env = NasEnv(dataset=spec, fidelity="tiny", memo=f"sqlite:///{tmp_path}/m.sqlite")
    env.reset(seed=0)
    _, reward, *_, info = env.step(CONV3)
    assert info["valid"] and 0.0 <= reward <= 1.0
    env.estimator.memo.close()
