"""Checkpoints of a run, so that a run killed at any moment continues to exactly what it would have done.

A checkpoint is taken where a learner's state is whole — at the start of a rollout, after the previous update
— every ``checkpoint_every`` steps, and at the start of each environment. It holds the position (environment,
steps done there), the learner's weights and optimizer state, its counters and recurrent state, DQN's replay
buffer, a search strategy's state (its generator, population, neighbourhood or study) and every global random
generator. The environment's own state is not stored: the environment is deterministic given its actions, so
resuming replays the recorded actions of the current environment through a fresh one, every reward a memo hit.
One file, ``checkpoint.pt``, replaced atomically and read back with ``torch.load(weights_only=True)``: it
holds tensors, numbers and strings only.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from sb3_nas.algos import SearchStrategy
from sb3_nas.errors import InputError
from sb3_nas.experiment.files import replace_atomically

CHECKPOINT_FILE = "checkpoint.pt"
DEFAULT_CHECKPOINT_EVERY = 100  # steps; a checkpoint costs milliseconds, a step up to seconds
FORMAT = 1
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_n_calls", "exploration_rate")
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


class CheckpointError(InputError):
    """A checkpoint that cannot be read or does not fit its run."""


@dataclass(frozen=True)
class Position:
    """Where a run stands: the index of its current environment and the steps already done there."""

    env_index: int = 0
    steps_done: int = 0


def _generator_state(generator: np.random.Generator) -> str:
    return json.dumps(generator.bit_generator.state)


def _set_generator_state(generator: np.random.Generator, state: str) -> None:
    generator.bit_generator.state = json.loads(state)


def global_rng_state() -> dict[str, Any]:
    """The state of torch's, NumPy's and Python's global generators, as tensors and plain values."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002  (SB3 draws from it)
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
    }  # fmt: skip


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["name"], keys, numpy["pos"], numpy["has_gauss"], numpy["gauss"]))  # noqa: NPY002
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))


def learner_state(learner: Any) -> dict[str, Any]:
    """What a learner needs to go on exactly: weights, optimizer, counters, recurrent state, replay buffer."""
    if isinstance(learner, SearchStrategy):  # its state is plain data, kept as JSON text
        return {"kind": "search", "state": json.dumps(learner.state_dict())}
    state: dict[str, Any] = {
        "kind": "sb3",
        "parameters": learner.get_parameters(),
        "counters": {name: getattr(learner, name) for name in COUNTERS if hasattr(learner, name)},
        "action_space_rng": _generator_state(learner.action_space.np_random),
    }
    if getattr(learner, "ep_info_buffer", None) is not None:  # the episode statistics SB3 logs
        state["ep_info_buffer"] = [{k: float(v) for k, v in info.items()} for info in learner.ep_info_buffer]
    if getattr(learner, "_last_episode_starts", None) is not None:
        state["last_episode_starts"] = torch.from_numpy(np.asarray(learner._last_episode_starts))
    lstm = getattr(learner, "_last_lstm_states", None)
    if lstm is not None:
        state["lstm_states"] = {"pi": list(lstm.pi), "vf": list(lstm.vf)}
    buffer = getattr(learner, "replay_buffer", None)
    if buffer is not None:
        arrays = {
            name: torch.from_numpy(getattr(buffer, name)) for name in BUFFER_ARRAYS if hasattr(buffer, name)
        }
        state["replay_buffer"] = {"arrays": arrays, "pos": buffer.pos, "full": buffer.full}
    return state


def restore_learner(learner: Any, state: dict[str, Any]) -> None:
    """Put ``state`` (from :func:`learner_state`) back into a learner built with the run's settings."""
    if state["kind"] == "search":
        learner.load_state_dict(json.loads(state["state"]))
        return
    if state["kind"] == "random":  # a random search's checkpoint written before the search strategies
        learner.num_timesteps = state["num_timesteps"]
        _set_generator_state(learner.rng, state["rng"])
        return
    learner.set_parameters(state["parameters"], exact_match=True)
    for name, value in state["counters"].items():
        setattr(learner, name, value)
    _set_generator_state(learner.action_space.np_random, state["action_space_rng"])
    if "ep_info_buffer" in state:
        learner.ep_info_buffer = deque(state["ep_info_buffer"], maxlen=learner._stats_window_size)
        learner.ep_success_buffer = deque(maxlen=learner._stats_window_size)  # SB3 makes both or neither
    if "last_episode_starts" in state:
        learner._last_episode_starts = state["last_episode_starts"].numpy()
    if "lstm_states" in state:
        from sb3_contrib.common.recurrent.type_aliases import RNNStates

        lstm = state["lstm_states"]
        learner._last_lstm_states = RNNStates(tuple(lstm["pi"]), tuple(lstm["vf"]))
    if "replay_buffer" in state:
        buffer, saved = learner.replay_buffer, state["replay_buffer"]
        for name, array in saved["arrays"].items():
            getattr(buffer, name)[...] = array.numpy()
        buffer.pos, buffer.full = saved["pos"], saved["full"]


def pending_log(learner: Any | None) -> dict[str, float]:
    """The values SB3's logger holds for its next row (an update's losses are dumped one rollout later)."""
    logger = getattr(learner, "logger", None) if learner is not None else None
    values = getattr(logger, "name_to_value", {})
    return {key: float(value) for key, value in values.items() if isinstance(value, int | float | np.number)}


def save_checkpoint(out: Path, position: Position, learner: Any | None, progress_rows: int) -> None:
    """Write ``out/checkpoint.pt`` atomically (a kill during the write leaves the previous one)."""
    payload = {
        "log_pending": pending_log(learner),
        "format": FORMAT,
        "env_index": position.env_index,
        "steps_done": position.steps_done,
        "progress_rows": progress_rows,
        "rng": global_rng_state(),
        "learner": None if learner is None else learner_state(learner),
    }
    replace_atomically(out / CHECKPOINT_FILE, lambda partial: torch.save(payload, partial))


def load_checkpoint(out: Path) -> dict[str, Any] | None:
    """The checkpoint of run folder ``out``, or ``None`` when the run never wrote one."""
    path = out / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as error:  # a corrupt or foreign file: never unpickled beyond tensors and plain values
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"checkpoint {path} cannot be read ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a checkpoint of this version of sb3_nas")
    return payload


def data_rows(path: Path) -> int:
    """The rows of a CSV file after its header (0 when it does not exist)."""
    if not path.is_file():
        return 0
    with path.open(encoding="utf-8") as handle:
        return max(0, sum(1 for _ in handle) - 1)


class RunCheckpointer(BaseCallback):
    """Saves a checkpoint at the start of a rollout once ``every`` steps have passed since the last one.

    :param out: the run folder
    :param env_index: the index of the environment being learned on
    :param recorder: the environment's recorder, whose steps are the steps done on it so far
    :param every: steps between checkpoints (at least)
    :param progress_file: SB3's CSV log, whose rows so far the checkpoint remembers
    """

    def __init__(self, out: Path, env_index: int, recorder: Any, every: int, progress_file: Path) -> None:
        super().__init__()
        self.out, self.env_index, self.recorder, self.every = out, env_index, recorder, every
        self.progress_file = progress_file
        self.last = len(recorder.steps)

    def _on_rollout_start(self) -> None:
        done = len(self.recorder.steps)
        if done - self.last >= self.every:
            save_checkpoint(
                self.out, Position(self.env_index, done), self.model, data_rows(self.progress_file)
            )
            self.last = done

    def _on_step(self) -> bool:
        return True
