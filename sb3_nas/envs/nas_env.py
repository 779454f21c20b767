"""The NAS environment of §4.2.3 (Algorithm 1): design a CNN layer by layer in the NSC space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from sb3_nas.data import ImageDataset
from sb3_nas.estimation import Fidelity, PerformanceEstimator, RewardMemo, prepare_data
from sb3_nas.estimation.trainer import too_many_parameters
from sb3_nas.space import (
    MAX_DEPTH,
    NSC,
    Action,
    ActionKind,
    InvalidArchitecture,
    LayerType,
    action_table,
    encode_state,
    is_multi_branch,
    plan_network,
    row_width,
)

MAX_STEPS_CHAIN = 10  # τ, §6.1
MAX_STEPS_MULTI_BRANCH = 20  # τ, §6.2
SIGMA = 0.0  # σ, the share of the accuracy paid for a shift action, §4.2.3

# Why an episode ended: the rules (a)–(e) of §4.2.3.
POINTER_OUT_OF_BOUNDS = "pointer_out_of_bounds"  # (a)
TERMINAL_ACTION = "terminal_action"  # (b)
MAX_DEPTH_REACHED = "max_depth"  # (c)
MAX_STEPS_REACHED = "max_steps"  # (d), a truncation
INVALID_ARCHITECTURE = "invalid_architecture"  # (e)

# step info that depends on the memo's history, not on the state and the action (NasEnv's ``memo_info``)
MEMO_INFO_KEYS = ("memo_hit", "train_seconds")


class NasEnv(gym.Env):
    """Neural architecture design on one dataset: every action edits the NSC state, and the reward is
    the early-stop accuracy of the network the new state builds (§4.2.3, Algorithm 1).

    :param dataset: a registered dataset name or an ``ImageDataset`` (``None``: the default built-in task)
    :param fidelity: a fidelity name or ``Fidelity`` (``None``: the CPU default)
    :param memo: a ``RewardMemo``, a memo URL or path (``None``: ``results/memo.sqlite``)
    :param sigma: σ, the reward of a shift action is σ × the accuracy of the unchanged network
    :param seed: seeds the action space (the environment itself is deterministic)
    :param multi_branch: the 14-action multi-branch space with pointers p1, p2 instead of the 8-action chain
    :param max_depth: d, the maximum number of NSC rows
    :param max_steps: τ, the maximum number of actions in an episode (``None``: 10 chain, 20 multi-branch)
    :param estimator: a ready ``PerformanceEstimator`` (overrides dataset, fidelity, memo and device)
    :param device: where networks train (``None``/``"auto"``: the GPU when there is one, else the CPU)
    :param memo_info: add :data:`MEMO_INFO_KEYS` to each step's info: ``memo_hit`` (the reward came from the
        memo, no network was trained) and ``train_seconds`` (the training time of the network when it was
        scored). The run records and the benchmarks read them. They tell how the reward was obtained, not
        what the step did: a network's first scoring is a miss and every later one a hit, so two identical
        steps differ in them. Gymnasium's ``check_env`` compares the infos of two identical steps from a
        seeded reset, and passes on a fresh memo only without them: the default.

    Each step's info holds ``accuracy``, ``valid``, ``reason`` (why an invalid network scored 0, else
    ``""``), ``nsc`` (the state's rows as tuples), ``network`` (the canonical network), ``episode_step``,
    ``n_params``, ``flops``, ``multi_branch``, ``p1`` and ``p2`` (the layers the pointers point at) and
    ``ended_by`` (the rule that ended the episode, ``""`` while it runs), all of which follow from the state
    and the action; and, with ``memo_info``, the memo's ``memo_hit`` and ``train_seconds``.

    :meth:`action_masks` (sb3-contrib's ``MaskablePPO`` reads it) masks the actions that would end the episode
    with reward 0 for a reason known before any training; :meth:`mask_reason` says why one is masked.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        dataset: ImageDataset | str | None = None,
        fidelity: Fidelity | str | None = None,
        memo: RewardMemo | str | None = None,
        sigma: float = SIGMA,
        seed: int | None = None,
        multi_branch: bool = False,
        max_depth: int = MAX_DEPTH,
        max_steps: int | None = None,
        estimator: PerformanceEstimator | None = None,
        render_mode: str | None = None,
        device: str | None = None,
        memo_info: bool = False,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; known: ansi")
        if not 0.0 <= sigma <= 1.0:
            raise ValueError(f"sigma must lie in [0, 1], got {sigma}")
        if max_depth < 1:
            raise ValueError(f"max_depth must be at least 1, got {max_depth}")
        self.estimator = estimator or PerformanceEstimator(dataset, fidelity, memo, device)
        self.sigma = float(sigma)
        self.multi_branch = bool(multi_branch)
        self.max_depth = int(max_depth)
        default_steps = MAX_STEPS_MULTI_BRANCH if multi_branch else MAX_STEPS_CHAIN
        self.max_steps = int(default_steps if max_steps is None else max_steps)
        self.render_mode = render_mode
        self.memo_info = bool(memo_info)
        self.actions = action_table(self.multi_branch)
        self.observation_space, self.action_space = self.spaces(self.multi_branch, self.max_depth, seed)
        self.rows: list[NSC] = []
        self.pointer_offsets = [0, 0]  # p1, p2: offsets back from the newest layer, §4.2.2
        self.episode_step = 0
        self._network_input: tuple[PerformanceEstimator, tuple[int, int, int], int] | None = None

    @staticmethod
    def spaces(
        multi_branch: bool = False, max_depth: int = MAX_DEPTH, seed: int | None = None
    ) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
        """The observation and action spaces of every environment of the chain or multi-branch space."""
        width = row_width(max_depth, multi_branch)
        observation_space = gym.spaces.Box(0.0, 1.0, (max_depth * width,), np.float32, seed=seed)
        return observation_space, gym.spaces.Discrete(len(action_table(multi_branch)), seed=seed)

    @property
    def dataset(self) -> ImageDataset:
        return self.estimator.dataset

    @property
    def newest(self) -> int:
        """Index of the newest layer (0, the input image, in an empty state)."""
        return len(self.rows)

    @property
    def predecessors(self) -> tuple[int, int]:
        """The layer indices that p1 and p2 point at."""
        return self.newest - self.pointer_offsets[0], self.newest - self.pointer_offsets[1]

    def _observation(self) -> np.ndarray:
        return encode_state(self.rows, self.max_depth, self.multi_branch).reshape(-1)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        self.rows = []
        self.pointer_offsets = [0, 0]
        self.episode_step = 0
        return self._observation(), {"episode_step": 0, "nsc": [], "p1": 0, "p2": 0}

    def _apply(self, chosen: Action) -> tuple[list[NSC], list[int], str]:
        """The rows and pointer offsets after ``chosen``, and ``POINTER_OUT_OF_BOUNDS`` when a pointer leaves
        its bounds (else ``""``), leaving the state as it is: the one transition ``step`` and ``mask_reason``
        share."""
        rows, offsets = list(self.rows), list(self.pointer_offsets)
        if chosen.kind == ActionKind.SHIFT:
            offset = offsets[chosen.pointer - 1] - chosen.step  # "up" is toward newer layers
            offsets[chosen.pointer - 1] = offset
            return rows, offsets, "" if 0 <= offset <= self.newest else POINTER_OUT_OF_BOUNDS
        pred1, pred2 = self.predecessors
        if chosen.kind == ActionKind.TERMINAL:
            pred1 = pred2 = 0
        elif chosen.kind == ActionKind.LAYER:
            pred2 = 0
        rows.append(NSC(self.newest + 1, int(chosen.layer_type), chosen.kernel, pred1, pred2))
        return rows, offsets, ""

    def structural_reason(self, rows: Sequence[Sequence[int]]) -> str:
        """Why the network of ``rows`` scores 0 whatever its training, or ``""``: an illegal NSC row, a layer
        that shrinks the image below one pixel, or more parameters than the fidelity's ``max_params``.

        The same checks, on the same shapes, as the estimator's before it trains (``evaluate_nsc``:
        :func:`~sb3_nas.space.plan_network` on the prepared data's input shape, then the parameter limit of
        ``evaluate_plan``); pure shape inference, nothing is built or trained.
        """
        estimator, input_shape, n_classes = self._planning_input()
        try:
            plan = plan_network(rows, input_shape, n_classes)
        except InvalidArchitecture as error:
            return error.reason
        return too_many_parameters(plan.n_params, estimator.fidelity)

    def _planning_input(self) -> tuple[PerformanceEstimator, tuple[int, int, int], int]:
        """The estimator with the input shape and class count of its prepared data (prepared once, on the
        host: the copy any device's preparation starts from and keeps)."""
        if self._network_input is None or self._network_input[0] is not self.estimator:
            data = prepare_data(self.estimator.dataset, self.estimator.fidelity, "cpu")
            self._network_input = (self.estimator, data.input_shape, data.n_classes)
        return self._network_input

    def mask_reason(self, action: int) -> str:
        """Why ``action`` is masked in the current state, or ``""`` when it is allowed.

        Masked: an action that would end the episode with reward 0 for a reason known before training, rule
        (a) (:data:`POINTER_OUT_OF_BOUNDS`) or rule (e) for a structural reason (:meth:`structural_reason`
        of the new state). The terminal action is never masked, nor is an action for ending the episode
        by (c) or (d), the maximum depth or τ, which still earns its reward.
        """
        chosen = self.actions[int(action)]
        if chosen.kind == ActionKind.TERMINAL:
            return ""
        rows, _, ended_by = self._apply(chosen)
        return ended_by or self.structural_reason(rows)

    def action_masks(self) -> np.ndarray:
        """One boolean per action, True where it is allowed (sb3-contrib's convention): False exactly where
        :meth:`mask_reason` names a reason. The terminal action is always allowed."""
        return np.array([not self.mask_reason(chosen.id) for chosen in self.actions], dtype=bool)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        chosen = self.actions[int(action)]
        self.episode_step += 1
        self.rows, self.pointer_offsets, ended_by = self._apply(chosen)

        estimate = self.estimator.estimate(self.rows)
        entry = estimate.entry
        if ended_by:
            reward = 0.0
        elif not entry.valid:
            reward, ended_by = 0.0, INVALID_ARCHITECTURE
        elif chosen.kind == ActionKind.SHIFT:
            reward = self.sigma * entry.accuracy
        else:
            reward = entry.accuracy
        if not ended_by:
            if chosen.kind == ActionKind.TERMINAL:
                ended_by = TERMINAL_ACTION
            elif len(self.rows) >= self.max_depth:
                ended_by = MAX_DEPTH_REACHED
            elif self.episode_step >= self.max_steps:
                ended_by = MAX_STEPS_REACHED
        truncated = ended_by == MAX_STEPS_REACHED
        terminated = bool(ended_by) and not truncated
        p1, p2 = self.predecessors
        info = {
            "accuracy": entry.accuracy,
            "valid": entry.valid,
            "reason": entry.reason,
            "nsc": [tuple(row) for row in self.rows],
            "network": entry.network,
            "episode_step": self.episode_step,
            "n_params": entry.n_params,
            "flops": entry.flops,
            "multi_branch": is_multi_branch(self.rows),
            "p1": p1,
            "p2": p2,
            "ended_by": ended_by,
        }
        if self.memo_info:
            info.update(memo_hit=estimate.memo_hit, train_seconds=entry.train_seconds)
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        names = {int(t): t.name.lower() for t in LayerType}
        lines = [f"NSC state ({len(self.rows)}/{self.max_depth} rows), p1→{self.predecessors[0]}"]
        for row in self.rows:
            lines.append(f"  {tuple(row)}  {names[row.type]}")
        return "\n".join(lines)
