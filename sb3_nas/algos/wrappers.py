"""The deep meta-RL wrapper of §4.2.4: s_t = x_t ‖ a_{t-1} ‖ r_{t-1} ‖ c_t, and a trial as one episode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np

RESET_MEMORY_MODES = ("trial", "episode")


@dataclass
class InnerEpisode:
    """Statistics of one inner episode of a trial (Fig. 9: best and accumulated reward, length)."""

    index: int = 0
    length: int = 0
    best_reward: float = -np.inf
    accumulated_reward: float = 0.0
    multi_branch: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "episode": self.index,
            "length": self.length,
            "best_reward": self.best_reward,
            "accumulated_reward": self.accumulated_reward,
            "multi_branch": self.multi_branch,
        }


class MetaRLWrapper(gym.Wrapper):
    """Turns a trial of ``trial_steps`` steps over many inner episodes into one learner episode.

    The observation becomes x_t ‖ one-hot(a_{t-1}) ‖ r_{t-1} ‖ c_t, with c_t the step within the current
    inner episode and a_{t-1}, r_{t-1} zeros at a trial's start (§4.2.4). When an inner episode ends the
    wrapper resets the inner environment itself and reports the finished episode in ``info["inner_episode"]``.

    :param env: any Gymnasium environment with a ``Discrete`` action space
    :param trial_steps: t_max, the steps of one trial
    :param reset_memory: ``"trial"`` (the paper: a trial is one learner episode, so a recurrent policy keeps
        its state across inner episodes) or ``"episode"`` (the reference code: every inner episode ends
        the learner episode, so the recurrent state is zeroed at each one, while a_{t-1}, r_{t-1} and the
        step budget still run over the whole trial)
    """

    def __init__(self, env: gym.Env, trial_steps: int, reset_memory: Literal["trial", "episode"] = "trial"):
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"MetaRLWrapper needs a Discrete action space, got {env.action_space}")
        if reset_memory not in RESET_MEMORY_MODES:
            raise ValueError(f"reset_memory must be one of {RESET_MEMORY_MODES}, got {reset_memory!r}")
        if int(trial_steps) < 1:
            raise ValueError(f"trial_steps must be at least 1, got {trial_steps}")
        self.trial_steps = int(trial_steps)
        self.reset_memory = reset_memory
        self.n_actions = int(env.action_space.n)
        inner = gym.spaces.flatten_space(env.observation_space)
        low = np.concatenate([inner.low, np.zeros(self.n_actions), [-np.inf, 0.0]]).astype(np.float32)
        high = np.concatenate([inner.high, np.ones(self.n_actions), [np.inf, np.inf]]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.trial_step = 0
        self.trial_over = True
        self.previous_action: int | None = None
        self.previous_reward = 0.0
        self.episode = InnerEpisode()
        self.n_trials = 0

    def _observation(self, inner_observation: Any) -> np.ndarray:
        flat = gym.spaces.flatten(self.env.observation_space, inner_observation)
        extra = np.zeros(self.n_actions + 2, dtype=np.float32)
        if self.previous_action is not None:
            extra[self.previous_action] = 1.0
        extra[self.n_actions] = self.previous_reward
        extra[self.n_actions + 1] = self.episode.length  # c_t
        return np.concatenate([np.asarray(flat, dtype=np.float32), extra])

    def _start_inner_episode(self, **reset_kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(**reset_kwargs)
        self.episode = InnerEpisode(index=self.episode.index + 1 if self.trial_step else 0)
        return observation, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start a new trial, or — with ``reset_memory="episode"`` inside a trial — the next inner episode."""
        if self.trial_over or seed is not None:
            self.trial_step = 0
            self.trial_over = False
            self.previous_action, self.previous_reward = None, 0.0
            self.n_trials += 1
        observation, info = self._start_inner_episode(seed=seed, options=options)
        info = {**info, "trial_step": self.trial_step, "trial": self.n_trials}
        return self._observation(observation), info

    def action_masks(self) -> np.ndarray:
        """The inner environment's action masks (``NasEnv.action_masks``): the actions and their meaning are
        the inner environment's, so are the masks (MetaA2C does not read them; maskable algorithms may)."""
        return self.env.get_wrapper_attr("action_masks")()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.trial_over:
            raise RuntimeError("the trial is over: call reset() to start the next one")
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.trial_step += 1
        episode = self.episode
        episode.length += 1
        episode.best_reward = max(episode.best_reward, float(reward))
        episode.accumulated_reward += float(reward)
        episode.multi_branch = bool(info.get("multi_branch", False))
        self.previous_action, self.previous_reward = int(action), float(reward)
        self.trial_over = self.trial_step >= self.trial_steps
        info = {
            **info,
            "trial_step": self.trial_step,
            "trial": self.n_trials,
            "inner_episode_index": episode.index,
        }
        inner_done = terminated or truncated
        if inner_done:
            info["inner_episode"] = episode.as_dict()
        if self.reset_memory == "episode":
            # the reference code: each inner episode is a learner episode (its auto-reset continues the trial)
            return (
                self._observation(observation),
                float(reward),
                bool(terminated),
                bool(truncated) or (self.trial_over and not terminated),
                info,
            )
        if inner_done and not self.trial_over:
            observation, _ = self._start_inner_episode()
        # §4.2.4: the trial, not the inner episode, is what ends; nothing is earned after it.
        return self._observation(observation), float(reward), self.trial_over, False, info
