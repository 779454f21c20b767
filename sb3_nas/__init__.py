"""sb3_nas: neural architecture search by deep meta-reinforcement learning on Stable-Baselines3.

Importing the package registers the Gymnasium environments ``sb3_nas/NasChain-v0`` and
``sb3_nas/NasMultiBranch-v0``; the search strategies and the environment are importable from here::

    from sb3_nas import MetaA2C, MetaRLWrapper, NasEnv, RandomSearch
    from sb3_nas import LocalSearch, RegularizedEvolution, TPESearch  # the NAS baselines
"""

import os

# PyTorch reads this once, at its first allocation, so it is set before anything imports torch: CPU buffers
# of 2 MB and more get transparent huge pages. A paper-fidelity training re-allocates its gradients and bf16
# weight copies (hundreds of MB) at every step, and without huge pages it spends much of its time in page
# faults (benchmarks/run.py, section (g)). THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"
os.environ.setdefault(HUGE_PAGES_VARIABLE, "1")

from sb3_nas import envs  # noqa: E402, F401  (registers the environments)
from sb3_nas.algos import (  # noqa: E402
    LocalSearch,
    MetaA2C,
    MetaRLWrapper,
    RandomSearch,
    RegularizedEvolution,
    SearchStrategy,
    TPESearch,
)
from sb3_nas.envs import CHAIN_ENV_ID, MULTI_BRANCH_ENV_ID, NasEnv  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "CHAIN_ENV_ID",
    "MULTI_BRANCH_ENV_ID",
    "LocalSearch",
    "MetaA2C",
    "MetaRLWrapper",
    "NasEnv",
    "RandomSearch",
    "RegularizedEvolution",
    "SearchStrategy",
    "TPESearch",
    "__version__",
]
