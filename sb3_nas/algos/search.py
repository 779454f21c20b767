"""Search strategies with SB3's interface: an architecture is the sequence of decisions an episode takes.

A :class:`SearchStrategy` steps any environment with a ``Discrete`` action space (or an SB3 ``VecEnv`` of
several workers) as an SB3 algorithm does — ``learn`` with callbacks, ``predict``, ``save`` and ``load`` — but
chooses its actions by a search rule instead of a policy. Each episode proposes one architecture; its value is
the episode's best reward (the best network along it). A strategy sees the environment's action masks (the
``action_masks`` method sb3-contrib's ``MaskablePPO`` reads) where it has them, and chooses among the allowed
actions only. Its state is plain data (:meth:`SearchStrategy.state_dict`): a checkpoint holds it, and
``save`` writes it as JSON inside a zip, which ``load`` reads back without unpickling anything.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from tqdm.auto import tqdm

from sb3_nas.errors import ModelError

SAVE_FORMAT = 1
SAVED_FILE = "search.json"  # the one member of a saved strategy's zip
SelfSearch = TypeVar("SelfSearch", bound="SearchStrategy")


@dataclass
class SearchRecord:
    """The best network seen so far and the per-episode history of a search.

    ``best_actions`` are the actions of the episode that met the best network (``predict`` replays them).
    """

    best_reward: float = -np.inf
    best_info: dict[str, Any] = field(default_factory=dict)
    best_actions: list[int] = field(default_factory=list)
    episode_best: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    n_steps: int = 0
    n_memo_hits: int = 0


@dataclass
class Episode:
    """One worker's episode under way: the actions taken, the allowed actions before each, its best reward so
    far and the strategy's plan for it (the proposal it follows, ``None`` for a decision at each step)."""

    taken: list[int] = field(default_factory=list)
    allowed: list[list[int]] = field(default_factory=list)
    best: float = -np.inf
    plan: list[int] | None = None

    @property
    def value(self) -> float:
        """The episode's value: its best reward (0 for an episode that earned nothing)."""
        return float(self.best) if np.isfinite(self.best) else 0.0


def _plain(value: Any) -> Any:
    """``value`` as JSON: tuples and arrays as lists, NumPy scalars as numbers, infinities as ``None``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class SearchStrategy:
    """The base of the search strategies (see the module's text); subclasses choose the actions.

    :param env: any Gymnasium environment with a ``Discrete`` action space, or an SB3 ``VecEnv`` of several
        (its workers step together, each on an episode of its own); ``None`` for a strategy that only
        predicts (loaded from a file)
    :param seed: seeds the strategy's choices (and the environments, worker i with seed + i)
    :param use_masks: choose among the actions the environment's ``action_masks`` allows (where it has them)

    A subclass implements :meth:`_begin` (an episode starts: set its plan) and may override :meth:`_choose`
    (an action of the episode) and :meth:`_finish` (the episode ended: learn from its value), and keeps its
    own state in :meth:`state_dict` / :meth:`load_state_dict`.
    """

    name: ClassVar[str] = "search"
    # whether a checkpoint may be taken at any step; else only where every worker is between episodes
    whole_within_episodes: ClassVar[bool] = False

    def __init__(self, env: gym.Env | VecEnv | None, seed: int | None = None, use_masks: bool = True) -> None:
        self.seed = seed
        self.use_masks = bool(use_masks)
        self.rng = np.random.default_rng(seed)
        self.record = SearchRecord()
        self.num_timesteps = 0
        self._last_obs: np.ndarray | None = None  # the workers' observations, as SB3 algorithms keep them
        self._episodes: list[Episode] = []
        self.logger = configure(None, [])
        self.env = self.venv = None
        self.action_space: gym.spaces.Discrete | None = None
        self.observation_space: gym.spaces.Space | None = None
        if env is not None:
            self.set_env(env)

    # -- SB3's interface ----------------------------------------------------------------------------------

    def set_env(self, env: gym.Env | VecEnv) -> None:
        """Search on ``env`` (its action space must be ``Discrete``, and a loaded strategy's own)."""
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"{type(self).__name__} needs a Discrete action space, got {env.action_space}")
        if self.action_space is not None and env.action_space.n != self.action_space.n:
            raise ModelError(f"{type(self).__name__} searched {self.action_space}, not {env.action_space}")
        self.env = env
        self.venv = env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env])
        self.action_space, self.observation_space = env.action_space, env.observation_space

    def get_env(self) -> VecEnv | None:
        return self.venv

    @property
    def n_actions(self) -> int:
        if self.action_space is None:
            raise ModelError(f"{type(self).__name__} has no environment: give one with set_env")
        return int(self.action_space.n)

    def set_logger(self, logger: Any) -> None:
        self.logger = logger

    def predict(
        self,
        observation: np.ndarray,
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The search's answer, step by step: the actions of the episode that met the best network so far.

        ``state`` is the step each observation stands at (SB3's recurrent convention: pass back what was
        returned, ``episode_start`` True where an episode begins); past the end of that episode, and before
        the search found anything, the action is uniform. ``deterministic`` changes nothing: the answer is
        one architecture.
        """
        single = self.observation_space is not None and np.shape(observation) == self.observation_space.shape
        n = 1 if single else len(observation)
        steps = np.zeros(n, dtype=int) if state is None else np.asarray(state, dtype=int).reshape(n).copy()
        if episode_start is not None:
            steps[np.asarray(episode_start, dtype=bool).reshape(n)] = 0
        best = self.record.best_actions
        actions = np.array(
            [best[t] if t < len(best) else int(self.rng.integers(self.n_actions)) for t in steps]
        )
        return (actions[0] if single else actions), steps + 1

    def learn(
        self: SelfSearch,
        total_timesteps: int,
        callback: BaseCallback | None = None,
        log_interval: int = 1,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> SelfSearch:
        """Run ``total_timesteps`` environment steps (over all workers), keeping the best reward and network.

        ``callback`` is an SB3 ``BaseCallback``; its ``locals`` hold ``actions``, ``rewards``, ``dones`` and
        ``infos`` of every worker, as in SB3's on-policy loop. ``on_rollout_start`` is called before a step
        where the search's state is whole (before every step for a strategy whose state is whole within an
        episode, else where every worker is between episodes): a checkpoint is taken there. A row of SB3's
        log is written per episode. ``reset_num_timesteps=False`` with ``_last_obs`` set continues a search
        from where it stood, without resetting the environment (resuming a run).
        """
        if self.venv is None:
            raise ModelError(f"{type(self).__name__} has no environment: give one with set_env")
        record, venv = self.record, self.venv
        if callback is not None:
            callback.init_callback(self)  # type: ignore[arg-type]
            callback.on_training_start(locals(), globals())
        if reset_num_timesteps or self._last_obs is None:
            self.num_timesteps = 0
            venv.seed(self.seed)
            self._last_obs = venv.reset()
            self._episodes = [Episode() for _ in range(venv.num_envs)]
            self._setup(total_timesteps)
        else:
            total_timesteps += self.num_timesteps  # as SB3 counts a continued learn
        bar = tqdm(total=total_timesteps, disable=not progress_bar, desc=self.name)
        while self.num_timesteps < total_timesteps:
            if callback is not None and (self.whole_within_episodes or self._between_episodes()):
                callback.on_rollout_start()
            actions = self._actions()
            observations, rewards, dones, infos = venv.step(actions)
            self._last_obs = observations
            self.num_timesteps += venv.num_envs
            if callback is not None:
                step = {"actions": actions, "rewards": rewards, "dones": dones, "infos": infos}
                callback.update_locals(step)
                if not callback.on_step():
                    break
            for worker, (action, reward, done, info) in enumerate(
                zip(actions, rewards, dones, infos, strict=True)
            ):
                self._observe(worker, int(action), float(reward), bool(done), info)
            bar.update(venv.num_envs)
            bar.set_postfix(best=f"{record.best_reward:.3f}")
        bar.close()
        if callback is not None:
            callback.on_training_end()
        return self

    # -- the loop's parts ---------------------------------------------------------------------------------

    def _between_episodes(self) -> bool:
        return all(not episode.taken for episode in self._episodes)

    def _allowed(self) -> list[np.ndarray]:
        """The allowed actions of each worker now (all of them where the environment has no masks)."""
        n, venv = self.n_actions, self.venv
        if self.use_masks and is_masking_supported(venv):
            masks = get_action_masks(venv)
            return [np.flatnonzero(mask) if mask.any() else np.arange(n) for mask in masks]
        return [np.arange(n)] * venv.num_envs

    def _actions(self) -> np.ndarray:
        actions = []
        for worker, (episode, allowed) in enumerate(zip(self._episodes, self._allowed(), strict=True)):
            if not episode.taken:
                self._begin(worker, episode)
            episode.allowed.append([int(a) for a in allowed])
            actions.append(self._choose(worker, episode, allowed))
        return np.array(actions)

    def _choose(self, worker: int, episode: Episode, allowed: np.ndarray) -> int:
        """The episode's next action: its plan's, where the plan has one and it is allowed, else uniform among
        the allowed actions (a plan's step the new state rules out is repaired, not taken)."""
        step, plan = len(episode.taken), episode.plan
        if plan is not None and step < len(plan) and plan[step] in allowed:
            return int(plan[step])
        return int(self.rng.choice(allowed))

    def _observe(self, worker: int, action: int, reward: float, done: bool, info: dict[str, Any]) -> None:
        record, episode = self.record, self._episodes[worker]
        record.n_steps += 1
        record.n_memo_hits += bool(info.get("memo_hit", False))
        episode.taken.append(action)
        episode.best = max(episode.best, reward)
        if reward > record.best_reward:  # (SB3's terminal observation is the worker's, not the network's)
            record.best_reward = reward
            record.best_info = {k: v for k, v in info.items() if k != "terminal_observation"}
            record.best_actions = list(episode.taken)
        if not done:
            return
        if episode.taken[: len(record.best_actions)] == record.best_actions:
            record.best_actions = list(episode.taken)  # the whole episode that met the best network
        record.episode_best.append(episode.value)
        record.episode_lengths.append(len(episode.taken))
        self._finish(worker, episode)
        self.logger.record("rollout/episode_best_reward", episode.value)
        self.logger.record("rollout/episode_length", len(episode.taken))
        self.logger.record("rollout/best_reward", record.best_reward)
        self.logger.record("time/total_timesteps", self.num_timesteps)
        self.logger.dump(self.num_timesteps)
        self._episodes[worker] = Episode()

    def _setup(self, total_timesteps: int) -> None:
        """A fresh search of ``total_timesteps`` steps begins (a subclass resets its state here)."""

    def _begin(self, worker: int, episode: Episode) -> None:
        """``worker`` begins ``episode``: set its plan (``None``: uniform among the allowed actions)."""

    def _finish(self, worker: int, episode: Episode) -> None:
        """``worker``'s ``episode`` ended; its value is ``episode.value``."""

    def max_steps(self) -> int | None:
        """τ, the most actions an episode takes, where the environment says (``max_steps``)."""
        if self.venv is None or not self.venv.has_attr("max_steps"):
            return None
        return int(self.venv.get_attr("max_steps", [0])[0])

    # -- state, save and load ------------------------------------------------------------------------------

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's arguments besides ``env``, as given (what ``load`` builds the strategy with)."""
        return {"seed": self.seed, "use_masks": self.use_masks}

    def state_dict(self) -> dict[str, Any]:
        """Everything the search needs to go on exactly, as plain data (JSON)."""
        record = asdict(self.record)
        return _plain(
            {
                "num_timesteps": self.num_timesteps,
                "rng": self.rng.bit_generator.state,
                "record": record,
                "episodes": [asdict(episode) for episode in self._episodes],
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put what :meth:`state_dict` returned back."""
        self.num_timesteps = int(state["num_timesteps"])
        self.rng.bit_generator.state = state["rng"]
        record = dict(state.get("record") or {})
        best = record.get("best_reward")
        record["best_reward"] = -np.inf if best is None else float(best)
        self.record = SearchRecord(**record)
        self._episodes = [
            Episode(**{**episode, "best": -np.inf if episode["best"] is None else episode["best"]})
            for episode in state.get("episodes", [])
        ]

    def save(self, path: str | Path) -> None:
        """Write the strategy — its class, hyper-parameters, spaces and state — as JSON in the zip ``path``
        (``.zip`` added when missing, as SB3 does)."""
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip")
        payload = {
            "format": SAVE_FORMAT,
            "class": type(self).__name__,
            "n_actions": self.n_actions,
            "observation_shape": list(getattr(self.observation_space, "shape", ()) or ()),
            "hyperparameters": _plain(self.hyperparameters()),
            "state": self.state_dict(),
        }
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(SAVED_FILE, json.dumps(payload))

    @classmethod
    def load(cls: type[SelfSearch], path: str | Path, env: gym.Env | VecEnv | None = None) -> SelfSearch:
        """A strategy :meth:`save` wrote, of this class, on ``env`` (``None``: for ``predict`` only); raises a
        one-line :class:`~sb3_nas.errors.ModelError` for a file that is not one."""
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as archive:
                payload = json.loads(archive.read(SAVED_FILE))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            raise ModelError(f"{path} is not a saved search strategy ({type(error).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != SAVE_FORMAT:
            raise ModelError(f"{path} is not a search strategy saved by this version of sb3_nas")
        if payload.get("class") != cls.__name__:
            raise ModelError(f"{path} holds a {payload.get('class')}, not a {cls.__name__}")
        strategy = cls(None, **payload["hyperparameters"])
        strategy.action_space = gym.spaces.Discrete(int(payload["n_actions"]))
        shape = tuple(payload.get("observation_shape") or ())
        strategy.observation_space = gym.spaces.Box(-np.inf, np.inf, shape) if shape else None
        if env is not None:
            strategy.set_env(env)
        strategy.load_state_dict(payload["state"])
        strategy._episodes = []  # a loaded strategy's learn starts from a reset
        return strategy
