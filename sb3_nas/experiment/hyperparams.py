"""Hyper-parameters as data: ``zoo_configs/<algo>.yml`` keyed by environment id (rl-baselines3-zoo's format).

The shipped files live inside the package (``sb3_nas/zoo_configs``; ``zoo_configs/`` at the top of the source
tree links to them), so an installed ``sb3_nas`` finds them from any folder. The typed model of an entry, and
of a ``-params`` override, is the algorithm's constructor: its arguments are the keys, their annotations the
types (:func:`hyperparameter_types`, checked by :mod:`sb3_nas.experiment.validation`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sb3_nas.errors import InputError
from sb3_nas.experiment.validation import Invalid, argument_types, check_value, read_yaml, unknown_keys

ZOO_CONFIGS = Path(__file__).resolve().parent.parent / "zoo_configs"
# keys that are not constructor arguments: fractions of the environment's t_max (see zoo_configs/dqn.yml)
FRACTION_KEYS = {"buffer_size_fraction": "buffer_size", "learning_starts_fraction": "learning_starts"}
# rl-baselines3-zoo's budget, which it requires in every file; the project's --timesteps is in charge, so
# it is accepted and dropped (python -m rl_zoo3.train reads it)
ZOO_KEYS = {"n_timesteps"}
# the callback through which plain rl-baselines3-zoo applies FRACTION_KEYS (experiment/budget.py): a file's
# ``callback`` entry naming it, with fraction keys as arguments, reads as those keys
BUDGET_CALLBACK = "sb3_nas.experiment.budget.BudgetFractions"


class ConfigError(InputError):
    """A hyper-parameter file or override that cannot be used; the message names the file and the problem."""


def config_path(algo: str) -> Path:
    """The zoo config file shipped for ``algo``."""
    return ZOO_CONFIGS / f"{algo}.yml"


def accepted_keys(algo_class: type) -> set[str]:
    """The hyper-parameters ``algo_class`` takes: its constructor arguments and the zoo's fraction keys, not
    the arguments the run supplies (a search's ``storage``, which may hold a password, is an option)."""
    run_arguments = set(getattr(algo_class, "run_arguments", ()))
    return (
        (set(inspect.signature(algo_class.__init__).parameters) - {"self", "env"} - run_arguments)
        | set(FRACTION_KEYS)
        | ZOO_KEYS
    )


def hyperparameter_types(algo_class: type) -> dict[str, Any]:
    """The type of each hyper-parameter of ``algo_class`` that has one: the annotations of its constructor
    (:func:`~sb3_nas.experiment.validation.argument_types`), the zoo's fraction keys (numbers) and budget (a
    count)."""
    return {
        **argument_types(algo_class.__init__),
        **dict.fromkeys(FRACTION_KEYS, float),
        **dict.fromkeys(ZOO_KEYS, int),
    }


def check_keys(hyperparams: Mapping[str, Any], algo: str, algo_class: type, where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` when a key is not a hyper-parameter of ``algo``, or its
    value is not of the type the constructor of ``algo_class`` declares (:func:`check_values`)."""
    unknown = unknown_keys(hyperparams, accepted_keys(algo_class))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) for {algo}: {', '.join(unknown)}")
    check_values(hyperparams, algo, algo_class, where)


def check_values(hyperparams: Mapping[str, Any], algo: str, algo_class: type, where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` for a value the constructor of ``algo_class`` cannot take.

    Checked: ``policy`` is one of the algorithm's policy names (``policy_aliases``); every other value is of
    its type in :func:`hyperparameter_types` (``n_steps: five`` is text, not an ``int``; ``1e-3``, which YAML
    reads as text, is not a ``float``); the common hyper-parameters lie in :data:`RANGES` (``n_steps: 0`` and
    ``gamma: 2`` are refused). The content of ``policy_kwargs`` is left to the constructor.
    """
    types = hyperparameter_types(algo_class)
    try:
        for key, value in hyperparams.items():
            if key == "policy":
                _check_policy(value, algo, algo_class)
                continue
            if key in types:
                check_value(key, value, types[key])
            _check_range(key, value)
    except Invalid as problem:
        raise ConfigError(f"{where}: {problem}") from None


# the ranges of the common hyper-parameters that the algorithms' constructors accept but cannot train with
_ANY = math.inf
RANGES: dict[str, tuple[float, float, str]] = {
    "n_steps": (1, _ANY, "at least 1"), "batch_size": (1, _ANY, "at least 1"),
    "n_timesteps": (1, _ANY, "at least 1"),
    "n_epochs": (1, _ANY, "at least 1"), "buffer_size": (1, _ANY, "at least 1"),
    "target_update_interval": (1, _ANY, "at least 1"), "train_freq": (1, _ANY, "at least 1"),
    "gradient_steps": (-1, _ANY, "-1 or more"), "learning_starts": (0, _ANY, "0 or more"),
    "gamma": (0, 1, "from 0 to 1"), "gae_lambda": (0, 1, "from 0 to 1"), "tau": (0, 1, "from 0 to 1"),
    "exploration_initial_eps": (0, 1, "from 0 to 1"), "exploration_final_eps": (0, 1, "from 0 to 1"),
    "exploration_fraction": (0, 1, "from 0 to 1"), "buffer_size_fraction": (0, 1, "above 0, at most 1"),
    "learning_starts_fraction": (0, 1, "from 0 to 1"), "learning_rate": (0, _ANY, "above 0"),
    "ent_coef": (0, _ANY, "0 or more"), "vf_coef": (0, _ANY, "0 or more"),
    "max_grad_norm": (0, _ANY, "above 0"), "rms_prop_eps": (0, _ANY, "above 0"),
    "clip_range": (0, _ANY, "above 0"),
}  # fmt: skip
POSITIVE = {"learning_rate", "max_grad_norm", "rms_prop_eps", "clip_range", "buffer_size_fraction"}  # not 0


def _check_range(key: str, value: Any) -> None:
    bounds = RANGES.get(key)
    if bounds is not None and isinstance(value, int | float) and not isinstance(value, bool):
        low, high, words = bounds
        if not (math.isfinite(value) and low <= value <= high) or (key in POSITIVE and value <= 0):
            raise Invalid(f"{key}: {value!r} is out of range ({words})")


def _check_policy(value: Any, algo: str, algo_class: type) -> None:
    aliases = getattr(algo_class, "policy_aliases", None) or {}
    if isinstance(value, type) or (isinstance(value, str) and value in aliases):
        return
    known = ", ".join(aliases) or "none"
    raise Invalid(f"unknown policy {value!r} for {algo} (known: {known})")


def require_policy(hyperparams: Mapping[str, Any], algo: str, algo_class: type, where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` when ``algo_class`` needs a ``policy`` none gives."""
    policy = inspect.signature(algo_class.__init__).parameters.get("policy")
    if policy is not None and policy.default is inspect.Parameter.empty and "policy" not in hyperparams:
        known = ", ".join(getattr(algo_class, "policy_aliases", None) or {}) or "none"
        raise ConfigError(f"{where}: no policy given (known for {algo}: {known})")


def load_hyperparams(
    algo: str, env_id: str, algo_class: type, conf: str | Path | None = None
) -> dict[str, Any]:
    """The hyper-parameters of ``algo`` on ``env_id``: from ``conf`` if given, else the shipped zoo config.

    Every key must be a constructor argument of ``algo_class`` (or one of ``FRACTION_KEYS``) with a value of
    its type (:func:`check_values`), and a ``policy`` must be named where the constructor needs one.
    """
    path = Path(conf) if conf is not None else config_path(algo)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        table = read_yaml(path) or {}
    except Invalid as problem:
        raise ConfigError(f"config file {path} is not valid YAML: {problem}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path} must map environment ids to hyper-parameters")
    if env_id not in table:
        raise ConfigError(
            f"config file {path} has no entry for {env_id} (it has: {', '.join(map(str, table))})"
        )
    hyperparams = table[env_id] or {}
    if not isinstance(hyperparams, dict):
        raise ConfigError(f"config file {path}: the entry for {env_id} must be a mapping")
    where = f"config file {path} on {env_id}"
    hyperparams = unpack_budget_callback(hyperparams, where)
    require_policy(hyperparams, algo, algo_class, where)
    check_keys(hyperparams, algo, algo_class, where)
    return {key: value for key, value in hyperparams.items() if key not in ZOO_KEYS}


def unpack_budget_callback(hyperparams: Mapping[str, Any], where: str) -> dict[str, Any]:
    """rl-baselines3-zoo's ``callback`` entry naming :data:`BUDGET_CALLBACK` turned into its fraction keys.

    The entry may be the name alone, a one-key mapping of the name to its arguments, or a list of those
    (rl_zoo3's forms). Any other callback is refused: sb3_nas runs its own callbacks, and silently dropping
    one a user asked for would mislead.
    """
    unpacked = {key: value for key, value in hyperparams.items() if key != "callback"}
    entries = hyperparams.get("callback")
    if entries is None:
        return unpacked
    for entry in entries if isinstance(entries, list) else [entries]:
        name, arguments = entry, {}
        if isinstance(entry, dict) and len(entry) == 1:
            name, arguments = next(iter(entry.items()))
        if name != BUDGET_CALLBACK:
            raise ConfigError(
                f"{where}: callback {name!r} is for rl-baselines3-zoo only; sb3_nas reads just "
                f"{BUDGET_CALLBACK} (its fractions of the budget)"
            )
        if not isinstance(arguments, dict) or set(arguments) - set(FRACTION_KEYS):
            raise ConfigError(
                f"{where}: {BUDGET_CALLBACK} takes {' and '.join(FRACTION_KEYS)}, got {arguments!r}"
            )
        for key, value in arguments.items():
            if key in unpacked and unpacked[key] != value:
                raise ConfigError(f"{where}: {key} given twice, {unpacked[key]!r} and {value!r}")
            unpacked[key] = value
    return unpacked


def resolve_fractions(hyperparams: Mapping[str, Any], t_max: int) -> dict[str, Any]:
    """Turn ``*_fraction`` keys into step counts of a run of ``t_max`` steps."""
    resolved = {k: v for k, v in hyperparams.items() if k not in FRACTION_KEYS}
    for key, target in FRACTION_KEYS.items():
        if key in hyperparams:
            resolved[target] = max(1, round(float(hyperparams[key]) * t_max))
    return resolved
