"""``python -m sb3_nas.sweep``: an Optuna study of an algorithm's hyper-parameters, from a sweep file.

Creates the study named in the storage, or resumes it, and runs trials until it holds the budget's count of
finished trials. Each trial is a training run with the trial's hyper-parameters; all trials share one reward
memo. Start the same command on several machines against one PostgreSQL URL to run them as concurrent
workers, or let Ray place them: ``--executor ray --n-workers N`` runs N workers as tasks on a Ray cluster,
meeting in the same storage. Watch with ``optuna-dashboard <storage URL>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sb3_nas.cli import EXIT_INTERRUPTED, ArgumentParser, add_shared, positive_int, ray_placement, run_command
from sb3_nas.errors import UsageError
from sb3_nas.estimation import default_memo_url, is_table_spec, masked_url
from sb3_nas.experiment import resolve_timesteps
from sb3_nas.experiment.ray_executor import Placement, ray_session, task_device
from sb3_nas.tuning import (
    DEFAULT_STORAGE,
    FAIL_ATTR,
    FINISHED,
    SWEEPS,
    Sweep,
    TrialObjective,
    create_or_resume,
    is_server_url,
    load_sweep,
    make_config,
    open_storage,
    paper_trial,
    run_worker,
)

DEFAULT_OUT = Path("results") / "sweeps"
STATE_WORDS = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.sweep", description=__doc__)
    shipped = ", ".join(sorted(path.stem for path in SWEEPS.glob("*.yml")))
    parser.add_argument(
        "--sweep", default="meta_a2c", metavar="NAME|FILE",
        help=f"a shipped sweep file by name ({shipped}) or the path of one (default meta_a2c)",
    )  # fmt: skip
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, help=f"study storage URL (default {DEFAULT_STORAGE})"
    )
    parser.add_argument("--study-name", default=None, help="default: <sweep>-<fidelity>-<timesteps>")
    parser.add_argument(
        "--n-trials", type=positive_int, default=None, help="the study's trial budget (default: the file's)"
    )
    trials = "trial run folders: OUT/<study>/trial-<n>"
    add_shared(parser, "envs", "timesteps", "fidelity", "memo", "device", "seed", "out", "no_progress",
               "tensorboard_log", "executor", "ray_address", "cpus_per_run", "gpus_per_run",
               envs={"help": "datasets of every trial (default: the file's)"},
               timesteps={"help": "t_max per environment of every trial (default: the file's)"},
               fidelity={"default": None, "help": "every trial's fidelity (default: the file's)"},
               seed={"default": None, "help": "every trial's seed (default: the file's)"},
               memo={"help": "reward memo URL (default: the storage URL on a database server, else "
                             "$SB3_NAS_MEMO or results/memo.sqlite)"},
               out={"default": str(DEFAULT_OUT), "help": trials},
               cpus_per_run={"help": "--executor ray: CPUs each worker reserves, its torch threads "
                                     "(default 1)"},
               gpus_per_run={"help": "--executor ray: GPUs each worker reserves, a fraction to share one "
                                     "(default 0); --device auto is then the worker's GPU"})  # fmt: skip
    parser.add_argument(
        "--n-workers", type=positive_int, default=1, metavar="N",
        help="--executor ray: workers, each a Ray task running trials one after the other (default 1)",
    )  # fmt: skip
    return parser


def sweep_path(text: str) -> Path:
    """A shipped sweep's name (``meta_a2c``) or a file path."""
    shipped = SWEEPS / f"{text}.yml"
    return shipped if "/" not in text and not text.endswith((".yml", ".yaml")) else Path(text)


def apply_overrides(sweep: Sweep, args: argparse.Namespace) -> Sweep:
    """The sweep with the command line's run settings and budget."""
    changes: dict = {"device": args.device}
    envs = tuple(args.envs) if args.envs is not None else sweep.envs
    if args.envs is not None:
        changes["envs"] = envs
    if args.timesteps is not None or len(envs) != len(sweep.timesteps):
        if args.timesteps is None:
            raise UsageError(f"--envs names {len(envs)} environments: give --timesteps for them")
        changes["timesteps"] = resolve_timesteps(args.timesteps, len(envs), sweep.algo)
    if args.fidelity is not None:
        changes["fidelity"] = args.fidelity
    elif args.envs is not None and all(is_table_spec(env) for env in envs):
        changes["fidelity"] = None  # the file's fidelity does not apply to a tabular benchmark
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.n_trials is not None:
        changes["n_trials"] = args.n_trials
    return sweep.replace(**changes)


def report(study: optuna.Study, ran: list[int], storage: str, ran_by: str = "this worker") -> str:
    """The study's standing, the best trial against the paper's values, and how to watch it.

    :param ran: the trials that ``ran_by`` (this worker, or the Ray workers this command placed) ran
    """
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    counts = ", ".join(f"{sum(t.state == s for t in trials)} {STATE_WORDS[s]}" for s in FINISHED)
    lines = [f"study {study.study_name}: {len(trials)} finished trials ({counts}); "
             f"{ran_by} ran {', '.join(map(str, ran)) or 'none'}"]  # fmt: skip
    if any(t.state == TrialState.COMPLETE for t in trials):
        for label, trial in (("best", study.best_trial), ("paper's values", paper_trial(study))):
            if trial is not None and trial.value is not None:
                params = ", ".join(f"{k}={v:.4g}" for k, v in trial.params.items())
                hits = trial.user_attrs.get("memo_hit_rate", 0.0)
                lines.append(f"{label}: trial {trial.number}, value {trial.value:.4f}, {params} "
                             f"(memo hit rate {hits:.0%}, {trial.user_attrs.get('run_dir')})")  # fmt: skip
    lines.append(f"watch: optuna-dashboard {masked_url(storage)}")
    return "\n".join(lines)


def ray_worker(
    storage: str, name: str, sweep: Sweep, memo: str, out: Path, tensorboard: Path | None
) -> list[int]:
    """A Ray task: one worker of the study ``name`` (which the command created), on the device Ray gave it;
    returns the numbers of the trials it ran."""
    sweep = sweep.replace(device=task_device(sweep.device))
    study, _ = create_or_resume(open_storage(storage), name, sweep)  # joined: a sampler seed of its own
    return run_worker(study, TrialObjective(sweep, memo, out, False, tensorboard), sweep.n_trials)


def run_on_ray(
    args: argparse.Namespace, placement: Placement, worker: tuple[str, str, Sweep, str, Path, Path | None]
) -> list[int]:
    """``--n-workers`` workers of one study as tasks on the Ray cluster, each :func:`ray_worker` with the
    arguments ``worker``, after checking that every node reaches the storage, the memo and the trials'
    folders; returns the trials they ran."""
    storage, _, _, memo, out, tensorboard = worker
    ran: list[int] = []

    def done(index: int, trials: list[int], where: str) -> None:
        print(f"Ray worker {index}: ran {', '.join(map(str, trials)) or 'none'} on {where}")
        ran.extend(trials)

    with ray_session(args.ray_address) as cluster:
        folders = [out] if tensorboard is None else [out, tensorboard]
        cluster.check(placement, folders, {"--storage": storage, "--memo": memo})
        cluster.run_tasks(ray_worker, [worker] * args.n_workers, placement, done)
    return sorted(ran)


def execute(args: argparse.Namespace) -> int:
    placement = ray_placement(args)
    if placement is None and args.n_workers != 1:
        raise UsageError("--n-workers goes with --executor ray (on one machine: the command once per worker)")
    sweep = apply_overrides(load_sweep(sweep_path(args.sweep)), args)
    name = args.study_name or f"{sweep.name}-{sweep.estimation}-{'-'.join(map(str, sweep.timesteps))}"
    memo = args.memo or (args.storage if is_server_url(args.storage) else default_memo_url())
    make_config(sweep, {}, memo, check_data=True)  # what would fail every trial fails now, once
    study, _ = create_or_resume(open_storage(args.storage), name, sweep)
    tensorboard = None if args.tensorboard_log is None else Path(args.tensorboard_log) / name
    out = Path(args.out) / name
    try:
        if placement is None:
            ran = run_worker(study, TrialObjective(sweep, memo, out, not args.no_progress, tensorboard),
                             sweep.n_trials)  # fmt: skip
        else:
            ran = run_on_ray(args, placement, (args.storage, name, sweep, memo, out, tensorboard))
    except KeyboardInterrupt:
        print("interrupted; the running trial is stored as failed, the study can be resumed", file=sys.stderr)
        return EXIT_INTERRUPTED
    ran_by = "this worker" if placement is None else f"{args.n_workers} Ray workers"
    print(report(study, ran, args.storage, ran_by))
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    if finished and all(trial.state == TrialState.FAIL for trial in finished):
        reason = finished[-1].user_attrs.get(FAIL_ATTR, "see the log above")
        print(f"error: every trial of study {study.study_name} failed (the last: {reason})", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
