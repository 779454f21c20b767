"""Random search (§6.1 baseline): uniform actions on the same environment and memo."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from sb3_nas.algos.search import SearchRecord, SearchStrategy

__all__ = ["RandomSearch", "SearchRecord"]


class RandomSearch(SearchStrategy):
    """Samples every action uniformly, masked or not: the search strategy with no learning at all (§6.1).

    :param env: any Gymnasium environment with a discrete action space, or an SB3 ``VecEnv`` of several (its
        workers then step together, e.g. a ``SubprocVecEnv`` evaluating that many networks at once)
    :param seed: seeds the action sampling (and the environments, worker i with seed + i)
    """

    name = "random search"
    whole_within_episodes = True  # its state is its generator: a checkpoint may fall on any step

    def __init__(self, env: gym.Env | VecEnv | None, seed: int | None = None) -> None:
        super().__init__(env, seed=seed, use_masks=False)

    def hyperparameters(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Uniform random actions, one per observation of a batch, with SB3's ``predict`` signature."""
        n = self.n_actions
        single = self.observation_space.shape if self.observation_space is not None else None
        if isinstance(observation, np.ndarray) and observation.shape != single:
            return self.rng.integers(n, size=len(observation)), state
        return np.asarray(self.rng.integers(n)), state

    def _actions(self) -> np.ndarray:
        return np.atleast_1d(self.predict(self._last_obs)[0])  # one draw per step, as a batch
