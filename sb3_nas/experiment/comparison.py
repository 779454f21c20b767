"""Running a comparison's runs: every algorithm × seed into ``DIR/<algo>/seed-<s>/``, reused when complete,
resumed when not, refused when of another configuration; in this process or in several (``--n-jobs``), or as
tasks on a Ray cluster (:mod:`sb3_nas.experiment.ray_executor`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sb3_nas.errors import UsageError
from sb3_nas.estimation import configure_threads, worker_devices
from sb3_nas.experiment import CONFIG_FILE, RunConfig, memo_location, read_run_config, run
from sb3_nas.experiment.files import replace_atomically
from sb3_nas.experiment.registry import check_algo, is_import_path
from sb3_nas.experiment.resume import COMPLETE, OVERRUN, RESUMABLE, recorded_steps, resumability
from sb3_nas.experiment.runner import RUN_FILES, check_tensorboard

TIMING_FILE = "timing.json"  # each run's wall time, added up over the sessions that ran it
PLAN_OUTCOMES = {"run": "ran", "resume": "resumed", "reuse": "reused"}  # planned action → what was done
OnDone = Callable[["PlannedRun", float, str], None]  # a run done: it, its seconds, where it ran ("" if here)


# -- planning and running the runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """A run of the comparison and what is to be done with its folder: ``run``, ``resume`` or ``reuse``."""

    algo: str
    seed: int
    folder: Path
    config: RunConfig
    action: str
    tensorboard_log: Path | None = None  # where its TensorBoard events go (the run folder's name under it)


def run_folder(out: Path, algo: str, seed: int) -> Path:
    return Path(out) / algo / f"seed-{seed}"


def _differences(recorded: RunConfig, wanted: RunConfig) -> list[str]:
    fields = {
        "algo": (recorded.algo, wanted.algo),
        "envs": (",".join(recorded.envs), ",".join(wanted.envs)),
        "timesteps": (",".join(map(str, recorded.timesteps)), ",".join(map(str, wanted.timesteps))),
        "fidelity": (f"{recorded.fidelity.name}", f"{wanted.fidelity.name}"),
        "seed": (recorded.seed, wanted.seed),
        "space": (recorded.env_id, wanted.env_id),
        "sigma": (recorded.sigma, wanted.sigma),
        "frozen policy": (recorded.frozen, wanted.frozen),
    }
    differ = [f"{name} {old} (not {new})" for name, (old, new) in fields.items() if old != new]
    if not differ and recorded.fidelity.digest != wanted.fidelity.digest:
        differ.append(f"fidelity {recorded.fidelity.name} with other settings")
    if not differ and recorded.hyperparams:  # a run with -params, or from before zoo_configs/ was edited
        keys = sorted(
            {
                key
                for env in wanted.envs
                for key in {*recorded.hyperparams.get(env, {}), *wanted.hyperparams.get(env, {})}
                if recorded.hyperparams.get(env, {}).get(key) != wanted.hyperparams.get(env, {}).get(key)
            }
        )
        if keys:
            differ.append(f"other hyper-parameters: {', '.join(keys)}")
    return differ


def folder_action(folder: Path, config: RunConfig) -> str:
    """``run`` (a new run), ``resume`` (the same run, incomplete) or ``reuse`` (the same run, complete); a
    folder holding anything else is refused with a one-line :class:`~sb3_nas.errors.UsageError`."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a run folder: choose another --out")
    if not (folder / CONFIG_FILE).is_file():
        leftovers = [name for name in RUN_FILES if (folder / name).exists()]
        if leftovers:
            raise UsageError(
                f"{folder} holds {', '.join(leftovers)} but no {CONFIG_FILE}: "
                "remove it or choose another --out"
            )
        return "run"
    recorded = read_run_config(folder, memo=config.memo)
    differ = _differences(recorded, config)
    if differ:
        raise UsageError(
            f"{folder} holds another comparison's run ({'; '.join(differ)}): choose another --out"
        )
    done, total = recorded_steps(folder), sum(config.timesteps)
    state = resumability(recorded, done)
    if state == COMPLETE:
        return "reuse"
    if state != RESUMABLE:
        why = f"{done} steps of {total}" if state == OVERRUN else f"{recorded.n_envs} workers: not resumable"
        raise UsageError(
            f"{folder} holds a run this comparison cannot continue ({why}): choose another --out"
        )
    return "resume"


def plan_comparison(
    out: str | Path,
    algos: Sequence[str],
    seeds: Sequence[int],
    envs: Sequence[str],
    timesteps: str | int | Sequence[int],
    fidelity: str | None = None,
    memo: str | None = None,
    device: str = "auto",
    tensorboard_log: str | Path | None = None,
    accept_precision: str | Sequence[str] = (),
    conf_file: str | Path | None = None,
) -> list[PlannedRun]:
    """Every algorithm × seed, checked before anything runs: each configuration (:meth:`RunConfig.create`) and
    what its folder ``out/<algo>/seed-<s>`` holds. Bad input raises a one-line ``InputError``.

    :param tensorboard_log: a folder for TensorBoard; each run logs to ``<algo>/seed-<s>`` under it
    :param accept_precision: memo precisions that answer too (as :meth:`RunConfig.create`); like the device,
        not part of what makes a folder's run the same run
    :param conf_file: the hyper-parameter file of the algorithms given by import path (``module:Class``)
    """
    check_tensorboard(tensorboard_log)
    algos, seeds = list(algos), [int(seed) for seed in seeds]
    if not algos:
        raise UsageError("--algos names no algorithm")
    if not seeds:
        raise UsageError("--seeds names no seed")
    for name, values in (("--algos", algos), ("--seeds", seeds)):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise UsageError(f"{name} names {', '.join(repeated)} more than once")
    for algo in algos:
        check_algo(algo)
    if any(seed < 0 for seed in seeds):
        raise UsageError(f"--seeds must be 0 or more, got {','.join(map(str, seeds))}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    memo_url = memo_location(memo)
    plan = []
    for index, algo in enumerate(algos):
        for seed in seeds:
            config = RunConfig.create(
                algo,
                envs=envs,
                timesteps=timesteps,
                fidelity=fidelity,
                memo=memo_url,
                seed=seed,
                device=device,
                accept_precision=accept_precision,
                conf_file=conf_file if is_import_path(algo) else None,
                check_data=index == 0 and seed == seeds[0],
            )
            folder = run_folder(out, algo, seed)
            board = None if tensorboard_log is None else Path(tensorboard_log) / algo
            plan.append(PlannedRun(algo, seed, folder, config, folder_action(folder, config), board))
    return plan


def _write_timing(folder: Path, seconds: float, started: float, action: str, finished: bool) -> None:
    if not (folder / CONFIG_FILE).is_file():
        return  # the run wrote nothing: nothing to time
    path = folder / TIMING_FILE
    sessions: list[dict[str, Any]] = []
    if action == "resume":
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            sessions = list(json.loads(path.read_text())["sessions"])
    sessions.append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "seconds": round(seconds, 3),
            "resumed": action == "resume",
            "finished": finished,
        }
    )
    table = {
        "wall_seconds": round(sum(float(s.get("seconds", 0.0)) for s in sessions), 3),
        "sessions": sessions,
    }
    replace_atomically(path, lambda partial: partial.write_text(json.dumps(table, indent=1)))


def execute_run(planned: PlannedRun, progress: bool = True) -> float:
    """Run or resume one planned run in this process; its wall time is added to its ``timing.json``, also when
    it is interrupted. Returns the seconds it ran."""
    config = planned.config
    resume = planned.action == "resume"
    if resume:  # the run's own configuration, with this comparison's memo and device
        config = read_run_config(planned.folder, memo=config.memo).replace(device=config.device)
    started, clock, finished = time.time(), time.perf_counter(), False
    try:
        run(config, planned.folder, progress=progress, resume=resume, tensorboard_log=planned.tensorboard_log)
        finished = True
    finally:
        seconds = time.perf_counter() - clock
        _write_timing(planned.folder, seconds, started, planned.action, finished)
    return seconds


def place_on_gpus(runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """Runs that train at once, each on its own GPU when their device is ``auto`` and several are visible: run
    ``k`` on ``cuda:{k % GPUs}`` (:func:`~sb3_nas.estimation.worker_devices`), recorded in its configuration
    and so in its ``config.yml``; otherwise the runs as they are."""
    devices = worker_devices(runs[0].config.device, len(runs)) if runs else []  # one device for a whole plan
    return [
        planned if device == planned.config.device else on_device(planned, device)
        for planned, device in zip(runs, devices, strict=True)
    ]


def on_device(planned: PlannedRun, device: str) -> PlannedRun:
    """``planned`` training its networks on ``device``, which its ``config.yml`` then records."""
    return dataclasses.replace(planned, config=planned.config.replace(device=device))


_worker_state = {"running": False, "stopping": False}  # of a worker process


def _stop(signum: int, _frame: Any) -> None:
    """A worker's Ctrl-C and SIGTERM: stop the run in progress (it keeps its records) and start no other."""
    _worker_state["stopping"] = True
    if _worker_state["running"]:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _worker_init(workers: int) -> None:
    """A worker process: Ctrl-C and SIGTERM stop its run, and it takes its share of the CPU threads."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    configure_threads(workers)


def _run_in_worker(planned: PlannedRun) -> float:
    if _worker_state["stopping"]:
        raise KeyboardInterrupt("the comparison was interrupted")
    _worker_state["running"] = True
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # no SB3 tables from many runs
            return execute_run(planned, progress=False)
    finally:
        _worker_state["running"] = False


def execute_plan(
    plan: Sequence[PlannedRun],
    n_jobs: int = 1,
    progress: bool = True,
    on_done: OnDone | None = None,
) -> None:
    """Run every planned run not reused: in this process one after the other when ``n_jobs`` is 1, else
    ``n_jobs`` at a time, each in a worker process (spawned) with its share of the CPU threads and, with
    device ``auto`` and several GPUs, its own GPU in turn (:func:`place_on_gpus`); they share the memo. A
    failed run lets the running ones finish, cancels the rest and is raised; Ctrl-C (or SIGTERM) stops every
    run, each keeping what it recorded, and is raised as ``KeyboardInterrupt``.

    :param on_done: called as each run ends, with the seconds it ran and its device when it was placed on one
    """
    todo = [planned for planned in plan if planned.action != "reuse"]
    if not todo:
        return
    if n_jobs <= 1:
        for planned in todo:
            seconds = execute_run(planned, progress)
            if on_done is not None:
                on_done(planned, seconds, "")
        return
    placed = place_on_gpus(todo)
    spread = placed != todo  # each run on its own GPU: the output says which
    workers = min(n_jobs, len(todo))
    pool = ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(workers,)
    )
    futures: dict[Future, PlannedRun] = {}
    try:
        futures = {pool.submit(_run_in_worker, planned): planned for planned in placed}
        pending, errors = set(futures), []
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                if future.cancelled():
                    continue
                error = future.exception()
                if isinstance(error, KeyboardInterrupt):
                    raise error
                if error is not None:
                    errors.append(error)
                    for other in pending:
                        other.cancel()
                elif on_done is not None:
                    planned = futures[future]
                    on_done(planned, future.result(), planned.config.device if spread else "")
        if errors:
            raise errors[0]
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                process.terminate()  # SIGTERM: the worker's run stops as on Ctrl-C, keeping its records
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def print_plan(plan: Sequence[PlannedRun], out: Path, file=None) -> None:
    """One line: how many runs the comparison holds and what is done with them."""
    counts = {action: sum(p.action == action for p in plan) for action in ("run", "resume", "reuse")}
    said = ", ".join(f"{n} to {action}" for action, n in counts.items() if n)
    print(f"comparison in {out}: {len(plan)} runs ({said})", file=file or sys.stdout)
