"""``python -m sb3_nas.sweep``: an Optuna study of an algorithm's hyper-parameters (SPEC §12).

Creates the study named in the storage, or resumes it, and runs trials until it holds the budget's count of
finished trials. Each trial is a run of ``sb3_nas.train``'s protocol with the trial's hyper-parameters; all
trials share one reward memo. Start the same command on several machines against one PostgreSQL URL to run
them as concurrent workers; watch with ``optuna-dashboard <storage URL>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sb3_nas.config import ConfigError
from sb3_nas.data import DatasetError, load_dataset
from sb3_nas.estimation import MemoError, RewardMemo, UnknownFidelityError, default_memo_url, get_fidelity
from sb3_nas.sweeps import (
    DEFAULT_STORAGE,
    DEFAULT_SWEEP,
    FINISHED,
    Sweep,
    SweepError,
    TrialObjective,
    create_or_resume,
    is_server_url,
    load_sweep,
    make_config,
    open_storage,
    paper_trial,
    run_worker,
    shown_url,
)
from sb3_nas.train import UsageError

DEFAULT_OUT = Path("results") / "sweeps"
STATE_WORDS = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_nas.sweep", description=__doc__)
    parser.add_argument(
        "--config", default=str(DEFAULT_SWEEP), help="a sweep file (default sweeps/meta_a2c.yml)"
    )
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, help=f"study storage URL (default {DEFAULT_STORAGE})"
    )
    parser.add_argument("--study-name", default=None, help="default: <sweep>-<fidelity>-<timesteps>")
    parser.add_argument(
        "--n-trials", type=int, default=None, help="the study's trial budget (default: the file's)"
    )
    parser.add_argument(
        "--timesteps", default=None, help="t_max per environment, comma-separated, or one for all"
    )
    parser.add_argument("--fidelity", default=None, help="every trial's fidelity (default: the file's)")
    parser.add_argument("--memo", default=None,
                        help="reward memo URL (default: the storage URL on a database server, else "
                             "$SB3_NAS_MEMO or results/memo.sqlite)")  # fmt: skip
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="run folders go to OUT/<study>/trial-<n>")
    return parser.parse_args(argv)


def apply_overrides(sweep: Sweep, args: argparse.Namespace) -> Sweep:
    """The sweep with the command line's budget (raises UsageError)."""
    changes: dict = {}
    if args.timesteps is not None:
        try:
            timesteps = tuple(int(t) for t in args.timesteps.split(",") if t.strip())
        except ValueError:
            raise UsageError(
                f"--timesteps must be comma-separated integers, got {args.timesteps!r}"
            ) from None
        if len(timesteps) == 1:
            timesteps *= len(sweep.envs)
        if len(timesteps) != len(sweep.envs) or min(timesteps) < 1:
            raise UsageError(f"--timesteps needs one positive count per environment ({len(sweep.envs)})")
        changes["timesteps"] = timesteps
    if args.fidelity is not None:
        changes["fidelity"] = args.fidelity
    if args.n_trials is not None:
        if args.n_trials < 1:
            raise UsageError(f"--n-trials must be positive, got {args.n_trials}")
        changes["n_trials"] = args.n_trials
    return sweep.replace(**changes)


def check_run(sweep: Sweep, memo_url: str) -> None:
    """Fail before any trial on what would fail every trial: fidelity, datasets, hyper-parameters, memo."""
    get_fidelity(sweep.fidelity)
    for dataset in sweep.envs:
        load_dataset(dataset)
    make_config(sweep, {}, Path("."), memo_url)
    RewardMemo(memo_url).close()


def report(study: optuna.Study, ran: list[int], storage: str) -> str:
    """The study's standing, the best trial against the paper's values, and how to watch it."""
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    counts = ", ".join(f"{sum(t.state == s for t in trials)} {STATE_WORDS[s]}" for s in FINISHED)
    lines = [f"study {study.study_name}: {len(trials)} finished trials ({counts}); "
             f"this worker ran {', '.join(map(str, ran)) or 'none'}"]  # fmt: skip
    if any(t.state == TrialState.COMPLETE for t in trials):
        for label, trial in (("best", study.best_trial), ("paper's values", paper_trial(study))):
            if trial is not None and trial.value is not None:
                params = ", ".join(f"{k}={v:.4g}" for k, v in trial.params.items())
                hits = trial.user_attrs.get("memo_hit_rate", 0.0)
                lines.append(f"{label}: trial {trial.number}, value {trial.value:.4f}, {params} "
                             f"(memo hit rate {hits:.0%}, {trial.user_attrs.get('run_dir')})")  # fmt: skip
    lines.append(f"watch: optuna-dashboard {shown_url(storage)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sweep = apply_overrides(load_sweep(args.config), args)
        name = args.study_name or f"{sweep.name}-{sweep.fidelity}-{'-'.join(map(str, sweep.timesteps))}"
        memo = args.memo or (args.storage if is_server_url(args.storage) else default_memo_url())
        check_run(sweep, memo)
        study, _ = create_or_resume(open_storage(args.storage), name, sweep)
        objective = TrialObjective(sweep, memo, Path(args.out) / name)
        ran = run_worker(study, objective, sweep.n_trials)
    except (SweepError, UsageError, ConfigError, DatasetError, UnknownFidelityError, MemoError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the running trial is stored as failed, the study can be resumed", file=sys.stderr)
        return 130
    print(report(study, ran, args.storage))
    return 0


if __name__ == "__main__":
    sys.exit(main())
