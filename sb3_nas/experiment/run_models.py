"""Loading the model a run folder saved, as the class its ``config.yml`` names and only it, running nothing
the file holds.

A meta-RL run saved one policy (``model.zip``, read by :func:`~sb3_nas.experiment.models.load_model`); any
other run saved one model per environment (``model_<dataset>.zip``). A search strategy's file is JSON, read by
its class's ``load``. For every other algorithm — SB3's, sb3-contrib's, or a user's by import path — the model
is built anew from the run's own configuration (its class, policy and hyper-parameters for that environment,
and the search space's observation and action spaces), and only the weights come from the file, read with
``torch.load(weights_only=True)``: its ``data`` entry, where SB3 keeps cloudpickled objects, is never read. A
file whose weights do not fit that model — another algorithm's, another policy's — is refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_nas.algos import SearchStrategy
from sb3_nas.envs import NasEnv, TabularNasEnv
from sb3_nas.errors import ModelError
from sb3_nas.estimation import parse_table_spec
from sb3_nas.experiment.config import RunConfig, read_run_config
from sb3_nas.experiment.models import MODEL_FILE, SpacesOnly, load_model
from sb3_nas.experiment.registry import algo_class
from sb3_nas.experiment.runner import model_file


def run_spaces(config: RunConfig) -> tuple[gym.Space, gym.Space]:
    """The observation and action spaces a run's (non-meta-RL) learner acted in."""
    if config.tabular:
        return TabularNasEnv.spaces(parse_table_spec(config.envs[0]).benchmark.space)
    return NasEnv.spaces(config.multi_branch)


def load_run_model(folder: str | Path, dataset: str | None = None, device: str = "cpu") -> Any:
    """The model run folder ``folder`` saved for ``dataset`` (``None``: its only environment, or the meta-RL
    policy), loaded as described in the module's text; a one-line :class:`ModelError` otherwise."""
    folder = Path(folder)
    config = read_run_config(folder)
    if config.frozen:
        raise ModelError(f"run folder {folder} is an evaluation of a frozen policy: it saved no model")
    if config.meta_rl:
        return load_model(folder / MODEL_FILE, device=device)
    if dataset is None:
        if len(config.envs) > 1:
            names = ", ".join(config.envs)
            raise ModelError(f"run folder {folder} saved a model per environment: name one of {names}")
        dataset = config.envs[0]
    if dataset not in config.envs:
        raise ModelError(f"run folder {folder} ran on {', '.join(config.envs)}, not {dataset}")
    path = folder / model_file(dataset)
    if not path.is_file():
        raise ModelError(f"run folder {folder} holds no {path.name} (saved as a run finishes {dataset})")
    cls = algo_class(config.algo)
    observation_space, action_space = run_spaces(config)
    if issubclass(cls, SearchStrategy):
        strategy = cls.load(path)
        if strategy.n_actions != action_space.n:
            raise ModelError(f"model file {path} searched {strategy.n_actions} actions, not {action_space.n}")
        return strategy
    hyperparams = dict(config.hyperparams[dataset])
    policy = hyperparams.pop("policy")
    env = DummyVecEnv([lambda: SpacesOnly(observation_space, action_space)])
    model = cls(policy, env, seed=config.seed, device=device, **hyperparams)
    try:
        _, params, variables = load_from_zip_file(path, load_data=False, device=device)
        model.set_parameters(params, exact_match=True, device=device)
    except Exception as error:  # any file: a foreign zip, a pickle torch refuses, weights of another model
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ModelError(f"model file {path} is not a {config.algo} model of this run ({reason})") from None
    for name, value in (variables or {}).items():  # SB3's pytorch_variables (e.g. an entropy coefficient)
        target = getattr(model, name, None)
        if target is None or getattr(target, "shape", None) != getattr(value, "shape", None):
            raise ModelError(f"model file {path} holds a variable {name} the {config.algo} model lacks")
        target.data = value.data
    return model
