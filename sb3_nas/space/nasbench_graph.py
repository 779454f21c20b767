"""NAS-Bench-Graph's search space (Qin et al., NeurIPS 2022 Datasets and Benchmarks): a macro DAG of four
computing nodes, each reading the raw input (0) or an earlier node, with one GNN operation per node.

The nine link patterns are the benchmark's non-isomorphic DAGs (``link[i]`` is the input of node i + 1), in
the package's order, and the operations its nine (five on proteins). The agent decides the link pattern, then
the operation of nodes 1 to 4. Undecided parts take the defaults below: the chain ``[0, 1, 2, 3]`` (the
benchmark's anchor architectures are chains) and ``gcn`` on every node, an operation of every dataset's table,
so that every state denotes an architecture the tables hold — except four ``skip`` nodes, the one architecture
the benchmark leaves out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sb3_nas.space.decisions import Decision, DecisionSpace

BENCHMARK = "nbgraph"
DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")
# Experiment 1 learns on the three citation graphs (Planetoid), in the paper's order of increasing difficulty:
# by the table's median validation accuracy, cora 0.784 > pubmed 0.775 > citeseer 0.676. Experiment 2 meets
# the other six, unseen: co-authorship (cs, physics), co-purchase (photo, computers), arxiv and proteins.
TRAIN_DATASETS = ("cora", "pubmed", "citeseer")
HELD_OUT_DATASETS = ("cs", "physics", "photo", "computers", "arxiv", "proteins")
LINKS: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (0, 0, 1, 1),
    (0, 0, 1, 2),
    (0, 0, 1, 3),
    (0, 1, 1, 1),
    (0, 1, 1, 2),
    (0, 1, 2, 2),
    (0, 1, 2, 3),
)
OPERATIONS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
PROTEINS_OPERATIONS = ("gcn", "sage", "arma", "fc", "skip")  # the operations proteins' table was trained with
N_NODES = 4
DEFAULT_LINK = LINKS.index((0, 1, 2, 3))
DEFAULT_OPERATION = OPERATIONS.index("gcn")

SPACE = DecisionSpace(
    "NAS-Bench-Graph",
    (
        Decision("link", tuple(str(list(link)) for link in LINKS), DEFAULT_LINK),
        *(Decision(f"node {node}", OPERATIONS, DEFAULT_OPERATION) for node in range(1, N_NODES + 1)),
    ),
)


def operations_of(dataset: str) -> tuple[str, ...]:
    """The operations ``dataset``'s table was trained with."""
    return PROTEINS_OPERATIONS if dataset == "proteins" else OPERATIONS


def architecture(choices: Sequence[int]) -> dict[str, Any]:
    """The architecture of complete ``choices`` in the benchmark's notation, ``{"link": [...], "ops": [...]}``
    as the package's ``Arch(link, ops)`` takes them."""
    return {"link": list(LINKS[choices[0]]), "ops": [OPERATIONS[op] for op in choices[1:]]}


def choices_from(link: Sequence[int], ops: Sequence[str]) -> tuple[int, ...]:
    """The choices of an architecture given in the benchmark's notation (one of the nine link patterns)."""
    link = tuple(int(node) for node in link)
    if link not in LINKS:
        raise ValueError(f"link {list(link)} is not one of NAS-Bench-Graph's nine patterns")
    unknown = [op for op in ops if op not in OPERATIONS]
    if unknown or len(ops) != N_NODES:
        raise ValueError(f"ops {list(ops)}: expected {N_NODES} of {', '.join(OPERATIONS)}")
    return (LINKS.index(link), *(OPERATIONS.index(op) for op in ops))
