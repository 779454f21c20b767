"""MetaA2C (§4.2.5): the A2C update of Eq. 1 on a recurrent policy, transfer, save/load, meta-learning."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_nas.algos import MetaA2C
from sb3_nas.algos.meta_a2c import MlpLstmPolicy


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small LSTMs run far faster on one thread than on cores shared with other jobs."""
    n_threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(n_threads)


class ChainEnv(gym.Env):
    """Deterministic episodes of ``length`` steps: observation the step one-hot, reward a function of it."""

    max_length = 5

    def __init__(self, length: int = 3):
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, (self.max_length,), np.float32)
        self.action_space = spaces.Discrete(3)

    def _obs(self) -> np.ndarray:
        return np.eye(self.max_length, dtype=np.float32)[self.step_index]

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.step_index = 0
        return self._obs(), {}

    def step(self, action):
        reward = 1.0 if int(action) == self.step_index % 3 else -0.5 * self.step_index
        self.step_index += 1
        terminated = self.step_index >= self.length
        obs = np.zeros(self.max_length, np.float32) if terminated else self._obs()
        # terminated, never truncated: no time-limit bootstrap mixes into the rewards
        return obs, reward, terminated, False, {}


class BanditTrialEnv(gym.Env):
    """A meta-RL trial of a two-armed bandit, the good arm redrawn at every reset (one trial = one episode).

    The observation is s_t = one-hot(a_{t-1}) ‖ r_{t-1} ‖ t / n_pulls (§4.2.4), zeros before the first pull.
    """

    def __init__(self, p_good: float = 0.9, p_bad: float = 0.1, n_pulls: int = 20):
        self.p_good, self.p_bad, self.n_pulls = p_good, p_bad, n_pulls
        self.observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Discrete(2)

    def _obs(self, action: int | None, reward: float) -> np.ndarray:
        obs = np.zeros(4, np.float32)
        if action is not None:
            obs[action] = 1.0
        obs[2], obs[3] = reward, self.pull / self.n_pulls
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.good_arm, self.pull = int(self.np_random.integers(2)), 0
        return self._obs(None, 0.0), {}

    def step(self, action):
        action = int(action)
        p_reward = self.p_good if action == self.good_arm else self.p_bad
        reward = float(self.np_random.random() < p_reward)
        self.pull += 1
        return self._obs(action, reward), reward, self.pull >= self.n_pulls, False, {}


class SnapshotRollouts(BaseCallback):
    """Copies each finished rollout with its next observation, and the LSTM state as ``learn`` starts."""

    def __init__(self):
        super().__init__()
        self.rollouts, self.start_states = [], []

    def _on_training_start(self) -> None:
        self.start_states.append(copy.deepcopy(self.model._last_lstm_states))

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.rollouts.append(
            {
                "obs": buffer.observations.copy(),
                "actions": buffer.actions.copy(),
                "rewards": buffer.rewards.copy(),
                "episode_starts": buffer.episode_starts.copy(),
                "next_obs": self.model._last_obs.copy(),
                "next_done": self.model._last_episode_starts.copy(),
            }
        )

    def _on_step(self) -> bool:
        return True


def step_lstm(policy, obs, episode_starts, state):
    """Runs the policy's LSTM one step at a time for one environment, zeroing the state at episode starts."""
    outputs = []
    for x, start in zip(obs, episode_starts, strict=True):
        if start:
            state = tuple(th.zeros_like(s) for s in state)
        output, state = policy.lstm_actor(th.as_tensor(x).view(1, 1, -1), state)
        outputs.append(output.view(-1))
    return th.stack(outputs), state


def eq1_loss(policy, rollout, first_states, gamma, ent_coef, vf_coef):
    """The A2C loss whose gradient is Eq. 1, R_t the bootstrapped return, computed without SB3's buffers."""
    n_steps, n_envs = rollout["rewards"].shape
    policy_terms, value_terms, entropies = [], [], []
    for env in range(n_envs):
        latent, last_state = step_lstm(
            policy, rollout["obs"][:, env], rollout["episode_starts"][:, env], first_states[env]
        )
        dist = th.distributions.Categorical(logits=policy.action_net(latent))
        values = policy.value_net(latent).flatten()
        with th.no_grad():  # the bootstrap value V(s_{t+j}) is a constant
            if rollout["next_done"][env]:
                next_value = th.tensor(0.0)
            else:
                next_latent, _ = step_lstm(policy, rollout["next_obs"][env : env + 1], [False], last_state)
                next_value = policy.value_net(next_latent).flatten()[0]
        returns, ret = [], next_value
        for t in reversed(range(n_steps)):
            ends_here = (
                rollout["next_done"][env] if t == n_steps - 1 else rollout["episode_starts"][t + 1, env]
            )
            ret = rollout["rewards"][t, env] + gamma * (1.0 - float(ends_here)) * ret
            returns.insert(0, ret)
        returns = th.stack([th.as_tensor(r, dtype=th.float32) for r in returns])
        advantages = (returns - values).detach()
        log_probs = dist.log_prob(th.as_tensor(rollout["actions"][:, env, 0]).long())
        policy_terms.append(advantages * log_probs)
        value_terms.append((returns - values) ** 2)
        entropies.append(dist.entropy())
    mean = lambda terms: th.cat(terms).mean()  # noqa: E731
    return -mean(policy_terms) + vf_coef * mean(value_terms) - ent_coef * mean(entropies)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_update_gradient_is_the_a2c_gradient_of_eq1(n_envs):
    # episodes of 3 and 4 steps, rollouts of 7: resets inside a rollout, rollouts start and end mid-episode
    venv = DummyVecEnv([lambda length=length: ChainEnv(length) for length in (3, 4)[:n_envs]])
    model = MetaA2C("MlpLstmPolicy", venv, n_steps=7, max_grad_norm=1e9, seed=0)
    params_at_first_rollout = copy.deepcopy(model.policy)
    snapshot = SnapshotRollouts()
    model.learn(7 * n_envs, callback=snapshot)  # first rollout, real update

    grads = {}
    model.policy.optimizer.step = lambda *args, **kwargs: grads.update(
        {name: p.grad.clone() for name, p in model.policy.named_parameters()}
    )
    model.learn(7 * n_envs, callback=snapshot, reset_num_timesteps=False)  # second rollout, gradient captured
    first, second = snapshot.rollouts

    # the second rollout starts from the LSTM state the trial reached under the first rollout's weights
    zero = (th.zeros(1, 1, 128), th.zeros(1, 1, 128))
    with th.no_grad():
        states = [
            step_lstm(params_at_first_rollout, first["obs"][:, env], first["episode_starts"][:, env], zero)[1]
            for env in range(n_envs)
        ]
    assert any(state[0].abs().sum() > 0 for state in states)
    loss = eq1_loss(model.policy, second, states, gamma=0.9, ent_coef=0.01, vf_coef=0.5)
    names, params = zip(*model.policy.named_parameters(), strict=True)
    expected = dict(zip(names, th.autograd.grad(loss, params), strict=True))

    assert grads.keys() == expected.keys()
    for name in names:
        assert th.allclose(grads[name], expected[name], rtol=1e-4, atol=1e-7), name
    # both losses train the shared LSTM (§4.2.5), not the value head alone
    assert grads["lstm_actor.weight_hh_l0"].abs().sum() > 0 and grads["value_net.weight"].abs().sum() > 0


def test_one_optimizer_step_per_rollout_and_a2c_logs():
    model = MetaA2C("MlpLstmPolicy", ChainEnv(3), seed=0)
    n_calls = []
    real_step = model.policy.optimizer.step
    model.policy.optimizer.step = lambda *args, **kwargs: n_calls.append(1) or real_step(*args, **kwargs)

    model.learn(3 * model.n_steps)

    assert len(n_calls) == 3 and model._n_updates == 3
    assert all(int(state["step"]) == 3 for state in model.policy.optimizer.state.values())
    logged = set(model.logger.name_to_value)
    assert {
        "train/entropy",
        "train/entropy_loss",
        "train/policy_loss",
        "train/value_loss",
        "train/explained_variance",
        "train/n_updates",
        "train/learning_rate",
    } <= logged
    assert model.logger.name_to_value["train/entropy"] == pytest.approx(
        -model.logger.name_to_value["train/entropy_loss"]
    )


def test_defaults_are_the_papers():
    model = MetaA2C("MlpLstmPolicy", ChainEnv(3))

    # j, γ, η, α of §4.2.5 and the reference's vf_coef, max_grad_norm; λ = 1 gives R_t of Eq. 1
    assert (model.n_steps, model.gamma, model.ent_coef, model.learning_rate) == (5, 0.9, 0.01, 1e-3)
    assert (model.gae_lambda, model.vf_coef, model.max_grad_norm) == (1.0, 0.5, 0.5)
    # the reference's TensorFlow RMSProp (docs/design.md), with SB3's A2C settings
    optimizer = model.policy.optimizer
    assert type(optimizer) is RMSpropTFLike
    group = optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"], group["weight_decay"]) == (1e-3, 0.99, 1e-5, 0)
    assert (group["momentum"], group["centered"]) == (0, False)
    # Fig. 7: one LSTM of 128 units shared by both heads, each head one linear layer on its output
    policy = model.policy
    assert isinstance(policy, MlpLstmPolicy)
    assert (policy.lstm_actor.hidden_size, policy.lstm_actor.num_layers) == (128, 1)
    assert policy.shared_lstm and policy.lstm_critic is None and policy.critic is None
    assert len(policy.mlp_extractor.policy_net) == 0 and len(policy.mlp_extractor.value_net) == 0
    assert isinstance(policy.action_net, th.nn.Linear) and policy.action_net.in_features == 128
    assert isinstance(policy.value_net, th.nn.Linear) and policy.value_net.in_features == 128


def test_user_policy_kwargs_win_over_defaults():
    model = MetaA2C(
        "MlpLstmPolicy",
        ChainEnv(3),
        policy_kwargs=dict(lstm_hidden_size=16, enable_critic_lstm=True, optimizer_class=th.optim.Adam),
    )
    assert model.policy.lstm_critic is not None and not model.policy.shared_lstm
    assert model.policy.lstm_actor.hidden_size == 16 and type(model.policy.optimizer) is th.optim.Adam
    # a given optimizer_class comes with its own optimizer_kwargs, neither replaced by the RMSProp defaults
    model = MetaA2C(
        "MlpLstmPolicy",
        ChainEnv(3),
        rms_prop_eps=1e-7,
        policy_kwargs=dict(optimizer_class=th.optim.RMSprop, optimizer_kwargs=dict(alpha=0.9, eps=1e-3)),
    )
    group = model.policy.optimizer.param_groups[0]
    assert type(model.policy.optimizer) is th.optim.RMSprop and (group["alpha"], group["eps"]) == (0.9, 1e-3)


def _first_update(policy_kwargs=None):
    """One rollout and one ``train`` from the seed-0 initial weights: (rollout actions, gradient, update)."""
    model = MetaA2C("MlpLstmPolicy", ChainEnv(4), n_steps=8, seed=0, policy_kwargs=policy_kwargs)
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
    grads = {}
    real_step = model.policy.optimizer.step

    def step(*args, **kwargs):
        grads.update({name: p.grad.clone() for name, p in model.policy.named_parameters()})  # clipped
        return real_step(*args, **kwargs)

    model.policy.optimizer.step = step
    model.learn(model.n_steps)
    update = {name: p.detach() - before[name] for name, p in model.policy.named_parameters()}
    return model.rollout_buffer.actions.copy(), before, grads, update


def test_first_update_is_tensorflow_rmsprops_not_pytorchs():
    # TF's RMSProp starts its mean square at one, ε inside the root; PyTorch's starts at zero
    actions, before, grads, update = _first_update()
    torch_rmsprop = dict(alpha=0.99, eps=1e-5, weight_decay=0)
    torch_actions, torch_before, torch_grads, torch_update = _first_update(
        dict(optimizer_class=th.optim.RMSprop, optimizer_kwargs=torch_rmsprop)
    )
    # the same initial weights, rollout and gradient: only the optimizer differs
    assert np.array_equal(actions, torch_actions)
    for name in before:
        assert th.equal(before[name], torch_before[name]), name
        assert th.allclose(grads[name], torch_grads[name]), name

    lr, alpha, eps = 1e-3, 0.99, 1e-5
    for name, grad in grads.items():  # θ -= lr g / √(α·1 + (1 - α) g² + ε); atol: float32 rounding of θ
        expected = -lr * grad / (alpha + (1 - alpha) * grad**2 + eps).sqrt()
        assert th.allclose(update[name], expected, rtol=1e-3, atol=1e-7), name
    # PyTorch's first step is 10·lr·sign(g) (measured: norm 0.77 against 0.0005 here); at least ten times
    norm = lambda deltas: th.cat([d.flatten() for d in deltas.values()]).norm().item()  # noqa: E731
    assert norm(update) < norm(torch_update) / 10


def test_save_load_keeps_predictions_and_optimizer(tmp_path):
    model = MetaA2C("MlpLstmPolicy", ChainEnv(4), seed=0).learn(30)
    model.save(tmp_path / "meta_a2c.zip")
    loaded = MetaA2C.load(tmp_path / "meta_a2c.zip")

    env = ChainEnv(4)
    obs, _ = env.reset()
    state, loaded_state, episode_start = None, None, np.ones(1, bool)
    for _ in range(8):
        action, state = model.predict(obs, state, episode_start, deterministic=True)
        loaded_action, loaded_state = loaded.predict(obs, loaded_state, episode_start, deterministic=True)
        assert action == loaded_action
        assert all(np.allclose(s, loaded_s) for s, loaded_s in zip(state, loaded_state, strict=True))
        obs, _, done, _, _ = env.step(action)
        if done:
            obs, _ = env.reset()
        episode_start = np.array([done])
    assert np.abs(state[0]).sum() > 0

    saved, restored = model.policy.optimizer.state_dict(), loaded.policy.optimizer.state_dict()
    assert type(loaded.policy.optimizer) is RMSpropTFLike
    assert saved["param_groups"] == restored["param_groups"]
    assert saved["state"].keys() == restored["state"].keys()
    for index, param_state in saved["state"].items():
        assert param_state.keys() == restored["state"][index].keys() >= {"step", "square_avg"}
        assert param_state["step"] == restored["state"][index]["step"] == 6  # RMSpropTFLike counts in an int
        assert th.equal(param_state["square_avg"], restored["state"][index]["square_avg"]), index


def test_transfer_keeps_weights_and_optimizer_and_starts_a_new_trial():
    model = MetaA2C("MlpLstmPolicy", ChainEnv(3), seed=0)
    snapshot = SnapshotRollouts()
    model.learn(2 * model.n_steps, callback=snapshot)
    optimizer = model.policy.optimizer
    reached_state = copy.deepcopy(model._last_lstm_states)
    assert reached_state.pi[0].abs().sum() > 0

    # the same environment, learn resumed: the trial goes on with the LSTM state it reached
    model.learn(2 * model.n_steps, callback=snapshot, reset_num_timesteps=False)
    assert th.equal(snapshot.start_states[-1].pi[0], reached_state.pi[0])

    weights = copy.deepcopy(model.policy.state_dict())
    model.set_env(ChainEnv(4))
    assert all(th.equal(value, model.policy.state_dict()[name]) for name, value in weights.items())
    model.learn(2 * model.n_steps, callback=snapshot, reset_num_timesteps=False)

    # a new environment is a new trial (§4.2.4): zero state; the optimizer carries on (6 steps, not restarted)
    start_state = snapshot.start_states[-1]
    assert all(s.abs().sum() == 0 for s in (*start_state.pi, *start_state.vf))
    assert model.policy.optimizer is optimizer
    assert all(int(state["step"]) == 6 for state in optimizer.state.values())


def evaluate_trials(model, env, n_trials, seed, keep_memory=True):
    """Mean reward per pull over fresh trials, the LSTM state zeroed at each trial's start, actions sampled.

    Without ``keep_memory`` the state is zeroed before every pull as well: the policy sees only s_t.
    """
    total = 0.0
    for trial in range(n_trials):
        obs, _ = env.reset(seed=seed + trial)
        state, episode_start, done = None, np.ones(1, bool), False
        while not done:
            action, state = model.predict(obs, state, episode_start)
            obs, reward, done, _, _ = env.step(action)
            total += reward
            episode_start = np.array([done or not keep_memory])
    return total / (n_trials * env.n_pulls)


@pytest.mark.slow
def test_learns_a_bandit_that_needs_memory_of_the_trial():
    # the good arm is redrawn every trial: a policy blind to the trial's history earns 0.5 per pull.
    # RMSpropTFLike's mean square starts at one, so its first several hundred updates are about lr × the
    # clipped gradient: many short rollouts (j = 5, 1500 updates) and a large α let it get past that.
    # Seeds 1-10 measured 0.77-0.86 with memory, 0.53-0.58 without, a gap of at least 0.21.
    venv = make_vec_env(BanditTrialEnv, n_envs=8, seed=1)
    model = MetaA2C("MlpLstmPolicy", venv, n_steps=5, learning_rate=1.5e-2, seed=1)
    model.learn(60_000)

    with_memory = evaluate_trials(model, BanditTrialEnv(), n_trials=200, seed=10_000)
    without_memory = evaluate_trials(model, BanditTrialEnv(), n_trials=200, seed=10_000, keep_memory=False)
    assert with_memory >= 0.7
    # what it learned lives in the LSTM state carried across the trial's pulls (§4.2.4), not in s_t alone
    # (win-stay lose-shift on s_t's previous action and reward would earn about 0.82 without memory)
    assert with_memory - without_memory >= 0.15
