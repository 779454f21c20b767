"""The search space: NSC rules, action table, state encoding and the network builder (§4.1.1, Fig. 4)."""

import pytest
import torch

from sb3_nas.space import (
    ACTIONS,
    N_CHAIN_ACTIONS,
    N_MULTI_BRANCH_ACTIONS,
    ActionKind,
    InvalidArchitecture,
    InvalidNSC,
    LayerType,
    build_network,
    canonical_network,
    encode_state,
    is_multi_branch,
    plan_network,
    row_width,
    validate_nsc,
)
from sb3_nas.space.builder import pad_to

CONV, MAX, AVG, ADD, CAT, TERM = 1, 2, 3, 5, 6, 7


def shapes_of(nsc, input_shape=(1, 16, 16), n_classes=10):
    """Build the network, run a real forward pass and return its planned shapes."""
    net = build_network(nsc, input_shape, n_classes)
    out = net(torch.rand(3, *input_shape))
    assert out.shape == (3, n_classes)
    features = net.features(torch.rand(2, *input_shape))
    assert tuple(features.shape[1:]) == net.plan.feature_shape
    return net.plan.shapes


def test_table_1_type_codes_and_table_2_actions():
    assert [int(t) for t in LayerType] == [0, 1, 2, 3, 5, 6, 7]
    assert N_CHAIN_ACTIONS == 8 and N_MULTI_BRANCH_ACTIONS == 14
    convs = [(a.layer_type, a.kernel) for a in ACTIONS[:3]]
    assert convs == [(LayerType.CONVOLUTION, k) for k in (1, 3, 5)]
    assert [(a.layer_type, a.kernel) for a in ACTIONS[3:7]] == [
        (LayerType.MAX_POOLING, 2),
        (LayerType.MAX_POOLING, 3),
        (LayerType.AVG_POOLING, 2),
        (LayerType.AVG_POOLING, 3),
    ]
    assert ACTIONS[7].kind == ActionKind.TERMINAL
    assert ACTIONS[8].layer_type == LayerType.ADDITION and ACTIONS[9].layer_type == LayerType.CONCATENATION
    assert [(a.pointer, a.step) for a in ACTIONS[10:]] == [(1, 1), (1, -1), (2, 1), (2, -1)]


def test_unpadded_convolutions_and_pooling_shrink_the_image():
    shapes = shapes_of([(1, CONV, 5, 0, 0), (2, CONV, 3, 1, 0), (3, MAX, 2, 2, 0), (4, AVG, 3, 3, 0)])
    assert shapes == ((1, 16, 16), (32, 12, 12), (32, 10, 10), (32, 5, 5), (32, 1, 1))
    assert shapes_of([(1, CONV, 1, 0, 0)])[1] == (32, 16, 16)


def test_invalid_when_the_spatial_size_would_drop_below_one():
    with pytest.raises(InvalidArchitecture, match="below 1") as error:
        plan_network([(1, MAX, 3, 0, 0), (2, MAX, 3, 1, 0), (3, MAX, 2, 2, 0)], (1, 16, 16), 10)
    assert "layer 3" in error.value.reason
    with pytest.raises(InvalidArchitecture, match="below 1"):
        plan_network([(1, CONV, 5, 0, 0)], (1, 4, 4), 10)


def test_addition_zero_pads_space_and_channels():
    # layer 1: 32×14×14, layer 2 (max-pool of the input): 1×8×8 → sum 32×14×14
    nsc = [(1, CONV, 3, 0, 0), (2, MAX, 2, 0, 0), (3, ADD, 0, 1, 2)]
    assert shapes_of(nsc)[3] == (32, 14, 14)
    small = torch.ones(1, 1, 2, 2)
    padded = pad_to(small, 3, 4, 4)
    assert padded.shape == (1, 3, 4, 4)
    assert padded.sum() == 4 and padded[0, 0, 1:3, 1:3].sum() == 4 and padded[0, 1:].abs().sum() == 0
    net = build_network([(1, MAX, 2, 0, 0), (2, ADD, 0, 0, 1)], (1, 4, 4), 2)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = x + pad_to(torch.nn.functional.max_pool2d(x, 2), 1, 4, 4)
    assert torch.equal(net.features(x), expected)


def test_concatenation_pads_space_and_stacks_channels():
    nsc = [(1, CONV, 3, 0, 0), (2, AVG, 2, 0, 0), (3, CAT, 0, 1, 2)]
    assert shapes_of(nsc)[3] == (33, 14, 14)


def test_leaves_are_merged_by_concatenation():
    # layers 1 and 2 both read the input and nobody reads them: two leaves
    nsc = [(1, CONV, 3, 0, 0), (2, CONV, 5, 0, 0)]
    plan = plan_network(nsc, (1, 16, 16), 10)
    assert plan.leaves == (1, 2)
    assert plan.feature_shape == (64, 14, 14)
    shapes_of(nsc)
    chain = plan_network([(1, CONV, 3, 0, 0), (2, CONV, 3, 1, 0)], (1, 16, 16), 10)
    assert chain.leaves == (2,)


def test_terminal_only_and_empty_states_are_the_prediction_module_on_the_input():
    for nsc in ([(1, TERM, 0, 0, 0)], []):
        net = build_network(nsc, (3, 8, 8), 5)
        assert net.plan.feature_shape == (3, 8, 8) and len(net.layers) == 0
        first = net.head[1]
        assert first.in_features == 3 * 8 * 8 and first.out_features == 1024
        assert net(torch.rand(2, 3, 8, 8)).shape == (2, 5)


def test_pre_activation_cell_and_prediction_module():
    net = build_network([(1, CONV, 3, 0, 0)], (1, 8, 8), 4)
    relu, conv, bn = net.layers[0]
    assert isinstance(relu, torch.nn.ReLU) and isinstance(bn, torch.nn.BatchNorm2d)
    assert conv.out_channels == 32 and conv.kernel_size == (3, 3) and conv.padding == (0, 0)
    kinds = [type(m).__name__ for m in net.head]
    assert kinds == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert net.head[3].p == 0.4 and net.head[4].out_features == 4


def test_filter_schedule_for_retraining():
    plan = plan_network(
        [(1, CONV, 1, 0, 0), (2, CONV, 1, 1, 0), (3, CONV, 1, 2, 0)],
        (1, 8, 8),
        2,
        conv_filters=lambda i: 2 ** (4 + i),
    )
    assert [s[0] for s in plan.shapes[1:]] == [32, 64, 128]


@pytest.mark.parametrize(
    ("nsc", "message"),
    [
        ([(1, 4, 0, 0, 0)], "illegal type 4"),
        ([(1, CONV, 2, 0, 0)], "kernel 2 is illegal"),
        ([(1, MAX, 5, 0, 0)], "kernel 5 is illegal"),
        ([(1, CONV, 3, 1, 0)], "predecessor 1 is outside 0..0"),
        ([(1, CONV, 3, 0, 0), (2, ADD, 0, 1, 2)], "predecessor 2 is outside 0..1"),
        ([(2, CONV, 3, 0, 0)], "index 2, expected 1"),
        ([(1, TERM, 0, 0, 0), (2, CONV, 3, 1, 0)], "follows a terminal"),
        ([(1, CONV, 3, 0)], "4 values"),
        ([(1, CONV, 3.5, 0, 0)], "holds 3.5, not an integer"),
        ([(1, CONV, "3", 0, 0)], "holds '3', not an integer"),
        ([(1, CONV, None, 0, 0)], "holds None, not an integer"),
        ([(1, CONV, float("nan"), 0, 0)], "holds nan, not an integer"),
        ([(True, CONV, 3, 0, 0)], "holds True, not an integer"),
        (["11300"], "row 1 is not a sequence of 5 integers"),
        ([7], "row 1 is not a sequence of 5 integers"),
        (None, "a sequence of rows, got NoneType"),
        ("11300", "a sequence of rows, got str"),
    ],
)
def test_illegal_nsc_rows_name_the_problem(nsc, message):
    with pytest.raises(InvalidNSC, match=message):
        validate_nsc(nsc)
    with pytest.raises(InvalidArchitecture, match=message):
        build_network(nsc, (1, 8, 8), 2)


def test_canonical_network_ignores_trailing_terminal_unused_pointer_and_addition_order():
    base = [(1, CONV, 3, 0, 0), (2, MAX, 2, 1, 0), (3, ADD, 0, 1, 2)]
    rows = validate_nsc(base)
    assert canonical_network(validate_nsc([*base, (4, TERM, 0, 0, 0)])) == canonical_network(rows)
    assert canonical_network(validate_nsc([(1, CONV, 3, 0, 0)])) == canonical_network(
        validate_nsc([(1, CONV, 3, 0, 9)])
    )
    swapped = [(1, CONV, 3, 0, 0), (2, MAX, 2, 1, 0), (3, ADD, 0, 2, 1)]
    assert canonical_network(validate_nsc(swapped)) == canonical_network(rows)
    concat = [(1, CONV, 3, 0, 0), (2, MAX, 2, 1, 0), (3, CAT, 0, 2, 1)]
    assert canonical_network(validate_nsc(concat)) != canonical_network(
        validate_nsc([(1, CONV, 3, 0, 0), (2, MAX, 2, 1, 0), (3, CAT, 0, 1, 2)])
    )


def test_multi_branch_detection():
    assert not is_multi_branch(validate_nsc([(1, CONV, 3, 0, 0), (2, MAX, 2, 1, 0), (3, TERM, 0, 0, 0)]))
    assert not is_multi_branch(validate_nsc([(1, CONV, 3, 0, 0), (2, ADD, 0, 1, 1)]))
    assert is_multi_branch(validate_nsc([(1, CONV, 3, 0, 0), (2, ADD, 0, 0, 1)]))
    assert is_multi_branch(validate_nsc([(1, CONV, 3, 0, 0), (2, CONV, 3, 0, 0)]))


def test_state_encoding_sizes_and_one_hots():
    assert row_width(10, multi_branch=False) == 25 and row_width(10, multi_branch=True) == 36
    rows = validate_nsc([(1, CONV, 5, 0, 0), (2, CAT, 0, 1, 0)])
    chain = encode_state(rows[:1], 10, multi_branch=False)
    assert chain.shape == (10, 25) and chain.dtype.name == "float32"
    assert chain[0].nonzero()[0].tolist() == [1, 8 + 5, 14 + 0]
    assert chain[1].nonzero()[0].tolist() == [0, 8, 14]  # an empty row
    multi = encode_state(rows, 10, multi_branch=True)
    assert multi.shape == (10, 36)
    assert multi[1].nonzero()[0].tolist() == [6, 8, 14 + 1, 25 + 0]
    assert (multi.sum(axis=1) == 4).all()


@pytest.mark.parametrize(
    "nsc",
    [
        [],
        [(1, CONV, 3, 0, 0), (2, MAX, 2, 1, 0), (3, CONV, 1, 2, 0)],
        [(1, CONV, 5, 0, 0), (2, CONV, 3, 0, 0), (3, CAT, 0, 1, 2), (4, CONV, 1, 3, 0), (5, ADD, 0, 4, 0)],
    ],
)
def test_the_plan_counts_the_parameters_of_the_network_it_builds(nsc):
    for input_shape, n_classes, filters in (((1, 16, 16), 10, 32), ((3, 9, 7), 4, lambda i: 8 * i)):
        net = build_network(nsc, input_shape, n_classes, conv_filters=filters, dense_units=64)
        assert net.plan.n_params == sum(p.numel() for p in net.parameters())
    one_conv = plan_network([(1, CONV, 3, 0, 0)], (1, 8, 8), 10)  # 32 × (3 × 3 + 3), then the 6×6 head
    assert one_conv.n_params == 32 * (9 + 3) + (32 * 6 * 6 + 1) * 1024 + (1024 + 1) * 10
