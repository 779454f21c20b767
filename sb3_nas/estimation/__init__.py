"""Performance estimation (§4.1.2, §5): fidelities, the early-stop trainer and the reward memo."""

from sb3_nas.estimation.device import AUTO, DeviceError, SpeedSettings, configure_threads, resolve_device
from sb3_nas.estimation.estimator import Estimate, PerformanceEstimator, memo_key, open_memo
from sb3_nas.estimation.fidelity import (
    DEFAULT_FIDELITY,
    FIDELITIES,
    Fidelity,
    UnknownFidelityError,
    get_fidelity,
    register_fidelity,
)
from sb3_nas.estimation.memo import (
    DEFAULT_MEMO_URL,
    MemoEntry,
    MemoError,
    RewardMemo,
    database_url,
    default_memo_url,
    masked_url,
)
from sb3_nas.estimation.trainer import (
    Evaluation,
    PreparedData,
    evaluate_nsc,
    evaluate_plan,
    prepare_data,
    train_network,
)

__all__ = [
    "AUTO",
    "DEFAULT_FIDELITY",
    "DEFAULT_MEMO_URL",
    "DeviceError",
    "FIDELITIES",
    "Estimate",
    "Evaluation",
    "Fidelity",
    "MemoEntry",
    "MemoError",
    "PerformanceEstimator",
    "PreparedData",
    "RewardMemo",
    "SpeedSettings",
    "UnknownFidelityError",
    "configure_threads",
    "database_url",
    "default_memo_url",
    "evaluate_nsc",
    "evaluate_plan",
    "get_fidelity",
    "masked_url",
    "memo_key",
    "open_memo",
    "prepare_data",
    "register_fidelity",
    "resolve_device",
    "train_network",
]
