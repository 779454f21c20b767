"""A sweep file (``sweeps/<algo>.yml``): search space, objective, trial budget, sampler and pruner.

The file is data, read once into its typed model (:class:`SweepFile` and its ``run`` and ``objective``
tables, read by :func:`~sb3_nas.experiment.validation.read_model`) and checked: every searched name must be a
hyper-parameter of the algorithm, every range non-empty, and the sampler and pruner are classes of
:mod:`optuna.samplers` and :mod:`optuna.pruners` named as Optuna spells them, with their keyword arguments.
A problem is a :class:`SweepError` whose one-line message names the file.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from sb3_nas.data import TRAIN_TASKS
from sb3_nas.envs import CHAIN_ENV_ID
from sb3_nas.errors import InputError
from sb3_nas.estimation import AUTO, DEFAULT_FIDELITY, is_table_spec
from sb3_nas.experiment import ALGOS, REDUCED_TIMESTEPS, accepted_keys, load_hyperparams
from sb3_nas.experiment.config import space_env_id
from sb3_nas.experiment.hyperparams import ZOO_KEYS
from sb3_nas.experiment.registry import IMPORT_PATH, algo_class, is_import_path
from sb3_nas.experiment.validation import (
    Invalid,
    converted,
    entry,
    read_model,
    read_yaml,
    section,
    unknown_keys,
)

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"  # shipped in the package; sweeps/ links to it
DEFAULT_SWEEP = SWEEPS / "meta_a2c.yml"
PARAM_TYPES = ("int", "float", "categorical")
DEFAULT_SAMPLER = {"name": "TPESampler"}
DEFAULT_PRUNER = {"name": "MedianPruner"}
DEFAULT_N_TRIALS = 20
ROLLOUT_KEYS = ("n_steps",)  # a rollout longer than an environment's t_max never ends: no update is made


class SweepError(InputError):
    """A sweep file, option or storage that cannot be used; the message is one line naming the problem."""


@dataclass(frozen=True)
class Param:
    """One searched hyper-parameter: an int or float range (``log``: on a log scale) or a list of choices."""

    name: str
    type: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """The trial's value of this parameter."""
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter can take."""
        if self.type == "categorical":
            return value in self.choices
        return isinstance(value, int | float) and self.low <= value <= self.high

    def describe(self) -> str:
        """``int [2, 20]``, ``float [0.0001, 0.1] log`` or ``categorical [a, b]``."""
        if self.type == "categorical":
            return f"categorical {list(self.choices)}"
        return f"{self.type} [{self.low}, {self.high}]" + (" log" if self.log else "")


OBJECTIVE_SETTINGS = "objective settings must be positive integers"


def _positive(count: int) -> bool:
    return count > 0


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by, and how often that is reported to the pruner.

    :param last_episodes: an environment's score is the mean best reward (the best accuracy within a NAS
        episode, §6.1) of its last ``last_episodes`` episodes; a trial's value is the mean over environments
    :param reports_per_env: intermediate values per environment, at evenly spaced steps of its t_max
    """

    last_episodes: int = entry(10, accepts=_positive, message=OBJECTIVE_SETTINGS)
    reports_per_env: int = entry(4, accepts=_positive, message=OBJECTIVE_SETTINGS)


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file; :meth:`identity` defines its study (resuming one with another is refused)."""

    path: Path
    algo: str
    envs: tuple[str, ...]
    timesteps: tuple[int, ...]
    fidelity: str | None  # None: the default, or no fidelity at all on a tabular benchmark
    seed: int
    objective: Objective
    params: tuple[Param, ...]
    n_trials: int = DEFAULT_N_TRIALS
    sampler: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SAMPLER))
    pruner: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PRUNER))
    enqueue_paper_values: bool = False
    paper_values: dict[str, Any] = field(default_factory=dict)
    device: str = AUTO  # where networks train: how fast, not what a trial scores, so not in the identity
    conf_file: str | None = None  # hyper-parameters in rl-baselines3-zoo's format (default: zoo_configs/)

    @property
    def name(self) -> str:
        """The file's stem: ``meta_a2c`` for ``sweeps/meta_a2c.yml``."""
        return self.path.stem

    @property
    def estimation(self) -> str:
        """The fidelity's name, or ``table`` on a tabular benchmark (part of the default study name)."""
        if all(is_table_spec(env) for env in self.envs):
            return "table"
        return self.fidelity or DEFAULT_FIDELITY

    def identity(self) -> dict[str, Any]:
        """The settings that define the objective and the space, stored as the study's user attribute."""
        return {
            "algo": self.algo, "envs": list(self.envs), "timesteps": list(self.timesteps),
            "fidelity": self.estimation, "seed": self.seed, "objective": asdict(self.objective),
            "search_space": {p.name: p.describe() for p in self.search_space},
            **({"conf_file": self.conf_file} if self.conf_file else {}),
        }  # fmt: skip

    @property
    def search_space(self) -> tuple[Param, ...]:
        """The searched parameters, each rollout length capped at the smallest t_max of the run.

        A rollout longer than an environment's budget never completes there, so its policy would never be
        updated; such values are not sampled. Raises :class:`SweepError` when no value of a range can train.
        """
        budget = min(self.timesteps)
        space = []
        for param in self.params:
            if param.name in ROLLOUT_KEYS and param.type == "int" and param.high > budget:
                if param.low > budget:
                    raise SweepError(
                        f"sweep file {self.path}: every {param.name} of {param.describe()} exceeds the "
                        f"budget of {budget} steps, so no trial would update its policy; raise --timesteps"
                    )
                param = dataclasses.replace(param, high=budget)
            elif param.name in ROLLOUT_KEYS and param.type == "categorical":
                fitting = tuple(c for c in param.choices if not _is_int(c) or c <= budget)
                if not fitting:
                    raise SweepError(f"sweep file {self.path}: no {param.name} choice fits {budget} steps")
                param = dataclasses.replace(param, choices=fitting)
            space.append(param)
        return tuple(space)

    def replace(self, **changes: Any) -> Sweep:
        """A copy with some settings changed (the command line's ``--timesteps``, ``--fidelity``, ...)."""
        changed = dataclasses.replace(self, **changes)
        changed.search_space  # noqa: B018  (a budget no rollout fits is refused now)
        return changed


def build(table: dict[str, Any], module: Any) -> Any:
    """An Optuna sampler or pruner from ``{"name": ClassName, **kwargs}``."""
    return getattr(module, table["name"])(**{k: v for k, v in table.items() if k != "name"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- the file's model ------------------------------------------------------------------------------------

PARAM_KEYS = {f.name for f in dataclasses.fields(Param)} - {"name"}  # a search_space entry's keys


def _dataset_names(envs: Any, _run: Mapping[str, Any]) -> tuple[str, ...]:
    if not isinstance(envs, list) or not envs or not all(isinstance(env, str) for env in envs):
        raise Invalid(f"run.envs must be a list of dataset names, got {envs!r}")
    return tuple(envs)


def _budgets(timesteps: Any, run: Mapping[str, Any]) -> tuple[int, ...]:
    """One positive count for every environment of ``run``, or one count each."""
    counts = timesteps if isinstance(timesteps, list) else [timesteps]
    n_envs = len(run["envs"])
    if not all(_is_int(t) and t > 0 for t in counts) or len(counts) not in (1, n_envs):
        raise Invalid(f"run.timesteps needs one positive count per environment ({n_envs})")
    return tuple(counts * n_envs if len(counts) == 1 else counts)


@dataclass(frozen=True)
class RunTable:
    """A sweep file's ``run`` table: the environments of every trial in order, their budgets (t_max), the
    fidelity (``None``: the default, or none on a tabular benchmark) and the seed."""

    envs: tuple[str, ...] = entry(list(TRAIN_TASKS), read=_dataset_names)
    timesteps: tuple[int, ...] = entry(list(REDUCED_TIMESTEPS), read=_budgets)
    fidelity: str | None = entry(None, read=converted(lambda name: None if name is None else str(name)))
    seed: int = entry(0, message="run.seed must be an integer, got {value!r}")


def _algo(algo: Any, _file: Mapping[str, Any]) -> str:
    if not isinstance(algo, str) or (algo not in ALGOS and not is_import_path(algo)):
        raise Invalid(f"unknown algo {algo!r} (known: {', '.join(ALGOS)}, or {IMPORT_PATH})")
    try:
        algo_class(algo)
    except InputError as error:
        raise Invalid(str(error)) from None
    return algo


def _search_space(space: Any, file: Mapping[str, Any]) -> tuple[Param, ...]:
    """The searched parameters: hyper-parameters of the file's algorithm, each a range or choices."""
    if not isinstance(space, dict) or not space:
        raise Invalid("search_space must map at least one hyper-parameter to its range")
    unknown = unknown_keys(space, accepted_keys(algo_class(file["algo"])) - ZOO_KEYS)
    if unknown:
        raise Invalid(f"unknown parameter(s) for {file['algo']}: {', '.join(unknown)}")
    return tuple(_param(str(name), table) for name, table in space.items())


def _param(name: str, table: Any) -> Param:
    where = f"parameter {name}"
    spec = section(table, where, PARAM_KEYS)
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise Invalid(f"{where}: type must be one of {', '.join(PARAM_TYPES)}, got {kind!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise Invalid(f"{where}: empty range (choices must be a non-empty list)")
        return Param(name, kind, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise Invalid(f"{where}: empty range (it needs both low and high)")
    low = _bound(where, "low", spec["low"], kind == "int")
    high = _bound(where, "high", spec["high"], kind == "int")
    if low >= high:
        raise Invalid(f"{where}: empty or inverted range (low {low} is not below high {high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise Invalid(f"{where}: log must be true or false")
    if log and low <= 0:
        raise Invalid(f"{where}: a log range must be positive (low {low})")
    if kind == "float":
        low, high = float(low), float(high)
    return Param(name, kind, low, high, log)


def _bound(where: str, key: str, value: Any, integer: bool) -> float:
    numeric = _is_int(value) or (not integer and isinstance(value, float) and math.isfinite(value))
    if not numeric:
        raise Invalid(f"{where}: {key} must be {'an integer' if integer else 'a number'}")
    return value


def _optuna_part(kind: str, module: Any, base: type) -> Any:
    """The ``read`` of a ``{name: <Optuna class>, **kwargs}`` table, which checks it by building it once."""

    def read(table: Any, _file: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise Invalid(f"{kind} must be a mapping with a name")
        known = sorted(name for name in module.__all__ if _concrete(getattr(module, name), base))
        if table.get("name") not in known:
            raise Invalid(f"unknown {kind} {table.get('name')!r} (known: {', '.join(known)})")
        try:
            build(table, module)
        except (TypeError, ValueError) as error:
            raise Invalid(f"{kind} {table['name']}: {str(error).splitlines()[0]}") from None
        return dict(table)

    return read


def _concrete(obj: Any, base: type) -> bool:
    return inspect.isclass(obj) and issubclass(obj, base) and obj is not base and not inspect.isabstract(obj)


@dataclass(frozen=True)
class SweepFile:
    """A sweep file's top level, its keys in the order they are checked (``conf_file`` relative to it)."""

    algo: str = entry(None, read=_algo)
    conf_file: str | None = entry(None, message="conf_file must be a path, got {value!r}")
    run: RunTable = entry(None)
    objective: Objective = entry(None)
    search_space: tuple[Param, ...] = entry(None, read=_search_space)
    n_trials: int = entry(
        DEFAULT_N_TRIALS, accepts=_positive, message="n_trials must be a positive integer, got {value!r}"
    )
    enqueue_paper_values: bool = entry(False, message="enqueue_paper_values must be true or false")
    sampler: dict[str, Any] = entry(
        DEFAULT_SAMPLER, read=_optuna_part("sampler", optuna.samplers, optuna.samplers.BaseSampler)
    )
    pruner: dict[str, Any] = entry(
        DEFAULT_PRUNER, read=_optuna_part("pruner", optuna.pruners, optuna.pruners.BasePruner)
    )


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (raises :class:`SweepError`; ``ConfigError`` for a broken zoo config)."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        table = read_yaml(path)
    except Invalid as problem:
        raise SweepError(f"sweep file {path}: not valid YAML: {problem}") from None
    try:
        file = read_model(SweepFile, table, "the file")
        conf_file = None if file.conf_file is None else str(path.parent / file.conf_file)
        paper_values = _paper_values(file, conf_file)
    except Invalid as problem:
        raise SweepError(f"sweep file {path}: {problem}") from None
    sweep = Sweep(
        path=path,
        conf_file=conf_file,
        algo=file.algo,
        envs=file.run.envs,
        timesteps=file.run.timesteps,
        fidelity=file.run.fidelity,
        seed=file.run.seed,
        objective=file.objective,
        params=file.search_space,
        n_trials=file.n_trials,
        sampler=file.sampler,
        pruner=file.pruner,
        enqueue_paper_values=file.enqueue_paper_values,
        paper_values=paper_values,
    )
    return sweep.replace()  # checks that the file's own budget fits its rollout lengths


def _paper_values(file: SweepFile, conf_file: str | None) -> dict[str, Any]:
    """The zoo config's value of each searched parameter that has one; with ``enqueue_paper_values``, every
    searched parameter must have one (the zoo's, else the algorithm's default), within its range."""
    own = conf_file is None and is_import_path(file.algo)  # a user's class: no shipped values to enqueue
    env_id = space_env_id(file.run.envs) if conf_file else CHAIN_ENV_ID  # shipped: one value for every space
    zoo = {} if own else load_hyperparams(file.algo, env_id, algo_class(file.algo), conf_file)
    paper_values = {p.name: zoo[p.name] for p in file.search_space if p.name in zoo}
    if file.enqueue_paper_values and not own:  # a value the zoo file leaves out is the constructor's default
        defaults = inspect.signature(algo_class(file.algo)).parameters
        for p in file.search_space:
            default = defaults[p.name].default if p.name in defaults else inspect.Parameter.empty
            if p.name not in paper_values and default is not inspect.Parameter.empty:
                paper_values[p.name] = default
    for p in file.search_space if file.enqueue_paper_values else ():
        if p.name not in paper_values:
            raise Invalid(f"enqueue_paper_values: zoo_configs/{file.algo}.yml has no value of {p.name}")
        if not p.contains(paper_values[p.name]):
            raise Invalid(f"the paper's {p.name} {paper_values[p.name]} lies outside {p.describe()}")
    return paper_values
