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

CHAIN_ENV_ID = "sb3_nas/NasChain-v0"
MULTI_BRANCH_ENV_ID = "sb3_nas/NasMultiBranch-v0"

for _env_id, _multi_branch in ((CHAIN_ENV_ID, False), (MULTI_BRANCH_ENV_ID, True)):
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=NasEnv, kwargs={"multi_branch": _multi_branch})

__all__ = [
    "CHAIN_ENV_ID",
    "INVALID_ARCHITECTURE",
    "MAX_DEPTH_REACHED",
    "MAX_STEPS_CHAIN",
    "MAX_STEPS_MULTI_BRANCH",
    "MAX_STEPS_REACHED",
    "MEMO_INFO_KEYS",
    "MULTI_BRANCH_ENV_ID",
    "POINTER_OUT_OF_BOUNDS",
    "SIGMA",
    "TERMINAL_ACTION",
    "NasEnv",
]
