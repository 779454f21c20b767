"""The paper's MDP on a tabular benchmark: decide an architecture decision by decision, each step rewarded
with the table's validation accuracy of the architecture the state denotes (undecided parts at their
defaults), as :class:`~sb3_nas.envs.NasEnv` rewards each NSC state with its early-stop accuracy (§4.2.3)."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np

from sb3_nas.envs.nas_env import INVALID_ARCHITECTURE, MAX_DEPTH_REACHED, TERMINAL_ACTION
from sb3_nas.estimation.lookup import NOT_IN_TABLE, TableEstimator, TableSpec
from sb3_nas.space import nasbench201, nasbench_graph
from sb3_nas.space.decisions import DecisionSpace


class TabularNasEnv(gym.Env):
    """Architecture design on a tabular benchmark's dataset, rewards by look-up.

    An action ``c`` below the terminal action makes choice ``c`` for the next decision of the space (see
    :class:`~sb3_nas.space.decisions.DecisionSpace`); the last action ends the episode, rule (b) of §4.2.3.
    The episode also ends when every decision is made (rule (c): the architecture is complete) and when the
    new state denotes an architecture the table lacks (rule (e): reward 0, ``reason`` says so). Every
    dataset of a benchmark shares one observation and one action space, so a policy carries from one to the
    next; choices a dataset's table does not hold (proteins' four missing operations) are masked.

    :param task: a task spec (``nbgraph:cora``, ``nb201:cifar10/analog_accuracy``) or a :class:`TableSpec`
    :param estimator: a ready :class:`TableEstimator` (overrides ``task``)
    :param seed: seeds the action space (the environment itself is deterministic)

    Each step's info holds, like ``NasEnv``'s: ``accuracy`` (the validation accuracy, the reward unless the
    episode ended by an action it lacks), ``valid``, ``reason``, ``network`` (the architecture's canonical
    form: equivalent ones share it), ``episode_step``, ``n_params`` and ``ended_by``; and, for tabular
    benchmarks, ``test_accuracy`` (never a reward), ``architecture`` (the benchmark's own notation:
    NAS-Bench-Graph ``{"link": [...], "ops": [...]}``, NAS-Bench-201 the 6-tuple of AnalogNAS-Bench op
    indices) and, on NAS-Bench-201, ``arch_str`` (the NAS-Bench-201 arch string).
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        task: str | TableSpec | None = None,
        estimator: TableEstimator | None = None,
        seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; known: ansi")
        if estimator is None and task is None:
            raise ValueError("TabularNasEnv needs a task spec (nbgraph:DATASET, nb201:cifar10) or estimator")
        self.estimator = estimator or TableEstimator(task)
        self.render_mode = render_mode
        space = self.space = self.estimator.space
        self.benchmark = self.estimator.spec.benchmark.key
        self.max_steps = space.n_decisions  # τ: every step decides or ends
        self.observation_space, self.action_space = self.spaces(space, seed)
        self._width = space.max_choices + 1
        self._default_index = space.flat_index(space.defaults)
        self._initial = space.encode(())
        self.prefix: list[int] = []
        self.episode_step = 0
        self._index = self._default_index
        self._observation = self._initial.copy()
        self.distinct: set[str] = set()  # the canonical architectures met (``n_distinct``)
        self._choices_at: dict[int, tuple[int, ...]] = {}
        self._arch_strings: dict[int, str] = {}
        canonical = self.estimator.canonical
        self._canonical = canonical.tolist() if canonical is not None else None

    @staticmethod
    def spaces(space: DecisionSpace, seed: int | None = None) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
        """The observation and action spaces of every environment on ``space``, whatever its dataset."""
        observation_space = gym.spaces.Box(0.0, 1.0, (space.observation_size,), np.float32, seed=seed)
        return observation_space, gym.spaces.Discrete(space.n_actions, seed=seed)

    @property
    def n_distinct(self) -> int:
        """How many distinct architectures (canonical forms) the environment's steps met so far."""
        return len(self.distinct)

    def choices(self) -> tuple[int, ...]:
        """The architecture the state denotes: the choices made, then the defaults."""
        return self.space.complete(self.prefix)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        self.prefix = []
        self.episode_step = 0
        self._index = self._default_index
        self._observation = self._initial.copy()
        return self._observation.copy(), {"episode_step": 0, "architecture": self.notation(self._index)}

    def _next_index(self, choice: int) -> int | None:
        """The table index after ``choice`` for the next decision, or ``None`` when it has no such choice."""
        position = len(self.prefix)
        decision = self.space.decisions[position]
        if choice >= len(decision.choices):
            return None
        return self._index + (choice - decision.default) * self.space.strides[position]

    def mask_reason(self, action: int) -> str:
        """Why ``action`` is masked now (``""``: allowed): a choice the decision lacks, or one making an
        architecture the table does not hold. The terminal action is never masked."""
        action = int(action)
        if action == self.space.terminal_action or len(self.prefix) >= self.space.n_decisions:
            return ""
        index = self._next_index(action)
        if index is None:
            return f"{self.space.decisions[len(self.prefix)].name} has no choice {action}"
        return "" if self.estimator.score(index)[0] else NOT_IN_TABLE

    def action_masks(self) -> np.ndarray:
        """One boolean per action, True where allowed (sb3-contrib's convention): False exactly where
        :meth:`mask_reason` names a reason."""
        return np.array([not self.mask_reason(a) for a in range(self.space.n_actions)], dtype=bool)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not 0 <= action < self.space.n_actions:
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        self.episode_step += 1
        ended_by = reason = ""
        if action == self.space.terminal_action:
            ended_by = TERMINAL_ACTION
        else:
            index = self._next_index(action)
            if index is None:
                ended_by, reason = INVALID_ARCHITECTURE, self.mask_reason(action)
            else:
                position = len(self.prefix)
                self.prefix.append(action)
                self._index = index
                at = position * self._width
                self._observation[at] = 0.0
                self._observation[at + 1 + action] = 1.0
        present, accuracy, test_accuracy = self.estimator.score(self._index)
        if ended_by == INVALID_ARCHITECTURE:
            present = False
        elif not present:
            ended_by, reason = INVALID_ARCHITECTURE, NOT_IN_TABLE
        elif not ended_by and len(self.prefix) == self.space.n_decisions:
            ended_by = MAX_DEPTH_REACHED
        network = self._network(self._index)
        if present:
            self.distinct.add(network)
        info = {
            "accuracy": accuracy if present else 0.0,
            "test_accuracy": test_accuracy if present else 0.0,
            "valid": present,
            "reason": reason,
            "network": network,
            "architecture": self.notation(self._index),
            "episode_step": self.episode_step,
            "n_params": self.estimator.parameters(self._index),
            "ended_by": ended_by,
        }
        if self.benchmark == nasbench201.BENCHMARK:
            info["arch_str"] = self._arch_string(self._index)
        reward = accuracy if present else 0.0
        return self._observation.copy(), reward, bool(ended_by), False, info

    def _network(self, index: int) -> str:
        """The canonical form of the architecture at ``index``: equivalent architectures share it."""
        return str(self._canonical[index]) if self._canonical is not None else str(index)

    def _choices(self, index: int) -> tuple[int, ...]:
        """``space.choices_of(index)``, remembered: a step needs it, and tuples can be shared."""
        choices = self._choices_at.get(index)
        if choices is None:
            choices = self._choices_at[index] = self.space.choices_of(index)
        return choices

    def _arch_string(self, index: int) -> str:
        text = self._arch_strings.get(index)
        if text is None:
            text = self._arch_strings[index] = nasbench201.arch_string(self._choices(index))
        return text

    def notation(self, index: int) -> Any:
        """The architecture at ``index`` in the benchmark's own notation (a new object each call)."""
        choices = self._choices(index)
        if self.benchmark == nasbench_graph.BENCHMARK:
            return nasbench_graph.architecture(choices)
        return list(nasbench201.anb_key(choices))

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        decided = len(self.prefix)
        lines = [f"{self.estimator.name}: {decided}/{self.space.n_decisions} decided"]
        for position, (decision, choice) in enumerate(zip(self.space.decisions, self.choices(), strict=True)):
            mark = "" if position < decided else "  (default)"
            lines.append(f"  {decision.name}: {decision.choices[choice]}{mark}")
        lines.append(f"  {json.dumps(self.notation(self._index))}")
        return "\n".join(lines)
