"""sb3-contrib's ARS (Mania et al., 2018) with SB3's callback contract, so that a NAS run records its steps.

ARS evaluates each candidate policy with SB3's ``evaluate_policy`` and calls the callback's ``on_step``
without the step's ``actions``, ``rewards``, ``dones`` and ``infos``, ignoring what it returns, and counts a
step once per worker and call. Here each call hands the callback that worker's step, counts one step, and a
callback that returns False (the run's budget is spent) ends ``learn`` there: the update whose candidates it
cut is not made, as SB3's algorithms do not train on a rollout the budget cut. Resuming sets ARS's own weight
vector from the restored policy, and a rollout starts before an update draws its noise (checkpoints are
taken there).
"""

from __future__ import annotations

from typing import Any

from sb3_contrib import ARS as ContribARS
from stable_baselines3.common.callbacks import BaseCallback


class _BudgetSpent(Exception):
    """Raised inside an evaluation when the callback asks to stop."""


class _RolloutStarted:
    """The callback of an update whose ``on_rollout_start`` was called already: the inner call is skipped."""

    def __init__(self, callback: BaseCallback) -> None:
        self._callback = callback

    def on_rollout_start(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._callback, name)


class ARS(ContribARS):
    """Augmented Random Search whose callback sees every step and can stop it (see the module's text)."""

    _stop_callback: BaseCallback | None = None

    def _trigger_callback(
        self, _locals: dict[str, Any], _globals: dict[str, Any], callback: BaseCallback, n_envs: int
    ) -> None:
        worker = _locals["i"]
        self.num_timesteps += 1
        callback.update_locals(
            {
                "actions": _locals["actions"][worker : worker + 1],
                "rewards": _locals["rewards"][worker : worker + 1],
                "dones": _locals["dones"][worker : worker + 1],
                "infos": [_locals["infos"][worker]],
            }
        )
        if not callback.on_step():
            self._stop_callback = callback
            raise _BudgetSpent

    def _do_one_update(self, callback: BaseCallback, async_eval: Any) -> None:
        # the rollout starts before the update draws its noise: a checkpoint there holds the generators that a
        # resumed run draws the same candidates from (sb3-contrib starts it after the draw)
        callback.on_rollout_start()
        super()._do_one_update(_RolloutStarted(callback), async_eval)  # type: ignore[arg-type]

    def learn(self, total_timesteps: int, callback: Any = None, **kwargs: Any) -> ARS:
        try:
            return super().learn(total_timesteps, callback=callback, **kwargs)
        except _BudgetSpent:
            stopped, self._stop_callback = self._stop_callback, None  # not saved with the model
            if stopped is not None:
                stopped.on_training_end()
            return self

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True, device: Any = "auto") -> None:
        super().set_parameters(load_path_or_dict, exact_match=exact_match, device=device)
        if getattr(self, "weights", None) is not None:  # ARS steps from this vector, not from the policy
            from torch.nn.utils import parameters_to_vector

            self.weights = parameters_to_vector(self.policy.parameters()).detach()
