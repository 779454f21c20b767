"""The NAS environment: Algorithm 1, the termination rules (a)–(e), pointers, σ and the env checkers."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_nas  # noqa: F401  (registers the environments)
from sb3_nas.envs import (
    CHAIN_ENV_ID,
    INVALID_ARCHITECTURE,
    MAX_DEPTH_REACHED,
    MAX_STEPS_REACHED,
    MULTI_BRANCH_ENV_ID,
    POINTER_OUT_OF_BOUNDS,
    TERMINAL_ACTION,
    NasEnv,
)
from sb3_nas.estimation import PerformanceEstimator

CONV3, CONV1, MAXPOOL2, MAXPOOL3, TERMINAL, ADD, CONCAT = 1, 0, 3, 4, 7, 8, 9
P1_UP, P1_DOWN, P2_UP, P2_DOWN = 10, 11, 12, 13
INFO_KEYS = {"accuracy", "valid", "reason", "nsc", "memo_hit", "episode_step", "n_params"}


@pytest.fixture
def estimator(small_digits, tiny_fidelity, memo):
    return PerformanceEstimator(small_digits, tiny_fidelity, memo)


def run(env, actions):
    env.reset()
    return [env.step(a) for a in actions]


def test_each_step_rewards_the_accuracy_of_the_current_network(estimator):
    env = NasEnv(estimator=estimator)
    obs, info = env.reset(seed=0)
    assert obs.shape == (250,) and info["episode_step"] == 0 and info["nsc"] == []
    obs, reward, terminated, truncated, info = env.step(CONV3)
    assert set(info) >= INFO_KEYS
    assert info["nsc"] == [(1, 1, 3, 0, 0)] and info["episode_step"] == 1
    assert reward == info["accuracy"] > 0 and info["valid"] and not info["memo_hit"]
    assert not terminated and not truncated
    obs, reward, *_, info = env.step(MAXPOOL2)
    assert info["nsc"] == [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0)]  # chain: the predecessor is the previous layer
    assert reward == estimator.estimate(info["nsc"]).entry.accuracy


def test_rule_b_terminal_action_ends_the_episode_with_the_same_network(estimator):
    env = NasEnv(estimator=estimator)
    (_, r1, *_), (_, r2, terminated, truncated, info) = run(env, [CONV3, TERMINAL])
    assert terminated and not truncated and info["ended_by"] == TERMINAL_ACTION
    assert info["memo_hit"] and r2 == r1  # a trailing terminal is the same network
    assert info["nsc"][-1] == (2, 7, 0, 0, 0)


def test_rule_c_maximum_depth(estimator):
    env = NasEnv(estimator=estimator, max_depth=3)
    steps = run(env, [CONV1, CONV1, CONV1])
    assert [s[2] for s in steps] == [False, False, True]
    assert steps[-1][4]["ended_by"] == MAX_DEPTH_REACHED and len(steps[-1][4]["nsc"]) == 3


def test_rule_d_more_than_tau_actions_truncates(estimator):
    env = NasEnv(estimator=estimator, multi_branch=True, max_steps=3)
    # shifting p1 down and up keeps the network and the pointers legal
    steps = run(env, [CONV1, P1_DOWN, P1_UP])
    _, _, terminated, truncated, info = steps[-1]
    assert truncated and not terminated and info["ended_by"] == MAX_STEPS_REACHED


def test_rule_e_invalid_architecture_scores_zero_and_ends(estimator):
    env = NasEnv(estimator=estimator)
    # 12×12 images: max-pool 3 → 4×4, → 1×1, → below 1
    steps = run(env, [MAXPOOL3, MAXPOOL3, MAXPOOL3])
    _, reward, terminated, _, info = steps[-1]
    assert terminated and reward == 0.0 and not info["valid"]
    assert info["ended_by"] == INVALID_ARCHITECTURE and "below 1" in info["reason"]
    assert [s[2] for s in steps[:2]] == [False, False]


def test_rule_a_pointer_out_of_bounds(estimator):
    env = NasEnv(estimator=estimator, multi_branch=True)
    env.reset()
    _, reward, terminated, _, info = env.step(P1_UP)  # p1 already points at the newest layer
    assert terminated and reward == 0.0 and info["ended_by"] == POINTER_OUT_OF_BOUNDS
    run(env, [CONV1])
    _, _, terminated, _, info = env.step(P2_DOWN)  # p2 → the input image: legal
    assert not terminated and info["p2"] == 0
    _, reward, terminated, _, info = env.step(P2_DOWN)  # below the input
    assert terminated and reward == 0.0 and info["ended_by"] == POINTER_OUT_OF_BOUNDS


def test_pointers_choose_the_predecessors_of_merges(estimator):
    env = NasEnv(estimator=estimator, multi_branch=True)
    steps = run(env, [CONV3, MAXPOOL2, P2_DOWN, P2_DOWN, CONCAT, P1_DOWN, P1_DOWN, CONV1, ADD])
    nsc = steps[-1][4]["nsc"]
    # p2 two layers down from the newest (2) is the input; pointers are offsets, so they follow new layers
    assert nsc[2] == (3, 6, 0, 2, 0)
    assert nsc[3] == (4, 1, 1, 1, 0)  # p1 two below the newest (3)
    assert nsc[4] == (5, 5, 0, 2, 2)
    assert steps[-1][4]["multi_branch"]


@pytest.mark.parametrize("sigma", [0.0, 0.1])
def test_shift_rewards_sigma_times_the_unchanged_accuracy(estimator, sigma):
    env = NasEnv(estimator=estimator, multi_branch=True, sigma=sigma)
    (_, conv_reward, *_), (_, shift_reward, terminated, _, info) = run(env, [CONV3, P1_DOWN])
    assert not terminated and info["memo_hit"] and info["nsc"] == [(1, 1, 3, 0, 0)]
    assert shift_reward == pytest.approx(sigma * conv_reward)


def test_chain_and_multi_branch_spaces_via_gymnasium_make(small_digits, tiny_fidelity, memo):
    chain = gym.make(CHAIN_ENV_ID, dataset=small_digits, fidelity=tiny_fidelity, memo=memo)
    multi = gym.make(MULTI_BRANCH_ENV_ID, dataset=small_digits, fidelity="tiny", memo=memo, sigma=0.1)
    assert chain.action_space.n == 8 and chain.observation_space.shape == (250,)
    assert multi.action_space.n == 14 and multi.observation_space.shape == (360,)
    assert chain.unwrapped.max_steps == 10 and multi.unwrapped.max_steps == 20
    assert multi.unwrapped.sigma == 0.1


def test_default_construction_uses_the_builtin_task_and_results_memo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SB3_NAS_MEMO", raising=False)
    env = gym.make(CHAIN_ENV_ID)
    from sb3_nas.data import DEFAULT_DATASET
    from sb3_nas.estimation import DEFAULT_FIDELITY

    assert env.unwrapped.dataset.name == DEFAULT_DATASET
    assert env.unwrapped.estimator.fidelity.name == DEFAULT_FIDELITY
    assert (tmp_path / "results" / "memo.sqlite").exists()


def test_deterministic_rewards_across_fresh_memos(small_digits, tiny_fidelity, tmp_path):
    rewards = []
    for name in ("a", "b"):
        env = NasEnv(small_digits, tiny_fidelity, memo=str(tmp_path / f"{name}.sqlite"))
        rewards.append([s[1] for s in run(env, [CONV3, MAXPOOL2, CONV1])])
    assert rewards[0] == rewards[1]


@pytest.mark.parametrize("multi_branch", [False, True])
def test_env_checkers(estimator, multi_branch):
    env = NasEnv(estimator=estimator, multi_branch=multi_branch)
    # The checkers compare the infos of two identical steps; score every one-step network first so
    # both are memo hits (the first scoring of a network is, by design, the one that is not).
    for action in range(env.action_space.n):
        env.reset()
        env.step(action)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(NasEnv(estimator=estimator, multi_branch=multi_branch), warn=True)


def test_bad_input_names_the_problem(small_digits, memo):
    from sb3_nas.data import UnknownDatasetError
    from sb3_nas.estimation import UnknownFidelityError

    with pytest.raises(UnknownDatasetError, match="no_such_task"):
        NasEnv("no_such_task", memo=memo)
    with pytest.raises(UnknownFidelityError, match="unknown fidelity 'giant'"):
        NasEnv(small_digits, "giant", memo=memo)
    env = NasEnv(small_digits, "tiny", memo=memo)
    env.reset()
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(8)
    assert np.all(env.observation_space.contains(env.reset()[0]))
