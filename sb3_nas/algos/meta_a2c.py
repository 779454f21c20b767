"""Meta-A2C (§4.2.5, Fig. 7): synchronous advantage actor-critic, one worker, on a recurrent policy.

Built on sb3-contrib's recurrent pipeline: RecurrentPPO's policy, rollout buffer, rollout collection and
LSTM-state handling, with the A2C update of Mnih et al. (2016) in place of PPO's.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticCnnPolicy,
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)
from sb3_contrib.common.recurrent.type_aliases import (
    RecurrentDictRolloutBufferSamples,
    RecurrentRolloutBufferSamples,
    RNNStates,
)
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

SelfMetaA2C = TypeVar("SelfMetaA2C", bound="MetaA2C")


class _CriticTrainsSharedLstm:
    """With ``shared_lstm``, lets the value loss train the shared LSTM as well as the value head.

    sb3-contrib feeds its critic a *detached* copy of a shared LSTM's output, so only the actor's loss would
    train the LSTM; in A2C θ and θ_v share everything but the output layers (§4.2.5), so both losses train it.
    """

    def evaluate_actions(
        self, obs: th.Tensor, actions: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        if not self.shared_lstm:
            return super().evaluate_actions(obs, actions, lstm_states, episode_starts)
        features = self.extract_features(obs)  # a shared LSTM implies a shared features extractor
        latent, _ = self._process_sequence(features, lstm_states.pi, episode_starts, self.lstm_actor)
        distribution = self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent))
        values = self.value_net(self.mlp_extractor.forward_critic(latent))
        return values, distribution.log_prob(actions), distribution.entropy()


class MlpLstmPolicy(_CriticTrainsSharedLstm, RecurrentActorCriticPolicy):
    """sb3-contrib's ``MlpLstmPolicy`` whose shared LSTM is trained by both losses."""


class CnnLstmPolicy(_CriticTrainsSharedLstm, RecurrentActorCriticCnnPolicy):
    """sb3-contrib's ``CnnLstmPolicy`` whose shared LSTM is trained by both losses."""


class MultiInputLstmPolicy(_CriticTrainsSharedLstm, RecurrentMultiInputActorCriticPolicy):
    """sb3-contrib's ``MultiInputLstmPolicy`` whose shared LSTM is trained by both losses."""


class MetaA2C(RecurrentPPO):
    """Meta-A2C (§4.2.5): one-worker synchronous A2C on an LSTM policy, for deep meta-RL (§4.2.4).

    One gradient step per rollout of ``n_steps``, back-propagated through the whole rollout from the LSTM
    state stored at its first step; no epochs, minibatches, probability ratio or clipping. The recurrent state
    is zeroed only where ``episode_starts`` says so: a trial must be one episode of the environment this
    algorithm sees (the meta-RL wrapper's job), and a new environment (``set_env``) starts a new trial.

    Usable in three lines::

        model = MetaA2C("MlpLstmPolicy", env, verbose=1)
        model.learn(8000)
        model.set_env(next_env); model.learn(7000, reset_num_timesteps=False)  # transfer (§6)

    :param policy: The policy model to use (``MlpLstmPolicy``, ``CnnLstmPolicy``, ``MultiInputLstmPolicy``
        or a ``RecurrentActorCriticPolicy`` subclass)
    :param env: The environment to learn from (if registered in Gym, can be str); one trial per episode
    :param learning_rate: α, the learning rate; it can be a function of the current progress remaining
        (from 1 to 0)
    :param n_steps: j, the number of steps to run for each environment per update: the horizon of the
        bootstrapped return R_t and the length of back-propagation through time
    :param gamma: γ, the discount factor
    :param gae_lambda: Factor for the Generalized Advantage Estimator; 1.0 gives the bootstrapped return R_t
        of Eq. 1 (the classic A2C advantage)
    :param ent_coef: η, the entropy regularization coefficient
    :param vf_coef: Value function coefficient for the loss calculation
    :param max_grad_norm: The maximum value for the gradient clipping
    :param rms_prop_eps: RMSProp epsilon, inside the square root of the default optimizer, SB3's
        ``RMSpropTFLike`` (TensorFlow's RMSProp, as the reference); used only when ``policy_kwargs`` names no
        ``optimizer_class``
    :param normalize_advantage: Whether to normalize or not the advantage (not in the paper)
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to
        average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation; merged over the paper's
        architecture (one 128-unit LSTM shared by actor and critic, linear heads). Without an
        ``optimizer_class`` the optimizer is SB3's ``RMSpropTFLike`` (alpha 0.99, eps ``rms_prop_eps``,
        weight_decay 0; any ``optimizer_kwargs`` given are replaced, as in SB3's A2C); a given
        ``optimizer_class`` is used with the ``optimizer_kwargs`` given alongside it, untouched
    :param verbose: the verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpLstmPolicy": MlpLstmPolicy,
        "CnnLstmPolicy": CnnLstmPolicy,
        "MultiInputLstmPolicy": MultiInputLstmPolicy,
    }

    def __init__(
        self,
        policy: str | type[RecurrentActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 5,
        gamma: float = 0.9,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        rms_prop_eps: float = 1e-5,
        normalize_advantage: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        policy_kwargs = dict(policy_kwargs or {})
        # Fig. 7: s_t -> LSTM(128) -> linear policy head and linear value head (net_arch=[]: no hidden layers)
        policy_kwargs.setdefault("lstm_hidden_size", 128)
        policy_kwargs.setdefault("n_lstm_layers", 1)
        policy_kwargs.setdefault("net_arch", [])
        if "shared_lstm" not in policy_kwargs and "enable_critic_lstm" not in policy_kwargs:
            # §4.2.5: actor and critic share every parameter but their output layers
            policy_kwargs.update(shared_lstm=True, enable_critic_lstm=False)
        if "optimizer_class" not in policy_kwargs:
            # The reference's TensorFlow RMSProp (docs/design.md): its mean of squared gradients starts at
            # one, ε inside the square root. PyTorch's RMSprop starts at zero: its first step is
            # 10·lr·sign(g), about 10/|g| times TF's lr·g (the clipped gradients here are far below one).
            # SB3's A2C settings.
            policy_kwargs["optimizer_class"] = RMSpropTFLike
            policy_kwargs["optimizer_kwargs"] = dict(alpha=0.99, eps=rms_prop_eps, weight_decay=0)

        # batch_size=None and n_epochs=1 describe the update below (one pass over the whole rollout);
        # RecurrentPPO's clip ranges and target_kl stay at their defaults and are never read by ``train``
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=None,
            n_epochs=1,
            gamma=gamma,
            gae_lambda=gae_lambda,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        new_trial = reset_num_timesteps or self._last_obs is None  # the environment is reset: a new trial
        total_timesteps, callback = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        if new_trial:
            # §4.2.4: h is set to zeros at the start of a trial (RecurrentPPO would keep the last env's state)
            self._last_lstm_states = RNNStates(
                tuple(th.zeros_like(state) for state in self._last_lstm_states.pi),
                tuple(th.zeros_like(state) for state in self._last_lstm_states.vf),
            )
        return total_timesteps, callback

    def _rollout_in_order(self) -> RecurrentRolloutBufferSamples | RecurrentDictRolloutBufferSamples:
        """The whole rollout in time order, one sequence per environment, from the LSTM state of step 0.

        ``RecurrentRolloutBuffer.get`` starts at a random index and cuts sequences at episode starts, which
        suits PPO's minibatches; A2C back-propagates through the rollout as it was collected (§4.2.5).
        """
        buffer = self.rollout_buffer

        def in_order(array: np.ndarray) -> th.Tensor:
            # (n_steps, n_envs, ...) -> (n_envs * n_steps, ...): the layout _process_sequence reads
            return buffer.to_torch(buffer.swap_and_flatten(array))

        if isinstance(buffer.observations, dict):
            observations = {key: in_order(obs) for key, obs in buffer.observations.items()}
            samples_class = RecurrentDictRolloutBufferSamples
        else:
            observations = in_order(buffer.observations)
            samples_class = RecurrentRolloutBufferSamples
        returns = in_order(buffer.returns).flatten()
        # states stored at step 0 have shape (n_layers, n_envs, hidden): one sequence per environment
        first_step_states = RNNStates(
            (buffer.to_torch(buffer.hidden_states_pi[0]), buffer.to_torch(buffer.cell_states_pi[0])),
            (buffer.to_torch(buffer.hidden_states_vf[0]), buffer.to_torch(buffer.cell_states_vf[0])),
        )
        return samples_class(
            observations=observations,
            actions=in_order(buffer.actions),
            old_values=in_order(buffer.values).flatten(),
            old_log_prob=in_order(buffer.log_probs).flatten(),
            advantages=in_order(buffer.advantages).flatten(),
            returns=returns,
            lstm_states=first_step_states,
            episode_starts=in_order(buffer.episode_starts).flatten(),
            mask=th.ones_like(returns),
        )

    def train(self) -> None:
        """Update policy using the currently gathered rollout buffer (one gradient step, whole rollout)."""
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)

        rollout_data = self._rollout_in_order()
        actions = rollout_data.actions
        if isinstance(self.action_space, spaces.Discrete):
            # Convert discrete action from float to long
            actions = actions.long().flatten()
        values, log_prob, entropy = self.policy.evaluate_actions(
            rollout_data.observations, actions, rollout_data.lstm_states, rollout_data.episode_starts
        )
        values = values.flatten()

        advantages = rollout_data.advantages  # R_t - V(s_t) of Eq. 1, fixed during the update
        if self.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy_loss = -(advantages * log_prob).mean()
        value_loss = F.mse_loss(rollout_data.returns, values)
        # Eq. 1: η ∇H(π) favours exploration; approximate the entropy where it has no analytical form
        entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

        self.policy.optimizer.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        self._n_updates += 1

        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/entropy", -entropy_loss.item())  # the policy entropy of Fig. 10
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def learn(
        self: SelfMetaA2C,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "MetaA2C",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfMetaA2C:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
