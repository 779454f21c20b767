"""``python -m sb3_nas.train``: an algorithm through the environments in order (Experiment 1, §6.1).

meta_a2c goes through the environments as consecutive trials, its policy and optimizer carried from one to
the next and its recurrent state zeroed at each new trial; every other algorithm learns afresh on each
environment. With no options: a reduced Experiment 1 of meta_a2c on the built-in training tasks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sb3_nas.cli import EXIT_INTERRUPTED, ArgumentParser, add_shared, default_out, print_results, run_command
from sb3_nas.data import TRAIN_TASKS
from sb3_nas.errors import UsageError
from sb3_nas.estimation import parse_precisions, worker_devices
from sb3_nas.estimation.memo import MEMO_URL_ENV
from sb3_nas.experiment import (
    ALGOS,
    DEFAULT_CHECKPOINT_EVERY,
    REDUCED_TIMESTEPS,
    RunConfig,
    read_config_file,
    read_run_config,
    run,
)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.train", description=__doc__)
    parser.add_argument("--algo", default="meta_a2c", help=f"one of {', '.join(ALGOS)} (default meta_a2c)")
    add_shared(parser, "envs", "timesteps", "fidelity", "memo", "device", "accept_precision", "seed", "out",
               "no_progress", "conf_file", "hyperparams", "overwrite", "tensorboard_log",
               envs={"default": list(TRAIN_TASKS)}, timesteps={"default": list(REDUCED_TIMESTEPS)},
               out={"help": "the run folder (default results/runs/<algo>-<time>)"})  # fmt: skip
    parser.add_argument("--multi-branch", action="store_true", help="the multi-branch space (Experiment 3)")
    parser.add_argument("--sigma", type=float, default=0.0, help="σ, the reward share of pointer shifts")
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint, with its own configuration (give --memo "
        "again if its memo URL has a password)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_CHECKPOINT_EVERY,
        metavar="N",
        help=f"steps between checkpoints (default {DEFAULT_CHECKPOINT_EVERY}; 0: none)",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="tpe: a database URL where the search's trials go too, a study per environment named by the run "
        "folder, which optuna-dashboard shows as it runs (default: the study in memory only)",
    )
    parser.add_argument(
        "--n-envs",
        type=int,
        default=1,
        help="workers stepping at once, each in its own process, so that many networks train concurrently "
        "(not meta_a2c: it has one worker, §4.2.5)",
    )
    return parser


RUN_OPTIONS = ("algo", "envs", "timesteps", "fidelity", "seed", "conf_file", "hyperparams", "multi_branch",
               "sigma", "n_envs", "out", "overwrite")  # fmt: skip


def resumed_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunConfig:
    """The configuration of the run in ``--resume DIR``, with this command's memo, device and accepted
    precisions."""
    given = [name for name in RUN_OPTIONS if getattr(args, name) != parser.get_default(name)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"--resume continues a run as it was configured: {flags} cannot be given with it")
    table = read_config_file(args.resume)
    if "***" in str(table.get("memo", "")) and args.memo is None and not os.environ.get(MEMO_URL_ENV):
        raise UsageError(f"the memo of {args.resume} needs its password: give --memo or set ${MEMO_URL_ENV}")
    if args.storage is not None and not table.get("storage"):
        raise UsageError(f"{args.resume} kept its search's study in memory: --storage cannot be added now")
    if "***" in str(table.get("storage") or "") and args.storage is None:
        raise UsageError(f"the study storage of {args.resume} needs its password: give --storage")
    config = read_run_config(args.resume, memo=args.memo, storage=args.storage)
    if args.device != parser.get_default("device"):
        config = config.replace(device=args.device)
    if args.accept_precision:
        config = config.replace(accept_precision=parse_precisions(args.accept_precision))
    return config


def execute(args: argparse.Namespace) -> int:
    if args.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every must be 0 or more, got {args.checkpoint_every}")
    resume = args.resume is not None
    if resume:
        config, out = resumed_config(args, build_parser()), Path(args.resume)
    else:
        config = RunConfig.create(
            algo=args.algo, envs=args.envs, timesteps=args.timesteps, fidelity=args.fidelity, memo=args.memo,
            seed=args.seed, multi_branch=args.multi_branch, sigma=args.sigma, device=args.device,
            n_envs=args.n_envs, accept_precision=args.accept_precision, conf_file=args.conf_file,
            hyperparams=dict(args.hyperparams), storage=args.storage,
        )  # fmt: skip
        out = Path(args.out) if args.out else default_out(config.algo)
    devices = worker_devices(config.device, config.n_envs)
    if len(set(devices)) > 1:
        print(f"{config.n_envs} workers on {', '.join(devices)}")
    try:
        run(config, out, progress=not args.no_progress, overwrite=args.overwrite, resume=resume,
            checkpoint_every=args.checkpoint_every, tensorboard_log=args.tensorboard_log)  # fmt: skip
    except KeyboardInterrupt:
        kept = "" if resume else f"what was recorded is in {out}; "
        print(f"interrupted; {kept}continue with --resume {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    title = f"{config.algo} on {', '.join(config.envs)} ({config.estimation})"
    print_results(f"{title}, resumed:" if resume else f"{title}:", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
