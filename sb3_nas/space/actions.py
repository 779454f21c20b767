"""The action space of §4.2.2, Table 2: one source of truth for both search spaces."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from sb3_nas.space.nsc import LayerType


class ActionKind(Enum):
    """What an action does to the state."""

    LAYER = "layer"  # append a single-input layer reading p1
    TERMINAL = "terminal"
    MERGE = "merge"  # append an addition / concatenation reading p1 and p2
    SHIFT = "shift"  # move a predecessor pointer, the network is unchanged


class Action(NamedTuple):
    """One row of Table 2."""

    id: int
    kind: ActionKind
    layer_type: LayerType | None
    kernel: int
    pointer: int  # 1 or 2 for shifts, else 0
    step: int  # +1 up (toward newer layers), -1 down, for shifts
    description: str


ACTIONS: tuple[Action, ...] = (
    Action(0, ActionKind.LAYER, LayerType.CONVOLUTION, 1, 0, 0, "convolution 1x1 on p1"),
    Action(1, ActionKind.LAYER, LayerType.CONVOLUTION, 3, 0, 0, "convolution 3x3 on p1"),
    Action(2, ActionKind.LAYER, LayerType.CONVOLUTION, 5, 0, 0, "convolution 5x5 on p1"),
    Action(3, ActionKind.LAYER, LayerType.MAX_POOLING, 2, 0, 0, "max-pooling 2 on p1"),
    Action(4, ActionKind.LAYER, LayerType.MAX_POOLING, 3, 0, 0, "max-pooling 3 on p1"),
    Action(5, ActionKind.LAYER, LayerType.AVG_POOLING, 2, 0, 0, "avg-pooling 2 on p1"),
    Action(6, ActionKind.LAYER, LayerType.AVG_POOLING, 3, 0, 0, "avg-pooling 3 on p1"),
    Action(7, ActionKind.TERMINAL, LayerType.TERMINAL, 0, 0, 0, "terminal"),
    Action(8, ActionKind.MERGE, LayerType.ADDITION, 0, 0, 0, "addition of p1 and p2"),
    Action(9, ActionKind.MERGE, LayerType.CONCATENATION, 0, 0, 0, "concatenation of p1 and p2"),
    Action(10, ActionKind.SHIFT, None, 0, 1, +1, "shift p1 up"),
    Action(11, ActionKind.SHIFT, None, 0, 1, -1, "shift p1 down"),
    Action(12, ActionKind.SHIFT, None, 0, 2, +1, "shift p2 up"),
    Action(13, ActionKind.SHIFT, None, 0, 2, -1, "shift p2 down"),
)

N_CHAIN_ACTIONS = 8  # A0–A7, §4.2.2
N_MULTI_BRANCH_ACTIONS = len(ACTIONS)  # A0–A13
ACTION_NAMES: tuple[str, ...] = tuple(f"A{a.id}" for a in ACTIONS)


def action_table(multi_branch: bool) -> tuple[Action, ...]:
    """The actions available in the chain (A0–A7) or multi-branch (A0–A13) space."""
    return ACTIONS if multi_branch else ACTIONS[:N_CHAIN_ACTIONS]
