"""Reading a run folder of ``sb3_nas.train`` or ``sb3_nas.evaluate``, with one-line errors for bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sb3_nas.envs import MULTI_BRANCH_ENV_ID, TABULAR_ENV_IDS
from sb3_nas.estimation import BENCHMARKS
from sb3_nas.experiment import CONFIG_FILE, PROGRESS_FILE, RunFolderError, read_config_file
from sb3_nas.experiment.records import EPISODES_FILE, STEPS_FILE
from sb3_nas.space import N_CHAIN_ACTIONS, N_MULTI_BRANCH_ACTIONS
from sb3_nas.space.decisions import DecisionSpace

# The columns the analysis reads: a subset of sb3_nas.experiment.STEP_COLUMNS / EPISODE_COLUMNS, so a run
# from before a column was added (and not needed here) still loads.
STEP_COLUMNS = ("env", "step", "episode", "action", "reward", "accuracy", "valid", "nsc")
EPISODE_COLUMNS = ("env", "episode", "best_reward", "accumulated_reward", "length", "multi_branch")
REQUIRED_FILES = (CONFIG_FILE, STEPS_FILE, EPISODES_FILE)  # PROGRESS_FILE is optional: evaluations have none


@dataclass
class Run:
    """One run folder: its configuration and the step, episode and (optional) SB3 logger tables."""

    path: Path
    config: dict[str, Any]
    steps: pd.DataFrame
    episodes: pd.DataFrame
    progress: pd.DataFrame | None = None
    label: str = field(default="")

    def __post_init__(self) -> None:
        if not self.label:
            self.label = f"{self.algo}/{self.path.resolve().name}"

    @property
    def algo(self) -> str:
        """The algorithm's name; an evaluation run (no ``algo`` key) is the frozen MetaA2C policy."""
        if "algo" in self.config:
            return str(self.config["algo"])
        return "meta_a2c" if self.frozen else "unknown"

    @property
    def frozen(self) -> bool:
        """Whether this is an evaluation run of a frozen policy (``sb3_nas.evaluate``, Experiment 2)."""
        return bool(self.config.get("frozen_policy"))

    @property
    def envs(self) -> list[str]:
        """The environments in the order the run visited them."""
        return list(pd.unique(self.steps["env"]))

    @property
    def multi_branch(self) -> bool:
        """Whether the run searched the multi-branch space (A0–A13)."""
        if "env_id" in self.config:
            return self.config["env_id"] == MULTI_BRANCH_ENV_ID
        return bool((self.steps["action"] >= N_CHAIN_ACTIONS).any())

    @property
    def decision_space(self) -> DecisionSpace | None:
        """The tabular benchmark's space the run searched, ``None`` on the NSC space."""
        env_id = self.config.get("env_id")
        keys = [key for key, benchmark_env_id in TABULAR_ENV_IDS.items() if benchmark_env_id == env_id]
        return BENCHMARKS[keys[0]].space if keys else None

    @property
    def space_name(self) -> str:
        """``chain``, ``multi-branch`` or the tabular benchmark's name."""
        space = self.decision_space
        return space.name if space is not None else "multi-branch" if self.multi_branch else "chain"

    @property
    def n_actions(self) -> int:
        """Size of the run's action space: 8 for chains, 14 for multi-branch, a benchmark's own."""
        if self.decision_space is not None:
            return self.decision_space.n_actions
        return N_MULTI_BRANCH_ACTIONS if self.multi_branch else N_CHAIN_ACTIONS

    @property
    def fidelity(self) -> str | None:
        """The fidelity name the run's rewards were estimated at."""
        value = self.config.get("fidelity")
        return None if value is None else str(value)

    def chosen_envs(self, envs: list[str] | None) -> list[str]:
        """``envs`` (``None``: all of the run's), each one the run visited; a one-line ``RunFolderError``
        names the others."""
        chosen = self.envs if envs is None else list(envs)
        unknown = [env for env in chosen if env not in self.envs]
        if unknown or not chosen:
            raise RunFolderError(
                f"run folder {self.path} has no environment {', '.join(unknown) or '(none given)'} "
                f"(it has {', '.join(self.envs)})"
            )
        return chosen

    def env_steps(self, env: str) -> pd.DataFrame:
        return self.steps[self.steps["env"] == env]

    def env_episodes(self, env: str) -> pd.DataFrame:
        return self.episodes[self.episodes["env"] == env].sort_values("episode", kind="stable")


def read_table(path: Path, required: tuple[str, ...], folder: Path) -> pd.DataFrame:
    """A run table with the columns ``required``; anything unreadable is a one-line ``RunFolderError``."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise RunFolderError(f"run folder {folder}: {path.name} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0]
        raise RunFolderError(f"run folder {folder}: {path.name} is not a readable CSV ({reason})") from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise RunFolderError(
            f"run folder {folder}: {path.name} lacks column(s) {', '.join(missing)} "
            "(written by an older version of sb3_nas?)"
        )
    return table


def load_run(path: str | Path, label: str = "") -> Run:
    """Read a run folder; raises ``RunFolderError`` naming every missing file or column."""
    folder = Path(path)
    if not folder.is_dir():
        raise RunFolderError(f"run folder {folder} does not exist")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise RunFolderError(f"run folder {folder} lacks {', '.join(missing)}")
    config = read_config_file(folder)
    steps = read_table(folder / STEPS_FILE, STEP_COLUMNS, folder)
    if steps.empty:
        raise RunFolderError(f"run folder {folder}: steps.csv has no rows")
    episodes = read_table(folder / EPISODES_FILE, EPISODE_COLUMNS, folder)
    progress = None
    if (folder / PROGRESS_FILE).is_file() and (folder / PROGRESS_FILE).stat().st_size > 0:
        progress = read_table(folder / PROGRESS_FILE, (), folder)
    return Run(folder, config, steps, episodes, progress, label)


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Read several run folders, labelled ``algo/folder`` (a number appended where labels repeat)."""
    runs = [load_run(path) for path in paths]
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label = f"{run.label} #{seen[run.label]}"
    return runs
