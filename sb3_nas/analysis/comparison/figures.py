"""The figures of a comparison's HTML report: the scores as bars with their intervals, and the
sample-efficiency curves with their bands."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sb3_nas.analysis.comparison.scoring import SCORES, Comparison
from sb3_nas.analysis.few_seeds import Interval
from sb3_nas.analysis.figures import band_trace, run_color


def _or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def scores_figure(comparison: Comparison) -> go.Figure:
    """IQM per algorithm and environment, one panel per score, the 95% interval as error bars."""
    c = comparison
    figure = make_subplots(
        rows=1, cols=len(c.score_ids), subplot_titles=[c.score_title(score) for score in c.score_ids]
    )
    for index, algo in enumerate(c.algos):
        for column, score in enumerate(c.score_ids, start=1):
            table = c.scores[(c.scores["algorithm"] == algo) & (c.scores["score"] == score)]
            iqms, low, high = (table[key].to_numpy(dtype=float) for key in ("iqm", "low", "high"))
            text = [
                Interval(*values).format(SCORES[score][1]) + f" ({n} seeds)"
                for *values, n in zip(iqms, low, high, table["seeds"], strict=True)
            ]
            figure.add_trace(
                go.Bar(
                    x=table["environment"],
                    y=iqms,
                    name=algo,
                    legendgroup=algo,
                    showlegend=column == 1,
                    marker_color=run_color(index),
                    text=text,
                    hovertemplate="%{x}: %{text}<extra>" + algo + "</extra>",
                    textposition="none",
                    error_y={
                        "visible": bool(np.isfinite(low).any()),  # 1 seed: no interval to draw
                        "type": "data",
                        "symmetric": False,
                        "array": _or_none(high - iqms),  # none drawn without an interval
                        "arrayminus": _or_none(iqms - low),
                    },
                ),
                row=1,
                col=column,
            )
    figure.update_layout(
        barmode="group", height=420, legend={"orientation": "h", "y": -0.15}, margin={"t": 60}
    )
    return figure


def _staircase(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corners of the step function that holds ``y[i]`` from ``x[i]`` to ``x[i + 1]`` (plotly's "hv")."""
    return np.repeat(x, 2)[1:], np.repeat(y, 2)[:-1]


def curves_figure(comparison: Comparison, against: str = "steps") -> go.Figure:
    """Best accuracy so far against the environment's steps (``against="networks"``: against the distinct
    networks met): IQM over seeds, the 95% interval as a band."""
    c = comparison
    x_column, x_title = "step", "environment steps"
    if against != "steps":
        x_column, x_title = "networks", "distinct architectures queried" if c.tabular else "distinct networks"
    y_title = "best validation accuracy so far" if c.tabular else "best accuracy so far"
    all_curves = c.curves if against == "steps" else c.distinct_curves
    columns = min(3, len(c.envs))
    rows = math.ceil(len(c.envs) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=c.envs)
    for position, env in enumerate(c.envs):
        row, col = position // columns + 1, position % columns + 1
        for index, algo in enumerate(c.algos):
            curve = all_curves[(algo, env)]
            steps = curve[x_column].to_numpy()
            if curve["low"].notna().all():
                x_high, y_high = _staircase(steps, curve["high"].to_numpy())
                x_low, y_low = _staircase(steps, curve["low"].to_numpy())
                band = band_trace(x_high, y_high, x_low, y_low, index, algo, f"{algo} 95% CI")
                figure.add_trace(band, row=row, col=col)
            figure.add_trace(
                go.Scatter(
                    x=steps,
                    y=curve["iqm"],
                    mode="lines",
                    line_shape="hv",  # the best so far changes at a step and holds until the next
                    name=algo,
                    legendgroup=algo,
                    showlegend=position == 0,
                    line={"color": run_color(index)},
                    hovertemplate=x_column + " %{x}: IQM %{y:.4f}<extra>" + algo + "</extra>",
                ),
                row=row,
                col=col,
            )
        figure.update_xaxes(title_text=x_title, row=row, col=col)
        figure.update_yaxes(title_text=y_title, row=row, col=col)
    figure.update_layout(height=360 * rows + 80, legend={"orientation": "h", "y": -0.15}, margin={"t": 60})
    return figure
