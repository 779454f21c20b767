"""``python -m sb3_nas.search``: a short random search on one environment; prints the best network."""

from __future__ import annotations

import argparse
import sys

from sb3_nas.algos import RandomSearch
from sb3_nas.data import DEFAULT_DATASET
from sb3_nas.envs import NasEnv
from sb3_nas.estimation import (
    AUTO,
    DEFAULT_FIDELITY,
    default_memo_url,
    resolve_device,
)
from sb3_nas.train import INPUT_ERRORS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_nas.search", description=__doc__)
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="a built-in task name")
    parser.add_argument(
        "--fidelity", default=DEFAULT_FIDELITY, help="a fidelity name (cpu, paper, tiny), with any overrides"
    )
    parser.add_argument("--steps", type=int, default=100, help="environment steps (networks scored)")
    parser.add_argument("--memo", default=None, help="reward memo URL or path (default: results/memo.sqlite)")
    parser.add_argument("--multi-branch", action="store_true", help="the 14-action multi-branch space")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=AUTO, help="where networks train: auto, cpu, cuda:N")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        resolve_device(args.device)
        env = NasEnv(
            args.dataset, args.fidelity, args.memo, multi_branch=args.multi_branch, device=args.device
        )
    except INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    search = RandomSearch(env, seed=args.seed).learn(args.steps, progress_bar=True)
    record, info = search.record, search.record.best_info
    print(
        f"dataset {env.dataset.name}, fidelity {env.estimator.fidelity.id}, {record.n_steps} steps, "
        f"{len(record.episode_best)} episodes, {record.n_memo_hits} memo hits, "
        f"{env.estimator.n_trained} networks trained"
    )
    print(
        f"best accuracy {record.best_reward:.4f}: {info.get('network')} ({info.get('n_params')} parameters)"
    )
    print(f"best NSC: {info.get('nsc')}")
    print(f"memo: {args.memo or default_memo_url()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
