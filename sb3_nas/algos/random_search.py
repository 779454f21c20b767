"""Random search (§6.1 baseline): uniform actions on the same environment and memo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from tqdm.auto import tqdm


@dataclass
class SearchRecord:
    """The best network seen so far and the per-episode history of a search."""

    best_reward: float = -np.inf
    best_info: dict[str, Any] = field(default_factory=dict)
    episode_best: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    n_steps: int = 0
    n_memo_hits: int = 0


class RandomSearch:
    """Samples every action uniformly: the search strategy with no learning at all.

    :param env: any Gymnasium environment with a discrete action space
    :param seed: seeds the action sampling
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"RandomSearch needs a Discrete action space, got {env.action_space}")
        self.env = env
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.record = SearchRecord()
        self.num_timesteps = 0
        self.logger = configure(None, [])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """A uniformly random action, with the SB3 ``predict`` signature."""
        return np.asarray(self.rng.integers(self.env.action_space.n)), state

    def get_env(self) -> gym.Env:
        return self.env

    def learn(
        self, total_timesteps: int, callback: BaseCallback | None = None, progress_bar: bool = False
    ) -> RandomSearch:
        """Run ``total_timesteps`` environment steps, keeping the best reward and its network.

        ``callback`` is an SB3 ``BaseCallback``; its ``locals`` hold ``actions``, ``rewards``, ``dones`` and
        ``infos`` as in SB3's on-policy loop (one environment).
        """
        record = self.record
        if callback is not None:
            callback.init_callback(self)
            callback.on_training_start(locals(), globals())
        observation, _ = self.env.reset(seed=self.seed)
        episode_best, episode_length = -np.inf, 0
        bar = tqdm(total=total_timesteps, disable=not progress_bar, desc="random search")
        for _ in range(total_timesteps):
            action, _ = self.predict(observation)
            observation, reward, terminated, truncated, info = self.env.step(int(action))
            self.num_timesteps += 1
            if callback is not None:
                done = terminated or truncated
                callback.update_locals(
                    {"actions": [action], "rewards": [reward], "dones": [done], "infos": [info]}
                )
                if not callback.on_step():
                    break
            record.n_steps += 1
            record.n_memo_hits += bool(info.get("memo_hit", False))
            episode_best, episode_length = max(episode_best, reward), episode_length + 1
            if reward > record.best_reward:
                record.best_reward, record.best_info = float(reward), dict(info)
            bar.update(1)
            bar.set_postfix(best=f"{record.best_reward:.3f}")
            if terminated or truncated:
                record.episode_best.append(float(episode_best))
                record.episode_lengths.append(episode_length)
                self.logger.record("rollout/episode_best_reward", float(episode_best))
                self.logger.record("rollout/episode_length", episode_length)
                self.logger.record("rollout/best_reward", record.best_reward)
                self.logger.record("time/total_timesteps", self.num_timesteps)
                self.logger.dump(self.num_timesteps)
                episode_best, episode_length = -np.inf, 0
                observation, _ = self.env.reset()
        bar.close()
        if callback is not None:
            callback.on_training_end()
        return self
