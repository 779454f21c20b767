"""``python -m sb3_nas.train``: the Experiment 1 protocol (§6.1) for any algorithm.

meta_a2c goes through the environments as consecutive trials, its policy and optimizer carried from one to
the next and its recurrent state zeroed at each new trial; every other algorithm learns afresh on each
environment. With no options: a reduced Experiment 1 on the built-in training tasks.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd
import yaml
from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from tqdm.auto import tqdm

from sb3_nas.algos import MetaA2C, RandomSearch
from sb3_nas.callbacks import EPISODE_COLUMNS, STEP_COLUMNS, RunRecorder
from sb3_nas.config import ConfigError, load_hyperparams, resolve_fractions
from sb3_nas.data import TRAIN_TASKS, DatasetError, load_dataset
from sb3_nas.envs import CHAIN_ENV_ID, MULTI_BRANCH_ENV_ID, NasEnv
from sb3_nas.estimation import (
    AUTO,
    DEFAULT_FIDELITY,
    DeviceError,
    MemoError,
    PerformanceEstimator,
    RewardMemo,
    UnknownFidelityError,
    configure_threads,
    get_fidelity,
    open_memo,
    resolve_device,
)
from sb3_nas.wrappers import MetaRLWrapper

ALGOS: dict[str, type] = {
    "meta_a2c": MetaA2C,
    "dqn": DQN,
    "random": RandomSearch,
    "a2c": A2C,
    "ppo": PPO,
    "recurrent_ppo": RecurrentPPO,
}
META_RL_ALGOS = {"meta_a2c"}  # see the meta-RL inputs and keep one policy across environments
PAPER_TIMESTEPS = {"meta_a2c": (8000, 7000, 7000), "dqn": (6500, 5500, 7000)}  # t_max, §6.1
REDUCED_TIMESTEPS = (160, 140, 140)  # the paper's 8 : 7 : 7, a few minutes on two CPU cores

StepHook = Callable[[Sequence[RunRecorder]], None]


class UsageError(ValueError):
    """A command-line value that cannot be used."""


# Bad input of the commands: each is reported as one line ("error: ...", exit 2), never as a traceback.
INPUT_ERRORS = (UsageError, ConfigError, DatasetError, UnknownFidelityError, DeviceError, MemoError)


@dataclass
class RunConfig:
    """The resolved configuration of a run, written to ``config.yml``."""

    algo: str
    envs: list[str]
    timesteps: list[int]
    fidelity: str
    seed: int
    out: str
    memo: str
    env_id: str
    sigma: float
    conf: str | None
    device: str = AUTO
    n_envs: int = 1
    hyperparams: dict[str, dict[str, Any]] = field(default_factory=dict)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_nas.train", description=__doc__)
    parser.add_argument("--algo", default="meta_a2c", help=f"one of {', '.join(ALGOS)}")
    parser.add_argument("--envs", default=",".join(TRAIN_TASKS), help="datasets in order, comma-separated")
    parser.add_argument(
        "--timesteps",
        default=",".join(map(str, REDUCED_TIMESTEPS)),
        help="t_max per environment, comma-separated",
    )
    parser.add_argument(
        "--fidelity",
        default=DEFAULT_FIDELITY,
        help="cpu (default), paper or tiny, optionally with overrides: cpu,batch_size=64",
    )
    parser.add_argument(
        "--conf", default=None, help="a zoo-format YAML file replacing zoo_configs/<algo>.yml"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", default=AUTO, help="where networks train: auto (a GPU when there is one), cpu, cuda:N"
    )
    parser.add_argument(
        "--n-envs",
        type=int,
        default=1,
        help="workers stepping at once, each in its own process, so that many networks train concurrently "
        "(not meta_a2c: one worker, §4.2.5)",
    )
    parser.add_argument("--out", default=None, help="output folder (default results/runs/<algo>-<time>)")
    parser.add_argument("--memo", default=None, help="reward memo URL or path (default results/memo.sqlite)")
    parser.add_argument("--multi-branch", action="store_true", help="the multi-branch space (Experiment 3)")
    parser.add_argument("--sigma", type=float, default=0.0, help="σ, the reward share of pointer shifts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def resolve(args: argparse.Namespace) -> RunConfig:
    """Check every option and return the run's configuration (raises UsageError / ConfigError)."""
    if args.algo not in ALGOS:
        raise UsageError(f"unknown algorithm {args.algo!r}; known: {', '.join(ALGOS)}")
    envs = _split(args.envs)
    try:
        timesteps = [int(t) for t in _split(args.timesteps)]
    except ValueError:
        raise UsageError(f"--timesteps must be comma-separated integers, got {args.timesteps!r}") from None
    if len(timesteps) == 1:
        timesteps = timesteps * len(envs)
    if not envs or len(timesteps) != len(envs) or min(timesteps) < 1:
        raise UsageError(
            f"--timesteps needs one positive count per environment ({len(envs)}), got {args.timesteps}"
        )
    get_fidelity(args.fidelity)  # an unknown name or a bad override stops here, before any work
    resolve_device(args.device)
    if args.n_envs < 1:
        raise UsageError(f"--n-envs must be at least 1, got {args.n_envs}")
    if args.n_envs > 1 and args.algo in META_RL_ALGOS:
        raise UsageError(f"{args.algo} is a one-worker algorithm (§4.2.5): --n-envs must be 1")
    env_id = MULTI_BRANCH_ENV_ID if args.multi_branch else CHAIN_ENV_ID
    hyperparams = load_hyperparams(args.algo, env_id, ALGOS[args.algo], args.conf)
    out = args.out or str(Path("results") / "runs" / f"{args.algo}-{time.strftime('%Y%m%d-%H%M%S')}")
    return RunConfig(
        algo=args.algo, envs=envs, timesteps=timesteps, fidelity=args.fidelity, seed=args.seed, out=out,
        memo=args.memo or "", env_id=env_id, sigma=args.sigma, conf=args.conf, device=args.device,
        n_envs=args.n_envs,
        hyperparams={env: resolve_fractions(hyperparams, t) for env, t in zip(envs, timesteps, strict=True)},
    )  # fmt: skip


def make_env(config: RunConfig, dataset: str, memo: Any, t_max: int) -> gym.Env:
    """The NAS environment of one dataset, in the meta-RL wrapper for meta-RL algorithms."""
    estimator = PerformanceEstimator(dataset, config.fidelity, memo, config.device)
    env: gym.Env = NasEnv(
        estimator=estimator, multi_branch=config.env_id == MULTI_BRANCH_ENV_ID, sigma=config.sigma
    )
    if config.algo in META_RL_ALGOS:
        env = MetaRLWrapper(env, trial_steps=t_max)
    return env


def _worker_env(config: RunConfig, dataset: str, memo_url: str, t_max: int) -> gym.Env:
    """One worker of a ``SubprocVecEnv``: its own memo connection and its share of the CPU threads."""
    configure_threads(config.n_envs)
    return Monitor(make_env(config, dataset, memo_url, t_max))


def make_vec_env(config: RunConfig, dataset: str, memo: RewardMemo, t_max: int) -> VecEnv:
    """``config.n_envs`` workers: in this process for one, else one process each (SB3's ``SubprocVecEnv``)."""
    if config.n_envs == 1:
        env = Monitor(make_env(config, dataset, memo, t_max))
        return DummyVecEnv([lambda: env])
    worker = partial(_worker_env, config, dataset, memo.url, t_max)
    return SubprocVecEnv([worker] * config.n_envs, start_method="spawn")


class _AfterStep(BaseCallback):
    """Calls a :data:`StepHook` with the recorders after each step (each recorder records first)."""

    def __init__(self, hook: StepHook, recorders: Sequence[RunRecorder]) -> None:
        super().__init__()
        self.hook, self.recorders = hook, recorders

    def _on_step(self) -> bool:
        self.hook(self.recorders)
        return True


def run(config: RunConfig, progress: bool = True, on_step: StepHook | None = None) -> Path:
    """Run the protocol and write its results; returns the output folder.

    :param on_step: called after every environment step with the recorders so far, the current environment's
        last (a hyper-parameter study reports intermediate values from it); an exception it raises ends the
        run, whose steps and episodes so far are still written
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    memo = open_memo(config.memo or None)
    config.memo = memo.url
    for dataset in config.envs:
        load_dataset(dataset)  # fail on an unknown name before any training
    (out / "config.yml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
    bar = tqdm(total=sum(config.timesteps), disable=not progress, desc=config.algo, unit="step")
    logger = configure(str(out), ["csv"] + (["stdout"] if not progress else []))
    recorders: list[RunRecorder] = []
    model = venv = None
    try:
        for dataset, t_max in zip(config.envs, config.timesteps, strict=True):
            recorder = RunRecorder(dataset, bar, max_steps=t_max)
            recorders.append(recorder)
            callback: BaseCallback = recorder
            if on_step is not None:
                callback = CallbackList([recorder, _AfterStep(on_step, recorders)])
            venv = make_vec_env(config, dataset, memo, t_max)
            hyperparams = dict(config.hyperparams[dataset])
            if config.algo == "random":
                search = RandomSearch(venv, seed=config.seed)
                search.logger = logger
                search.learn(t_max, callback=callback)
                venv.close()
                continue
            policy = hyperparams.pop("policy")
            if model is None or config.algo not in META_RL_ALGOS:
                model = ALGOS[config.algo](policy, venv, seed=config.seed, **hyperparams)
                model.set_logger(logger)
                reset = True
            else:
                model.set_env(venv)  # §4.2.4: a new environment is a new trial; weights and optimizer carry
                reset = False
            model.learn(t_max, callback=callback, reset_num_timesteps=reset, log_interval=1)
            venv.close()
            if config.algo not in META_RL_ALGOS:
                model.save(out / f"model_{dataset}.zip")
    finally:
        bar.close()
        write_results(out, recorders)
        if model is not None and config.algo in META_RL_ALGOS:
            model.save(out / "model.zip")
        if venv is not None:  # worker processes end with the run; after an interrupt they may be gone already
            with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
                venv.close()
    return out


def write_results(out: Path, recorders: list[RunRecorder]) -> None:
    """``steps.csv`` and ``episodes.csv`` from the recorders (called even when a run is interrupted)."""
    steps = [row for r in recorders for row in r.steps]
    episodes = [row for r in recorders for row in sorted(r.episodes, key=lambda e: e["episode"])]
    pd.DataFrame(steps, columns=STEP_COLUMNS).to_csv(out / "steps.csv", index=False)
    pd.DataFrame(episodes, columns=EPISODE_COLUMNS).to_csv(out / "episodes.csv", index=False)


def summary(out: Path) -> str:
    """Best accuracy per environment of a finished run."""
    steps = pd.read_csv(out / "steps.csv")
    lines = []
    for env, rows in steps.groupby("env", sort=False):
        best = rows.loc[rows["accuracy"].idxmax()]
        hit_rate = rows["memo_hit"].mean()
        lines.append(f"  {env}: best accuracy {best['accuracy']:.4f} at step {best['step']} "
                     f"({len(rows)} steps, memo hit rate {hit_rate:.0%}) {best['nsc']}")  # fmt: skip
    return "\n".join(lines)


def print_results(title: str, out: Path) -> None:
    """The closing lines of a command: the best accuracy per environment and where the results are."""
    print(title)
    print(summary(out))
    print(f"results: {out.resolve()}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = None
    try:
        config = resolve(args)
        out = run(config, progress=not args.no_progress)
    except INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = f"; what was recorded is in {config.out}" if config is not None else ""
        print(f"interrupted{where}", file=sys.stderr)
        return 130
    print_results(f"{config.algo} on {', '.join(config.envs)} ({config.fidelity} fidelity):", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
