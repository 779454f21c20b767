"""Environment steps per second when every reward comes from the reward memo.

    python benchmarks/memo_steps.py [--steps 2000] [--multi-branch]

A seeded random action sequence is played once to fill a fresh memo (tiny fidelity), then the same
sequence is replayed: every step of the replay is a memo hit, and its rate is printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sb3_nas.envs import NasEnv


def play(env: NasEnv, actions: np.ndarray) -> tuple[int, float]:
    """Run the actions, resetting at episode ends; return (memo hits, seconds)."""
    hits = 0
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, info = env.step(int(action))
        hits += info["memo_hit"]
        if terminated or truncated:
            env.reset()
    return hits, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--fill-fidelity", default="tiny")
    parser.add_argument("--multi-branch", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        memo = Path(folder) / "memo.sqlite"
        env = NasEnv("digits", args.fill_fidelity, memo, multi_branch=args.multi_branch, memo_info=True)
        actions = np.random.default_rng(0).integers(env.action_space.n, size=args.steps)
        _, fill_seconds = play(env, actions)
        hits, seconds = play(env, actions)
        fresh = NasEnv("digits", args.fill_fidelity, memo, multi_branch=args.multi_branch, memo_info=True)
        cold_hits, cold_seconds = play(fresh, actions)  # a new process's view: cache empty, database full
    print(f"fill: {args.steps} steps in {fill_seconds:.1f} s ({env.estimator.n_trained} networks trained)")
    print(f"replay, in-process cache: {hits}/{args.steps} memo hits, {args.steps / seconds:.0f} steps/s")
    print(
        f"replay, fresh process (database reads): {cold_hits}/{args.steps} memo hits, "
        f"{args.steps / cold_seconds:.0f} steps/s"
    )
    print(f"memo_steps_per_s={args.steps / seconds:.0f}")


if __name__ == "__main__":
    main()
