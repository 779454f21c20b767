"""Resuming a run folder: its records cut back to the checkpoint, the current environment replayed to it.

Everything a run recorded after its last checkpoint is taken back (steps, the episodes that ended after it,
SB3's log rows), so the continued run writes every row exactly once. The environment's state at the checkpoint
is rebuilt by replaying the recorded actions through a fresh environment; its rewards come from the memo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from stable_baselines3.common.vec_env import VecEnv

from sb3_nas.errors import UsageError
from sb3_nas.experiment.checkpoint import CHECKPOINT_FILE, CheckpointError, Position, load_checkpoint
from sb3_nas.experiment.config import RunConfig
from sb3_nas.experiment.files import replace_atomically
from sb3_nas.experiment.records import EPISODE_COLUMNS, EPISODES_FILE, STEP_COLUMNS, STEPS_FILE, RunRecorder

PROGRESS_FILE = "progress.csv"
PROGRESS_BEFORE = (
    "progress.before-resume.csv"  # SB3's log rows up to the checkpoint, while a resumed run goes
)


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns)
    text_columns = ("nsc", "best_nsc", "reason", "network", "architecture")
    return pd.read_csv(path, keep_default_na=False, dtype=dict.fromkeys(text_columns, str))


def _replace_csv(frame: pd.DataFrame, path: Path) -> None:
    replace_atomically(path, lambda partial: frame.to_csv(partial, index=False))


def recorded_steps(out: Path) -> int:
    """How many steps run folder ``out`` recorded; an unreadable steps table is a one-line ``UsageError``."""
    path = out / STEPS_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    try:
        return len(pd.read_csv(path, usecols=["env"]))
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError):
        raise UsageError(
            f"{path} is not a readable steps table: remove {out} or choose another --out"
        ) from None


# what can be done with a run folder's recorded run (resumability)
RESUMABLE, COMPLETE, OVERRUN = "resumable", "complete", "overrun"
FROZEN, INTERLEAVED = "frozen", "interleaved"


def resumability(config: RunConfig, steps_done: int) -> str:
    """Whether a run of ``config`` that recorded ``steps_done`` steps can be continued: :data:`RESUMABLE`;
    else why not: :data:`COMPLETE` (every step recorded), :data:`OVERRUN` (more steps than its budgets),
    :data:`FROZEN` (an evaluation of a frozen policy, run again instead), :data:`INTERLEAVED` (several
    workers, whose steps interleave and cannot be replayed)."""
    total = sum(config.timesteps)
    if config.frozen:
        return FROZEN
    if steps_done == total:
        return COMPLETE
    if steps_done > total:
        return OVERRUN
    return INTERLEAVED if config.n_envs > 1 else RESUMABLE


def check_resumable(config: RunConfig, out: Path) -> None:
    """Refuse what cannot be resumed, in one line each."""
    done, total = recorded_steps(out), sum(config.timesteps)
    state = resumability(config, done)
    if state == FROZEN:
        raise UsageError(f"{out} is an evaluation of a frozen policy; run it again instead of resuming it")
    if config.n_envs > 1:  # said before completeness: such a run is never resumable
        raise UsageError(
            f"{out} ran {config.n_envs} workers at once, whose steps interleave: it cannot be resumed"
        )
    if state in (COMPLETE, OVERRUN):
        raise UsageError(f"{out} is complete ({done} steps of {total}): nothing to resume")


def prepare_resume(config: RunConfig, out: Path) -> tuple[dict[str, Any] | None, Position, list[int]]:
    """Cut the run's records back to its checkpoint; returns the checkpoint, its position and the actions
    taken on the current environment before it (to replay)."""
    check_resumable(config, out)
    checkpoint = load_checkpoint(out)
    position = Position(checkpoint["env_index"], checkpoint["steps_done"]) if checkpoint else Position()
    if position.env_index >= len(config.envs) or position.steps_done > config.timesteps[position.env_index]:
        raise CheckpointError(f"{out / CHECKPOINT_FILE} lies outside the run's environments and budgets")
    before = sum(config.timesteps[: position.env_index])
    steps = _read(out / STEPS_FILE, STEP_COLUMNS)
    kept = steps.iloc[: before + position.steps_done]
    if len(kept) < before + position.steps_done:
        raise CheckpointError(
            f"{out / STEPS_FILE} holds {len(steps)} steps, fewer than its checkpoint's {len(kept)}"
        )
    done_envs = set(config.envs[: position.env_index])
    episodes = _read(out / EPISODES_FILE, EPISODE_COLUMNS)
    _replace_csv(kept.reindex(columns=STEP_COLUMNS, fill_value=""), out / STEPS_FILE)
    _replace_csv(episodes[episodes["env"].isin(done_envs)], out / EPISODES_FILE)
    _keep_progress(out, checkpoint["progress_rows"] if checkpoint else 0)
    actions = kept.iloc[before:]["action"].astype(int).tolist()
    return checkpoint, position, actions


def _keep_progress(out: Path, rows: int) -> None:
    """Set SB3's log rows up to the checkpoint aside; :func:`merge_progress` puts them back in front."""
    merge_progress(out)  # an earlier resume that was killed too
    progress = out / PROGRESS_FILE
    if progress.is_file() and progress.stat().st_size > 0:
        _replace_csv(pd.read_csv(progress).iloc[:rows], out / PROGRESS_BEFORE)
        progress.unlink()


def merge_progress(out: Path) -> None:
    """``progress.csv`` = the rows set aside before resuming, then the resumed run's."""
    before = out / PROGRESS_BEFORE
    if not before.is_file():
        return
    parts = [pd.read_csv(before)] if before.stat().st_size > 1 else []
    progress = out / PROGRESS_FILE
    if progress.is_file() and progress.stat().st_size > 0:
        parts.append(pd.read_csv(progress))
    if parts:
        _replace_csv(pd.concat(parts, ignore_index=True), progress)
    before.unlink()


def replay(venv: VecEnv, actions: list[int], recorder: RunRecorder) -> tuple[np.ndarray, np.ndarray]:
    """Step a fresh one-worker environment through ``actions``, recording them (not writing them again);
    returns the last observation and episode-start flags, as SB3 keeps them."""
    writer, recorder.writer, progress, recorder.progress = recorder.writer, None, recorder.progress, None
    observation = venv.reset()
    dones = np.ones((venv.num_envs,), dtype=bool)
    for action in actions:
        observation, rewards, dones, infos = venv.step(np.array([action]))
        recorder.record(action, float(rewards[0]), infos[0])
    recorder.writer, recorder.progress = writer, progress
    if writer is not None:  # the episodes that ended before the checkpoint were taken back with the rest
        for episode in recorder.episodes:
            writer.write(EPISODES_FILE, episode)
    return observation, dones
