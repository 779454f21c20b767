"""The scores of one run of a comparison, read from its run folder: best accuracy, the mean best reward of the
last episodes, distinct networks trained (on a tabular benchmark also the test accuracy of the choice by
validation and its regret), the best-so-far curves, the wall time and the memo hit rate."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sb3_nas.analysis.run import load_run
from sb3_nas.estimation import TableEstimator, is_table_spec
from sb3_nas.experiment.comparison import TIMING_FILE
from sb3_nas.experiment.records import tabular_steps
from sb3_nas.space import InvalidNSC, canonical_network, validate_nsc


@dataclass
class RunRecord:
    """One run of a comparison: where it is, what this comparison did with it, and its scores.

    :param scores: per environment, each score of :data:`SCORES` (NaN where there is none)
    :param curves: per environment, the best accuracy found so far after each of its steps
    """

    algo: str
    seed: int
    folder: Path
    action: str = "reused"
    steps: int = 0
    wall_seconds: float | None = None
    memo_hit_rate: float = math.nan
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    distinct: dict[str, np.ndarray] = field(default_factory=dict)  # distinct networks met up to each step


def _network_keys(steps: pd.DataFrame) -> list[str | None]:
    """Each step's network in canonical form, ``None`` for an invalid one: the ``network`` column where the
    run recorded it (tabular benchmarks), else the canonical form of its NSC (valid and built)."""
    valid = steps["valid"].astype(bool).to_numpy(copy=True)
    if "network" in steps and tabular_steps(steps):
        return [str(key) if ok else None for key, ok in zip(steps["network"], valid, strict=True)]
    if "n_params" in steps:
        valid = valid & (steps["n_params"].fillna(0).astype(float).to_numpy() > 0)
    keys: list[str | None] = []
    for text, ok in zip(steps["nsc"], valid, strict=True):
        try:
            keys.append(canonical_network(validate_nsc(json.loads(text))) if ok else None)
        except (InvalidNSC, ValueError, TypeError):
            keys.append(None)
    return keys


def distinct_so_far(steps: pd.DataFrame) -> np.ndarray:
    """The number of distinct valid networks met up to each step."""
    seen: set[str] = set()
    counts = np.zeros(len(steps), dtype=int)
    for position, key in enumerate(_network_keys(steps)):
        if key is not None:
            seen.add(key)
        counts[position] = len(seen)
    return counts


def distinct_networks(steps: pd.DataFrame) -> int:
    """Valid networks (built, with parameters) among ``steps``, told apart by their canonical form."""
    return len({key for key in _network_keys(steps) if key is not None})


@functools.cache
def table_best_test(env: str) -> float:
    """The best test accuracy of a tabular benchmark's table (what regret is measured against)."""
    return TableEstimator(env).best_test_accuracy


def chosen_test_accuracy(steps: pd.DataFrame) -> float:
    """The test accuracy of the architecture of the best validation accuracy (its first step)."""
    valid = steps[steps["valid"].astype(bool)]
    if valid.empty:
        return 0.0
    return float(pd.to_numeric(valid["test_accuracy"]).loc[valid["accuracy"].astype(float).idxmax()])


def best_so_far(steps: pd.DataFrame) -> np.ndarray:
    """The best accuracy of a valid network found up to each step (0 before the first)."""
    accuracy = np.where(steps["valid"].astype(bool), steps["accuracy"].astype(float), 0.0)
    return np.maximum.accumulate(accuracy) if len(accuracy) else accuracy


def read_timing(folder: Path) -> float | None:
    """The wall time of every session that ran the run in ``folder`` (``None`` when not recorded)."""
    path = folder / TIMING_FILE
    try:
        return float(json.loads(path.read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_run_record(folder: str | Path, seed: int, last_episodes: int, action: str = "reused") -> RunRecord:
    """The scores, curves, wall time and memo hit rate of a run folder."""
    loaded = load_run(folder)
    record = RunRecord(loaded.algo, seed, Path(folder), action, steps=len(loaded.steps))
    record.wall_seconds = read_timing(record.folder)
    if "memo_hit" in loaded.steps:
        record.memo_hit_rate = float(loaded.steps["memo_hit"].astype(bool).mean())
    for env in [str(env) for env in loaded.config.get("envs", loaded.envs)]:
        steps, episodes = loaded.env_steps(env), loaded.env_episodes(env)
        valid = steps[steps["valid"].astype(bool)]
        last = episodes["best_reward"].astype(float).to_numpy()[-last_episodes:]
        distinct = distinct_so_far(steps)
        record.scores[env] = {
            "best_accuracy": float(valid["accuracy"].max()) if len(valid) else 0.0,
            "last_best_reward": float(last.mean()) if len(last) else math.nan,
            "networks": float(distinct[-1]) if len(distinct) else 0.0,
        }
        if is_table_spec(env):
            test = chosen_test_accuracy(steps)
            record.scores[env].update(test_accuracy=test, regret=table_best_test(env) - test)
        record.curves[env] = best_so_far(steps)
        record.distinct[env] = distinct
    return record
