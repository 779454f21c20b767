"""``python -m sb3_nas.evaluate``: a frozen MetaA2C policy on environments it never trained on (§6.1, Exp. 2).

The weights are fixed, the recurrent state is zeroed at the trial's start and actions are sampled; each
environment is one trial of ``--timesteps`` steps. The fidelity, σ and space are those of the run that
trained the model (its config.yml beside model.zip) unless given here. Writes a run folder as train does.
With --executor ray the evaluation is one task on a Ray cluster (a node with the GPU it asks for), writing the
run folder, which every node must see; the environments stay in order within it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sb3_nas.cli import ArgumentParser, add_shared, default_out, print_results, ray_placement, run_command
from sb3_nas.data import EVAL_TASKS
from sb3_nas.estimation import DEFAULT_FIDELITY
from sb3_nas.experiment import CONFIG_FILE, RunConfig, load_model, read_run_config, run
from sb3_nas.experiment.ray_executor import ray_session, task_device
from sb3_nas.space import N_CHAIN_ACTIONS

DEFAULT_TIMESTEPS = [100]
FOLLOWED = ("fidelity", "sigma", "multi_branch")  # taken from the training run unless given


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.evaluate", description=__doc__)
    parser.add_argument("--model", required=True, help="a MetaA2C model.zip written by sb3_nas.train")
    add_shared(parser, "envs", "timesteps", "fidelity", "memo", "device", "accept_precision", "seed", "out",
               "no_progress", "overwrite", "tensorboard_log", "executor", "ray_address", "cpus_per_run",
               "gpus_per_run",
               envs={"default": list(EVAL_TASKS)}, timesteps={"default": DEFAULT_TIMESTEPS},
               fidelity={"default": None, "help": "how networks are trained and scored (default: the "
                                                  "training run's)"},
               out={"help": "the run folder (default results/runs/evaluate-<time>)"})  # fmt: skip
    parser.add_argument("--sigma", type=float, default=None, help="σ (default: the training run's)")
    parser.add_argument(
        "--multi-branch",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the space searched (default: the training run's)",
    )
    return parser


def followed_settings(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Fidelity, σ and space: given ones, else the training run's; and a line per setting saying which."""
    model = Path(args.model)
    trained: dict[str, Any]
    if (model.parent / CONFIG_FILE).is_file():
        source = read_run_config(model.parent)
        trained = {
            "fidelity": None if source.tabular else source.fidelity.name,
            "sigma": source.sigma,
            "multi_branch": source.multi_branch,
        }
        origin = f"the training run's {model.parent / CONFIG_FILE}"
    else:  # a model without its run folder: the space from its action count, the defaults otherwise
        multi_branch = load_model(model).action_space.n > N_CHAIN_ACTIONS
        trained = {"fidelity": DEFAULT_FIDELITY, "sigma": 0.0, "multi_branch": multi_branch}
        origin = f"defaults (no {CONFIG_FILE} beside the model)"
    settings, lines = {}, []
    for name in FOLLOWED:
        given = getattr(args, name)
        settings[name] = trained[name] if given is None else given
        if given is None and trained[name] is None:
            continue  # a tabular training run has no fidelity to follow
        if given is None:
            lines.append(f"{name} {settings[name]} from {origin}")
        elif given != trained[name]:
            lines.append(f"{name} {given} as given (overrides {trained[name]} of {origin})")
    return settings, lines


def ray_evaluation(config: RunConfig, out: Path, overwrite: bool, tensorboard_log: str | None) -> None:
    """A Ray task: the whole evaluation, environment after environment, on the device Ray gave it."""
    config = config.replace(device=task_device(config.device))
    run(config, out, False, overwrite=overwrite, tensorboard_log=tensorboard_log)


def execute(args: argparse.Namespace) -> int:
    placement = ray_placement(args)
    settings, lines = followed_settings(args)
    config = RunConfig.create(
        algo="meta_a2c", envs=args.envs, timesteps=args.timesteps, memo=args.memo, seed=args.seed,
        device=args.device, accept_precision=args.accept_precision, model=args.model, **settings,
    )  # fmt: skip
    for line in lines:
        print(line)
    out = Path(args.out) if args.out else default_out("evaluate")
    if placement is None:
        run(config, out, not args.no_progress, overwrite=args.overwrite, tensorboard_log=args.tensorboard_log)
    else:
        with ray_session(args.ray_address) as cluster:
            board = [] if args.tensorboard_log is None else [Path(args.tensorboard_log)]
            cluster.check(placement, [out, *board], {"--memo": config.memo})
            call = (config, out, args.overwrite, args.tensorboard_log)
            said = lambda _index, _result, where: print(f"evaluated on {where}")  # noqa: E731
            cluster.run_tasks(ray_evaluation, [call], placement, said)
    print_results(f"frozen policy {args.model} on {', '.join(config.envs)} ({config.estimation}):", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
