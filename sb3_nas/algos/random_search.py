"""Random search (§6.1 baseline): uniform actions on the same environment and memo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
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

    :param env: any Gymnasium environment with a discrete action space, or an SB3 ``VecEnv`` of several (its
        workers then step together, e.g. a ``SubprocVecEnv`` evaluating that many networks at once)
    :param seed: seeds the action sampling (and the environments, worker i with seed + i)
    """

    def __init__(self, env: gym.Env | VecEnv, seed: int | None = None) -> None:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"RandomSearch needs a Discrete action space, got {env.action_space}")
        self.env = env
        self.venv = env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env])
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.record = SearchRecord()
        self.num_timesteps = 0
        self._last_obs: np.ndarray | None = None  # the workers' observations, as SB3 algorithms keep them
        self.logger = configure(None, [])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Uniform random actions, one per observation of a batch, with SB3's ``predict`` signature."""
        n = self.env.action_space.n
        single = self.env.observation_space.shape
        if isinstance(observation, np.ndarray) and observation.shape != single:
            return self.rng.integers(n, size=len(observation)), state
        return np.asarray(self.rng.integers(n)), state

    def get_env(self) -> VecEnv:
        return self.venv

    def learn(
        self,
        total_timesteps: int,
        callback: BaseCallback | None = None,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> RandomSearch:
        """Run ``total_timesteps`` environment steps (over all workers), keeping the best reward and network.

        ``callback`` is an SB3 ``BaseCallback``; its ``locals`` hold ``actions``, ``rewards``, ``dones`` and
        ``infos`` of every worker, as in SB3's on-policy loop, and ``on_rollout_start`` is called before each
        step (the points where the search's state is whole). ``reset_num_timesteps=False`` with ``_last_obs``
        set continues a search from where it stood, without resetting the environment (resuming a run).
        """
        record, venv = self.record, self.venv
        if callback is not None:
            callback.init_callback(self)
            callback.on_training_start(locals(), globals())
        if reset_num_timesteps or self._last_obs is None:
            self.num_timesteps = 0
            venv.seed(self.seed)
            self._last_obs = venv.reset()
        else:
            total_timesteps += self.num_timesteps  # as SB3 counts a continued learn
        episode_best = np.full(venv.num_envs, -np.inf)
        episode_length = np.zeros(venv.num_envs, dtype=int)
        bar = tqdm(total=total_timesteps, disable=not progress_bar, desc="random search")
        while self.num_timesteps < total_timesteps:
            if callback is not None:
                callback.on_rollout_start()
            actions, _ = self.predict(self._last_obs)
            observations, rewards, dones, infos = venv.step(actions)
            self._last_obs = observations
            self.num_timesteps += venv.num_envs
            if callback is not None:
                step = {"actions": actions, "rewards": rewards, "dones": dones, "infos": infos}
                callback.update_locals(step)
                if not callback.on_step():
                    break
            for worker, (reward, done, info) in enumerate(zip(rewards, dones, infos, strict=True)):
                self._count(worker, float(reward), bool(done), info, episode_best, episode_length)
            bar.update(venv.num_envs)
            bar.set_postfix(best=f"{record.best_reward:.3f}")
        bar.close()
        if callback is not None:
            callback.on_training_end()
        return self

    def _count(self, worker, reward, done, info, episode_best, episode_length) -> None:
        record = self.record
        record.n_steps += 1
        record.n_memo_hits += bool(info.get("memo_hit", False))
        episode_best[worker] = max(episode_best[worker], reward)
        episode_length[worker] += 1
        if reward > record.best_reward:
            record.best_reward, record.best_info = reward, dict(info)
        if done:
            record.episode_best.append(float(episode_best[worker]))
            record.episode_lengths.append(int(episode_length[worker]))
            self.logger.record("rollout/episode_best_reward", float(episode_best[worker]))
            self.logger.record("rollout/episode_length", int(episode_length[worker]))
            self.logger.record("rollout/best_reward", record.best_reward)
            self.logger.record("time/total_timesteps", self.num_timesteps)
            self.logger.dump(self.num_timesteps)
            episode_best[worker], episode_length[worker] = -np.inf, 0
