"""The algorithms a run can use, by name, and the step budgets of the paper's experiments (§6)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence

from sb3_contrib import QRDQN, TRPO, MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_nas.algos import (
    ARS,
    LocalSearch,
    MetaA2C,
    RandomSearch,
    RegularizedEvolution,
    SearchStrategy,
    TPESearch,
)
from sb3_nas.errors import UsageError

ALGOS: dict[str, type] = {
    "meta_a2c": MetaA2C,
    "dqn": DQN,
    "random": RandomSearch,
    "a2c": A2C,
    "ppo": PPO,
    "recurrent_ppo": RecurrentPPO,
    "maskable_ppo": MaskablePPO,  # PPO that never samples an action NasEnv.action_masks rules out
    "qrdqn": QRDQN,
    "trpo": TRPO,
    "ars": ARS,  # sb3-contrib's, its callback handed each step (sb3_nas.algos.ars)
    "rea": RegularizedEvolution,  # the NAS baselines, search strategies with SB3's interface
    "local_search": LocalSearch,
    "tpe": TPESearch,
}
META_RL_ALGOS = frozenset({"meta_a2c"})  # see the meta-RL inputs and keep one policy across environments
SEARCH_ALGOS = frozenset(name for name, cls in ALGOS.items() if issubclass(cls, SearchStrategy))
LEARNERS = frozenset(ALGOS) - SEARCH_ALGOS  # algorithms with a policy to update

# t_max per environment of the paper (§6.1, §6.2), reachable as ``--timesteps paper``
PAPER_TIMESTEPS = {"meta_a2c": (8000, 7000, 7000), "baseline": (6500, 5500, 7000)}  # Exp. 1
PAPER_MULTI_BRANCH_TIMESTEPS = 20000  # Exp. 3, omniglot
PAPER_EVALUATION_TIMESTEPS = 2000  # Exp. 2, the frozen policy on each held-out environment
REDUCED_TIMESTEPS = (160, 140, 140)  # the paper's 8 : 7 : 7, a few minutes on two CPU cores
PAPER = "paper"


IMPORT_PATH = "package.module:ClassName"  # a user's own algorithm, by its import path


def is_import_path(algo: str) -> bool:
    """Whether ``algo`` names a class by import path (``package.module:ClassName``), not a registered name."""
    return algo not in ALGOS and ":" in algo


@functools.cache
def algo_class(algo: str) -> type:
    """The class of a registered algorithm, or of a ``package.module:ClassName`` import path: any subclass of
    SB3's ``BaseAlgorithm`` (raises a one-line :class:`UsageError` otherwise)."""
    if algo in ALGOS:
        return ALGOS[algo]
    if not is_import_path(algo):
        raise UsageError(f"unknown algorithm {algo!r}; known: {', '.join(ALGOS)}, or {IMPORT_PATH}")
    module_name, _, class_name = algo.partition(":")
    try:
        module = importlib.import_module(module_name.strip())
    except Exception as error:  # the user's module may fail in any way on import
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"--algo {algo}: cannot import {module_name} ({reason})") from None
    found: object = module
    for part in class_name.strip().split("."):
        found = getattr(found, part, None)
        if found is None:
            raise UsageError(f"--algo {algo}: module {module_name} has no {class_name}")
    if not (isinstance(found, type) and issubclass(found, BaseAlgorithm)):
        raise UsageError(f"--algo {algo} is not a class derived from stable_baselines3's BaseAlgorithm")
    return found


def is_search(algo: str) -> bool:
    """Whether ``algo`` is a search strategy (no policy: :class:`~sb3_nas.algos.SearchStrategy`)."""
    return issubclass(algo_class(algo), SearchStrategy)


def check_algo(algo: str) -> str:
    """``algo`` if it is registered or imports as an SB3 algorithm (raises :class:`UsageError` otherwise)."""
    algo_class(algo)
    return algo


def paper_timesteps(
    algo: str, n_envs: int, multi_branch: bool = False, frozen: bool = False
) -> tuple[int, ...]:
    """The paper's t_max on ``n_envs`` environments: Exp. 1 by algorithm, 2 (frozen) or 3 (multi-branch).

    Random search, the NAS baselines and every other baseline learn from scratch on each environment, with
    DQN's budgets.
    """
    if frozen:
        return (PAPER_EVALUATION_TIMESTEPS,) * n_envs
    if multi_branch:
        return (PAPER_MULTI_BRANCH_TIMESTEPS,) * n_envs
    budgets = PAPER_TIMESTEPS.get(algo, PAPER_TIMESTEPS["baseline"])
    if n_envs != len(budgets):
        raise UsageError(
            f"the paper's budgets for {algo} are {'/'.join(map(str, budgets))} on three environments; "
            f"give --timesteps for {n_envs}"
        )
    return budgets


def resolve_timesteps(
    timesteps: str | int | Sequence[int],
    n_envs: int,
    algo: str,
    multi_branch: bool = False,
    frozen: bool = False,
) -> tuple[int, ...]:
    """t_max per environment from ``paper``, one count for all, or one count per environment."""
    if timesteps == PAPER:
        return paper_timesteps(algo, n_envs, multi_branch, frozen)
    counts = [timesteps] if isinstance(timesteps, int) else list(timesteps)
    if len(counts) == 1:
        counts *= n_envs
    if len(counts) != n_envs or not all(isinstance(t, int) and t >= 1 for t in counts):
        shown = ",".join(map(str, timesteps)) if not isinstance(timesteps, int | str) else timesteps
        raise UsageError(f"--timesteps needs one positive count per environment ({n_envs}), got {shown}")
    return tuple(counts)
