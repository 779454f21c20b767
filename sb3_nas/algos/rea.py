"""Regularized evolution (Real et al., 2019, "Regularized Evolution for Image Classifier Architecture
Search").

A population of the P architectures evaluated last: each new one is a child of the best of S members drawn
at random (a tournament), the parent with one decision changed; the child joins the population and the
oldest member dies, whatever its value (the ageing that regularizes the search). The first P architectures
are drawn at random.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv

from sb3_nas.algos.search import Episode, SearchStrategy

# Real et al.'s population and tournament (P = 100, S = 25), and how they are scaled to a smaller budget:
# P is the expected episode count / EPISODES_PER_MEMBER, within [MIN_POPULATION, REAL_POPULATION]; S = P / 4
REAL_POPULATION, REAL_SAMPLE = 100, 25
EPISODES_PER_MEMBER = 10
MIN_POPULATION, MIN_SAMPLE = 4, 2


def scaled_sizes(total_timesteps: int, max_steps: int | None) -> tuple[int, int]:
    """P and S for a budget of ``total_timesteps`` steps in episodes of at most ``max_steps`` (see above)."""
    episodes = total_timesteps // max(1, max_steps or 1)
    population = min(REAL_POPULATION, max(MIN_POPULATION, episodes // EPISODES_PER_MEMBER))
    return population, tournament_size(population)


def tournament_size(population: int) -> int:
    """S for a population of P: Real et al.'s share, S / P = 25 / 100 (at least 2, at most P)."""
    return min(population, max(MIN_SAMPLE, round(population * REAL_SAMPLE / REAL_POPULATION)))


def mutation_sites(member: dict[str, Any]) -> list[int]:
    """The steps of ``member`` whose decision can change: another action was allowed there."""
    return [
        step
        for step, (action, allowed) in enumerate(zip(member["actions"], member["allowed"], strict=True))
        if any(other != action for other in allowed)
    ]


class RegularizedEvolution(SearchStrategy):
    """Regularized evolution, ``rea`` (see the module's text), on any project environment.

    :param env: a Gymnasium environment with a ``Discrete`` action space, or a ``VecEnv`` (workers evolve one
        population asynchronously, as Real et al.'s workers do)
    :param seed: seeds the random architectures, tournaments and mutations
    :param population_size: P (``None``: scaled to the budget from Real et al.'s 100, :func:`scaled_sizes`)
    :param sample_size: S, the tournament's size (``None``: P / 4, as Real et al.'s 25 of 100)
    :param use_masks: choose among the actions the environment's masks allow

    A mutation changes one decision of the parent to another action allowed there (the parent's own state
    says which); the decisions after it follow the parent's, one the new state rules out is drawn anew, and
    an episode that runs on past the parent's length draws its further decisions at random.
    """

    name = "regularized evolution"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        seed: int | None = None,
        population_size: int | None = None,
        sample_size: int | None = None,
        use_masks: bool = True,
    ) -> None:
        if population_size is not None and population_size < 2:
            raise ValueError(f"population_size must be at least 2, got {population_size}")
        if sample_size is not None and sample_size < 1:
            raise ValueError(f"sample_size must be at least 1, got {sample_size}")
        if None not in (population_size, sample_size) and sample_size > population_size:  # type: ignore[operator]
            raise ValueError(f"sample_size ({sample_size}) exceeds population_size ({population_size})")
        self.population_size, self.sample_size = population_size, sample_size
        self.sizes: tuple[int, int] | None = None  # (P, S) as resolved for the budget
        self.population: deque[dict[str, Any]] = deque()
        self.n_proposed = 0
        super().__init__(env, seed=seed, use_masks=use_masks)

    def _setup(self, total_timesteps: int) -> None:
        if self.sizes is None:
            population = scaled_sizes(total_timesteps, self.max_steps())[0]
            population = self.population_size or max(population, self.sample_size or 0)
            sample = self.sample_size or tournament_size(population)
            self.sizes = (population, sample)
            self.logger.record("rea/population_size", population)
            self.logger.record("rea/sample_size", sample)

    def tournament(self) -> dict[str, Any]:
        """The best of S members drawn without replacement (the first drawn among equals)."""
        members = list(self.population)
        drawn = self.rng.choice(len(members), size=min(self.sizes[1], len(members)), replace=False)
        return max((members[i] for i in drawn), key=lambda member: member["value"])

    def mutate(self, parent: dict[str, Any]) -> list[int] | None:
        """The parent's actions with one decision changed (``None`` when no decision can change)."""
        sites = mutation_sites(parent)
        if not sites:
            return None
        step = int(self.rng.choice(sites))
        others = [a for a in parent["allowed"][step] if a != parent["actions"][step]]
        child = list(parent["actions"])
        child[step] = int(self.rng.choice(others))
        return child

    def _begin(self, worker: int, episode: Episode) -> None:
        population = self.sizes[0]
        self.n_proposed += 1
        if self.n_proposed <= population or not self.population:
            episode.plan = None  # the initial population: random architectures
        else:
            episode.plan = self.mutate(self.tournament())

    def _finish(self, worker: int, episode: Episode) -> None:
        self.population.append({"actions": episode.taken, "allowed": episode.allowed, "value": episode.value})
        while len(self.population) > self.sizes[0]:
            self.population.popleft()  # ageing: the oldest dies

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "population_size": self.population_size,
                "sample_size": self.sample_size}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "sizes": list(self.sizes) if self.sizes else None,
                "population": list(self.population), "n_proposed": self.n_proposed}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.sizes = tuple(state["sizes"]) if state.get("sizes") else None  # type: ignore[assignment]
        self.population = deque(state["population"])
        self.n_proposed = int(state["n_proposed"])
