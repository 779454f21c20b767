"""Action masks: an action is masked exactly when it would end the episode with reward 0
for a reason known before training, and sb3-contrib's MaskablePPO, run by the training command, never takes
one."""

import copy
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

from sb3_nas import train
from sb3_nas.algos import MetaRLWrapper
from sb3_nas.envs import INVALID_ARCHITECTURE, POINTER_OUT_OF_BOUNDS, NasEnv
from sb3_nas.estimation import PerformanceEstimator, RewardMemo
from sb3_nas.experiment import RunConfig
from sb3_nas.experiment.environments import make_vec_env
from sb3_nas.space import ActionKind, action_table

DATASET = "digits"  # the training command's environment too, so the memo the property tests fill serves it
TERMINAL = next(a.id for a in action_table(False) if a.kind == ActionKind.TERMINAL)
# at the tiny fidelity's 12×12 images a convolution is refused before a pooling layer, 5x5 and 3x3 after one
MAX_PARAMS_FIDELITY = "tiny,max_params=1000000"
# the reasons known before training: the shape inference's and the parameter limit's (not a failed training)
KNOWN_BEFORE_TRAINING = re.compile(r"would produce a spatial size below 1|^too many parameters|^NSC row")


@pytest.fixture(scope="module")
def memo_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('masks') / 'memo.sqlite'}"


@pytest.fixture(scope="module")
def envs(memo_url):
    memo = RewardMemo(memo_url)
    made = {
        (multi_branch, fidelity): NasEnv(DATASET, fidelity, memo, multi_branch=multi_branch, device="cpu")
        for multi_branch in (False, True)
        for fidelity in ("tiny", MAX_PARAMS_FIDELITY)
    }
    yield made
    memo.close()


def copy_of(env: NasEnv) -> NasEnv:
    """The environment in the same state: rows, pointer offsets and step count are all of it (the estimator,
    its memo and the spaces are shared, which stepping does not change)."""
    twin = copy.copy(env)
    twin.rows, twin.pointer_offsets = list(env.rows), list(env.pointer_offsets)
    return twin


def walk(env: NasEnv, choices: list[int]) -> None:
    """From a reset, take the allowed non-terminal action ``choice`` mod their number for each choice, and
    stop in the last state before one that would end the episode (at the maximum depth, say)."""
    env.reset(seed=0)
    for choice in choices:
        allowed = [a for a in np.flatnonzero(env.action_masks()) if a != TERMINAL]
        if not allowed:
            return
        before = copy_of(env)
        _, _, terminated, truncated, _ = env.step(int(allowed[choice % len(allowed)]))
        if terminated or truncated:
            env.rows, env.pointer_offsets, env.episode_step = (
                before.rows,
                before.pointer_offsets,
                before.episode_step,
            )
            return


def check_every_action(env: NasEnv) -> None:
    mask = env.action_masks()
    assert mask.dtype == bool and mask.shape == (env.action_space.n,) and mask[TERMINAL]
    for action in range(env.action_space.n):
        reason = env.mask_reason(action)
        assert mask[action] == (not reason)
        _, reward, terminated, truncated, info = copy_of(env).step(action)
        ended_by = info["ended_by"]
        if not mask[action]:  # ends the episode with reward 0, for the reason the mask gave
            assert reward == 0.0 and terminated and not truncated
            if reason == POINTER_OUT_OF_BOUNDS:
                assert ended_by == POINTER_OUT_OF_BOUNDS
            else:
                assert ended_by == INVALID_ARCHITECTURE and not info["valid"] and info["reason"] == reason
                assert KNOWN_BEFORE_TRAINING.search(reason)
        else:  # never ends it for a reason the mask could know (a failed training may still score 0)
            assert ended_by != POINTER_OUT_OF_BOUNDS
            assert not (ended_by == INVALID_ARCHITECTURE and KNOWN_BEFORE_TRAINING.search(info["reason"]))


@pytest.mark.parametrize("fidelity", ["tiny", MAX_PARAMS_FIDELITY])
@pytest.mark.parametrize("multi_branch", [False, True], ids=["chain", "multi_branch"])
@settings(max_examples=40, database=None, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(choices=st.lists(st.integers(0, 1000), max_size=12))
def test_masked_actions_end_the_episode_invalid_and_allowed_ones_never_for_a_known_reason(
    envs, multi_branch, fidelity, choices
):
    env = envs[multi_branch, fidelity]
    walk(env, choices)
    check_every_action(env)


def test_the_mask_matches_a_rebuilt_environment_and_covers_every_kind(envs, memo_url):
    env = envs[True, "tiny"]
    env.reset(seed=0)
    mask = env.action_masks()
    assert (
        mask.tolist() == [True] * 10 + [False] * 4
    )  # p1 and p2 point at the input: no shift stays in bounds
    for action in (3, 3, 3):  # 12×12 → 6×6 → 3×3 → 1×1: every layer on a 1×1 image but a 1x1 convolution
        env.step(action)
    masked = set(np.flatnonzero(~env.action_masks()).tolist())
    assert masked == {1, 2, 3, 4, 5, 6, 10, 12}
    rebuilt = NasEnv(DATASET, "tiny", RewardMemo(memo_url), multi_branch=True, device="cpu")
    rebuilt.reset(seed=0)
    for action in (3, 3, 3):
        rebuilt.step(action)
    assert rebuilt.action_masks().tolist() == env.action_masks().tolist()
    rebuilt.estimator.memo.close()


def test_masks_reach_the_vectorised_environments_of_a_run_also_through_the_meta_rl_wrapper(memo_url):
    memo = RewardMemo(memo_url)
    for algo in ("maskable_ppo", "meta_a2c"):
        config = RunConfig.create(
            algo, envs=[DATASET], timesteps=5, fidelity="tiny", memo=memo_url, device="cpu"
        )
        venv = make_vec_env(config, DATASET, memo, 5)
        venv.reset()
        assert is_masking_supported(venv)
        assert get_action_masks(venv).tolist() == [[True] * 8]
        venv.close()
    memo.close()
    estimator = PerformanceEstimator(DATASET, "tiny", memo_url, "cpu")
    wrapped = MetaRLWrapper(NasEnv(estimator=estimator, multi_branch=True), trial_steps=3)
    wrapped.reset(seed=0)
    assert wrapped.action_masks().tolist() == wrapped.unwrapped.action_masks().tolist()
    estimator.memo.close()


@pytest.mark.parametrize("multi_branch", [False, True], ids=["chain", "multi_branch"])
def test_maskable_ppo_from_the_training_command_never_takes_a_masked_action(
    multi_branch, tmp_path, memo_url, monkeypatch
):
    taken = []  # (action, its mask reason) of every step the run takes
    step = NasEnv.step

    def spied_step(self, action):
        taken.append((int(action), self.mask_reason(int(action))))
        return step(self, action)

    monkeypatch.setattr(NasEnv, "step", spied_step)
    argv = ["--algo", "maskable_ppo", "--envs", DATASET, "--timesteps", "24", "--fidelity", "tiny"]
    argv += ["-params", "n_steps:8", "batch_size:8", "--memo", memo_url, "-f", str(tmp_path), "--no-progress"]
    assert train.main(argv + (["--multi-branch"] if multi_branch else [])) == 0
    assert len(taken) == 24 and all(reason == "" for _, reason in taken)
    steps = pd.read_csv(tmp_path / "steps.csv", keep_default_na=False)
    assert len(steps) == 24 and steps["action"].tolist() == [action for action, _ in taken]
    assert not steps["reason"].str.contains(KNOWN_BEFORE_TRAINING).any()
