"""NAS-Bench-201's cell search space (Dong & Yang, ICLR 2020) as AnalogNAS-Bench encodes it.

A cell is a DAG of four nodes whose six edges each carry one of five operations. AnalogNAS-Bench keys its
table by a 6-tuple of op indices in NASLib's ``nasbench201`` encoding (its training script builds each cell
with NASLib's ``NasBench201SearchSpace.set_spec``): op index i names ``OPERATIONS[i]`` and tuple position j
the edge ``EDGES[j]`` (to ← from, nodes 0 = input … 3 = output). The data agree: the 341 cells with no path
from the input to the output are exactly the cells that score 10%, and the all-``nor_conv_3x3`` cell scores
93.2%. The agent decides the edges in that order; undecided edges are ``none``, so every state is a cell the
table holds (all 15,625 are there).
"""

from __future__ import annotations

from collections.abc import Sequence

from sb3_nas.space.decisions import Decision, DecisionSpace

BENCHMARK = "nb201"
DATASETS = ("cifar10",)
OPERATIONS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")  # by op index
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))  # (to, from), in order
DEFAULT_OPERATION = OPERATIONS.index("none")
# AnalogNAS-Bench's accuracies (percent) a reward may be: the digital one first, then the hardware-aware ones
# and the accuracies after drift (of the digital and of the analog network, 60 s to 30 days)
ACCURACIES = (
    "baseline_accuracy", "ptq_accuracy", "qat_accuracy", "noisy_accuracy", "analog_accuracy",
    "baseline_drift_60", "baseline_drift_3600", "baseline_drift_86400", "baseline_drift_2592000",
    "analog_drift_60", "analog_drift_3600", "analog_drift_86400", "analog_drift_2592000",
)  # fmt: skip
METRICS = ACCURACIES
RECORDS = ("Architecture", "DriftMeasurement")  # the package's classes its pickle names

SPACE = DecisionSpace(
    "NAS-Bench-201",
    tuple(Decision(f"edge {to}<-{source}", OPERATIONS, DEFAULT_OPERATION) for to, source in EDGES),
)


def anb_key(choices: Sequence[int]) -> tuple[int, ...]:
    """AnalogNAS-Bench's key of a cell: its op indices in tuple order (the space's choices, as they are)."""
    return tuple(int(op) for op in choices)


def arch_string(choices: Sequence[int]) -> str:
    """The NAS-Bench-201 arch string of a cell, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    op_of = {edge: OPERATIONS[op] for edge, op in zip(EDGES, choices, strict=True)}
    nodes = ("|".join(f"{op_of[(to, source)]}~{source}" for source in range(to)) for to in (1, 2, 3))
    return "+".join(f"|{node}|" for node in nodes)


def choices_from_arch_string(text: str) -> tuple[int, ...]:
    """The choices of the cell an NAS-Bench-201 arch string names (the inverse of :func:`arch_string`)."""
    op_of: dict[tuple[int, int], int] = {}
    for to, node in enumerate(text.split("+"), start=1):
        for part in node.strip("|").split("|"):
            name, _, source = part.partition("~")
            if name not in OPERATIONS or not source.isdigit():
                raise ValueError(f"arch string {text!r}: {part!r} is not op~node")
            op_of[(to, int(source))] = OPERATIONS.index(name)
    if set(op_of) != set(EDGES):
        raise ValueError(f"arch string {text!r} does not name the six edges of a cell")
    return tuple(op_of[edge] for edge in EDGES)
