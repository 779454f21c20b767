"""Network diagrams as in Appendix B: the DAG of an NSC drawn top to bottom as a self-contained SVG."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from sb3_nas.space import DENSE_UNITS, NSC, LayerType, layers_of, validate_nsc
from sb3_nas.space.nsc import MERGE

NODE_WIDTH, NODE_HEIGHT, GAP = 210, 24, 16
MARGIN = 12
SKIP_BEND = 14  # horizontal room taken by each level of skip connection
FILL = {
    LayerType.CONVOLUTION: "#cfe0f3",
    LayerType.MAX_POOLING: "#fde2c4",
    LayerType.AVG_POOLING: "#fbe9d6",
    LayerType.ADDITION: "#d6ecd2",
    LayerType.CONCATENATION: "#c7e6c1",
}
PLAIN_FILL = "#eeeeee"  # the input and the prediction module


def layer_label(row: NSC) -> str:
    """A short name of an NSC row in Table 1's terms: ``conv 3×3``, ``max-pool 2×2``, ``add 1+3``."""
    layer_type = LayerType(row.type)
    if layer_type == LayerType.CONVOLUTION:
        return f"conv {row.kernel}×{row.kernel}"
    if layer_type in (LayerType.MAX_POOLING, LayerType.AVG_POOLING):
        kind = "max" if layer_type == LayerType.MAX_POOLING else "avg"
        return f"{kind}-pool {row.kernel}×{row.kernel}"
    if layer_type == LayerType.ADDITION:
        return f"add {row.pred1} + {row.pred2}"
    return f"concat {row.pred1} ‖ {row.pred2}"


def leaves_of(rows: Sequence[NSC]) -> tuple[int, ...]:
    """Nodes no layer reads (0: the input); they are concatenated before the prediction module."""
    read = {p for row in rows for p in ((row.pred1, row.pred2) if row.type in MERGE else (row.pred1,))}
    return tuple(i for i in range(1, len(rows) + 1) if i not in read) or (0,)


def nsc_svg(nsc: Sequence[Sequence[int]], dense_units: int = DENSE_UNITS, uid: str = "net") -> str:
    """The network of ``nsc`` as an SVG: the input, one box per layer, then the prediction module.

    Edges from the layer just above are straight; skip connections bend to the right, and leaves other than
    the last layer reach the prediction module on the left. ``uid`` keeps the arrow marker's id unique
    when several diagrams share one page.
    """
    rows = layers_of(validate_nsc(nsc))
    n_nodes = len(rows) + 2  # input, layers, prediction module
    head = n_nodes - 1
    inputs: list[tuple[int, int]] = []  # (from, to)
    for row in rows:
        preds = (row.pred1, row.pred2) if row.type in MERGE else (row.pred1,)
        inputs.extend((p, row.index) for p in dict.fromkeys(preds))
    inputs.extend((leaf, head) for leaf in leaves_of(rows))
    right = SKIP_BEND * max((to - src for src, to in inputs if to != head), default=0) + MARGIN
    left = SKIP_BEND * max((head - src for src, to in inputs if to == head and src < head - 1), default=0)
    left += MARGIN
    width = left + NODE_WIDTH + right
    height = n_nodes * NODE_HEIGHT + (n_nodes - 1) * GAP + 2 * MARGIN

    def top(node: int) -> int:
        return MARGIN + node * (NODE_HEIGHT + GAP)

    marker = f"arrow-{escape(uid)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker>'
        "</defs>",
    ]
    centre = left + NODE_WIDTH / 2
    for src, to in inputs:
        span = to - src
        if span == 1:
            path = f"M {centre} {top(src) + NODE_HEIGHT} L {centre} {top(to)}"
        else:
            into_head = to == head
            x = left if into_head else left + NODE_WIDTH
            bend = x - SKIP_BEND * span if into_head else x + SKIP_BEND * span
            y1, y2 = top(src) + NODE_HEIGHT / 2, top(to) + NODE_HEIGHT / 2
            path = f"M {x} {y1} C {bend} {y1}, {bend} {y2}, {x} {y2}"
        parts.append(f'<path d="{path}" fill="none" stroke="#555" marker-end="url(#{marker})"/>')
    labels = ["input"] + [f"{row.index}: {layer_label(row)}" for row in rows]
    fills = [PLAIN_FILL] + [FILL[LayerType(row.type)] for row in rows]
    labels.append(f"flatten → dense {dense_units} → softmax")
    fills.append(PLAIN_FILL)
    for node, (label, fill) in enumerate(zip(labels, fills, strict=True)):
        parts.append(
            f'<rect x="{left}" y="{top(node)}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="4" '
            f'fill="{fill}" stroke="#777"/>'
            f'<text x="{centre}" y="{top(node) + NODE_HEIGHT / 2 + 4}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
