"""The run configuration: everything a run needs, resolved and checked once, and its one format on disk.

A :class:`RunConfig` holds objects, not strings to re-parse (a :class:`~sb3_nas.estimation.Fidelity`, the
memo's URL, per-environment hyper-parameters with the budget's fractions turned into counts). Commands and the
Optuna objective build one with :meth:`RunConfig.create`; every reader of a run folder (evaluate, retrain,
report, summary) reads the ``config.yml`` that :meth:`RunConfig.to_dict` wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sb3_nas.data import load_dataset
from sb3_nas.envs import CHAIN_ENV_ID, MULTI_BRANCH_ENV_ID, TABULAR_ENV_IDS
from sb3_nas.errors import InputError, UsageError
from sb3_nas.estimation import (
    AUTO,
    Fidelity,
    RewardMemo,
    TableEstimator,
    check_data_fits,
    default_memo_url,
    get_fidelity,
    is_table_spec,
    masked_url,
    open_memo,
    parse_precisions,
    resolve_device,
    worker_devices,
)
from sb3_nas.experiment.hyperparams import check_keys, load_hyperparams, require_policy, resolve_fractions
from sb3_nas.experiment.registry import (
    META_RL_ALGOS,
    algo_class,
    check_algo,
    is_import_path,
    resolve_timesteps,
)
from sb3_nas.experiment.validation import Invalid, converted, entry, read_model, read_yaml

CONFIG_FILE = "config.yml"
FORMAT_VERSION = 2  # 1: the argparse namespaces written before the experiment layer (still read)


class RunFolderError(InputError):
    """A run folder that cannot be read; the one-line message names the folder and what is missing."""


@dataclass(frozen=True)
class RunConfig:
    """A checked run: which algorithm on which environments, for how long, scored how.

    :param algo: a name of :data:`~sb3_nas.experiment.ALGOS`
    :param envs: dataset names, paths or specs, or task specs of one tabular benchmark (``nbgraph:cora``), in
        the order the run visits them
    :param timesteps: t_max per environment
    :param fidelity: how each sampled network is trained and scored (unused on a tabular benchmark, whose
        rewards are look-ups)
    :param memo: the reward memo's URL (its password, if any, is never written to a file)
    :param seed: seeds the agent, the environments and the random search
    :param multi_branch: the multi-branch space (Experiment 3) instead of chains
    :param sigma: σ, the reward share of pointer shifts (§4.2.3)
    :param device: where networks train: ``auto``, ``cpu`` or ``cuda:N``
    :param accept_precision: memo precisions that answer too when the device's own has no entry (like the
        device, it changes where a reward comes from, not what a run is: resuming may change it)
    :param n_envs: workers stepping at once, each in its own process
    :param hyperparams: the algorithm's constructor arguments per environment (fractions resolved)
    :param conf_file: the hyper-parameter file read, ``None`` for the shipped ``zoo_configs/<algo>.yml``
    :param model: the frozen policy an evaluation run follows (Experiment 2), ``None`` for a training run
    :param storage: the database URL where a search strategy that keeps a study (``tpe``) adds its trials,
        ``None`` for none (its password, if any, is never written to a file)
    """

    algo: str
    envs: tuple[str, ...]
    timesteps: tuple[int, ...]
    fidelity: Fidelity
    memo: str
    seed: int = 0
    multi_branch: bool = False
    sigma: float = 0.0
    device: str = AUTO
    accept_precision: tuple[str, ...] = ()
    n_envs: int = 1
    hyperparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    conf_file: str | None = None
    model: str | None = None
    storage: str | None = None

    @property
    def env_id(self) -> str:
        """The Gymnasium id of the space searched: the key of the zoo config files."""
        return space_env_id(self.envs, self.multi_branch)

    @property
    def tabular(self) -> bool:
        """Whether the environments are a tabular benchmark's (rewards by look-up, no fidelity)."""
        return self.env_id in TABULAR_ENV_IDS.values()

    @property
    def estimation(self) -> str:
        """How rewards are obtained, in words: ``table look-up`` or ``<fidelity> fidelity``."""
        return "table look-up" if self.tabular else f"{self.fidelity.name} fidelity"

    @property
    def frozen(self) -> bool:
        """Whether this is an evaluation of a frozen policy (``model``) rather than a training run."""
        return self.model is not None

    @property
    def meta_rl(self) -> bool:
        """Whether the algorithm sees the meta-RL inputs and keeps one policy across environments."""
        return self.algo in META_RL_ALGOS

    @classmethod
    def create(
        cls,
        algo: str = "meta_a2c",
        envs: Sequence[str] = (),
        timesteps: str | int | Sequence[int] = (),
        fidelity: str | Fidelity | None = None,
        memo: str | RewardMemo | None = None,
        seed: int = 0,
        multi_branch: bool = False,
        sigma: float = 0.0,
        device: str = AUTO,
        n_envs: int = 1,
        accept_precision: str | Sequence[str] = (),
        conf_file: str | Path | None = None,
        hyperparams: Mapping[str, Any] | None = None,
        model: str | Path | None = None,
        check_data: bool = True,
        storage: str | None = None,
    ) -> RunConfig:
        """Resolve and check every setting, before any work (raises an :class:`~sb3_nas.errors.InputError`).

        :param timesteps: ``"paper"`` for the paper's budgets, one count for every environment, or one each
        :param hyperparams: overrides of the zoo config's values, applied to every environment (``-params``)
        :param accept_precision: precision names, or ``"any"`` (:func:`parse_precisions`)
        :param check_data: load every dataset now, so an unknown name fails before the first step
        :param storage: a study storage URL for ``tpe`` (opened now, so that a bad one fails before any work)
        """
        check_algo(algo)
        envs = tuple(envs)
        if not envs:
            raise UsageError("--envs names no environment")
        repeated = sorted({env for env in envs if envs.count(env) > 1})
        if repeated:  # records, hyper-parameters and resuming tell environments apart by name
            raise UsageError(f"--envs names {', '.join(repeated)} more than once")
        timesteps = resolve_timesteps(timesteps, len(envs), algo, multi_branch, model is not None)
        env_id = space_env_id(envs, multi_branch)
        if env_id in TABULAR_ENV_IDS.values() and fidelity is not None:
            raise UsageError(
                f"--fidelity does not apply to {envs[0]}: a tabular benchmark's rewards are look-ups"
            )
        fidelity = get_fidelity(fidelity)
        resolve_device(device)
        if not 0.0 <= sigma <= 1.0:
            raise UsageError(f"--sigma must lie in [0, 1], got {sigma}")
        if n_envs < 1:
            raise UsageError(f"--n-envs must be at least 1, got {n_envs}")
        if n_envs > 1 and algo in META_RL_ALGOS:
            raise UsageError(f"{algo} is a one-worker algorithm (§4.2.5): --n-envs must be 1")
        memo_url = memo_location(memo)
        if storage is not None:
            check_storage(algo, storage)
        per_env: dict[str, dict[str, Any]] = {}
        if model is None:
            own = conf_file is None and is_import_path(algo)  # a user's class ships no zoo_configs/ file
            base = {} if own else load_hyperparams(algo, env_id, algo_class(algo), conf_file)
            overrides = dict(hyperparams or {})
            check_keys(overrides, algo, algo_class(algo), "hyper-parameter override")
            if own:
                require_policy(
                    {**base, **overrides}, algo, algo_class(algo), f"--algo {algo} (give -conf or -params)"
                )
            for env, t_max in zip(envs, timesteps, strict=True):
                per_env[env] = resolve_fractions({**base, **overrides}, t_max)
        config = cls(
            algo=algo, envs=envs, timesteps=timesteps, fidelity=fidelity, memo=memo_url, seed=int(seed),
            multi_branch=bool(multi_branch), sigma=float(sigma), device=str(device), n_envs=int(n_envs),
            accept_precision=parse_precisions(accept_precision), hyperparams=per_env,
            conf_file=None if conf_file is None else str(conf_file),
            model=None if model is None else str(model), storage=storage,
        )  # fmt: skip
        if check_data:
            for dataset in envs:  # an unknown name, a broken file or data the fidelity cannot use stop here
                if config.tabular:
                    TableEstimator(dataset)  # decoded once, now: a missing package or table stops here
                else:
                    check_data_fits(load_dataset(dataset), fidelity)
        return config

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (not re-checked: use :meth:`create` for new input)."""
        return dataclasses.replace(self, **changes)

    # -- on disk ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The YAML-safe form written to ``config.yml``; the memo URL's password is masked."""
        return {
            "format": FORMAT_VERSION,
            "algo": self.algo,
            "envs": list(self.envs),
            "timesteps": list(self.timesteps),
            "fidelity": None if self.tabular else self.fidelity.name,
            "seed": self.seed,
            "env_id": self.env_id,
            "sigma": self.sigma,
            "device": self.device,
            "accept_precision": list(self.accept_precision),
            "n_envs": self.n_envs,
            "memo": masked_url(self.memo),
            "conf_file": self.conf_file,
            "hyperparams": {env: dict(values) for env, values in self.hyperparams.items()},
            "frozen_policy": self.frozen,
            "model": self.model,
            "storage": None if self.storage is None else masked_url(self.storage),
            # where the --n-envs workers train (written for the record, not read back: the device decides)
            **({"worker_devices": worker_devices(self.device, self.n_envs)} if self.n_envs > 1 else {}),
        }

    @classmethod
    def from_dict(
        cls,
        table: Mapping[str, Any],
        where: str = "config",
        memo: str | None = None,
        storage: str | None = None,
    ) -> RunConfig:
        """A configuration as written by :meth:`to_dict` (or by the commands before it, format 1).

        The memo is ``memo`` when given, else the recorded URL when it holds no masked password, else the
        default memo; the study storage likewise is ``storage``, else the recorded URL without a masked
        password, else none: a password is never read back from a file.
        """
        try:
            file = read_model(ConfigFile, table, where, other_keys=True)
            config = cls(
                algo=file.algo, envs=file.envs, timesteps=file.timesteps, fidelity=file.fidelity,
                memo=memo or (file.memo if file.memo and "***" not in file.memo else default_memo_url()),
                seed=file.seed, multi_branch=file.env_id == MULTI_BRANCH_ENV_ID, sigma=file.sigma,
                device=file.device, accept_precision=file.accept_precision, n_envs=file.n_envs,
                hyperparams=file.hyperparams, conf_file=file.conf_file,
                model=str(file.model) if file.frozen_policy else None,
                storage=storage or (file.storage if file.storage and "***" not in file.storage else None),
            )  # fmt: skip
        except KeyError as error:
            raise RunFolderError(f"{where} names no {error.args[0]}") from None
        except Invalid as problem:
            raise RunFolderError(f"{where}: {problem}") from None
        except (TypeError, ValueError) as error:
            if isinstance(error, InputError):
                raise RunFolderError(f"{where}: {error}") from None
            raise RunFolderError(f"{where} holds a malformed value ({error})") from None
        return config

    def write(self, folder: Path) -> Path:
        """Write ``folder/config.yml``; returns its path."""
        path = folder / CONFIG_FILE
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        return path


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in values)


def _counts(values: Any) -> tuple[int, ...]:
    return tuple(int(value) for value in values)


def _fidelity(name: Any) -> Fidelity:
    return get_fidelity(None if name is None else str(name))


def _url(url: Any) -> str:
    return str(url or "")


@dataclass(frozen=True, kw_only=True)
class ConfigFile:
    """``config.yml`` as read back: the keys :meth:`RunConfig.to_dict` writes, each value converted to its
    field's type (one that cannot be is the ``TypeError`` or ``ValueError`` of the conversion), other keys
    ignored. The defaults stand for the keys a file of format 1 (the commands' argparse namespaces) lacks;
    that format names ``conf_file`` ``conf``. :meth:`RunConfig.from_dict` makes the configuration of it.
    """

    algo: str = entry("meta_a2c", read=converted(str))
    envs: tuple[str, ...] = entry(read=converted(_strings))
    timesteps: tuple[int, ...] = entry(read=converted(_counts))
    fidelity: Fidelity = entry(read=converted(_fidelity))
    seed: int = entry(0, read=converted(int))
    env_id: Any = CHAIN_ENV_ID
    sigma: float = entry(0.0, read=converted(float))
    device: str = entry(AUTO, read=converted(str))
    accept_precision: tuple[str, ...] = entry((), read=converted(lambda names: parse_precisions(names or ())))
    n_envs: int = entry(1, read=converted(int))
    memo: str = entry("", read=converted(_url))
    conf_file: Any = entry(None, alias="conf")
    hyperparams: dict[str, Any] = entry({}, read=converted(lambda table: dict(table or {})))
    frozen_policy: bool = entry(False, read=converted(bool))
    model: Any = ""
    storage: str = entry("", read=converted(_url))


def space_env_id(envs: Sequence[str], multi_branch: bool = False) -> str:
    """The Gymnasium id of the space ``envs`` are searched in: the NSC chain or multi-branch space, or the
    one tabular benchmark all of them belong to (a policy carries over only within one space)."""
    benchmarks = {env.partition(":")[0] for env in envs if is_table_spec(env)}
    if not benchmarks:
        return MULTI_BRANCH_ENV_ID if multi_branch else CHAIN_ENV_ID
    if len(benchmarks) > 1 or not all(is_table_spec(env) for env in envs):
        raise UsageError(
            f"--envs {','.join(envs)} mixes search spaces: a run searches one (image datasets, or the task "
            "specs of one tabular benchmark)"
        )
    if multi_branch:
        raise UsageError(f"--multi-branch is the NSC space's; {envs[0]} is a tabular benchmark's")
    return TABULAR_ENV_IDS[benchmarks.pop()]


def memo_location(memo: str | RewardMemo | None) -> str:
    """The URL of ``memo`` (``None``: the default), opened once so that a bad location fails now."""
    if isinstance(memo, RewardMemo):
        return memo.url
    opened = open_memo(memo)
    opened.close()
    return opened.url


def read_config_file(folder: str | Path) -> dict[str, Any]:
    """The raw table of ``folder/config.yml`` (raises :class:`RunFolderError` when missing or malformed)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise RunFolderError(f"run folder {folder} lacks {CONFIG_FILE}")
    try:
        table = read_yaml(path) or {}
    except Invalid as problem:
        raise RunFolderError(f"run folder {folder}: {CONFIG_FILE} is not valid YAML ({problem})") from None
    if not isinstance(table, dict):
        raise RunFolderError(f"run folder {folder}: {CONFIG_FILE} is not a mapping")
    return table


def read_run_config(folder: str | Path, memo: str | None = None, storage: str | None = None) -> RunConfig:
    """The :class:`RunConfig` of a run folder."""
    return RunConfig.from_dict(read_config_file(folder), f"run folder {folder}: {CONFIG_FILE}", memo, storage)


def check_storage(algo: str, storage: str) -> None:
    """Refuse a study storage for an algorithm that keeps no study, or one that cannot be opened."""
    if "storage" not in getattr(algo_class(algo), "run_arguments", ()):
        raise UsageError(f"--storage holds the study of a tpe search; {algo} keeps none")
    from sb3_nas.tuning.study import open_storage  # the tuning layer builds on this module

    open_storage(storage).engine.dispose()
