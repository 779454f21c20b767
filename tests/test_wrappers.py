"""The meta-RL wrapper (§4.2.4): observation layout, trials spanning inner episodes, memory reset modes."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_nas.algos import MetaA2C, MetaRLWrapper
from sb3_nas.envs import NasEnv
from sb3_nas.estimation import PerformanceEstimator


class CountdownEnv(gym.Env):
    """Episodes of ``length`` steps; the reward is the action's index / 10; the observation is the step."""

    def __init__(self, length: int = 3, n_actions: int = 4):
        self.length = length
        self.action_space = gym.spaces.Discrete(n_actions)
        self.observation_space = gym.spaces.Discrete(length + 1)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action):
        self.t += 1
        return self.t, action / 10, self.t >= self.length, False, {}


class TimeLimitEnv(CountdownEnv):
    """A ``CountdownEnv`` whose episodes are cut (truncated) after ``length`` steps instead of ending."""

    def step(self, action):
        observation, reward, terminated, _, info = super().step(action)
        return observation, reward, False, terminated, info


def flags(env, n_steps):
    """(terminated, truncated) of ``n_steps`` steps, each with action 1."""
    return [tuple(env.step(1)[2:4]) for _ in range(n_steps)]


def test_a_trial_ends_in_a_termination_and_inner_episodes_end_inside_it():
    # §4.2.4: the trial is the learner's episode and nothing is earned after it; inner episodes, ended or cut,
    # are invisible to the learner
    env = MetaRLWrapper(CountdownEnv(length=3), trial_steps=4)  # the trial ends inside an inner episode
    env.reset(seed=0)
    assert flags(env, 4) == [(False, False)] * 3 + [(True, False)]
    env = MetaRLWrapper(TimeLimitEnv(length=2), trial_steps=5)
    env.reset(seed=0)
    assert flags(env, 5) == [(False, False)] * 4 + [(True, False)]


def test_with_reset_memory_episode_a_trial_cut_inside_an_inner_episode_is_a_truncation():
    env = MetaRLWrapper(CountdownEnv(length=3), trial_steps=4, reset_memory="episode")
    env.reset(seed=0)
    assert flags(env, 3) == [(False, False), (False, False), (True, False)]  # the inner episode ended
    env.reset()
    assert flags(env, 1) == [(False, True)]  # cut by the end of the trial
    env = MetaRLWrapper(CountdownEnv(length=3), trial_steps=3, reset_memory="episode")
    env.reset(seed=0)
    assert flags(env, 3)[-1] == (True, False)  # an inner episode that ends with the trial ends
    env = MetaRLWrapper(TimeLimitEnv(length=2), trial_steps=5, reset_memory="episode")
    env.reset(seed=0)
    assert flags(env, 2) == [(False, False), (False, True)]  # the inner environment's cut passes through


def _one_rollout(reset_memory: str, trial_steps: int):
    """One MetaA2C rollout of ``trial_steps`` steps whose value function is 2 everywhere: the env's rewards
    and the rollout buffer."""
    venv = DummyVecEnv(
        [lambda: MetaRLWrapper(CountdownEnv(length=3), trial_steps=trial_steps, reset_memory=reset_memory)]
    )
    model = MetaA2C(
        "MlpLstmPolicy", venv, n_steps=trial_steps, gamma=0.9, seed=0, policy_kwargs={"lstm_hidden_size": 8}
    )
    with torch.no_grad():
        model.policy.value_net.weight.zero_()
        model.policy.value_net.bias.fill_(2.0)

    class Rewards(BaseCallback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def _on_step(self):
            self.seen.append(float(self.locals["rewards"][0]))  # before the rollout adds any bootstrap
            return True

    rewards = Rewards()
    model.learn(trial_steps, callback=rewards)
    buffer = model.rollout_buffer
    return np.array(rewards.seen), buffer.rewards[:, 0], buffer.returns[:, 0]


def test_meta_a2c_bootstraps_with_the_terminal_value_only_where_a_trial_is_cut():
    gamma_v = 0.9 * 2.0  # γ · V(terminal observation)
    # the paper's trial: terminated, so its last return is its last reward
    env_rewards, buffer_rewards, returns = _one_rollout("trial", 4)
    assert buffer_rewards == pytest.approx(env_rewards) and returns[-1] == pytest.approx(env_rewards[-1])
    # an inner episode cut by the trial's end: truncated, so the return at the cut includes γ·V(s')
    env_rewards, buffer_rewards, returns = _one_rollout("episode", 4)
    assert buffer_rewards[:3] == pytest.approx(env_rewards[:3])  # the ended inner episode: no bootstrap
    assert buffer_rewards[3] == pytest.approx(env_rewards[3] + gamma_v)
    assert returns[3] == pytest.approx(env_rewards[3] + gamma_v)
    assert returns[2] == pytest.approx(env_rewards[2])  # the end of an inner episode is not bootstrapped


def test_observation_is_state_previous_action_reward_and_episode_step():
    env = MetaRLWrapper(CountdownEnv(length=3, n_actions=4), trial_steps=7)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4 + 4 + 1 + 1,) and env.observation_space.contains(obs)
    assert obs.tolist() == [1, 0, 0, 0] + [0, 0, 0, 0] + [0.0] + [0.0]  # zeros at a trial's start
    obs, reward, terminated, truncated, info = env.step(2)
    assert obs.tolist() == [0, 1, 0, 0] + [0, 0, 1, 0] + [pytest.approx(0.2)] + [1.0]
    assert reward == pytest.approx(0.2) and not terminated and not truncated


def test_a_trial_spans_inner_episodes_and_reports_them():
    env = MetaRLWrapper(CountdownEnv(length=3), trial_steps=7)
    env.reset(seed=0)
    results = [env.step(a) for a in (1, 3, 2, 0, 1, 1, 2)]
    dones = [terminated or truncated for _, _, terminated, truncated, _ in results]
    assert dones == [False] * 6 + [True]
    # after the inner episode ends (3rd step) the wrapper has reset it: c_t is back to 0, the state too
    obs3 = results[2][0]
    assert obs3[-1] == 0.0 and obs3[:4].tolist() == [1, 0, 0, 0]
    assert obs3[4 + 2] == 1.0 and obs3[8] == pytest.approx(0.2)  # but a_{t-1}, r_{t-1} carry over
    finished = [info["inner_episode"] for *_, info in results if "inner_episode" in info]
    assert finished == [
        {
            "episode": 0,
            "length": 3,
            "best_reward": 0.3,
            "accumulated_reward": pytest.approx(0.6),
            "multi_branch": False,
        },
        {
            "episode": 1,
            "length": 3,
            "best_reward": 0.1,
            "accumulated_reward": pytest.approx(0.2),
            "multi_branch": False,
        },
    ]
    with pytest.raises(RuntimeError, match="trial is over"):
        env.step(0)
    obs, _ = env.reset()  # the next trial starts from zeros again
    assert obs[4:].tolist() == [0.0] * 6


def test_reset_memory_episode_ends_the_learner_episode_at_every_inner_episode():
    env = MetaRLWrapper(CountdownEnv(length=3), trial_steps=7, reset_memory="episode")
    env.reset(seed=0)
    dones = []
    for action in (1, 3, 2, 0, 1, 1, 2):
        obs, _, terminated, truncated, _ = env.step(action)
        dones.append(terminated or truncated)
        if (terminated or truncated) and len(dones) < 7:
            obs, _ = env.reset()  # inside the trial: previous action and reward survive the reset
            assert obs[-1] == 0.0 and obs[4 + action] == 1.0
    assert dones == [False, False, True, False, False, True, True]
    assert env.trial_over and env.reset()[0][4:].tolist() == [0.0] * 6


def _episode_starts(reset_memory):
    venv = DummyVecEnv(
        [lambda: MetaRLWrapper(CountdownEnv(length=3), trial_steps=6, reset_memory=reset_memory)]
    )
    model = MetaA2C("MlpLstmPolicy", venv, n_steps=12, seed=0, policy_kwargs={"lstm_hidden_size": 8})
    model.learn(12)
    return model.rollout_buffer.episode_starts[:, 0].tolist()


def test_recurrent_state_is_zeroed_per_trial_or_per_inner_episode():
    # MetaA2C (sb3-contrib's rollout loop) zeroes the LSTM state exactly where episode_starts is 1
    assert _episode_starts("trial") == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert _episode_starts("episode") == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]


def test_nas_environment_in_a_trial(small_digits, tiny_fidelity, memo):
    inner = NasEnv(estimator=PerformanceEstimator(small_digits, tiny_fidelity, memo), multi_branch=True)
    env = MetaRLWrapper(inner, trial_steps=6)
    sb3_check_env(env, warn=True)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (360 + 14 + 2,)
    finished, rewards = [], []
    for action in (1, 11, 8, 7, 0, 7):  # conv, shift p1 to the input, add(p1, p2), terminal; conv, terminal
        obs, reward, terminated, _, info = env.step(action)
        rewards.append(reward)
        finished += [info["inner_episode"]] if "inner_episode" in info else []
    assert terminated and [e["length"] for e in finished] == [4, 2]
    assert finished[0]["multi_branch"] and not finished[1]["multi_branch"]
    # Fig. 9's statistics of each inner episode: its best and its summed reward
    assert rewards[1] == 0.0  # σ = 0: a shift earns nothing
    assert rewards[0] > 0 and rewards[2] > 0 and rewards[3] == rewards[2]  # a terminal repeats the network
    assert [(e["best_reward"], e["accumulated_reward"]) for e in finished] == [
        (max(rewards[:4]), pytest.approx(sum(rewards[:4]))),
        (max(rewards[4:]), pytest.approx(sum(rewards[4:]))),
    ]


def test_bad_arguments():
    with pytest.raises(TypeError, match="Discrete action space"):
        MetaRLWrapper(gym.make("Pendulum-v1"), trial_steps=5)
    with pytest.raises(ValueError, match="reset_memory"):
        MetaRLWrapper(CountdownEnv(), trial_steps=5, reset_memory="never")
    with pytest.raises(ValueError, match="trial_steps"):
        MetaRLWrapper(CountdownEnv(), trial_steps=0)
    assert np.isinf(MetaRLWrapper(CountdownEnv(), trial_steps=5).observation_space.high[-2])
