"""``python -m sb3_nas.train``: an algorithm through the environments in order (Experiment 1, §6.1).

meta_a2c goes through the environments as consecutive trials, its policy and optimizer carried from one to
the next and its recurrent state zeroed at each new trial; every other algorithm learns afresh on each
environment. With no options: a reduced Experiment 1 of meta_a2c on the built-in training tasks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sb3_nas.cli import ArgumentParser, add_shared, default_out, print_results, run_command
from sb3_nas.data import TRAIN_TASKS
from sb3_nas.experiment import ALGOS, REDUCED_TIMESTEPS, RunConfig, run


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.train", description=__doc__)
    parser.add_argument("--algo", default="meta_a2c", help=f"one of {', '.join(ALGOS)} (default meta_a2c)")
    add_shared(parser, "envs", "timesteps", "fidelity", "memo", "device", "seed", "out", "no_progress",
               "conf_file", "hyperparams", "overwrite",
               envs={"default": list(TRAIN_TASKS)}, timesteps={"default": list(REDUCED_TIMESTEPS)},
               out={"help": "the run folder (default results/runs/<algo>-<time>)"})  # fmt: skip
    parser.add_argument("--multi-branch", action="store_true", help="the multi-branch space (Experiment 3)")
    parser.add_argument("--sigma", type=float, default=0.0, help="σ, the reward share of pointer shifts")
    parser.add_argument(
        "--n-envs",
        type=int,
        default=1,
        help="workers stepping at once, each in its own process, so that many networks train concurrently "
        "(not meta_a2c: it has one worker, §4.2.5)",
    )
    return parser


def execute(args: argparse.Namespace) -> int:
    config = RunConfig.create(
        algo=args.algo, envs=args.envs, timesteps=args.timesteps, fidelity=args.fidelity, memo=args.memo,
        seed=args.seed, multi_branch=args.multi_branch, sigma=args.sigma, device=args.device,
        n_envs=args.n_envs, conf_file=args.conf_file, hyperparams=dict(args.hyperparams),
    )  # fmt: skip
    out = Path(args.out) if args.out else default_out(config.algo)
    try:
        run(config, out, progress=not args.no_progress, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"interrupted; what was recorded is in {out}", file=sys.stderr)
        return 130
    print_results(f"{config.algo} on {', '.join(config.envs)} ({config.fidelity.name} fidelity):", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
