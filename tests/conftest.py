"""Shared fixtures: a small real dataset, the test fidelity and a memo in a temporary folder."""

import numpy as np
import pytest

from sb3_nas.data import ImageDataset, load_dataset
from sb3_nas.estimation import RewardMemo, get_fidelity


@pytest.fixture(scope="session")
def small_digits() -> ImageDataset:
    """300 real images of scikit-learn's digits, 10 classes (a stratified subset keeps tests fast)."""
    digits = load_dataset("digits")
    rng = np.random.default_rng(0)
    keep = np.sort(rng.permutation(len(digits.labels))[:300])
    return ImageDataset.from_arrays("digits300", digits.images[keep], digits.labels[keep])


@pytest.fixture(scope="session")
def tiny_fidelity():
    return get_fidelity("tiny")


@pytest.fixture
def memo(tmp_path) -> RewardMemo:
    memo = RewardMemo(f"sqlite:///{tmp_path / 'memo.sqlite'}")
    yield memo
    memo.close()
