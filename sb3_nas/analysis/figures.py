"""The paper's figures as plotly figures, one trace per run so several algorithms share each plot."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative
from plotly.subplots import make_subplots

from sb3_nas.analysis.run import Run
from sb3_nas.analysis.stats import (
    EPISODE_METRICS,
    Blocks,
    action_label,
    action_proportions,
    block_stats,
    entropy_curve,
    env_boundaries,
    short_action_label,
)

COLORS = qualitative.Plotly
MAX_COLUMNS = 3  # environments per row of subplots (the paper's Fig. 9 has three)


def run_color(index: int, alpha: float = 1.0) -> str:
    """The colour of the ``index``-th run, as an rgba string."""
    red, green, blue = hex_to_rgb(COLORS[index % len(COLORS)])
    return f"rgba({red},{green},{blue},{alpha})"


def all_envs(runs: list[Run]) -> list[str]:
    """Every environment of the runs, in the order they were first visited."""
    return list(dict.fromkeys(env for run in runs for env in run.envs))


def _env_grid(envs: list[str], **layout) -> tuple[go.Figure, dict[str, tuple[int, int]]]:
    columns = min(MAX_COLUMNS, max(1, len(envs)))
    rows = max(1, math.ceil(len(envs) / columns))
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=envs, **layout)
    cells = {env: (i // columns + 1, i % columns + 1) for i, env in enumerate(envs)}
    figure.update_layout(height=320 * rows + 80, legend={"orientation": "h", "y": -0.15}, margin={"t": 60})
    return figure, cells


def band_trace(
    x_high: np.ndarray,
    high: np.ndarray,
    x_low: np.ndarray,
    low: np.ndarray,
    index: int,
    label: str,
    name: str,
) -> go.Scatter:
    """A shaded band between an upper and a lower curve, in the ``index``-th run's colour and ``label``'s
    legend group, drawn without outline or markers."""
    return go.Scatter(
        x=np.concatenate([x_high, x_low[::-1]]),
        y=np.concatenate([high, low[::-1]]),
        fill="toself",
        mode="lines",  # the band's outline only: no markers at its corners
        fillcolor=run_color(index, 0.2),
        line={"width": 0},
        hoverinfo="skip",
        showlegend=False,
        legendgroup=label,
        name=name,
    )


def _band(
    figure: go.Figure, stats: Blocks, index: int, label: str, cell: tuple[int, int], text: list[str]
) -> None:
    """The block means as a line with a shaded ± 1 std band, both in the run's colour and legend group."""
    x, mean, std = stats.start, stats.mean, stats.std
    row, col = cell
    band = band_trace(x, mean + std, x, mean - std, index, label, f"{label} ± 1 std")
    figure.add_trace(band, row=row, col=col)
    line = go.Scatter(
        x=x,
        y=mean,
        mode="lines+markers",
        name=label,
        legendgroup=label,
        line={"color": run_color(index)},
        marker={"size": 4},
        text=text,
        hovertemplate="%{text}",
    )
    figure.add_trace(line, row=row, col=col)


def _shown_once(figure: go.Figure) -> None:
    seen: set[str] = set()
    for trace in figure.data:
        if trace.showlegend is False:
            continue
        trace.showlegend = trace.name not in seen
        seen.add(trace.name)


def _block_figure(
    runs: list[tuple[int, Run]],
    column: str,
    block: int,
    describe: Callable[[Blocks, int], str],
    y_title: str,
    title: str,
) -> go.Figure:
    """A subplot per environment of episodes.csv's ``column`` over blocks, for (colour index, run) pairs."""
    figure, cells = _env_grid(all_envs([run for _, run in runs]))
    for index, run in runs:
        for env in run.envs:
            stats = block_stats(run.env_episodes(env)[column].astype(float), block)
            text = [describe(stats, i) for i in range(len(stats.start))]
            _band(figure, stats, index, run.label, cells[env], text)
    _shown_once(figure)
    figure.update_xaxes(title_text=f"episode (blocks of {block})")
    figure.update_yaxes(title_text=y_title)
    figure.update_layout(title=title)
    return figure


def _episodes(stats: Blocks, i: int) -> str:
    return f"episodes {stats.start[i]}–{stats.start[i] + stats.count[i] - 1}"


def episode_figure(runs: list[Run], metric: str, block: int) -> go.Figure:
    """Fig. 9 / 12 / 14: ``metric`` of episodes.csv per episode, mean ± 1 std over blocks of episodes."""
    name = EPISODE_METRICS[metric]
    return _block_figure(
        list(enumerate(runs)),
        metric,
        block,
        lambda stats, i: f"{_episodes(stats, i)}: {stats.mean[i]:.4g} ± {stats.std[i]:.3g}",
        name,
        f"{name.capitalize()} per episode, mean ± 1 std over blocks of {block} episodes",
    )


def entropy_figure(runs: list[Run]) -> go.Figure | None:
    """Fig. 10 / 15a: the policy entropy over time-steps, environment changes marked; None without data."""
    figure = go.Figure()
    marked: set[int] = set()
    for index, run in enumerate(runs):
        curve = entropy_curve(run)
        if curve is None:
            continue
        figure.add_trace(
            go.Scatter(
                x=curve["timestep"],
                y=curve["entropy"],
                mode="lines",
                name=run.label,
                line={"color": run_color(index)},
            )
        )
        for env, start in env_boundaries(run):
            if start in marked:
                continue
            marked.add(start)
            figure.add_vline(
                x=start,
                line={"dash": "dot", "color": "#888"},
                annotation_text=env,
                annotation_position="top right",
            )
    if not figure.data:
        return None
    figure.update_layout(
        title="Policy entropy through the environments",
        xaxis_title="time-step",
        yaxis_title="entropy",
        height=420,
    )
    return figure


def action_figure(runs: list[Run]) -> go.Figure:
    """Fig. 11 / 13 / 16: the proportion of each action per environment (Table 2's ids)."""
    n_actions = max(run.n_actions for run in runs)
    spaces = {run.decision_space for run in runs}
    if len(spaces) == 1 and None not in spaces:  # a tabular benchmark: choice c of the decision at hand
        space = spaces.pop()
        names = [f"choice {i}" for i in range(space.max_choices)] + ["terminal"]
        hover = [f"{name} (of the next decision)" for name in names[:-1]] + ["end the episode"]
    else:
        names = [short_action_label(i) for i in range(n_actions)]
        hover = [action_label(i) for i in range(n_actions)]
    figure, cells = _env_grid(all_envs(runs))
    for index, run in enumerate(runs):
        for env in run.envs:
            proportions = action_proportions(run.env_steps(env)["action"], n_actions)
            figure.add_trace(
                go.Bar(
                    x=names,
                    y=proportions,
                    name=run.label,
                    legendgroup=run.label,
                    customdata=hover,
                    marker={"color": run_color(index)},
                    hovertemplate="%{customdata}<br>%{y:.3f}",
                ),
                row=cells[env][0],
                col=cells[env][1],
            )
    _shown_once(figure)
    figure.update_layout(title="Proportion of actions per environment", barmode="group")
    figure.update_yaxes(title_text="proportion")
    return figure


def multi_branch_figure(runs: list[Run], block: int) -> go.Figure | None:
    """Fig. 15b: multi-branch structures per episode (episodes.csv's multi_branch), mean ± 1 std over blocks.

    None when no run searched the multi-branch space.
    """
    searched = [(index, run) for index, run in enumerate(runs) if run.multi_branch]
    if not searched:
        return None
    return _block_figure(
        searched,
        "multi_branch",
        block,
        lambda stats, i: f"{_episodes(stats, i)}: {int(stats.total[i])} multi-branch of {stats.count[i]}",
        "multi-branch structures per episode",
        f"Count of multi-branch structures, mean ± 1 std over blocks of {block} episodes",
    )
