"""Speed on the tabular benchmarks, side by side in one run, on one core.

    python benchmarks/tabular_speed.py [--env-steps 300000] [--agent-steps 5000] [--profile]

1. Steps per second of the unwrapped environment (seeded random actions, reset at each episode end) on
   NAS-Bench-Graph (cora) and NAS-Bench-201 (goal: at least 100,000).
2. End to end through the experiment layer (records written, checkpoints, SB3's logger) for random, dqn and
   meta_a2c on nbgraph:cora, ``--agent-steps`` steps each.
3. The Experiment 1 protocol at the paper's budgets: meta_a2c through the three NAS-Bench-Graph training
   datasets, 8000 + 7000 + 7000 steps (goal: under a minute), with ``--profile`` its cProfile by own time.

Everything runs on the first CPU this process may use, with one torch thread.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sb3_nas.envs import TabularNasEnv
from sb3_nas.experiment import RunConfig, run
from sb3_nas.space import nasbench_graph

ENV_GOAL, PROTOCOL_GOAL = 100_000, 60.0


def env_steps_per_second(task: str, steps: int) -> float:
    env = TabularNasEnv(task)
    actions = np.random.default_rng(0).integers(env.action_space.n, size=steps).tolist()
    env.reset(seed=0)
    step, reset = env.step, env.reset
    start = time.perf_counter()
    for action in actions:
        if step(action)[2]:
            reset()
    return steps / (time.perf_counter() - start)


def timed_run(config: RunConfig, folder: Path, profile: cProfile.Profile | None = None) -> float:
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        run(config, folder, progress=True)  # a bar to nowhere: no table on stdout per rollout
    if profile is not None:
        profile.disable()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=300_000)
    parser.add_argument("--agent-steps", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="profile the Experiment 1 protocol")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    print(f"one core (cpu {min(os.sched_getaffinity(0))}), torch threads {torch.get_num_threads()}")

    print("\n1. unwrapped environment, random actions")
    rates = {}
    for task in ("nbgraph:cora", "nb201:cifar10"):
        env_steps_per_second(task, 1000)  # decode or map the table first
        rates[task] = env_steps_per_second(task, args.env_steps)
        print(f"  {task:14s} {rates[task]:>10,.0f} steps/s  ({rates[task] / ENV_GOAL:.2f}× the goal)")

    with tempfile.TemporaryDirectory() as folder:
        memo = f"sqlite:///{Path(folder) / 'memo.sqlite'}"
        print(f"\n2. end to end on nbgraph:cora, {args.agent_steps} steps (records, checkpoints, logger)")
        for algo in ("random", "dqn", "meta_a2c"):
            config = RunConfig.create(algo, envs=["nbgraph:cora"], timesteps=[args.agent_steps], memo=memo)
            seconds = timed_run(config, Path(folder) / algo)
            rate = args.agent_steps / seconds
            print(f"  {algo:9s} {rate:>9,.0f} steps/s  ({rates['nbgraph:cora'] / rate:,.0f}× slower than "
                  f"the environment alone)")  # fmt: skip

        envs = [f"nbgraph:{d}" for d in nasbench_graph.TRAIN_DATASETS]
        print(f"\n3. Experiment 1 protocol: meta_a2c on {', '.join(envs)} at the paper's budgets")
        config = RunConfig.create("meta_a2c", envs=envs, timesteps="paper", memo=memo)
        profile = cProfile.Profile() if args.profile else None
        seconds = timed_run(config, Path(folder) / "protocol", profile)
        total = sum(config.timesteps)
        profiled = " (profiled)" if profile else ""
        print(
            f"  {total} steps in {seconds:.1f} s ({total / seconds:,.0f} steps/s; goal under "
            f"{PROTOCOL_GOAL:.0f} s: {seconds / PROTOCOL_GOAL:.2f} of it){profiled}"
        )
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
