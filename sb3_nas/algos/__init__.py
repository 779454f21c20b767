"""Search strategies: random search (and, in later work, MetaA2C)."""

from sb3_nas.algos.random_search import RandomSearch

__all__ = ["RandomSearch"]
