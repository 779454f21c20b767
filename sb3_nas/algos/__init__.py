"""Search strategies: meta-A2C (§4.2.5), its trial wrapper (§4.2.4), random search (§6.1 baseline) and
sb3-contrib's ARS with SB3's callback contract."""

from sb3_nas.algos.ars import ARS
from sb3_nas.algos.meta_a2c import MetaA2C
from sb3_nas.algos.random_search import RandomSearch
from sb3_nas.algos.wrappers import MetaRLWrapper

__all__ = ["ARS", "MetaA2C", "MetaRLWrapper", "RandomSearch"]
