"""rl-baselines3-zoo for sb3_nas: ``python -m sb3_nas.zoo train --algo A --env ENV -n T_MAX [zoo options]``.

``pip install -e ".[zoo]"`` brings rl_zoo3. This entry

- registers the project's algorithms the zoo lacks (``meta_a2c``, ``maskable_ppo`` and ``recurrent_ppo``, the
  zoo's ``ppo_lstm``) in ``rl_zoo3.utils.ALGOS``, then hands every argument to ``rl_zoo3.train.train()``;
- translates the project's hyper-parameter file (``zoo_configs/<algo>.yml``, or ``-conf FILE`` in the same
  format) into the zoo's format for the budget ``-n``: ``n_timesteps`` = ``-n``, the fractions of t_max
  (``buffer_size_fraction``, ``learning_starts_fraction``) turned into step counts, and for ``meta_a2c`` the
  trial wrapper as the zoo's ``env_wrapper`` with ``trial_steps`` = ``-n`` (one trial is the whole run);
- turns the zoo's periodic evaluation off unless ``--eval-freq`` is given: each evaluation step trains a
  network.

``python -m sb3_nas.zoo export --algo A --env ENV -n T_MAX`` prints that translated file, which
``python -m rl_zoo3.train ... -conf FILE`` loads as it is (for an algorithm the plain zoo knows).

The zoo applies ``env_wrapper`` outside its ``Monitor``; :func:`trial_wrapper` moves the ``Monitor`` outside
the trial wrapper, so the zoo's ``monitor.csv`` and its evaluation count whole trials, not the NAS episodes
inside.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3.common.monitor import Monitor

import sb3_nas  # noqa: F401  (registers the environments)
from sb3_nas.algos import MetaRLWrapper
from sb3_nas.experiment.hyperparams import ConfigError, load_hyperparams, resolve_fractions
from sb3_nas.experiment.registry import (
    ALGOS,
    IMPORT_PATH,
    META_RL_ALGOS,
    SEARCH_ALGOS,
    algo_class,
    is_import_path,
)

# the zoo's names of the project's algorithms where they differ
ZOO_NAMES = {"recurrent_ppo": "ppo_lstm"}
PROJECT_NAMES = {zoo: project for project, zoo in ZOO_NAMES.items()}
# the project's algorithms the zoo can drive (a search strategy has no policy for the zoo to build)
ZOO_ALGOS = sorted(set(ALGOS) - SEARCH_ALGOS)
TRIAL_WRAPPER = "sb3_nas.zoo.trial_wrapper"  # by its import path, also when run as __main__


def register(own: str | None = None) -> None:
    """Add the project's algorithms the zoo lacks to ``rl_zoo3.utils.ALGOS`` (the dict ``rl_zoo3.train`` and
    its ``ExperimentManager`` read); ``recurrent_ppo`` is added as a second name of the zoo's ``ppo_lstm``;
    and a user's algorithm by its import path ``own``."""
    from rl_zoo3.utils import ALGOS as ZOO

    for name in ZOO_ALGOS:
        ZOO.setdefault(name, ALGOS[name])
    if own is not None and is_import_path(own):
        ZOO[own] = algo_class(own)


def trial_wrapper(env: gym.Env, trial_steps: int, reset_memory: str = "trial") -> gym.Env:
    """The zoo's ``env_wrapper`` for meta-RL: :class:`MetaRLWrapper` inside the zoo's ``Monitor``.

    SB3's ``make_vec_env`` puts its ``Monitor`` first and the zoo's wrapper around it; here the ``Monitor`` is
    rebuilt around the trial wrapper (same file, same options), so one ``Monitor`` episode is one trial of
    ``trial_steps`` steps, in training and in the zoo's evaluation alike.
    """
    if not isinstance(env, Monitor):
        return MetaRLWrapper(env, trial_steps=trial_steps, reset_memory=reset_memory)  # type: ignore[arg-type]
    filename = None
    if env.results_writer is not None:
        filename = env.results_writer.file_handler.name
        env.results_writer.close()
    wrapped = MetaRLWrapper(env.env, trial_steps=trial_steps, reset_memory=reset_memory)  # type: ignore[arg-type]
    return Monitor(
        wrapped,
        filename=filename,
        allow_early_resets=env.allow_early_resets,
        reset_keywords=env.reset_keywords,
        info_keywords=env.info_keywords,
        override_existing=True,
    )


def zoo_hyperparams(
    algo: str, env_id: str, n_timesteps: int, conf: str | Path | None = None
) -> dict[str, Any]:
    """The zoo-format hyper-parameters of ``algo`` (project or zoo name) on ``env_id`` for a run of
    ``n_timesteps`` steps, from the project's file (``conf`` or the shipped ``zoo_configs/<algo>.yml``)."""
    project = PROJECT_NAMES.get(algo, algo)
    if project not in ZOO_ALGOS and not is_import_path(project):
        raise ConfigError(f"the zoo cannot run {algo} (it can: {', '.join(ZOO_ALGOS)}, or {IMPORT_PATH})")
    if n_timesteps < 1:
        raise ConfigError(f"-n must be at least 1 (the steps of the run, t_max), got {n_timesteps}")
    if conf is None and is_import_path(project):
        raise ConfigError(
            f"--algo {algo}: give its hyper-parameters with -conf FILE (rl-baselines3-zoo's format)"
        )
    hyperparams = resolve_fractions(load_hyperparams(project, env_id, algo_class(project), conf), n_timesteps)
    zoo: dict[str, Any] = {"n_timesteps": int(n_timesteps), **hyperparams}
    if project in META_RL_ALGOS:
        zoo["env_wrapper"] = [{TRIAL_WRAPPER: {"trial_steps": int(n_timesteps)}}]
    return zoo


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m sb3_nas.zoo {command}", add_help=command == "export")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", default="sb3_nas/NasChain-v0")
    parser.add_argument("-n", "--n-timesteps", type=int, default=-1)
    parser.add_argument("-conf", "--conf-file", default=None)
    parser.add_argument("--eval-freq", type=int, default=None)
    parser.add_argument("--gym-packages", nargs="+", default=[])
    return parser


def _without_conf(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``-conf FILE`` / ``--conf-file FILE`` / ``--conf-file=FILE``."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in ("-conf", "--conf-file"):
            skip = True
        elif not token.startswith(("-conf=", "--conf-file=")):
            out.append(token)
    return out


def train(argv: Sequence[str]) -> None:
    """Run ``rl_zoo3.train`` with ``argv`` (the zoo's options) on the translated hyper-parameters."""
    import rl_zoo3.train

    args, _ = _parser("train").parse_known_args(argv)
    if args.n_timesteps < 1:
        raise ConfigError(
            "sb3_nas.zoo train needs -n T_MAX: the steps of the run, which fix the budget-dependent "
            "hyper-parameters and meta_a2c's trial length"
        )
    hyperparams = zoo_hyperparams(args.algo, args.env, args.n_timesteps, args.conf_file)
    register(args.algo)
    forwarded = _without_conf(argv)
    if "sb3_nas" not in args.gym_packages:
        forwarded += ["--gym-packages", "sb3_nas"]
    if args.eval_freq is None:
        forwarded += ["--eval-freq", "-1"]  # each evaluation step trains a network: off unless asked for
    with tempfile.TemporaryDirectory(prefix="sb3_nas_zoo_") as folder:
        conf = Path(folder) / f"{args.algo}.yml"
        conf.write_text(yaml.safe_dump({args.env: hyperparams}, sort_keys=False))
        saved = sys.argv
        sys.argv = ["python -m sb3_nas.zoo train", *forwarded, "-conf", str(conf)]
        try:
            rl_zoo3.train.train()
        finally:
            sys.argv = saved


def export(argv: Sequence[str]) -> str:
    """The translated hyper-parameter file (YAML text) for ``python -m rl_zoo3.train -conf``."""
    parser = _parser("export")
    args = parser.parse_args(argv)
    if args.n_timesteps < 1:
        parser.error("-n T_MAX is needed")
    hyperparams = zoo_hyperparams(args.algo, args.env, args.n_timesteps, args.conf_file)
    return yaml.safe_dump({args.env: hyperparams}, sort_keys=False)


USAGE = "usage: python -m sb3_nas.zoo {train,export} --algo A --env ENV -n T_MAX [rl_zoo3.train options]"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "export"):
        print(USAGE, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    if argv[0] == "train" and importlib.util.find_spec("rl_zoo3") is None:
        print("error: rl_zoo3 is not installed: pip install 'sb3_nas[zoo]'", file=sys.stderr)
        return 2
    try:
        if argv[0] == "train":
            if "-h" in argv[1:] or "--help" in argv[1:]:
                register()
                import rl_zoo3.train

                sys.argv = ["python -m sb3_nas.zoo train", "--help"]
                rl_zoo3.train.train()
            train(argv[1:])
        else:
            sys.stdout.write(export(argv[1:]))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
