"""A sweep file (``sweeps/<algo>.yml``): search space, objective, trial budget, sampler and pruner.

The file is data, checked once when read: every searched name must be a hyper-parameter of the algorithm,
every range non-empty, and the sampler and pruner are classes of :mod:`optuna.samplers` and
:mod:`optuna.pruners` named as Optuna spells them, with their keyword arguments. A problem is a
:class:`SweepError` whose one-line message names the file.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from sb3_nas.data import TRAIN_TASKS
from sb3_nas.envs import CHAIN_ENV_ID
from sb3_nas.errors import InputError
from sb3_nas.estimation import AUTO, DEFAULT_FIDELITY, is_table_spec
from sb3_nas.experiment import ALGOS, REDUCED_TIMESTEPS, accepted_keys, load_hyperparams
from sb3_nas.experiment.config import space_env_id
from sb3_nas.experiment.hyperparams import ZOO_KEYS
from sb3_nas.experiment.registry import IMPORT_PATH, algo_class, is_import_path

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"  # shipped in the package; sweeps/ links to it
DEFAULT_SWEEP = SWEEPS / "meta_a2c.yml"
TOP_KEYS = {
    "algo",
    "conf_file",
    "objective",
    "run",
    "search_space",
    "n_trials",
    "sampler",
    "pruner",
    "enqueue_paper_values",
}
RUN_KEYS = {"envs", "timesteps", "fidelity", "seed"}
PARAM_KEYS = {"type", "low", "high", "log", "choices"}
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


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by, and how often that is reported to the pruner.

    :param last_episodes: an environment's score is the mean best reward (the best accuracy within a NAS
        episode, §6.1) of its last ``last_episodes`` episodes; a trial's value is the mean over environments
    :param reports_per_env: intermediate values per environment, at evenly spaced steps of its t_max
    """

    last_episodes: int = 10
    reports_per_env: int = 4


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


class _Reader:
    """Checks the parts of one file; every failure names the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, problem: str) -> SweepError:
        return SweepError(f"sweep file {self.path}: {problem}")

    def table(self, where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a mapping")
        unknown = sorted(set(map(str, value)) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed))
            raise self.fail(f"unknown key(s) in {where}: {', '.join(unknown)} (known: {known})")
        return value

    def bound(self, name: str, key: str, value: Any, integer: bool) -> float:
        numeric = _is_int(value) or (not integer and isinstance(value, float) and math.isfinite(value))
        if not numeric:
            raise self.fail(f"parameter {name}: {key} must be {'an integer' if integer else 'a number'}")
        return value

    def param(self, name: str, value: Any) -> Param:
        spec = self.table(f"parameter {name}", value, PARAM_KEYS)
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            raise self.fail(f"parameter {name}: type must be one of {', '.join(PARAM_TYPES)}, got {kind!r}")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise self.fail(f"parameter {name}: empty range (choices must be a non-empty list)")
            return Param(name, kind, choices=tuple(choices))
        if "low" not in spec or "high" not in spec:
            raise self.fail(f"parameter {name}: empty range (it needs both low and high)")
        low = self.bound(name, "low", spec["low"], kind == "int")
        high = self.bound(name, "high", spec["high"], kind == "int")
        if low >= high:
            raise self.fail(f"parameter {name}: empty or inverted range (low {low} is not below high {high})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"parameter {name}: log must be true or false")
        if log and low <= 0:
            raise self.fail(f"parameter {name}: a log range must be positive (low {low})")
        if kind == "float":
            low, high = float(low), float(high)
        return Param(name, kind, low, high, log)

    def optuna_part(self, kind: str, value: Any, module: Any, base: type) -> dict[str, Any]:
        """A ``{name: <Optuna class>, **kwargs}`` table, checked by building it once."""
        if not isinstance(value, dict):
            raise self.fail(f"{kind} must be a mapping with a name")
        known = sorted(name for name in module.__all__ if _concrete(getattr(module, name), base))
        if value.get("name") not in known:
            raise self.fail(f"unknown {kind} {value.get('name')!r} (known: {', '.join(known)})")
        try:
            build(value, module)
        except (TypeError, ValueError) as error:
            raise self.fail(f"{kind} {value['name']}: {str(error).splitlines()[0]}") from None
        return dict(value)


def _concrete(obj: Any, base: type) -> bool:
    return inspect.isclass(obj) and issubclass(obj, base) and obj is not base and not inspect.isabstract(obj)


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (raises :class:`SweepError`; ``ConfigError`` for a broken zoo config)."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    reader = _Reader(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise reader.fail(f"not valid YAML: {str(error).splitlines()[0]}") from None
    top = reader.table("the file", raw, TOP_KEYS)
    algo = top.get("algo")
    if not isinstance(algo, str) or (algo not in ALGOS and not is_import_path(algo)):
        raise reader.fail(f"unknown algo {algo!r} (known: {', '.join(ALGOS)}, or {IMPORT_PATH})")
    try:
        algo_class(algo)
    except InputError as error:
        raise reader.fail(str(error)) from None
    conf_file = top.get("conf_file")
    if conf_file is not None:
        if not isinstance(conf_file, str):
            raise reader.fail(f"conf_file must be a path, got {conf_file!r}")
        conf_file = str(path.parent / conf_file)  # relative to the sweep file

    run = reader.table("run", top.get("run"), RUN_KEYS)
    envs = run.get("envs", list(TRAIN_TASKS))
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
        raise reader.fail(f"run.envs must be a list of dataset names, got {envs!r}")
    timesteps = run.get("timesteps", list(REDUCED_TIMESTEPS))
    timesteps = timesteps if isinstance(timesteps, list) else [timesteps]
    if not all(_is_int(t) and t > 0 for t in timesteps) or len(timesteps) not in (1, len(envs)):
        raise reader.fail(f"run.timesteps needs one positive count per environment ({len(envs)})")
    seed = run.get("seed", 0)
    if not _is_int(seed):
        raise reader.fail(f"run.seed must be an integer, got {seed!r}")

    objective_table = reader.table(
        "objective", top.get("objective"), {f.name for f in dataclasses.fields(Objective)}
    )
    if not all(_is_int(v) and v > 0 for v in objective_table.values()):
        raise reader.fail("objective settings must be positive integers")

    space = top.get("search_space")
    if not isinstance(space, dict) or not space:
        raise reader.fail("search_space must map at least one hyper-parameter to its range")
    unknown = sorted(set(map(str, space)) - (accepted_keys(algo_class(algo)) - ZOO_KEYS))
    if unknown:
        raise reader.fail(f"unknown parameter(s) for {algo}: {', '.join(unknown)}")
    params = tuple(reader.param(str(name), value) for name, value in space.items())

    n_trials = top.get("n_trials", DEFAULT_N_TRIALS)
    if not _is_int(n_trials) or n_trials < 1:
        raise reader.fail(f"n_trials must be a positive integer, got {n_trials!r}")
    enqueue = top.get("enqueue_paper_values", False)
    if not isinstance(enqueue, bool):
        raise reader.fail("enqueue_paper_values must be true or false")
    own = conf_file is None and is_import_path(algo)  # a user's class: no shipped values to enqueue
    env_id = space_env_id(envs) if conf_file else CHAIN_ENV_ID  # the shipped files: one value for every space
    zoo = {} if own else load_hyperparams(algo, env_id, algo_class(algo), conf_file)
    paper_values = {p.name: zoo[p.name] for p in params if p.name in zoo}
    for p in params if enqueue else ():
        if p.name not in paper_values:
            raise reader.fail(f"enqueue_paper_values: zoo_configs/{algo}.yml has no value of {p.name}")
        if not p.contains(paper_values[p.name]):
            raise reader.fail(f"the paper's {p.name} {paper_values[p.name]} lies outside {p.describe()}")

    sweep = Sweep(
        path=path,
        conf_file=conf_file,
        algo=algo,
        envs=tuple(envs),
        timesteps=tuple(timesteps * len(envs) if len(timesteps) == 1 else timesteps),
        fidelity=None if run.get("fidelity") is None else str(run["fidelity"]),
        seed=seed,
        objective=Objective(**objective_table),
        params=params,
        n_trials=n_trials,
        sampler=reader.optuna_part(
            "sampler", top.get("sampler", DEFAULT_SAMPLER), optuna.samplers, optuna.samplers.BaseSampler
        ),
        pruner=reader.optuna_part(
            "pruner", top.get("pruner", DEFAULT_PRUNER), optuna.pruners, optuna.pruners.BasePruner
        ),
        enqueue_paper_values=enqueue,
        paper_values=paper_values,
    )
    return sweep.replace()  # checks that the file's own budget fits its rollout lengths
