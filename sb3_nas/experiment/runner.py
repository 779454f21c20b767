"""The run loop of the Experiment 1 protocol (§6.1) for any algorithm, and of the frozen policy (Exp. 2).

meta_a2c goes through the environments as consecutive trials, its policy and optimizer carried from one to
the next and its recurrent state zeroed at each new trial; every other algorithm learns afresh on each one.
A frozen policy runs one trial per environment with fixed weights. Each run writes one run folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import HumanOutputFormat, Logger, configure, make_output_format
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from sb3_nas.algos import MetaA2C, SearchStrategy
from sb3_nas.errors import ModelError, UsageError
from sb3_nas.estimation import RewardMemo, open_memo
from sb3_nas.experiment.checkpoint import (
    CHECKPOINT_FILE,
    DEFAULT_CHECKPOINT_EVERY,
    Position,
    RunCheckpointer,
    data_rows,
    restore_learner,
    save_checkpoint,
    set_global_rng_state,
)
from sb3_nas.experiment.config import CONFIG_FILE, RunConfig
from sb3_nas.experiment.environments import make_env, make_vec_env
from sb3_nas.experiment.models import MODEL_FILE, load_model
from sb3_nas.experiment.records import EPISODES_FILE, STEPS_FILE, RecordWriter, RunRecorder
from sb3_nas.experiment.registry import algo_class, is_import_path, is_search
from sb3_nas.experiment.resume import PROGRESS_FILE, merge_progress, prepare_resume, replay

StepHook = Callable[[Sequence[RunRecorder]], None]
STDOUT_KEY_LENGTH = 100  # the longest logger key shown whole in the table printed without a progress bar
RUN_FILES = (CONFIG_FILE, STEPS_FILE, EPISODES_FILE, PROGRESS_FILE, MODEL_FILE, CHECKPOINT_FILE)


@dataclass
class RunResult:
    """What a run left: its folder, its records, and the policy updates made on each environment."""

    out: Path
    recorders: list[RunRecorder] = field(default_factory=list)
    n_updates: dict[str, int] = field(default_factory=dict)

    def untrained_envs(self, config: RunConfig) -> list[str]:
        """Environments on which a learning algorithm never updated its policy (the budget was too short)."""
        if config.frozen or is_search(config.algo):
            return []
        return [env for env in config.envs if self.n_updates.get(env, 0) == 0]


class _AfterStep(BaseCallback):
    """Calls a :data:`StepHook` with the recorders after each step (each recorder records first)."""

    def __init__(self, hook: StepHook, recorders: Sequence[RunRecorder]) -> None:
        super().__init__()
        self.hook, self.recorders = hook, recorders

    def _on_step(self) -> bool:
        self.hook(self.recorders)
        return True


def model_file(dataset: str) -> str:
    """``model_<dataset>.zip`` of a non-meta-RL learner, a dataset spec or path made one file name."""
    return f"model_{re.sub(r'[^A-Za-z0-9._-]+', '_', dataset).strip('_.') or 'dataset'}.zip"


def check_tensorboard(tensorboard_log: str | Path | None) -> None:
    """TensorBoard logging needs the ``tensorboard`` package (an optional extra): refuse before any work."""
    if tensorboard_log is not None and importlib.util.find_spec("tensorboard") is None:
        raise UsageError(
            "--tensorboard-log needs the tensorboard package: pip install 'sb3_nas[tensorboard]'"
        )


def make_logger(out: Path, progress: bool, tensorboard_log: str | Path | None = None) -> Logger:
    """SB3's logger of a run: ``progress.csv`` in the run folder, the table on stdout without a progress bar,
    and TensorBoard events in ``tensorboard_log/<run folder name>`` when asked."""
    formats = [make_output_format("csv", str(out))]
    if not progress:  # keys name the environment (nas/<env>/…): SB3's 36 characters would cut specs short
        formats.append(HumanOutputFormat(sys.stdout, max_length=STDOUT_KEY_LENGTH))
    if tensorboard_log is not None:
        formats.append(make_output_format("tensorboard", str(Path(tensorboard_log) / out.resolve().name)))
    return Logger(str(out), formats)


def prepare_run_folder(out: Path, overwrite: bool = False) -> None:
    """Create ``out``; a folder holding a run is refused unless ``overwrite``, which removes its run files."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    existing += sorted(p.name for p in out.glob("model_*.zip")) if out.is_dir() else []
    if existing and not overwrite:
        raise UsageError(
            f"{out} already holds a run ({', '.join(existing)}); choose another --out or --overwrite"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out {out}: the folder is not writable")
    for name in existing:
        (out / name).unlink()


def run(
    config: RunConfig,
    out: str | Path,
    progress: bool = True,
    on_step: StepHook | None = None,
    overwrite: bool = False,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    resume: bool = False,
    tensorboard_log: str | Path | None = None,
) -> RunResult:
    """Run ``config`` and write its run folder ``out``; returns what it did.

    :param on_step: called after every environment step with the recorders so far, the current environment's
        last (a hyper-parameter study reports intermediate values from it); an exception it raises ends the
        run, whose steps and episodes so far are still written
    :param overwrite: replace a run already in ``out`` (otherwise refused)
    :param checkpoint_every: steps between checkpoints of a one-worker training run (0: none)
    :param resume: continue the run in ``out`` from its last checkpoint (``config`` is the run's own)
    :param tensorboard_log: a folder for TensorBoard: the run's events go to its sub-folder named as ``out``
    """
    result = RunResult(Path(out))
    check_tensorboard(tensorboard_log)
    checkpoint, start, replayed = None, Position(), []
    if resume:
        checkpoint, start, replayed = prepare_resume(config, result.out)
    model = load_model(config.model) if config.frozen else None  # a bad model file fails before any output
    if not resume:
        check_learner(config)
        claim_studies(config, result.out, overwrite)
        prepare_run_folder(result.out, overwrite)
        config.write(result.out)
    memo = open_memo(config.memo)
    writer = RecordWriter(result.out, append=resume)
    done = sum(config.timesteps[: start.env_index]) + start.steps_done
    bar = tqdm(total=sum(config.timesteps), initial=done, disable=not progress, desc=config.algo, unit="step")
    logger = make_logger(result.out, progress, tensorboard_log)
    every = checkpoint_every if config.n_envs == 1 else 0
    try:
        if model is not None:
            _run_frozen(config, model, memo, result, bar, writer, logger)
        else:
            resumed = _Resumed(checkpoint, start, replayed)
            _run_learning(config, memo, logger, result, bar, on_step, writer, resumed, every)
            (result.out / CHECKPOINT_FILE).unlink(missing_ok=True)  # the run is complete
    finally:
        bar.close()
        writer.close()
        logger.close()
        merge_progress(result.out)
    return result


@dataclass(frozen=True)
class _Resumed:
    """Where a resumed run starts: its checkpoint (``None``: from the beginning), position and replay."""

    checkpoint: dict | None = None
    start: Position = Position()
    actions: list[int] = field(default_factory=list)


def _run_learning(
    config: RunConfig,
    memo: RewardMemo,
    logger: Logger,
    result: RunResult,
    bar: tqdm,
    on_step: StepHook | None,
    writer: RecordWriter,
    resumed: _Resumed,
    checkpoint_every: int,
) -> None:
    model = venv = None
    learner_state = (resumed.checkpoint or {}).get("learner")
    try:
        for index, (dataset, t_max) in enumerate(zip(config.envs, config.timesteps, strict=True)):
            if index < resumed.start.env_index:
                continue
            recorder = RunRecorder(dataset, bar, max_steps=t_max, writer=writer)
            result.recorders.append(recorder)
            callbacks: list[BaseCallback] = [recorder]
            if on_step is not None:
                callbacks.append(_AfterStep(on_step, result.recorders))
            venv = make_vec_env(config, dataset, memo, t_max)
            if checkpoint_every and index > resumed.start.env_index:  # a new environment: a whole state
                save_checkpoint(result.out, Position(index, 0), model if config.meta_rl else None,
                                data_rows(result.out / PROGRESS_FILE))  # fmt: skip
            if checkpoint_every:
                callbacks.append(RunCheckpointer(result.out, index, recorder, checkpoint_every,
                                                 result.out / PROGRESS_FILE))  # fmt: skip
            if is_search(config.algo):
                learner = _search(config, dataset, venv, logger, result.out)
            else:
                learner = model = _learner(config, dataset, venv, model, logger)
            mid_way = False
            if index == resumed.start.env_index and resumed.checkpoint is not None:
                mid_way = _restore(config, learner, venv, recorder, resumed, learner_state)
            # §4.2.4: a new environment is a new trial; a meta-RL learner keeps its weights and optimizer
            continuing = mid_way or (config.meta_rl and learner.num_timesteps > 0)
            updates_before = getattr(learner, "_n_updates", 0)
            remaining = t_max - len(recorder.steps)
            callback = CallbackList(callbacks)  # log_interval 1: a row of SB3's log per rollout
            learner.learn(remaining, callback=callback, reset_num_timesteps=not continuing, log_interval=1)
            result.n_updates[dataset] = getattr(learner, "_n_updates", 0) - updates_before
            logger.dump(learner.num_timesteps)  # what the last rollout recorded (SB3 dumps before each one)
            venv.close()
            if not config.meta_rl:
                learner.save(result.out / model_file(dataset))
    finally:
        if model is not None and config.meta_rl:
            model.save(result.out / MODEL_FILE)
        if venv is not None:  # worker processes end with the run; after an interrupt they may be gone already
            with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
                venv.close()


def _restore(
    config: RunConfig, learner, venv: VecEnv, recorder: RunRecorder, resumed: _Resumed, state: dict | None
) -> bool:
    """Bring a freshly built learner and environment to the checkpoint; True when it continues mid-way.

    At an environment's start only a meta-RL learner carries anything over (weights, optimizer, counters and
    the generators' states); any other learner starts afresh there, seeded, as it did in the first place.
    """
    mid_way = resumed.start.steps_done > 0
    if mid_way:  # first: the replay's reset re-seeds the environment's action space, which DQN samples from
        observation, starts = replay(venv, resumed.actions, recorder)
    if state is not None:
        restore_learner(learner, state)
    if mid_way:
        learner._last_obs = observation
        if not hasattr(learner, "_last_lstm_states") and not isinstance(learner, SearchStrategy):
            learner._last_episode_starts = starts
        for key, value in resumed.checkpoint.get("log_pending", {}).items():
            learner.logger.record(key, value)
    if mid_way or config.meta_rl:
        set_global_rng_state(resumed.checkpoint["rng"])  # last: building the learner re-seeded the generators
    return mid_way


def check_learner(config: RunConfig) -> None:
    """A user's algorithm (``package.module:ClassName``) built once on the run's first environment before
    anything is written, so that one that cannot act in its space, or rejects its hyper-parameters, is refused
    in one line; a search strategy is built with no environment, which checks its settings."""
    if config.frozen:
        return
    if is_search(config.algo):
        for dataset, hyperparams in config.hyperparams.items():
            try:
                algo_class(config.algo)(None, seed=config.seed, **hyperparams)
            except (ValueError, TypeError) as error:
                reason = " ".join(str(error).split())
                raise UsageError(f"--algo {config.algo} on {dataset}: {reason}") from None
        return
    if not is_import_path(config.algo):
        return
    dataset, memo = config.envs[0], open_memo(config.memo)
    venv = make_vec_env(config.replace(n_envs=1), dataset, memo, config.timesteps[0])
    try:
        _learner(config, dataset, venv, None, configure(None, []))
    except (AssertionError, ValueError, TypeError, KeyError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UsageError(f"--algo {config.algo} cannot run on {config.env_id}: {reason}") from None
    finally:
        venv.close()
        memo.close()


def _learner(config: RunConfig, dataset: str, venv: VecEnv, previous, logger: Logger):
    """A new model for ``dataset``, or the meta-RL learner of the previous environment on its new one."""
    if previous is not None and config.meta_rl:
        previous.set_env(venv)
        return previous
    hyperparams = dict(config.hyperparams[dataset])
    policy = hyperparams.pop("policy")
    model = algo_class(config.algo)(policy, venv, seed=config.seed, **hyperparams)
    model.set_logger(logger)
    return model


def study_name(out: Path, dataset: str) -> str:
    """The name of the study a search on ``dataset`` keeps on a storage: the run folder's path and it."""
    return f"{out.resolve()}:{dataset}"


def claim_studies(config: RunConfig, out: Path, overwrite: bool = False) -> None:
    """Make room on the study storage for a new run's studies: one of the same name, an earlier run's in
    the same folder, is deleted with ``overwrite`` and refused without."""
    if config.storage is None:
        return
    import optuna

    from sb3_nas.tuning.study import open_storage

    storage = open_storage(config.storage)
    taken = set(optuna.get_all_study_names(storage))
    for dataset in config.envs:
        name = study_name(out, dataset)
        if name in taken and not overwrite:
            raise UsageError(
                f"the study storage holds study {name} already; choose another --out or --overwrite"
            )
        if name in taken:
            optuna.delete_study(study_name=name, storage=storage)
    storage.engine.dispose()


def _search(config: RunConfig, dataset: str, venv: VecEnv, logger: Logger, out: Path) -> SearchStrategy:
    """A search strategy for ``dataset``, with the run's storage where it keeps a study on one."""
    cls = algo_class(config.algo)
    given = dict(config.hyperparams.get(dataset, {}))
    if config.storage is not None and "storage" in getattr(cls, "run_arguments", ()):
        given.update(storage=config.storage, study_name=study_name(out, dataset))
    learner = cls(venv, seed=config.seed, **given)
    learner.set_logger(logger)
    return learner


def _run_frozen(
    config: RunConfig,
    model: MetaA2C,
    memo: RewardMemo,
    result: RunResult,
    bar: tqdm,
    writer: RecordWriter,
    logger: Logger,
) -> None:
    for dataset, t_max in zip(config.envs, config.timesteps, strict=True):
        recorder = RunRecorder(dataset, bar, writer=writer, logger=logger)
        result.recorders.append(recorder)
        env = make_env(config, dataset, memo, t_max)
        if env.observation_space != model.observation_space or env.action_space != model.action_space:
            space = "multi-branch" if config.multi_branch else "chain"
            space = config.env_id if config.tabular else f"{space} space"
            raise ModelError(f"model {config.model} was not trained on the {space} it is evaluated on")
        run_frozen_trial(model, env, t_max, recorder, config.seed)


def run_frozen_trial(model: MetaA2C, env, t_max: int, recorder: RunRecorder, seed: int) -> None:
    """A trial of the frozen policy (§6.1, Exp. 2): state zeroed first, fixed weights, sampled actions."""
    observation, _ = env.reset(seed=seed)
    state, episode_start = None, np.ones((1,), dtype=bool)
    for _ in range(t_max):
        action, state = model.predict(
            observation, state=state, episode_start=episode_start, deterministic=False
        )
        observation, reward, terminated, truncated, info = env.step(int(action))
        recorder.record(int(action), reward, info)
        if info.get("ended_by") and recorder.nas_logger is not None:  # a row of NAS figures per episode
            recorder.nas_logger.dump(len(recorder.steps))
        episode_start = np.zeros((1,), dtype=bool)
        if terminated or truncated:
            break
