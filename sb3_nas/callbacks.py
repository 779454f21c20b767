"""Recording a NAS run: a row per step and per inner episode, and a progress bar with the best accuracy."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

STEP_COLUMNS = [
    "env", "step", "trial", "episode", "episode_step", "action", "reward", "accuracy", "valid", "memo_hit",
    "n_params", "nsc",
]  # fmt: skip
EPISODE_COLUMNS = [
    "env",
    "episode",
    "best_reward",
    "accumulated_reward",
    "length",
    "multi_branch",
    "best_nsc",
]


class RunRecorder(BaseCallback):
    """Collects ``steps.csv`` and ``episodes.csv`` rows from the infos of a NAS environment (one worker).

    Works with and without the meta-RL wrapper: an inner episode ends on the step whose info names the
    rule that ended it (``ended_by``).

    :param env_name: the dataset / environment name written in every row
    :param progress: a shared tqdm bar (or ``None``) updated every step with the best accuracy so far
    :param max_steps: stop learning after this many steps (t_max), even inside a rollout, so every algorithm
        spends exactly the same number of environment steps
    """

    def __init__(
        self, env_name: str, progress: tqdm | None = None, max_steps: int | None = None, verbose: int = 0
    ) -> None:
        super().__init__(verbose)
        self.env_name = env_name
        self.max_steps = max_steps
        self.progress = progress
        self.steps: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []
        self.best_accuracy = 0.0
        self.best_nsc: list = []
        self._episode: dict[str, Any] = self._new_episode(0)

    def _new_episode(self, index: int) -> dict[str, Any]:
        return {"env": self.env_name, "episode": index, "best_reward": -np.inf, "accumulated_reward": 0.0,
                "length": 0, "multi_branch": False, "best_nsc": "[]"}  # fmt: skip

    def record(self, action: int, reward: float, info: dict[str, Any]) -> None:
        """Add one environment step (also usable without an SB3 model, e.g. by random search)."""
        episode = self._episode
        nsc = json.dumps([list(row) for row in info.get("nsc", [])])
        self.steps.append({
            "env": self.env_name, "step": len(self.steps) + 1, "trial": info.get("trial", 1),
            "episode": episode["episode"], "episode_step": info.get("episode_step", episode["length"] + 1),
            "action": int(action), "reward": float(reward), "accuracy": float(info.get("accuracy", 0.0)),
            "valid": bool(info.get("valid", True)), "memo_hit": bool(info.get("memo_hit", False)),
            "n_params": int(info.get("n_params", 0)), "nsc": nsc,
        })  # fmt: skip
        episode["length"] += 1
        episode["accumulated_reward"] += float(reward)
        if reward > episode["best_reward"]:
            episode["best_reward"], episode["best_nsc"] = float(reward), nsc
        episode["multi_branch"] = bool(info.get("multi_branch", False))
        if info.get("valid", True) and info.get("accuracy", 0.0) > self.best_accuracy:
            self.best_accuracy, self.best_nsc = float(info["accuracy"]), info.get("nsc", [])
        if info.get("ended_by"):
            self.episodes.append(episode)
            self._episode = self._new_episode(episode["episode"] + 1)
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix_str(f"{self.env_name} best={self.best_accuracy:.3f}", refresh=False)

    def _on_step(self) -> bool:
        for action, reward, info in zip(
            self.locals["actions"], self.locals["rewards"], self.locals["infos"], strict=True
        ):
            self.record(int(np.asarray(action).reshape(-1)[0]), float(reward), info)
        return self.max_steps is None or len(self.steps) < self.max_steps
