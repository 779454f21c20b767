"""Bayesian optimisation with the tree-structured Parzen estimator (Bergstra et al., 2011), Optuna's
``TPESampler``, through ask-and-tell: one episode is one trial.

Define-by-run: each step of an episode suggests one categorical parameter, ``step t``, among the actions
allowed there, so a decision exists in a trial only when the decisions before it led to it (an episode that
ends early has fewer), and the multivariate TPE with the group decomposition models the decisions of each
such group jointly. A trial's value is its episode's best reward. The study is in memory; with a storage URL
every finished trial is also added to a study there, which ``optuna-dashboard`` shows as the search goes.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from stable_baselines3.common.vec_env import VecEnv

from sb3_nas.algos.search import Episode, SearchStrategy
from sb3_nas.errors import InputError

DEFAULT_STARTUP_TRIALS = 10  # Optuna's: random trials before the estimator models any


class StudyStorageError(InputError):
    """A study storage that holds another search's trials under the study's name."""


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines and experimental-feature warnings silenced (a search tells thousands)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def parameter_name(step: int, allowed: list[int], n_actions: int) -> str:
    """The trial parameter of ``step``: ``step t``, or ``step t of {…}`` when masks rule some actions out
    (a parameter keeps one set of choices in a study)."""
    if len(allowed) == n_actions:
        return f"step {step}"
    return f"step {step} of {{{','.join(map(str, allowed))}}}"


class TPESearch(SearchStrategy):
    """TPE through ask-and-tell, ``tpe`` (see the module's text), on any project environment.

    :param env: a Gymnasium environment with a ``Discrete`` action space, or a ``VecEnv`` (its workers' trials
        run at once, the running ones imputed by the constant liar)
    :param seed: seeds the sampler (each trial's from the search's generator, so a resumed search draws the
        trials it would have)
    :param n_startup_trials: trials drawn at random before the estimator models any (Optuna's default)
    :param multivariate: model the decisions of a trial jointly (``group``-decomposed), not each alone
    :param use_masks: suggest among the actions the environment's masks allow
    :param storage: a database URL where each finished trial is also added to the study ``study_name``
        (the run supplies both: ``--storage URL``, and the run folder and environment as the name)
    :param study_name: that study's name
    """

    name = "TPE"
    run_arguments: ClassVar[tuple[str, ...]] = ("storage", "study_name")  # given by the run, not a config

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        seed: int | None = None,
        n_startup_trials: int = DEFAULT_STARTUP_TRIALS,
        multivariate: bool = True,
        use_masks: bool = True,
        storage: str | None = None,
        study_name: str | None = None,
    ) -> None:
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be 0 or more, got {n_startup_trials}")
        if storage is not None and not study_name:
            raise ValueError("a storage needs a study_name")
        self.n_startup_trials, self.multivariate = int(n_startup_trials), bool(multivariate)
        self.storage, self.study_name = storage, study_name
        self.trials: list[dict[str, Any]] = []  # finished: params, value, actions
        self.choices: dict[str, list[int]] = {}  # each parameter's choices
        self.study: optuna.Study | None = None
        self._running: dict[int, optuna.Trial] = {}
        self._mirror: optuna.Study | None = None
        self._mirrored: list[dict[str, Any]] = []  # the params of the trials the storage's study held
        super().__init__(env, seed=seed, use_masks=use_masks)

    # -- the study ------------------------------------------------------------------------------------------

    def _distributions(self, params: dict[str, int]) -> dict[str, CategoricalDistribution]:
        return {name: CategoricalDistribution(tuple(self.choices[name])) for name in params}

    def _frozen(self, trial: dict[str, Any], number: int) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(
            params=trial["params"], distributions=self._distributions(trial["params"]), value=trial["value"],
            user_attrs={"episode": number, "actions": trial["actions"]},
        )  # fmt: skip

    def _open(self) -> None:
        """The in-memory study of the trials so far, and the storage's study where there is one."""
        if self.study is None:
            with quiet_optuna():
                self.study = optuna.create_study(direction="maximize")
                self.study.add_trials([self._frozen(t, k) for k, t in enumerate(self.trials)])
        if self.storage is not None and self._mirror is None:
            from sb3_nas.tuning.study import open_storage  # the tuning layer imports the algorithms

            with quiet_optuna():
                self._mirror = optuna.create_study(
                    storage=open_storage(self.storage), study_name=self.study_name, direction="maximize",
                    load_if_exists=True,
                )  # fmt: skip
            self._mirrored = [trial.params for trial in self._mirror.get_trials(deepcopy=False)]
            for number, trial in enumerate(self.trials[: len(self._mirrored)]):
                self._check_mirrored(number, trial)

    def _check_mirrored(self, number: int, trial: dict[str, Any]) -> None:
        if self._mirrored[number] != trial["params"]:
            raise StudyStorageError(
                f"study {self.study_name} on the storage holds other trials than this search's (trial "
                f"{number}); delete it or give another --storage"
            )

    def _sampler(self) -> optuna.samplers.TPESampler:
        """The next trial's sampler, seeded from the search's generator (whose state the checkpoint holds)."""
        with quiet_optuna():
            return optuna.samplers.TPESampler(
                seed=int(self.rng.integers(2**31)), n_startup_trials=self.n_startup_trials,
                multivariate=self.multivariate, group=self.multivariate,
                constant_liar=self.venv is not None and self.venv.num_envs > 1,
            )  # fmt: skip

    # -- the search -----------------------------------------------------------------------------------------

    def _begin(self, worker: int, episode: Episode) -> None:
        self._open()
        self.study.sampler = self._sampler()
        with quiet_optuna():
            self._running[worker] = self.study.ask()

    def _choose(self, worker: int, episode: Episode, allowed: np.ndarray) -> int:
        choices = [int(a) for a in allowed]
        name = parameter_name(len(episode.taken), choices, self.n_actions)
        self.choices.setdefault(name, choices)
        with quiet_optuna():
            return int(self._running[worker].suggest_categorical(name, tuple(choices)))

    def _finish(self, worker: int, episode: Episode) -> None:
        trial = self._running.pop(worker)
        with quiet_optuna():
            self.study.tell(trial, episode.value)
        record = {"params": dict(trial.params), "value": episode.value, "actions": list(episode.taken)}
        number = len(self.trials)
        self.trials.append(record)
        self.logger.record("tpe/trials", len(self.trials))
        if self._mirror is None:
            return
        if number < len(self._mirrored):  # added before a kill: the resumed search drew the same trial
            self._check_mirrored(number, record)
            return
        with quiet_optuna():
            self._mirror.add_trial(self._frozen(record, number))

    # -- state --------------------------------------------------------------------------------------------

    def hyperparameters(self) -> dict[str, Any]:
        # the storage URL may hold a password: never written with the search (a loaded one predicts)
        return {**super().hyperparameters(), "n_startup_trials": self.n_startup_trials,
                "multivariate": self.multivariate}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "trials": self.trials, "choices": self.choices}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trials = [dict(trial) for trial in state["trials"]]
        self.choices = {name: [int(c) for c in choices] for name, choices in state["choices"].items()}
        self.study, self._running = None, {}
        self._mirror = None
