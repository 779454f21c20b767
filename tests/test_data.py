"""The dataset layer: ImageDataset validation, fingerprints, splits, the registry and the built-in tasks."""

import dataclasses
import pickle
import socket

import numpy as np
import pytest

from sb3_nas.data import (
    DEFAULT_DATASET,
    EVAL_TASKS,
    TRAIN_TASKS,
    DatasetError,
    ImageDataset,
    UnknownDatasetError,
    clear_dataset_cache,
    describe_dataset,
    list_datasets,
    load_dataset,
    register_dataset,
    registry,
)
from sb3_nas.data.builtin import PAPER_EVAL_TASKS, PAPER_TRAIN_TASKS
from sb3_nas.data.difficulty import chance_accuracy, linear_probe_accuracy

BUILTINS = ("digits", "faces", "mnist", "mnist_noisy", "photos", "textures")


def make_arrays(n_classes: int = 3, per_class: int = 6, shape: tuple[int, ...] = (5, 6)):
    """Small random uint8 images and balanced labels 0..n_classes-1."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_classes), per_class)
    images = rng.integers(0, 256, size=(len(labels), *shape), dtype=np.uint8)
    return images, labels


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test disappear after it."""
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    monkeypatch.setattr(registry, "_DESCRIPTIONS", dict(registry._DESCRIPTIONS))
    monkeypatch.setattr(registry, "_LOADED", dict(registry._LOADED))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a built-in dataset tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- built-in tasks ---------------------------------------------------------------------------------------


def test_builtin_tasks_are_registered_with_paper_roles():
    assert set(BUILTINS) <= set(list_datasets())
    assert len(TRAIN_TASKS) == len(PAPER_TRAIN_TASKS) == 3
    assert len(EVAL_TASKS) == len(PAPER_EVAL_TASKS) == 2
    assert not set(TRAIN_TASKS) & set(EVAL_TASKS)
    assert set(TRAIN_TASKS) | set(EVAL_TASKS) <= set(BUILTINS)
    assert TRAIN_TASKS[0] == DEFAULT_DATASET
    for name, paper_name in zip(TRAIN_TASKS + EVAL_TASKS, PAPER_TRAIN_TASKS + PAPER_EVAL_TASKS, strict=True):
        assert paper_name in describe_dataset(name)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_as_small_readonly_uint8_nhwc(name):
    dataset = load_dataset(name)
    n_images, height, width, channels = dataset.images.shape
    assert dataset.name == name
    assert dataset.images.dtype == np.uint8 and dataset.labels.dtype == np.int64
    assert dataset.image_shape == (height, width, channels) and channels in (1, 3)
    assert n_images == len(dataset) == len(dataset.labels) <= 5000 and max(height, width) <= 64
    assert dataset.n_classes >= 2
    assert np.array_equal(np.unique(dataset.labels), np.arange(dataset.n_classes))
    assert dataset.images.std() > 10  # real content, not a blank array
    assert not dataset.images.flags.writeable and not dataset.labels.flags.writeable
    assert describe_dataset(name)
    assert load_dataset(name) is dataset  # loaded once per process


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_reloads_offline_with_the_same_fingerprint(name, no_network):
    first = load_dataset(name)
    clear_dataset_cache(name)
    second = load_dataset(name)
    assert second is not first
    assert second.fingerprint == first.fingerprint
    assert np.array_equal(second.images, first.images) and np.array_equal(second.labels, first.labels)


def test_builtin_fingerprints_differ():
    fingerprints = {load_dataset(name).fingerprint for name in BUILTINS}
    assert len(fingerprints) == len(BUILTINS)


@pytest.mark.slow
def test_builtin_difficulty_spans_easy_to_hard():
    accuracy = {name: linear_probe_accuracy(name) for name in BUILTINS}
    for name, value in accuracy.items():
        # pixels-level linear models barely beat chance on textures; a small CNN scores about 0.45 there
        assert chance_accuracy(name) + 0.04 < value < 0.99, (name, value)
    # ordered like the paper's tasks: training medium -> medium -> hard, evaluation medium then hard
    assert accuracy[TRAIN_TASKS[0]] > accuracy[TRAIN_TASKS[1]] > accuracy[TRAIN_TASKS[2]]
    assert accuracy[EVAL_TASKS[0]] > accuracy[EVAL_TASKS[1]]


# --- fingerprint ------------------------------------------------------------------------------------------


def test_fingerprint_follows_content_not_name():
    images, labels = make_arrays()
    dataset = ImageDataset("a", images, labels)
    assert len(dataset.fingerprint) == 64 and int(dataset.fingerprint, 16) >= 0
    assert ImageDataset("b", images.copy(), labels.copy()).fingerprint == dataset.fingerprint

    one_pixel = images.copy()
    one_pixel[7, 2, 3] ^= 1
    assert ImageDataset("a", one_pixel, labels).fingerprint != dataset.fingerprint

    swapped = labels.copy()
    swapped[[0, -1]] = swapped[[-1, 0]]
    assert ImageDataset("a", images, swapped).fingerprint != dataset.fingerprint

    # same bytes, other shape
    assert ImageDataset("a", images.reshape(-1, 6, 5), labels).fingerprint != dataset.fingerprint


# --- split ------------------------------------------------------------------------------------------------


def test_split_is_stratified_disjoint_complete_and_deterministic():
    dataset = load_dataset("digits")
    train, test = dataset.split()
    assert train.dtype == test.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, no repeats
    assert not np.intersect1d(train, test).size
    assert np.array_equal(np.union1d(train, test), np.arange(len(dataset)))
    assert abs(len(test) - len(dataset) / 3) <= dataset.n_classes
    per_class = np.bincount(dataset.labels, minlength=dataset.n_classes)
    test_per_class = np.bincount(dataset.labels[test], minlength=dataset.n_classes)
    assert np.all(np.abs(test_per_class - per_class / 3) <= 1)

    assert dataset.split() is dataset.split(1 / 3, 0)  # cached per arguments
    rebuilt = ImageDataset("copy", dataset.images, dataset.labels)
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt.split(), (train, test), strict=True))
    assert not np.array_equal(dataset.split(seed=1)[1], test)
    assert len(dataset.split(test_fraction=0.5)[1]) == pytest.approx(len(dataset) / 2, abs=1)
    assert not train.flags.writeable  # the cached split cannot be corrupted


def test_split_puts_one_of_three_examples_in_test():
    images, labels = make_arrays(n_classes=4, per_class=3)
    train, test = ImageDataset("tiny", images, labels).split()
    assert np.array_equal(np.bincount(labels[test]), [1, 1, 1, 1])
    assert np.array_equal(np.bincount(labels[train]), [2, 2, 2, 2])


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, -0.1])
def test_split_rejects_fraction_outside_unit_interval(test_fraction):
    with pytest.raises(DatasetError, match="'tiny'"):
        ImageDataset("tiny", *make_arrays()).split(test_fraction)


# --- construction and validation --------------------------------------------------------------------------


def test_grey_images_get_a_channel_axis_and_inputs_are_copied():
    images, labels = make_arrays()
    dataset = ImageDataset("grey", images, labels)
    assert dataset.images.shape == (*images.shape, 1) and dataset.image_shape == (5, 6, 1)
    assert dataset.n_classes == 3
    images[0] = 0
    labels[0] = 2
    assert dataset.images[0].any() and dataset.labels[0] == 0
    with pytest.raises(ValueError):
        dataset.images[0, 0, 0, 0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.labels = labels


def test_whole_numbers_of_other_dtypes_are_accepted():
    images, labels = make_arrays(shape=(4, 4, 3))
    dataset = ImageDataset("ints", images.astype(np.float32), labels.astype(np.int8))
    assert dataset.images.dtype == np.uint8 and np.array_equal(dataset.images, images)
    assert dataset.labels.dtype == np.int64


@pytest.mark.parametrize(
    ("images_shape", "labels", "problem"),
    [
        ((18, 5, 6), np.repeat([0, 1, 2], 5), "15 labels for 18 images"),
        ((18, 5, 6), np.zeros(18, dtype=int), "at least 2 classes"),
        ((18, 30), np.repeat([0, 1, 2], 6), r"got shape \(18, 30\)"),
        ((18, 5, 6, 2), np.repeat([0, 1, 2], 6), "C in"),
        ((18, 5, 6, 3, 1), np.repeat([0, 1, 2], 6), "got shape"),
        ((0, 5, 6), np.zeros(0, dtype=int), "empty"),
        ((18, 5, 6), np.repeat([0, 1, 2], 6).reshape(6, 3), "1-D"),
        ((18, 5, 6), np.r_[np.repeat([0, 1], 8), 2, 2], "class 2 has 2"),
        ((18, 5, 6), np.repeat([0, 2, 3], 6), "class 1 has 0"),
        ((18, 5, 6), np.repeat([-1, 0, 1], 6), "0..K-1"),
        ((18, 5, 6), np.repeat([0.5, 1, 2], 6), "integers"),
        ((18, 5, 6), np.repeat(["a", "b", "c"], 6), "from_arrays"),
    ],
)
def test_invalid_arrays_raise_one_line_dataset_error_naming_the_dataset(images_shape, labels, problem):
    images = np.zeros(images_shape, dtype=np.uint8)
    with pytest.raises(DatasetError, match=problem) as error:
        ImageDataset("broken_set", images, labels)
    assert "'broken_set'" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("fill", [0.5, 256.0, -1])
def test_constructor_refuses_lossy_pixel_conversions(fill):
    with pytest.raises(DatasetError, match="'lossy'.*0..255"):
        ImageDataset("lossy", np.full((18, 5, 6), fill), np.repeat([0, 1, 2], 6))


def test_from_arrays_scales_floats_and_encodes_labels():
    images, _ = make_arrays()
    labels = np.repeat(["cat", "ant", "bee"], 6)
    unit = ImageDataset.from_arrays("unit", images / 255.0, labels)
    assert np.array_equal(unit.images[..., 0], images)
    assert np.array_equal(unit.labels, np.repeat([2, 0, 1], 6))  # sorted order of the names
    byte_range = ImageDataset.from_arrays("bytes", images.astype(np.float64), labels)
    assert np.array_equal(byte_range.images, unit.images)
    assert ImageDataset.from_arrays("shifted", images, np.repeat([3, 7, 9], 6)).n_classes == 3
    for bad in (images - 300.0, np.where(images > 100, np.nan, images / 255.0)):
        with pytest.raises(DatasetError, match="'bad_floats'"):
            ImageDataset.from_arrays("bad_floats", bad, labels)


def test_pickling_keeps_content_and_read_only_arrays():
    dataset = ImageDataset("pickled", *make_arrays(shape=(4, 4, 3)))
    restored = pickle.loads(pickle.dumps(dataset))
    assert restored.fingerprint == dataset.fingerprint and restored.name == "pickled"
    assert not restored.images.flags.writeable and not restored.labels.flags.writeable


# --- registry ---------------------------------------------------------------------------------------------


def test_register_dataset_then_load_list_and_describe(scratch_registry):
    calls = []

    def loader():
        calls.append(1)
        return ImageDataset("my_task", *make_arrays())

    register_dataset("my_task", loader, "three random classes")
    assert "my_task" in list_datasets() and list_datasets() == sorted(list_datasets())
    assert describe_dataset("my_task") == "three random classes"
    dataset = load_dataset("my_task")
    assert load_dataset("my_task") is dataset and len(calls) == 1
    assert load_dataset(dataset) is dataset  # an instance is returned as is

    with pytest.raises(DatasetError, match="already registered"):
        register_dataset("my_task", loader)
    register_dataset("my_task", lambda: ImageDataset("my_task", *make_arrays(n_classes=2)), overwrite=True)
    assert load_dataset("my_task").n_classes == 2  # the old cached dataset is dropped


def test_loader_must_return_an_image_dataset(scratch_registry):
    register_dataset("not_a_dataset", lambda: make_arrays())
    with pytest.raises(DatasetError, match="'not_a_dataset'.*tuple"):
        load_dataset("not_a_dataset")


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownDatasetError) as error:
        load_dataset("foo")
    assert isinstance(error.value, DatasetError) and isinstance(error.value, ValueError)
    assert str(error.value) == f"unknown dataset 'foo'; known: {', '.join(list_datasets())}"
    with pytest.raises(UnknownDatasetError, match="digits"):
        describe_dataset("foo")


def test_numpy_archive_by_path(tmp_path):
    from sb3_nas.data import load_dataset

    rng = np.random.default_rng(0)
    path = tmp_path / "my_task.npz"
    np.savez(path, images=rng.integers(0, 256, size=(30, 9, 9, 3), dtype=np.uint8), labels=np.arange(30) % 3)
    dataset = load_dataset(str(path))
    assert dataset.name == "my_task" and dataset.image_shape == (9, 9, 3) and dataset.n_classes == 3
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((3, 2, 2)))
    with pytest.raises(DatasetError, match="needs arrays 'images' and 'labels' \\(it has: pixels\\)"):
        load_dataset(str(tmp_path / "bad.npz"))
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))
    (tmp_path / "broken.npz").write_text("not an archive")
    with pytest.raises(DatasetError, match="not a readable NumPy archive"):
        load_dataset(str(tmp_path / "broken.npz"))


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (np.where(np.arange(30) == 4, np.nan, np.arange(30) % 3), "labels contain NaN or infinite values"),
        (np.where(np.arange(30) == 4, np.inf, np.arange(30) % 3), "labels contain NaN or infinite values"),
        (np.arange(30).reshape(10, 3), "labels must be 1-D"),
        (np.arange(29) % 3, "29 labels for 30 images"),
    ],
)
def test_a_numpy_archive_with_bad_labels_is_a_one_line_error_naming_the_file(tmp_path, labels, problem):
    path = tmp_path / "hostile.npz"
    np.savez(path, images=np.zeros((30, 6, 6), np.uint8), labels=labels)
    with pytest.raises(DatasetError) as error:
        load_dataset(str(path))
    assert str(error.value).startswith(f"dataset file {path}: ") and problem in str(error.value)
    assert "\n" not in str(error.value)


def test_non_finite_or_huge_labels_never_reach_the_class_count():
    images = np.zeros((18, 5, 6), np.uint8)
    with pytest.raises(DatasetError, match="'inf'.*integers 0..K-1"):
        ImageDataset("inf", images, np.r_[np.repeat([0.0, 1.0], 8), np.inf, np.inf])
    with pytest.raises(DatasetError, match="'huge'.*0..K-1, got 1000000000000 among 18"):
        ImageDataset("huge", images, np.r_[np.repeat([0, 1], 8), 10**12, 10**12])  # no 10**12-long bincount
    with pytest.raises(DatasetError, match="'nan'.*labels contain NaN"):
        ImageDataset.from_arrays("nan", images, np.r_[np.repeat([0.0, 1.0], 8), np.nan, np.nan])
