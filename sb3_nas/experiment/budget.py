"""DQN's replay buffer and warm-up as fractions of the budget, for rl-baselines3-zoo.

``zoo_configs/dqn.yml`` gives ``buffer_size`` and ``learning_starts`` as fractions of the environment's t_max
(§6.1: the buffer holds t_max / 2). The project's loader turns them into counts before DQN is built
(:func:`~sb3_nas.experiment.hyperparams.resolve_fractions`); plain ``python -m rl_zoo3.train`` cannot, so the
file names this callback, which rl_zoo3 builds from the file's ``callback`` entry and which sets both counts
from the budget of ``learn`` when training starts::

    callback:
      - sb3_nas.experiment.budget.BudgetFractions:
          buffer_size_fraction: 0.5
          learning_starts_fraction: 0.15
"""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from sb3_nas.experiment.hyperparams import resolve_fractions


class BudgetFractions(BaseCallback):
    """At the start of training, set an off-policy model's ``buffer_size`` and ``learning_starts`` to the
    given fractions of the training budget (``learn``'s ``total_timesteps``).

    The replay buffer is rebuilt at the new size only while it is still empty, so a model that resumes with
    stored transitions keeps them. The model's constructor already allocated a buffer of its default size:
    NumPy's zero-filled arrays take memory only as they are written, so that costs address space, not RAM.
    """

    def __init__(
        self,
        buffer_size_fraction: float | None = None,
        learning_starts_fraction: float | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        given = {"buffer_size_fraction": buffer_size_fraction}
        given["learning_starts_fraction"] = learning_starts_fraction
        self.fractions = {key: value for key, value in given.items() if value is not None}

    def _init_callback(self) -> None:
        counts = resolve_fractions(self.fractions, self.model._total_timesteps)
        if "learning_starts" in counts:
            self.model.learning_starts = counts["learning_starts"]
        size = counts.get("buffer_size")
        buffer = getattr(self.model, "replay_buffer", None)
        if size is not None and buffer is not None and size != self.model.buffer_size and buffer.size() == 0:
            self.model.buffer_size = size
            self.model.replay_buffer = type(buffer)(
                size,
                self.model.observation_space,
                self.model.action_space,
                device=self.model.device,
                n_envs=self.model.n_envs,
                optimize_memory_usage=self.model.optimize_memory_usage,
                **(self.model.replay_buffer_kwargs or {}),
            )
        if self.verbose:
            print(f"BudgetFractions: {counts} of {self.model._total_timesteps} steps")

    def _on_step(self) -> bool:
        return True
