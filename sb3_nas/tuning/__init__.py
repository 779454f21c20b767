"""Hyper-parameter studies with Optuna: sweep files (`sweeps/`), the trial objective, the study storage."""

from sb3_nas.tuning.objective import (
    FAIL_ATTR,
    TrialObjective,
    TrialReporter,
    env_scores,
    make_config,
    objective_value,
)
from sb3_nas.tuning.spec import DEFAULT_SWEEP, SWEEPS, Objective, Param, Sweep, SweepError, load_sweep
from sb3_nas.tuning.study import (
    DEFAULT_STORAGE,
    FINISHED,
    create_or_resume,
    is_server_url,
    open_storage,
    paper_trial,
    run_worker,
)

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_SWEEP",
    "FAIL_ATTR",
    "FINISHED",
    "SWEEPS",
    "Objective",
    "Param",
    "Sweep",
    "SweepError",
    "TrialObjective",
    "TrialReporter",
    "create_or_resume",
    "env_scores",
    "is_server_url",
    "load_sweep",
    "make_config",
    "objective_value",
    "open_storage",
    "paper_trial",
    "run_worker",
]
