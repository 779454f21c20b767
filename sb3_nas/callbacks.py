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
    """Collects ``steps.csv`` and ``episodes.csv`` rows from the infos of a NAS environment.

    Works with and without the meta-RL wrapper: an inner episode ends on the step whose info names the
    rule that ended it (``ended_by``). With several workers (a vectorized environment) each worker's episode
    is tracked apart; episodes are numbered in the order they start, and steps in the order they are recorded.

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
        self._open: dict[int, dict[str, Any]] = {}  # the running episode of each worker
        self._n_started = 0

    def _new_episode(self, index: int) -> dict[str, Any]:
        return {"env": self.env_name, "episode": index, "best_reward": -np.inf, "accumulated_reward": 0.0,
                "length": 0, "multi_branch": False, "best_nsc": "[]"}  # fmt: skip

    def _episode_of(self, worker: int) -> dict[str, Any]:
        if worker not in self._open:
            self._open[worker] = self._new_episode(self._n_started)
            self._n_started += 1
        return self._open[worker]

    def record(self, action: int, reward: float, info: dict[str, Any], worker: int = 0) -> None:
        """Add one environment step of ``worker`` (also usable without an SB3 model, e.g. by evaluate)."""
        episode = self._episode_of(worker)
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
            del self._open[worker]
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix_str(f"{self.env_name} best={self.best_accuracy:.3f}", refresh=False)

    def _on_step(self) -> bool:
        for worker, (action, reward, info) in enumerate(
            zip(self.locals["actions"], self.locals["rewards"], self.locals["infos"], strict=True)
        ):
            if self.max_steps is not None and len(self.steps) >= self.max_steps:
                break  # the budget ends inside a vectorized step: the other workers' steps are not counted
            self.record(int(np.asarray(action).reshape(-1)[0]), float(reward), info, worker)
        return self.max_steps is None or len(self.steps) < self.max_steps
