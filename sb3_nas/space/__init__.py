"""Search space (§4.1.1, §4.2.1, §4.2.2): NSC vectors, the action table, the state encoding, the builder."""

from sb3_nas.space.actions import (
    ACTION_NAMES,
    ACTIONS,
    N_CHAIN_ACTIONS,
    N_MULTI_BRANCH_ACTIONS,
    Action,
    ActionKind,
    action_table,
)
from sb3_nas.space.builder import (
    CONV_FILTERS,
    DENSE_UNITS,
    DROPOUT,
    NetworkPlan,
    NSCNetwork,
    build_network,
    plan_network,
    spatial_size,
)
from sb3_nas.space.codegen import network_source
from sb3_nas.space.encoding import encode_state, row_width
from sb3_nas.space.exported import ExportError, load_exported
from sb3_nas.space.nsc import (
    KERNELS,
    MAX_DEPTH,
    MAX_KERNEL,
    NSC,
    InvalidArchitecture,
    InvalidNSC,
    LayerType,
    canonical_network,
    is_multi_branch,
    layers_of,
    validate_nsc,
)

__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "CONV_FILTERS",
    "DENSE_UNITS",
    "DROPOUT",
    "KERNELS",
    "MAX_DEPTH",
    "MAX_KERNEL",
    "NSC",
    "N_CHAIN_ACTIONS",
    "N_MULTI_BRANCH_ACTIONS",
    "Action",
    "ActionKind",
    "ExportError",
    "InvalidArchitecture",
    "InvalidNSC",
    "LayerType",
    "NSCNetwork",
    "NetworkPlan",
    "action_table",
    "build_network",
    "canonical_network",
    "encode_state",
    "is_multi_branch",
    "layers_of",
    "load_exported",
    "network_source",
    "plan_network",
    "spatial_size",
    "row_width",
    "validate_nsc",
]
