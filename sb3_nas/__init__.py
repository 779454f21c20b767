"""sb3_nas: neural architecture search by deep meta-reinforcement learning on Stable-Baselines3.

Importing the package registers the Gymnasium environments ``sb3_nas/NasChain-v0`` and
``sb3_nas/NasMultiBranch-v0``; the search strategies and the environment are importable from here::

    from sb3_nas import MetaA2C, MetaRLWrapper, NasEnv, RandomSearch
"""

from sb3_nas import envs  # noqa: F401  (registers the environments)
from sb3_nas.algos import MetaA2C, MetaRLWrapper, RandomSearch
from sb3_nas.envs import CHAIN_ENV_ID, MULTI_BRANCH_ENV_ID, NasEnv

__version__ = "0.1.0"
__all__ = [
    "CHAIN_ENV_ID",
    "MULTI_BRANCH_ENV_ID",
    "MetaA2C",
    "MetaRLWrapper",
    "NasEnv",
    "RandomSearch",
    "__version__",
]
