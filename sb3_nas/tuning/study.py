"""The study: its storage by URL, created or resumed by name, and one worker's share of the trial budget.

Any number of workers, on one machine or many, run the same command against the same storage URL: the
first creates the study (and enqueues the paper's values), the others join it, and each stops once the study
holds the budget's count of trials.
"""

from __future__ import annotations

import json
import random
import secrets
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError

from sb3_nas.estimation import database_url, masked_url
from sb3_nas.estimation.database import engine_kwargs, error_line, sqlite_file
from sb3_nas.tuning.spec import Sweep, SweepError, build

DEFAULT_STORAGE = "sqlite:///results/optuna.sqlite"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
BUDGETED = (*FINISHED, TrialState.RUNNING)  # what counts against the budget (not enqueued, waiting trials)
OBJECTIVE_NAME = "mean best reward of the last episodes"  # the dashboard's name of the value
SWEEP_ATTR = "sweep"  # the study's user attribute holding Sweep.identity()
PAPER_ATTR = "paper_values"  # the trial's user attribute marking the enqueued paper's values
CREATE_ATTEMPTS = 5


def is_server_url(url: str) -> bool:
    """Whether ``url`` names a database server (PostgreSQL, MySQL, ...) rather than a SQLite file."""
    return not database_url(url).startswith("sqlite")


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url``, its tables created if absent (raises :class:`SweepError`).

    Its engine has the settings of the reward memo's (:func:`sb3_nas.estimation.database.engine_kwargs`):
    SQLite writers wait for each other, an unreachable server fails quickly.
    """
    url = database_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise SweepError(f"study storage {url}: not a database URL") from None
    shown = masked_url(url)
    path = sqlite_file(parsed)
    if path is not None:
        try:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SweepError(f"study storage {shown}: cannot create its folder ({error.strerror})") from None
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(parsed))
        except (IntegrityError, ProgrammingError) as error:
            if attempt == CREATE_ATTEMPTS:
                raise _cannot_open(shown, error) from None
            # workers started together race to create the tables; the losers find them made on a later try
            time.sleep(random.uniform(0.5, 2.0))
        except (SQLAlchemyError, ImportError, OSError, RuntimeError, ValueError) as error:
            raise _cannot_open(shown, error) from None
    raise AssertionError("unreachable")


def _cannot_open(shown: str, error: BaseException) -> SweepError:
    return SweepError(f"study storage {shown}: cannot open ({error_line(error)})")


def _identity_json(sweep: Sweep) -> Any:
    return json.loads(json.dumps(sweep.identity()))


def create_or_resume(
    storage: optuna.storages.BaseStorage, name: str, sweep: Sweep
) -> tuple[optuna.Study, bool]:
    """The study called ``name``, created if absent; True when this call created it.

    The creator uses the sampler's seed as written (a one-worker study is reproducible) and enqueues the
    paper's values when the sweep asks for it; a worker that joins gets a fresh seed, so workers started
    together do not sample the same points. A study made with another objective or space is refused.
    """
    pruner = build(sweep.pruner, optuna.pruners)
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    sampler=build(sweep.sampler, optuna.samplers), pruner=pruner)  # fmt: skip
    except optuna.exceptions.DuplicatedStudyError:
        sampler_table = dict(sweep.sampler)
        if "seed" in sampler_table:
            sampler_table["seed"] = secrets.randbelow(2**31)
        sampler = build(sampler_table, optuna.samplers)
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        stored = study.user_attrs.get(SWEEP_ATTR)  # None while the creator has not written it yet
        if stored is not None and stored != _identity_json(sweep):
            changed = sorted(k for k, v in _identity_json(sweep).items() if stored.get(k) != v)
            raise SweepError(
                f"study {name} was made with other {', '.join(changed)}; resume it with its own settings "
                f"or name a new study with --study-name"
            ) from None
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise SweepError(f"study {name} minimises; a sweep maximises its objective") from None
        return study, False
    study.set_user_attr(SWEEP_ATTR, sweep.identity())
    with warnings.catch_warnings():  # experimental in Optuna 5, and the only way to name the objective
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE_NAME])
    space = {p.name: p for p in sweep.search_space}
    if sweep.enqueue_paper_values and all(space[k].contains(v) for k, v in sweep.paper_values.items()):
        study.enqueue_trial(dict(sweep.paper_values), user_attrs={PAPER_ATTR: True})
    return study, True


def run_worker(study: optuna.Study, objective: Any, n_trials: int) -> list[int]:
    """Run trials one by one while the study holds fewer than ``n_trials``; returns the numbers of those run.

    The count is taken before each trial, over finished and running trials of every worker, so concurrent
    workers stop at the budget (two that count in the same instant may pass it by one). A trial that raises is
    stored as failed and the study goes on.
    """
    ran: list[int] = []

    def record(_: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(trial.number)

    while len(study.get_trials(deepcopy=False, states=BUDGETED)) < n_trials:
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[record], gc_after_trial=True)
    return ran


def paper_trial(study: optuna.Study) -> FrozenTrial | None:
    """The finished trial of the paper's values, if the study enqueued one."""
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
        if trial.user_attrs.get(PAPER_ATTR):
            return trial
    return None
