"""The NAS environment: Algorithm 1, the termination rules (a)–(e), pointers, σ and the env checkers."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_nas  # noqa: F401  (registers the environments)
from sb3_nas.envs import (
    CHAIN_ENV_ID,
    INVALID_ARCHITECTURE,
    MAX_DEPTH_REACHED,
    MAX_STEPS_REACHED,
    MEMO_INFO_KEYS,
    MULTI_BRANCH_ENV_ID,
    POINTER_OUT_OF_BOUNDS,
    TERMINAL_ACTION,
    NasEnv,
)
from sb3_nas.estimation import PerformanceEstimator
from sb3_nas.estimation import trainer as trainer_module

CONV3, CONV1, MAXPOOL2, MAXPOOL3, TERMINAL, ADD, CONCAT = 1, 0, 3, 4, 7, 8, 9
P1_UP, P1_DOWN, P2_UP, P2_DOWN = 10, 11, 12, 13
# what a step's info holds whatever the memo held: all of it follows from the state and the action
INFO_KEYS = {
    "accuracy", "valid", "reason", "nsc", "network", "episode_step", "n_params", "flops", "multi_branch",
    "p1", "p2", "ended_by",
}  # fmt: skip


@pytest.fixture
def estimator(small_digits, tiny_fidelity, memo):
    return PerformanceEstimator(small_digits, tiny_fidelity, memo)


def run(env, actions):
    env.reset()
    return [env.step(a) for a in actions]


def test_each_step_rewards_the_accuracy_of_the_current_network(estimator):
    env = NasEnv(estimator=estimator, memo_info=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == (250,) and info["episode_step"] == 0 and info["nsc"] == []
    obs, reward, terminated, truncated, info = env.step(CONV3)
    assert set(info) == INFO_KEYS | set(MEMO_INFO_KEYS) and info["train_seconds"] > 0
    assert info["nsc"] == [(1, 1, 3, 0, 0)] and info["episode_step"] == 1
    assert reward == info["accuracy"] > 0 and info["valid"] and not info["memo_hit"]
    assert not terminated and not truncated
    obs, reward, *_, info = env.step(MAXPOOL2)
    assert info["nsc"] == [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0)]  # chain: the predecessor is the previous layer
    assert reward == estimator.estimate(info["nsc"]).entry.accuracy


def test_rule_b_terminal_action_ends_the_episode_with_the_same_network(estimator):
    env = NasEnv(estimator=estimator, memo_info=True)
    (_, r1, *_), (_, r2, terminated, truncated, info) = run(env, [CONV3, TERMINAL])
    assert terminated and not truncated and info["ended_by"] == TERMINAL_ACTION
    assert info["memo_hit"] and r2 == r1  # a trailing terminal is the same network
    assert info["nsc"][-1] == (2, 7, 0, 0, 0)


def test_rule_c_maximum_depth(estimator):
    env = NasEnv(estimator=estimator, max_depth=3)
    steps = run(env, [CONV1, CONV1, CONV1])
    assert [s[2] for s in steps] == [False, False, True]
    assert steps[-1][4]["ended_by"] == MAX_DEPTH_REACHED and len(steps[-1][4]["nsc"]) == 3


def test_rule_d_an_episode_has_at_most_tau_actions_and_the_last_truncates(estimator):
    env = NasEnv(estimator=estimator, multi_branch=True, max_steps=3)
    # shifting p1 down and up keeps the network and the pointers legal
    steps = run(env, [CONV1, P1_DOWN, P1_UP])
    assert [(s[2], s[3]) for s in steps] == [(False, False), (False, False), (False, True)]
    assert [s[4]["ended_by"] for s in steps] == ["", "", MAX_STEPS_REACHED]
    assert steps[-1][4]["episode_step"] == 3 == env.max_steps


@pytest.mark.parametrize(
    ("last", "ended_by"),
    [(TERMINAL, TERMINAL_ACTION), (CONV1, MAX_DEPTH_REACHED), (MAXPOOL3, INVALID_ARCHITECTURE)],
)
def test_a_rule_that_ends_the_episode_at_the_tau_th_action_terminates_it(estimator, last, ended_by):
    # (b), (c) and (e) end the design for good, so they are terminations even at the step budget's end:
    # a learner bootstraps from the next state only after a truncation
    env = NasEnv(estimator=estimator, max_depth=3, max_steps=3)
    _, _, terminated, truncated, info = run(env, [MAXPOOL3, MAXPOOL3, last])[-1]
    assert terminated and not truncated and info["ended_by"] == ended_by


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
    env = NasEnv(estimator=estimator, multi_branch=True, sigma=sigma, memo_info=True)
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
def test_env_checkers_pass_on_a_fresh_memo(small_digits, tiny_fidelity, tmp_path, multi_branch):
    # Gymnasium's checker steps twice identically from a seeded reset and compares the infos: the first
    # scoring of a network trains it and the second reads the memo, so the memo's keys stay out by default
    memo = str(tmp_path / "gym.sqlite")
    env = NasEnv(small_digits, tiny_fidelity, memo, multi_branch=multi_branch)
    gym_check_env(env, skip_render_check=True)
    fresh = NasEnv(small_digits, tiny_fidelity, str(tmp_path / "sb3.sqlite"), multi_branch=multi_branch)
    sb3_check_env(fresh, warn=True)


def test_memo_info_says_whether_the_reward_was_trained_or_read(small_digits, tiny_fidelity, memo):
    env = NasEnv(small_digits, tiny_fidelity, memo, memo_info=True)  # what the run records read
    infos = [step[4] for step in run(env, [CONV3]) + run(env, [CONV3])]
    assert [info["memo_hit"] for info in infos] == [False, True]  # what makes them unfit for check_env
    assert infos[0]["train_seconds"] == infos[1]["train_seconds"] > 0  # the stored training time
    plain = NasEnv(small_digits, tiny_fidelity, memo)  # the default
    assert set(run(plain, [CONV3])[0][4]) == INFO_KEYS


def _once(fault):
    """A replacement for the trainer's per-batch conversion that raises ``fault`` on its first call."""
    real, calls = trainer_module._batch, []

    def batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise fault
        return real(*args, **kwargs)

    return batch


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("nan_loss", "training failed: the training loss diverged (non-finite)"),
        (ValueError("a bug in a layer\ntraceback"), "training failed: ValueError: a bug in a layer"),
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nGPU 0 has ..."),
            "training failed: CUDA out of memory. Tried to allocate 2.00 GiB",
        ),
        (RuntimeError("CUDA out of memory."), "training failed: CUDA out of memory."),
        (MemoryError(), "training failed: MemoryError"),
        # a 1×1 convolution's 32 × (1 + 3) and the prediction module's (32 × 12 × 12 + 1) × 1024 + 1025 × 10
        ("max_params", "too many parameters: 4729994 > 100000"),
    ],
)
def test_a_fault_in_training_scores_zero_with_its_reason_and_the_run_goes_on(
    small_digits, tiny_fidelity, memo, monkeypatch, fault, reason
):
    fidelity = tiny_fidelity.replace(max_params=100_000) if fault == "max_params" else tiny_fidelity
    env = NasEnv(small_digits, fidelity, memo)
    if fault == "nan_loss":
        real_loss = trainer_module.F.cross_entropy
        monkeypatch.setattr(trainer_module.F, "cross_entropy", lambda *a, **k: real_loss(*a, **k) * torch.nan)
    elif fault != "max_params":
        monkeypatch.setattr(trainer_module, "_batch", _once(fault))
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(CONV1)  # 4.7 million parameters on 12×12 images
    assert (reward, info["valid"], info["reason"]) == (0.0, False, reason)
    assert terminated and not truncated and info["ended_by"] == INVALID_ARCHITECTURE
    monkeypatch.undo()  # the fault was one network's: the next one trains
    env.reset()
    _, reward, terminated, _, info = env.step(MAXPOOL2)  # 48 thousand parameters
    assert reward == info["accuracy"] > 0 and info["valid"] and info["reason"] == "" and not terminated


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
