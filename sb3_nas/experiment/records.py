"""Recording a NAS run: a row per step and per inner episode, appended to the run folder as they happen,
a progress bar with the best accuracy, and the budget: exactly t_max steps per environment, every complete
rollout inside it trained on."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import TrainFrequencyUnit
from tqdm.auto import tqdm

from sb3_nas.experiment.files import replace_atomically

STEP_COLUMNS = [
    "env", "step", "trial", "episode", "episode_step", "action", "reward", "accuracy", "valid", "memo_hit",
    "n_params", "nsc", "reason", "network", "test_accuracy", "architecture",
]  # fmt: skip
# ``network`` is the canonical form of the state's network; ``test_accuracy`` and ``architecture`` (the
# benchmark's own notation, JSON) are a tabular benchmark's, empty on the NSC space
STEPS_FILE, EPISODES_FILE = "steps.csv", "episodes.csv"
EPISODE_COLUMNS = [
    "env",
    "episode",
    "best_reward",
    "accumulated_reward",
    "length",
    "multi_branch",
    "best_nsc",
]


class RecordWriter:
    """Appends step and episode rows to a run folder's CSV files as they happen, flushed after each row, so a
    killed run loses at most the step in flight.

    :param out: the run folder
    :param append: continue files a run already wrote (their headers are kept) instead of starting new ones
    """

    def __init__(self, out: Path, append: bool = False) -> None:
        self.out = out
        self._files = {}
        for name, columns in ((STEPS_FILE, STEP_COLUMNS), (EPISODES_FILE, EPISODE_COLUMNS)):
            path = out / name
            header = not append or not path.is_file() or path.stat().st_size == 0
            handle = path.open("a" if append else "w", newline="", encoding="utf-8")
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            if header:
                writer.writeheader()
                handle.flush()
            self._files[name] = (handle, writer)

    def write(self, name: str, row: dict[str, Any]) -> None:
        """Append ``row`` to ``name`` (``steps.csv`` or ``episodes.csv``) and flush it to the system."""
        handle, writer = self._files[name]
        writer.writerow(row)
        handle.flush()

    def close(self) -> None:
        """Close the files, then order ``episodes.csv`` by environment and episode (workers finish episodes
        out of order); the rewrite replaces the file atomically."""
        for handle, _ in self._files.values():
            handle.close()
        path = self.out / EPISODES_FILE
        episodes = pd.read_csv(path)
        if not episodes.empty:
            order = {env: i for i, env in enumerate(pd.unique(episodes["env"]))}
            episodes = episodes.sort_values(
                ["env", "episode"], key=lambda c: c.map(order) if c.name == "env" else c
            )
            replace_atomically(path, lambda partial: episodes.to_csv(partial, index=False))


class RunRecorder(BaseCallback):
    """Collects ``steps.csv`` and ``episodes.csv`` rows from the infos of a NAS environment.

    Works with and without the meta-RL wrapper: an inner episode ends on the step whose info names the
    rule that ended it (``ended_by``). With several workers (a vectorized environment) each worker's episode
    is tracked apart; episodes are numbered in the order they start, and steps in the order they are recorded.

    :param env_name: the dataset / environment name written in every row
    :param progress: a shared tqdm bar (or ``None``) updated every step with the best accuracy so far
    :param max_steps: stop learning after this many steps (t_max), so every algorithm spends exactly the same
        number of environment steps; a rollout the budget completes is still trained on, one it cuts is not
    :param writer: where each row is appended as it is recorded (``None``: kept in memory only)
    :param logger: the SB3 logger that receives the NAS figures (``nas/<env>/best_accuracy``,
        ``memo_hit_rate``, ``invalid_share``, ``episode_length``, ``episode_best_reward``) and so every SB3
        output format, TensorBoard included; ``None``: the logger of the model this callback serves, if any
    """

    def __init__(
        self,
        env_name: str,
        progress: tqdm | None = None,
        max_steps: int | None = None,
        verbose: int = 0,
        writer: RecordWriter | None = None,
        logger: Logger | None = None,
    ) -> None:
        super().__init__(verbose)
        self.env_name = env_name
        self.writer = writer
        self.nas_logger = logger
        self.max_steps = max_steps
        self.progress = progress
        self.steps: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []
        self.best_accuracy = 0.0
        self.best_nsc: list = []
        self._open: dict[int, dict[str, Any]] = {}  # the running episode of each worker
        self._n_started = 0
        self._n_hits = self._n_invalid = 0

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
            "n_params": int(info.get("n_params", 0)), "nsc": nsc, "reason": str(info.get("reason", "")),
            "network": str(info.get("network", "")), "test_accuracy": info.get("test_accuracy", ""),
            "architecture": json.dumps(info["architecture"]) if "architecture" in info else "",
        })  # fmt: skip
        if self.writer is not None:
            self.writer.write(STEPS_FILE, self.steps[-1])
        episode["length"] += 1
        episode["accumulated_reward"] += float(reward)
        if reward > episode["best_reward"]:
            episode["best_reward"], episode["best_nsc"] = float(reward), nsc
        episode["multi_branch"] = bool(info.get("multi_branch", False))
        if info.get("valid", True) and info.get("accuracy", 0.0) > self.best_accuracy:
            self.best_accuracy, self.best_nsc = float(info["accuracy"]), info.get("nsc", [])
        self._n_hits += self.steps[-1]["memo_hit"]
        self._n_invalid += not self.steps[-1]["valid"]
        ended = bool(info.get("ended_by"))
        if ended:
            self.episodes.append(episode)
            del self._open[worker]
            if self.writer is not None:
                self.writer.write(EPISODES_FILE, episode)
        self._log_figures(episode if ended else None)
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix_str(f"{self.env_name} best={self.best_accuracy:.3f}", refresh=False)

    def _log_figures(self, finished: dict[str, Any] | None) -> None:
        """The NAS figures so far, through SB3's logger (dumped with its next row, in every output format)."""
        model = getattr(self, "model", None)  # set when SB3 runs this callback; a frozen run records by hand
        logger = self.nas_logger or (model.logger if model is not None else None)
        if logger is None:
            return
        prefix, n = f"nas/{self.env_name}/", len(self.steps)
        logger.record(prefix + "best_accuracy", self.best_accuracy)
        logger.record(prefix + "memo_hit_rate", self._n_hits / n)
        logger.record(prefix + "invalid_share", self._n_invalid / n)
        if finished is not None:
            logger.record_mean(prefix + "episode_length", finished["length"])
            logger.record_mean(prefix + "episode_best_reward", finished["best_reward"])

    def _on_step(self) -> bool:
        for worker, (action, reward, info) in enumerate(
            zip(self.locals["actions"], self.locals["rewards"], self.locals["infos"], strict=True)
        ):
            if self.budget_spent:
                return False  # the budget ends inside a vectorized step: other workers' steps do not count
            self.record(int(np.asarray(action).reshape(-1)[0]), float(reward), info, worker)
        # SB3 trains on a rollout only if the callback lets it finish: stop inside a rollout, never at its end
        return not self.budget_spent or rollout_ends_here(self.locals)

    @property
    def budget_spent(self) -> bool:
        """Whether t_max steps are recorded."""
        return self.max_steps is not None and len(self.steps) >= self.max_steps


def rollout_ends_here(local_vars: dict[str, Any]) -> bool:
    """Whether the step SB3 is calling back from completes its rollout (after which it trains).

    Reads the locals of ``collect_rollouts``: on-policy ``n_steps`` (counted after the callback) of
    ``n_rollout_steps``; off-policy ``num_collected_steps`` (counted before it) or episodes of ``train_freq``.
    """
    if "n_rollout_steps" in local_vars:
        return local_vars["n_steps"] + 1 >= local_vars["n_rollout_steps"]
    train_freq = local_vars.get("train_freq")
    if train_freq is None:
        return False
    if train_freq.unit == TrainFrequencyUnit.STEP:
        return local_vars["num_collected_steps"] >= train_freq.frequency
    episodes = local_vars["num_collected_episodes"] + int(np.sum(local_vars["dones"]))
    return episodes >= train_freq.frequency


def best_per_env(out: Path) -> str:
    """Best accuracy per environment of a run folder, one line each."""
    steps = pd.read_csv(out / STEPS_FILE)
    lines = []
    for env, rows in steps.groupby("env", sort=False):
        best = rows.loc[rows["accuracy"].idxmax()]
        if tabular_steps(rows):
            distinct = rows.loc[rows["valid"].astype(bool), "network"].nunique()
            lines.append(f"  {env}: best validation accuracy {best['accuracy']:.4f} at step {best['step']}, "
                         f"its test accuracy {best['test_accuracy']:.4f} ({len(rows)} steps, {distinct} "
                         f"distinct architectures) {best['architecture']}")  # fmt: skip
        else:
            hit_rate = rows["memo_hit"].mean()
            lines.append(f"  {env}: best accuracy {best['accuracy']:.4f} at step {best['step']} "
                         f"({len(rows)} steps, memo hit rate {hit_rate:.0%}) {best['nsc']}")  # fmt: skip
        invalid = rows[~rows["valid"].astype(bool)]
        if len(invalid) and "reason" in rows:
            reasons = Counter(invalid["reason"].fillna("").map(reason_kind))
            counted = "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
            lines.append(f"    {len(invalid)} networks scored 0: {counted}")
    return "\n".join(lines)


def tabular_steps(steps: pd.DataFrame) -> bool:
    """Whether ``steps`` come from a tabular benchmark (they record a test accuracy)."""
    if "test_accuracy" not in steps:
        return False
    return bool(pd.to_numeric(steps["test_accuracy"], errors="coerce").notna().any())


def reason_kind(reason: str) -> str:
    """A reason for reward 0 without what differs per network (numbers, parentheses): its kind."""
    kind = re.sub(r"\s+", " ", re.sub(r"\d+", "N", re.sub(r"\([^)]*\)", "", reason))).strip()
    return kind or "unknown"
