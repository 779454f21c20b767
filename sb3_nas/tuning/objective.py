"""A trial: one run of the Experiment 1 protocol with the trial's hyper-parameters, scored and recorded.

The value is the mean over environments of the mean best reward of each environment's last NAS episodes
(:class:`~sb3_nas.tuning.spec.Objective`). The same score, on the episodes finished so far, is reported at
evenly spaced steps so the study's pruner can stop a weak trial early. The run folder, the best architecture
per environment and the memo hit rate become the trial's user attributes, also for a pruned or failed trial.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from sb3_nas.experiment import RunConfig, RunRecorder, RunResult, run
from sb3_nas.experiment.records import EPISODES_FILE, STEPS_FILE
from sb3_nas.tuning.spec import Objective, Sweep, SweepError

FAIL_ATTR = "fail_reason"  # the user attribute of a failed trial: why it failed


def env_scores(episodes: Iterable[Mapping[str, Any]], last_episodes: int) -> dict[str, float]:
    """Per environment, in order of appearance: the mean best reward of its last ``last_episodes``."""
    best: dict[str, list[float]] = {}
    for row in episodes:
        best.setdefault(str(row["env"]), []).append(float(row["best_reward"]))
    return {env: float(np.mean(values[-last_episodes:])) for env, values in best.items()}


def objective_value(scores: Mapping[str, float], n_envs: int) -> float | None:
    """The mean of the scores of the first ``n_envs`` environments; None while one of them has none yet.

    Every value is then the same mean over the same environments, whatever trial and step it comes from.
    """
    return float(np.mean(list(scores.values()))) if len(scores) == n_envs else None


class TrialReporter:
    """A :data:`sb3_nas.experiment.StepHook` reporting the score so far to the trial, pruning it when told.

    Report ``k`` (from 1) of environment ``i`` (from 0) is step ``i * reports_per_env + k``, so every trial
    of a study reports at the same steps; a report is skipped until environment ``i`` has a finished episode,
    so the pruner compares like with like.
    """

    def __init__(self, trial: optuna.Trial, timesteps: Sequence[int], objective: Objective) -> None:
        self.trial = trial
        self.objective = objective
        per_env = objective.reports_per_env
        self.checkpoints = [
            {max(1, round(t * k / per_env)): k for k in range(1, per_env + 1)} for t in timesteps
        ]

    def __call__(self, recorders: Sequence[RunRecorder]) -> None:
        index = len(recorders) - 1
        k = self.checkpoints[index].get(len(recorders[-1].steps))
        if k is None:
            return
        episodes = itertools.chain.from_iterable(r.episodes for r in recorders)
        value = objective_value(env_scores(episodes, self.objective.last_episodes), len(recorders))
        if value is None:
            return
        step = index * self.objective.reports_per_env + k
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at report {step} with {value:.4f}")


def make_config(sweep: Sweep, params: Mapping[str, Any], memo: str, check_data: bool = False) -> RunConfig:
    """The run of one trial: the sweep's run with the trial's hyper-parameters (checked, as every run is)."""
    return RunConfig.create(
        algo=sweep.algo, envs=sweep.envs, timesteps=sweep.timesteps, fidelity=sweep.fidelity, memo=memo,
        seed=sweep.seed, device=sweep.device, hyperparams=params, check_data=check_data,
        conf_file=sweep.conf_file,
    )  # fmt: skip


def run_attrs(out: Path, objective: Objective) -> dict[str, Any]:
    """What a trial's run folder says: memo hit rate, best architecture and score per environment."""
    steps = pd.read_csv(out / STEPS_FILE)
    episodes = pd.read_csv(out / EPISODES_FILE)
    best = {}
    for env, rows in steps.groupby("env", sort=False):
        row = rows.loc[rows["accuracy"].idxmax()]
        best[str(env)] = {"accuracy": float(row["accuracy"]), "nsc": json.loads(row["nsc"])}
    hits = int(steps["memo_hit"].sum())
    return {
        "steps": len(steps),
        "memo_hits": hits,
        "memo_hit_rate": hits / len(steps) if len(steps) else 0.0,
        "best_architecture": best,
        "env_scores": env_scores(episodes.to_dict("records"), objective.last_episodes),
    }


class TrialObjective:
    """The study's objective function: ``study.optimize(TrialObjective(sweep, memo, out), ...)``.

    :param sweep: the checked sweep file (with the command line's overrides)
    :param memo: the reward memo URL every trial shares, so a network trained once is a hit for later trials
    :param out: the folder under which each trial's run folder ``trial-<number>`` is written
    :param progress: show each run's progress bar
    :param tensorboard_log: a folder where each trial logs to TensorBoard (``trial-<n>``), or ``None``
    """

    def __init__(
        self, sweep: Sweep, memo: str, out: Path, progress: bool = True, tensorboard_log: Path | None = None
    ) -> None:
        self.sweep, self.memo, self.out, self.progress = sweep, memo, out, progress
        self.tensorboard_log = tensorboard_log

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run_trial(trial)
        except optuna.TrialPruned:
            raise
        except (
            Exception
        ) as error:  # Optuna stores the trial as failed; keep why, for the report and dashboard
            lines = str(error).strip().splitlines()
            trial.set_user_attr(FAIL_ATTR, f"{type(error).__name__}: {lines[0] if lines else ''}")
            raise

    def _run_trial(self, trial: optuna.Trial) -> float:
        params = {p.name: p.suggest(trial) for p in self.sweep.search_space}
        out = self.out / f"trial-{trial.number:04d}"
        config = make_config(self.sweep, params, self.memo)
        trial.set_user_attr("run_dir", str(out.resolve()))
        trial.set_user_attr("host", socket.gethostname())
        reporter = TrialReporter(trial, config.timesteps, self.sweep.objective)
        attrs: dict[str, Any] = {}
        result: RunResult | None = None
        try:
            result = run(config, out, self.progress, reporter, tensorboard_log=self.tensorboard_log)
        finally:  # a pruned or crashed run has written what it recorded: keep it with the trial
            if (out / STEPS_FILE).is_file():
                attrs = run_attrs(out, self.sweep.objective)
                if result is not None:
                    attrs["n_updates"] = result.n_updates
                for key, value in attrs.items():
                    trial.set_user_attr(key, value)
        untrained = result.untrained_envs(config)
        if untrained:  # its score measures its initial policy, not the hyper-parameters: never the best trial
            raise SweepError(
                f"trial {trial.number}: the policy was never updated on {', '.join(untrained)} "
                f"({', '.join(f'{k}={v}' for k, v in params.items())}); raise --timesteps"
            )
        scores = attrs.get("env_scores", {})
        value = objective_value(scores, len(config.envs))
        if value is None:
            missing = ", ".join(env for env in config.envs if env not in scores)
            raise SweepError(
                f"trial {trial.number}: no NAS episode finished on {missing}; give it more --timesteps"
            )
        return value
