"""``python -m sb3_nas.evaluate``: a frozen MetaA2C policy on environments it never trained on (§6.1, Exp. 2).

The weights are fixed, the recurrent state is zeroed at the trial's start and actions are sampled; each
environment is one trial of ``--timesteps`` steps. Writes ``steps.csv`` and ``episodes.csv``.
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import yaml
from stable_baselines3.common.save_util import load_from_zip_file
from tqdm.auto import tqdm

from sb3_nas.algos import MetaA2C
from sb3_nas.callbacks import RunRecorder
from sb3_nas.data import EVAL_TASKS, load_dataset
from sb3_nas.envs import CHAIN_ENV_ID, MULTI_BRANCH_ENV_ID
from sb3_nas.estimation import (
    AUTO,
    DEFAULT_FIDELITY,
    open_memo,
    resolve_device,
)
from sb3_nas.space import N_CHAIN_ACTIONS
from sb3_nas.train import INPUT_ERRORS, RunConfig, UsageError, make_env, print_results, write_results


class ModelError(ValueError):
    """A model file that does not exist or is not a MetaA2C model."""


def load_model(path: str | Path) -> MetaA2C:
    """Load a saved MetaA2C; a missing file or another algorithm's model is a one-line ``ModelError``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        data, _, _ = load_from_zip_file(path, load_data=True, device="cpu")
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as error:
        raise ModelError(f"model file {path} is not a saved SB3 model ({error})") from None
    policy_class = getattr(data.get("policy_class"), "__module__", "") if data else ""
    if "meta_a2c" not in policy_class:
        found = data.get("policy_class") if data else None
        raise ModelError(f"model file {path} is not a MetaA2C model (its policy is {found})")
    return MetaA2C.load(path, device="cpu")


def evaluate(model: MetaA2C, env, t_max: int, recorder: RunRecorder, seed: int) -> None:
    """One trial with the frozen policy: zero state at the start, sampled actions."""
    observation, _ = env.reset(seed=seed)
    state, episode_start = None, np.ones((1,), dtype=bool)
    for _ in range(t_max):
        action, state = model.predict(
            observation, state=state, episode_start=episode_start, deterministic=False
        )
        observation, reward, terminated, truncated, info = env.step(int(action))
        recorder.record(int(action), reward, info)
        episode_start = np.zeros((1,), dtype=bool)
        if terminated or truncated:
            break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sb3_nas.evaluate", description=__doc__)
    parser.add_argument("--model", required=True, help="a MetaA2C model.zip written by sb3_nas.train")
    parser.add_argument("--envs", default=",".join(EVAL_TASKS), help="datasets, comma-separated")
    parser.add_argument("--timesteps", type=int, default=100, help="t_max of each evaluation trial")
    parser.add_argument("--fidelity", default=DEFAULT_FIDELITY)
    parser.add_argument("--memo", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=AUTO, help="where networks train: auto, cpu, cuda:N")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    out = Path(args.out or Path("results") / "runs" / f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        if args.timesteps < 1:
            raise UsageError(f"--timesteps must be positive, got {args.timesteps}")
        resolve_device(args.device)
        model = load_model(args.model)
        for dataset in envs:
            load_dataset(dataset)
        memo = open_memo(args.memo)
        multi_branch = model.action_space.n > N_CHAIN_ACTIONS
        config = RunConfig(
            algo="meta_a2c", envs=envs, timesteps=[args.timesteps] * len(envs), fidelity=args.fidelity,
            seed=args.seed, out=str(out), memo=memo.url, sigma=0.0, conf=None, device=args.device,
            env_id=MULTI_BRANCH_ENV_ID if multi_branch else CHAIN_ENV_ID,
        )  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yml").write_text(
            yaml.safe_dump({**vars(args), "frozen_policy": True}, sort_keys=False)
        )
        recorders = []
        with tqdm(total=args.timesteps * len(envs), desc="evaluate", unit="step") as bar:
            try:
                for dataset in envs:
                    recorders.append(RunRecorder(dataset, bar))
                    env = make_env(config, dataset, memo, args.timesteps)
                    evaluate(model, env, args.timesteps, recorders[-1], args.seed)
            finally:
                write_results(out, recorders)
    except (*INPUT_ERRORS, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_results(f"frozen policy {args.model} on {', '.join(envs)}:", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
