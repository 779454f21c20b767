"""Environment construction for a run: one NAS environment per dataset, wrapped as the algorithm needs."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from sb3_nas.algos import MetaRLWrapper
from sb3_nas.envs import NasEnv, TabularNasEnv
from sb3_nas.estimation import (
    PerformanceEstimator,
    RewardMemo,
    TableEstimator,
    configure_threads,
    is_table_spec,
    worker_devices,
)
from sb3_nas.experiment.config import RunConfig


def make_env(config: RunConfig, dataset: str, memo: RewardMemo | str, t_max: int) -> gym.Env:
    """The NAS environment of one dataset (a tabular benchmark's look-ups for a task spec), in the meta-RL
    wrapper (a trial of ``t_max`` steps) for meta-RL."""
    env: gym.Env
    if is_table_spec(dataset):
        env = TabularNasEnv(estimator=TableEstimator(dataset))
    else:
        estimator = PerformanceEstimator(
            dataset, config.fidelity, memo, config.device, accept_precision=config.accept_precision
        )
        env = NasEnv(
            estimator=estimator, multi_branch=config.multi_branch, sigma=config.sigma, memo_info=True
        )  # records keep memo_hit
    if config.meta_rl:
        env = MetaRLWrapper(env, trial_steps=t_max)
    return env


def _worker_env(config: RunConfig, dataset: str, memo_url: str, t_max: int) -> gym.Env:
    """One worker of a ``SubprocVecEnv``: its own memo connection and its share of the CPU threads."""
    configure_threads(config.n_envs)
    return Monitor(make_env(config, dataset, memo_url, t_max))


def make_vec_env(config: RunConfig, dataset: str, memo: RewardMemo, t_max: int) -> VecEnv:
    """``config.n_envs`` workers: in this process for one, else one process each (SB3's ``SubprocVecEnv``),
    worker ``i`` training its networks on device ``worker_devices(config.device, n_envs)[i]`` (with ``auto``
    and several GPUs, one GPU each in turn)."""
    if config.n_envs == 1:
        env = Monitor(make_env(config, dataset, memo, t_max))
        return DummyVecEnv([lambda: env])
    workers = [
        partial(_worker_env, config.replace(device=device), dataset, memo.url, t_max)
        for device in worker_devices(config.device, config.n_envs)
    ]
    return SubprocVecEnv(workers, start_method="spawn")
