"""The statistics of the figures (§7): block means, action shares, the Wilcoxon test, best networks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from sb3_nas.analysis.run import Run
from sb3_nas.space import (
    ACTION_NAMES,
    ACTIONS,
    ActionKind,
    InvalidNSC,
    LayerType,
    canonical_network,
    validate_nsc,
)

BLOCK = 50  # Fig. 9, 12, 14, 15b: mean ± 1 std for every 50 episodes
STD_DDOF = 0  # population std, as numpy's default: a block (or a single retraining) of one has std 0
ALPHA = 0.05  # §7: the Wilcoxon test at 95% confidence
EPISODE_METRICS = {
    "best_reward": "best reward",
    "accumulated_reward": "accumulated reward",
    "length": "episode length",
}  # Fig. 9 a–i, in the paper's order
ENTROPY_COLUMN = "train/entropy"  # MetaA2C's policy entropy (Fig. 10, 15a)
ENTROPY_LOSS_COLUMN = "train/entropy_loss"  # SB3's A2C / PPO log only −entropy
TIMESTEPS_COLUMN = "time/total_timesteps"


@dataclass(frozen=True)
class Blocks:
    """Mean and std of consecutive blocks of values; ``start`` is the index of each block's first value."""

    start: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    total: np.ndarray


def block_stats(values: np.ndarray | pd.Series, block: int = BLOCK) -> Blocks:
    """Mean ± std over consecutive blocks of ``block`` values; the last block may be shorter."""
    if block < 1:
        raise ValueError(f"the block size must be positive, got {block}")
    values = np.asarray(values, dtype=float)
    starts = np.arange(0, len(values), block)
    chunks = [values[start : start + block] for start in starts]
    return Blocks(
        start=starts,
        mean=np.array([chunk.mean() for chunk in chunks]),
        std=np.array([chunk.std(ddof=STD_DDOF) for chunk in chunks]),
        count=np.array([len(chunk) for chunk in chunks]),
        total=np.array([chunk.sum() for chunk in chunks]),
    )


def action_proportions(actions: np.ndarray | pd.Series, n_actions: int) -> np.ndarray:
    """The share of each action id 0..n_actions-1 among ``actions`` (Fig. 11, 13, 16)."""
    actions = np.asarray(actions, dtype=int)
    if len(actions) == 0:
        return np.zeros(n_actions)
    return np.bincount(actions, minlength=n_actions)[:n_actions] / len(actions)


@dataclass(frozen=True)
class WilcoxonResult:
    """The Wilcoxon signed-rank test between two environments' action proportions, paired over actions."""

    env_a: str
    env_b: str
    n_actions: int
    statistic: float
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether the strategies differ at ``ALPHA`` (the paper found p = 0.48: they do not)."""
        return self.p_value < ALPHA


def wilcoxon_actions(run: Run) -> list[WilcoxonResult]:
    """§7: scipy's two-sided signed-rank test for every pair of the run's environments."""
    proportions = {env: action_proportions(run.env_steps(env)["action"], run.n_actions) for env in run.envs}
    results = []
    for env_a, env_b in combinations(run.envs, 2):
        a, b = proportions[env_a], proportions[env_b]
        if np.all(a == b):  # no non-zero difference to rank: the strategies are identical
            statistic, p_value = 0.0, 1.0
        else:
            test = wilcoxon(a, b)
            statistic, p_value = float(test.statistic), float(test.pvalue)
        results.append(WilcoxonResult(env_a, env_b, run.n_actions, statistic, p_value))
    return results


@dataclass(frozen=True)
class BestNetwork:
    """A network designed during a run: its NSC rows (terminal dropped), reward and early-stop accuracy."""

    env: str
    rank: int  # 1 for the best
    nsc: tuple[tuple[int, ...], ...]
    reward: float
    accuracy: float
    step: int

    @property
    def nsc_json(self) -> str:
        return json.dumps([list(row) for row in self.nsc])


@dataclass(frozen=True)
class BestArchitecture:
    """An architecture of a tabular benchmark met during a run: its notation, validation and test accuracy."""

    env: str
    rank: int
    architecture: str  # the benchmark's notation, JSON
    accuracy: float  # validation: the reward
    test_accuracy: float
    step: int


def best_architectures(run: Run, env: str, top: int = 2) -> list[BestArchitecture]:
    """The ``top`` distinct architectures (canonical form) of highest validation accuracy in ``env``."""
    steps = run.env_steps(env)
    steps = steps[steps["valid"].astype(bool)].sort_values(["accuracy", "step"], ascending=[False, True])
    found: dict[str, BestArchitecture] = {}
    for row in steps.itertuples(index=False):
        if row.network not in found:
            found[row.network] = BestArchitecture(
                env, len(found) + 1, str(row.architecture), float(row.accuracy), float(row.test_accuracy),
                int(row.step),
            )  # fmt: skip
            if len(found) == top:
                break
    return list(found.values())


def best_networks(run: Run, env: str, top: int = 2) -> list[BestNetwork]:
    """§6.1 Exp. 2: the ``top`` distinct networks of highest reward in ``env`` (ties: the first found).

    Networks are told apart by their canonical form, so a pointer shift or a trailing terminal does not
    make the same network count twice; invalid states are skipped.
    """
    steps = run.env_steps(env)
    steps = steps[steps["valid"].astype(bool)].sort_values(["reward", "step"], ascending=[False, True])
    found: dict[str, BestNetwork] = {}
    for row in steps.itertuples(index=False):
        try:
            rows = validate_nsc(json.loads(row.nsc))
        except (InvalidNSC, ValueError, TypeError):
            continue
        layers = tuple(tuple(r) for r in rows if r.type != LayerType.TERMINAL)
        key = canonical_network(rows)
        if key not in found:
            rank = len(found) + 1
            found[key] = BestNetwork(env, rank, layers, float(row.reward), float(row.accuracy), int(row.step))
            if len(found) == top:
                break
    return list(found.values())


def entropy_curve(run: Run) -> pd.DataFrame | None:
    """The policy entropy per logged update over the run's global time-step (Fig. 10, 15a), or None.

    Algorithms that restart their step count on each environment are put end to end, each environment
    starting after the steps the run spent in the ones before.
    """
    progress = run.progress
    if progress is None or TIMESTEPS_COLUMN not in progress.columns:
        return None
    if ENTROPY_COLUMN in progress.columns:
        entropy = progress[ENTROPY_COLUMN]
    elif ENTROPY_LOSS_COLUMN in progress.columns:
        entropy = -progress[ENTROPY_LOSS_COLUMN]
    else:
        return None
    table = pd.DataFrame({"timestep": progress[TIMESTEPS_COLUMN], "entropy": entropy}).dropna()
    if table.empty:
        return None
    boundaries = env_boundaries(run)
    restarts = (table["timestep"].diff() < 0).cumsum().to_numpy()
    offsets = (
        np.array([boundaries[min(i, len(boundaries) - 1)][1] for i in restarts]) if restarts.any() else 0
    )
    table["timestep"] = table["timestep"].to_numpy() + offsets
    return table.reset_index(drop=True)


def env_boundaries(run: Run) -> list[tuple[str, int]]:
    """Each environment of the run with the global time-step before its first step."""
    counts = run.steps.groupby("env", sort=False).size()
    starts = np.concatenate([[0], np.cumsum(counts.to_numpy())[:-1]])
    return [(str(env), int(start)) for env, start in zip(counts.index, starts, strict=True)]


TARGET_BLOCKS = 10  # the automatic block size gives about this many points per curve


def auto_block(episode_counts: list[int]) -> int:
    """The block size that gives about :data:`TARGET_BLOCKS` points for the longest of ``episode_counts``."""
    return max(1, round(max(episode_counts, default=0) / TARGET_BLOCKS))


def short_action_label(action_id: int) -> str:
    """``A1 conv 3×3``, ``A3 max-pool 2×2``, ``A10 p1 ↑``: an axis label from Table 2's meaning."""
    action = ACTIONS[action_id]
    if action.kind is ActionKind.LAYER:
        kind = {"CONVOLUTION": "conv", "MAX_POOLING": "max-pool", "AVG_POOLING": "avg-pool"}[
            action.layer_type.name
        ]
        meaning = f"{kind} {action.kernel}×{action.kernel}"
    elif action.kind is ActionKind.MERGE:
        meaning = {"ADDITION": "add", "CONCATENATION": "concat"}[action.layer_type.name]
    elif action.kind is ActionKind.SHIFT:
        meaning = f"p{action.pointer} {'↑' if action.step > 0 else '↓'}"
    else:
        meaning = "terminal"
    return f"{ACTION_NAMES[action_id]} {meaning}"


def action_label(action_id: int) -> str:
    """``A3`` and its Table 2 meaning, for hover texts and tables."""
    return f"{ACTION_NAMES[action_id]}: {ACTIONS[action_id].description}"
