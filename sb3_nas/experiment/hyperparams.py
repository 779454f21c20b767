"""Hyper-parameters as data: ``zoo_configs/<algo>.yml`` keyed by environment id (rl-baselines3-zoo's format).

The shipped files live inside the package (``sb3_nas/zoo_configs``; ``zoo_configs/`` at the top of the source
tree links to them), so an installed ``sb3_nas`` finds them from any folder.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sb3_nas.errors import InputError

ZOO_CONFIGS = Path(__file__).resolve().parent.parent / "zoo_configs"
# keys that are not constructor arguments: fractions of the environment's t_max (see zoo_configs/dqn.yml)
FRACTION_KEYS = {"buffer_size_fraction": "buffer_size", "learning_starts_fraction": "learning_starts"}


class ConfigError(InputError):
    """A hyper-parameter file or override that cannot be used; the message names the file and the problem."""


def config_path(algo: str) -> Path:
    """The zoo config file shipped for ``algo``."""
    return ZOO_CONFIGS / f"{algo}.yml"


def accepted_keys(algo_class: type) -> set[str]:
    """The hyper-parameters ``algo_class`` takes: its constructor arguments and the zoo's fraction keys."""
    return (set(inspect.signature(algo_class.__init__).parameters) - {"self", "env"}) | set(FRACTION_KEYS)


def check_keys(hyperparams: Mapping[str, Any], algo: str, algo_class: type, where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` when a key is not a hyper-parameter of ``algo``."""
    unknown = sorted(set(hyperparams) - accepted_keys(algo_class))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) for {algo}: {', '.join(unknown)}")


def load_hyperparams(
    algo: str, env_id: str, algo_class: type, conf: str | Path | None = None
) -> dict[str, Any]:
    """The hyper-parameters of ``algo`` on ``env_id``: from ``conf`` if given, else the shipped zoo config.

    Every key must be a constructor argument of ``algo_class`` (or one of ``FRACTION_KEYS``).
    """
    path = Path(conf) if conf is not None else config_path(algo)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        table = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path} must map environment ids to hyper-parameters")
    if env_id not in table:
        raise ConfigError(
            f"config file {path} has no entry for {env_id} (it has: {', '.join(map(str, table))})"
        )
    hyperparams = table[env_id] or {}
    if not isinstance(hyperparams, dict):
        raise ConfigError(f"config file {path}: the entry for {env_id} must be a mapping")
    check_keys(hyperparams, algo, algo_class, f"config file {path} on {env_id}")
    return dict(hyperparams)


def resolve_fractions(hyperparams: Mapping[str, Any], t_max: int) -> dict[str, Any]:
    """Turn ``*_fraction`` keys into step counts of a run of ``t_max`` steps."""
    resolved = {k: v for k, v in hyperparams.items() if k not in FRACTION_KEYS}
    for key, target in FRACTION_KEYS.items():
        if key in hyperparams:
            resolved[target] = max(1, round(float(hyperparams[key]) * t_max))
    return resolved
