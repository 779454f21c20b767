"""Gymnasium environments of sb3_nas, registered by id on import."""

import gymnasium as gym

from sb3_nas.envs.nas_env import (
    INVALID_ARCHITECTURE,
    MAX_DEPTH_REACHED,
    MAX_STEPS_CHAIN,
    MAX_STEPS_MULTI_BRANCH,
    MAX_STEPS_REACHED,
    MEMO_INFO_KEYS,
    POINTER_OUT_OF_BOUNDS,
    SIGMA,
    TERMINAL_ACTION,
    NasEnv,
)
from sb3_nas.envs.tabular_env import TabularNasEnv

CHAIN_ENV_ID = "sb3_nas/NasChain-v0"
MULTI_BRANCH_ENV_ID = "sb3_nas/NasMultiBranch-v0"
NAS_BENCH_GRAPH_ENV_ID = "sb3_nas/NasBenchGraph-v0"
NAS_BENCH_201_ENV_ID = "sb3_nas/NasBench201-v0"
# the Gymnasium id of each tabular benchmark's environment (the key of its zoo config entries)
TABULAR_ENV_IDS = {"nbgraph": NAS_BENCH_GRAPH_ENV_ID, "nb201": NAS_BENCH_201_ENV_ID}

for _env_id, _multi_branch in ((CHAIN_ENV_ID, False), (MULTI_BRANCH_ENV_ID, True)):
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=NasEnv, kwargs={"multi_branch": _multi_branch})


def _make_nas_bench_graph(dataset: str = "cora", **kwargs) -> TabularNasEnv:
    """``gym.make("sb3_nas/NasBenchGraph-v0", dataset=...)``: one of NAS-Bench-Graph's nine datasets."""
    return TabularNasEnv(f"nbgraph:{dataset}", **kwargs)


def _make_nas_bench_201(
    dataset: str = "cifar10", metric: str = "baseline_accuracy", **kwargs
) -> TabularNasEnv:
    """``gym.make("sb3_nas/NasBench201-v0", metric=...)``: NAS-Bench-201 on CIFAR-10, one AnalogNAS-Bench
    accuracy as the reward."""
    return TabularNasEnv(f"nb201:{dataset}/{metric}", **kwargs)


for _env_id, _entry_point in ((NAS_BENCH_GRAPH_ENV_ID, _make_nas_bench_graph),
                              (NAS_BENCH_201_ENV_ID, _make_nas_bench_201)):  # fmt: skip
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point)

__all__ = [
    "CHAIN_ENV_ID",
    "INVALID_ARCHITECTURE",
    "MAX_DEPTH_REACHED",
    "MAX_STEPS_CHAIN",
    "MAX_STEPS_MULTI_BRANCH",
    "MAX_STEPS_REACHED",
    "MEMO_INFO_KEYS",
    "MULTI_BRANCH_ENV_ID",
    "NAS_BENCH_201_ENV_ID",
    "NAS_BENCH_GRAPH_ENV_ID",
    "POINTER_OUT_OF_BOUNDS",
    "SIGMA",
    "TABULAR_ENV_IDS",
    "TERMINAL_ACTION",
    "NasEnv",
    "TabularNasEnv",
]
