"""Search spaces of tabular benchmarks as a fixed sequence of categorical decisions.

An architecture of such a space is one choice per decision (NAS-Bench-Graph: a link pattern, then an operation
per node; NAS-Bench-201: an operation per edge). The agent makes the decisions in order; a state is the prefix
decided so far, and the undecided rest takes each decision's documented default, so every state denotes one
architecture, whose flat index (mixed radix over the decisions, the first most significant) addresses the
benchmark's decoded table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Decision:
    """One categorical decision: its name, its choices (in the benchmark's notation) and its default."""

    name: str
    choices: tuple[str, ...]
    default: int

    def __post_init__(self) -> None:
        if not 0 <= self.default < len(self.choices):
            raise ValueError(f"decision {self.name}: default {self.default} is not one of its choices")


@dataclass(frozen=True)
class DecisionSpace:
    """A search space of ``decisions`` made in order.

    The state encoding (one row per decision, slot 0 for "undecided" and slot 1 + c for choice c, rows of the
    widest decision's width) and the action count (the widest decision's choices, then the terminal action)
    are the same whichever dataset the table comes from, so one policy carries from dataset to dataset.
    """

    name: str
    decisions: tuple[Decision, ...]

    @property
    def n_decisions(self) -> int:
        return len(self.decisions)

    @cached_property
    def max_choices(self) -> int:
        return max(len(decision.choices) for decision in self.decisions)

    @property
    def terminal_action(self) -> int:
        """The action that ends the episode, the last one."""
        return self.max_choices

    @property
    def n_actions(self) -> int:
        return self.max_choices + 1

    @cached_property
    def shape(self) -> tuple[int, ...]:
        """The number of choices of each decision: the shape of the decoded table."""
        return tuple(len(decision.choices) for decision in self.decisions)

    @cached_property
    def size(self) -> int:
        """The number of architectures: every combination of choices."""
        return int(np.prod(self.shape))

    @cached_property
    def observation_size(self) -> int:
        return self.n_decisions * (self.max_choices + 1)

    @cached_property
    def defaults(self) -> tuple[int, ...]:
        return tuple(decision.default for decision in self.decisions)

    @cached_property
    def strides(self) -> tuple[int, ...]:
        """How far the table index moves per choice of each decision (mixed radix, first most significant)."""
        strides, stride = [], 1
        for count in reversed(self.shape):
            strides.append(stride)
            stride *= count
        return tuple(reversed(strides))

    def complete(self, prefix: Sequence[int]) -> tuple[int, ...]:
        """The architecture a state denotes: the decided ``prefix``, then the defaults."""
        if len(prefix) > self.n_decisions:
            raise ValueError(f"{self.name}: {len(prefix)} choices for {self.n_decisions} decisions")
        return (*prefix, *self.defaults[len(prefix) :])

    def flat_index(self, choices: Sequence[int]) -> int:
        """The table index of a complete architecture (one choice per decision)."""
        if len(choices) != self.n_decisions:
            raise ValueError(f"{self.name}: {len(choices)} choices for {self.n_decisions} decisions")
        index = 0
        for choice, count, stride in zip(choices, self.shape, self.strides, strict=True):
            if not 0 <= choice < count:
                raise ValueError(f"{self.name}: choice {choice} outside 0..{count - 1}")
            index += int(choice) * stride
        return index

    def choices_of(self, index: int) -> tuple[int, ...]:
        """The choices of the architecture at table index ``index`` (the inverse of :meth:`flat_index`)."""
        if not 0 <= index < self.size:
            raise ValueError(f"{self.name}: index {index} outside 0..{self.size - 1}")
        choices = []
        for stride in self.strides:  # plain arithmetic: a step reads it, np.unravel_index costs 10 µs
            choice, index = divmod(index, stride)
            choices.append(choice)
        return tuple(choices)

    def all_choices(self) -> np.ndarray:
        """Every architecture's choices, ``(size, n_decisions)``, in table order."""
        return np.stack(np.unravel_index(np.arange(self.size), self.shape), axis=1)

    def encode(self, prefix: Sequence[int]) -> np.ndarray:
        """The observation of a state: one one-hot row per decision, flattened (float32)."""
        width = self.max_choices + 1
        encoded = np.zeros((self.n_decisions, width), dtype=np.float32)
        encoded[np.arange(self.n_decisions), 0] = 1.0
        for position, choice in enumerate(prefix):
            encoded[position, 0] = 0.0
            encoded[position, 1 + choice] = 1.0
        return encoded.reshape(-1)
