"""The experiment layer: algorithm registry, run configuration, environment construction, the run loop and its
run folder. Commands parse arguments and call it; the Optuna objective builds a :class:`RunConfig` directly.

Usable in three lines::

    config = RunConfig.create("meta_a2c", envs=["digits"], timesteps=[100], fidelity="tiny")
    result = run(config, "results/runs/example")
    print(result.n_updates)
"""

from sb3_nas.experiment.checkpoint import CHECKPOINT_FILE, DEFAULT_CHECKPOINT_EVERY, CheckpointError
from sb3_nas.experiment.config import (
    CONFIG_FILE,
    RunConfig,
    RunFolderError,
    memo_location,
    read_config_file,
    read_run_config,
)
from sb3_nas.experiment.environments import make_env, make_vec_env
from sb3_nas.experiment.hyperparams import (
    FRACTION_KEYS,
    ZOO_CONFIGS,
    ConfigError,
    accepted_keys,
    load_hyperparams,
    resolve_fractions,
)
from sb3_nas.experiment.models import MODEL_FILE, load_model
from sb3_nas.experiment.records import (
    EPISODE_COLUMNS,
    STEP_COLUMNS,
    RecordWriter,
    RunRecorder,
    best_per_env,
)
from sb3_nas.experiment.registry import (
    ALGOS,
    LEARNERS,
    META_RL_ALGOS,
    PAPER,
    PAPER_TIMESTEPS,
    REDUCED_TIMESTEPS,
    SEARCH_ALGOS,
    paper_timesteps,
    resolve_timesteps,
)
from sb3_nas.experiment.run_models import load_run_model
from sb3_nas.experiment.runner import (
    PROGRESS_FILE,
    RunResult,
    StepHook,
    prepare_run_folder,
    run,
    run_frozen_trial,
)

__all__ = [
    "load_run_model",
    "ALGOS",
    "CHECKPOINT_FILE",
    "DEFAULT_CHECKPOINT_EVERY",
    "CheckpointError",
    "CONFIG_FILE",
    "EPISODE_COLUMNS",
    "FRACTION_KEYS",
    "LEARNERS",
    "META_RL_ALGOS",
    "MODEL_FILE",
    "PAPER",
    "PAPER_TIMESTEPS",
    "PROGRESS_FILE",
    "REDUCED_TIMESTEPS",
    "SEARCH_ALGOS",
    "STEP_COLUMNS",
    "ZOO_CONFIGS",
    "ConfigError",
    "RunConfig",
    "RunFolderError",
    "RecordWriter",
    "RunRecorder",
    "RunResult",
    "StepHook",
    "accepted_keys",
    "best_per_env",
    "load_hyperparams",
    "load_model",
    "make_env",
    "make_vec_env",
    "memo_location",
    "paper_timesteps",
    "prepare_run_folder",
    "read_config_file",
    "read_run_config",
    "resolve_fractions",
    "resolve_timesteps",
    "run",
    "run_frozen_trial",
]
