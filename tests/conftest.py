"""Shared fixtures: a small real dataset, the test fidelity, a memo in a temporary folder and a fresh database
on the PostgreSQL server of CI."""

import os
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

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


POSTGRES_ENV = "SB3_NAS_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_database():
    """A fresh database on the server of $SB3_NAS_TEST_POSTGRES_URL (its URL with the password); dropped."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"no PostgreSQL server: set {POSTGRES_ENV}=postgresql://USER:PASSWORD@HOST:PORT/DB for a role "
            "that may create databases (.ci/run installs and starts one), with psycopg installed"
        )
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # a test may restart it
    name = f"sb3_nas_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
