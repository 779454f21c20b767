"""``python -m sb3_nas.compare``: several algorithms × seeds on the same environments and the same reward
memo, then the statistics that few seeds call for (Agarwal et al., 2021) as ``DIR/comparison.md`` and
``DIR/comparison.html``: per algorithm and environment the interquartile mean (IQM) of each score over seeds
with a stratified-bootstrap 95% interval, the probability that each algorithm improves on each other, and
sample-efficiency curves (best accuracy so far against environment steps).

Each run goes to DIR/<algo>/seed-<s>/. A run already there is reused when complete and resumed when not, so a
comparison grows by running the command again with more seeds or algorithms; a folder holding a run of another
configuration is refused. With --executor ray each run is a task on a Ray cluster, writing its folder in DIR,
which every node must see.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sb3_nas.analysis.comparison import (
    DEFAULT_LAST_EPISODES,
    compare_plan,
    scores_markdown,
    write_comparison,
)
from sb3_nas.analysis.few_seeds import DEFAULT_REPS
from sb3_nas.cli import (
    EXIT_INTERRUPTED,
    ArgumentParser,
    add_shared,
    int_list,
    positive_int,
    ray_placement,
    run_command,
    split_list,
)
from sb3_nas.data import TRAIN_TASKS
from sb3_nas.errors import UsageError
from sb3_nas.experiment import REDUCED_TIMESTEPS
from sb3_nas.experiment.comparison import PlannedRun, execute_plan, plan_comparison, print_plan
from sb3_nas.experiment.ray_executor import execute_plan_on_ray

DEFAULT_ALGOS = ("meta_a2c", "dqn", "random")
DEFAULT_SEEDS = (0, 1, 2)
COMPARISONS_DIR = Path("results") / "comparisons"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m sb3_nas.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--algos",
        type=split_list,
        default=list(DEFAULT_ALGOS),
        metavar="A1,A2,…",
        help=f"algorithms, comma-separated (default {','.join(DEFAULT_ALGOS)})",
    )
    parser.add_argument(
        "--seeds",
        type=int_list,
        default=list(DEFAULT_SEEDS),
        metavar="S1,S2,…",
        help=f"seeds, comma-separated (default {','.join(map(str, DEFAULT_SEEDS))})",
    )
    add_shared(
        parser,
        "envs",
        "timesteps",
        "fidelity",
        "memo",
        "device",
        "accept_precision",
        "out",
        "no_progress",
        "tensorboard_log",
        "conf_file",
        "executor",
        "ray_address",
        "cpus_per_run",
        "gpus_per_run",
        envs={"default": list(TRAIN_TASKS)},
        timesteps={"default": list(REDUCED_TIMESTEPS)},
        out={
            "help": "the comparison folder: DIR/<algo>/seed-<s>/ per run, DIR/comparison.md and "
            "DIR/comparison.html (default results/comparisons/<time>; give it to extend a "
            "comparison)"
        },
        conf_file={
            "help": "the hyper-parameters, in rl-baselines3-zoo's format, of the algorithms given by import "
            "path (package.module:ClassName); the registered ones keep zoo_configs/<algo>.yml"
        },
    )
    parser.add_argument(
        "--n-jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="runs at once, each in its own process with its share of the CPU threads and, with --device "
        "auto and several GPUs, its own GPU in turn (default 1: one after the other in this process); "
        "under --executor ray the cluster's room decides",
    )
    parser.add_argument(
        "--last-episodes",
        type=positive_int,
        default=DEFAULT_LAST_EPISODES,
        metavar="K",
        help="the sweep score's episodes: the mean best reward of the last K "
        f"(default {DEFAULT_LAST_EPISODES})",
    )
    parser.add_argument(
        "--reps",
        type=positive_int,
        default=DEFAULT_REPS,
        metavar="R",
        help=f"bootstrap resamples per interval (default {DEFAULT_REPS})",
    )
    return parser


def _done(planned: PlannedRun, seconds: float, where: str) -> None:
    on = f" on {where}" if where else ""
    done = f"{planned.action} done in {seconds:.1f} s"
    print(f"{planned.algo} seed {planned.seed}: {done} ({planned.folder}){on}")


def execute(args: argparse.Namespace) -> int:
    placement = ray_placement(args)
    if placement is not None and args.n_jobs != 1:
        raise UsageError("--n-jobs is the local executor's: under --executor ray the cluster's room decides")
    out = Path(args.out) if args.out else COMPARISONS_DIR / time.strftime("%Y%m%d-%H%M%S")
    plan = plan_comparison(
        out,
        args.algos,
        args.seeds,
        envs=args.envs,
        timesteps=args.timesteps,
        fidelity=args.fidelity,
        memo=args.memo,
        device=args.device,
        accept_precision=args.accept_precision,
        tensorboard_log=args.tensorboard_log,
        conf_file=args.conf_file,
    )
    print_plan(plan, out)
    try:
        if placement is None:
            execute_plan(plan, n_jobs=args.n_jobs, progress=not args.no_progress, on_done=_done)
        else:
            board = [] if args.tensorboard_log is None else [Path(args.tensorboard_log)]
            execute_plan_on_ray(plan, args.ray_address, placement, [out, *board], on_done=_done)
    except KeyboardInterrupt:
        print(
            f"interrupted; what was recorded is kept: run the same command again to continue ({out})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    comparison = compare_plan(plan, last_episodes=args.last_episodes, reps=args.reps)
    markdown, html = write_comparison(comparison, out)
    print(scores_markdown(comparison))
    print(f"table: {markdown.resolve()}")
    print(f"report: {html.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
