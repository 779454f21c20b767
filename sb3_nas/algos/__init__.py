"""Search strategies: meta-A2C (§4.2.5), its trial wrapper (§4.2.4), random search (§6.1 baseline),
sb3-contrib's ARS with SB3's callback contract, and the NAS baselines with SB3's interface: regularized
evolution, local search and TPE."""

from sb3_nas.algos.ars import ARS
from sb3_nas.algos.local_search import LocalSearch
from sb3_nas.algos.meta_a2c import MetaA2C
from sb3_nas.algos.random_search import RandomSearch
from sb3_nas.algos.rea import RegularizedEvolution
from sb3_nas.algos.search import SearchRecord, SearchStrategy
from sb3_nas.algos.tpe import TPESearch
from sb3_nas.algos.wrappers import MetaRLWrapper

__all__ = [
    "ARS",
    "LocalSearch",
    "MetaA2C",
    "MetaRLWrapper",
    "RandomSearch",
    "RegularizedEvolution",
    "SearchRecord",
    "SearchStrategy",
    "TPESearch",
]
