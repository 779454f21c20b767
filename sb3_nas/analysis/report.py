"""The HTML report of one run or several: the paper's figures and tables in one self-contained file.

Best reward, accumulated reward and episode length per episode (Fig. 9, 12, 14), the policy entropy (Fig. 10,
15a; when progress.csv has it), the proportion of each action (Fig. 11, 13, 16), the count of multi-branch
structures (Fig. 15b; multi-branch runs), the Wilcoxon signed-rank test between a run's environments (§7),
the best networks drawn as diagrams (Appendix B) and Table 6 when sb3_nas.retrain has written it. Runs on the
same environments share each plot, one trace per run. plotly.js is included, so the file works offline. When
kaleido is installed each figure is also written as FILE-<figure>.png; without it the PNGs are skipped.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from sb3_nas.analysis.comparison import chosen_test_accuracy, table_best_test
from sb3_nas.analysis.diagram import nsc_svg
from sb3_nas.analysis.figures import action_figure, entropy_figure, episode_figure, multi_branch_figure
from sb3_nas.analysis.pages import Table, figure_html, html_page, html_sections
from sb3_nas.analysis.retraining import RETRAIN_DIR, RETRAIN_TOP, ordinal, table6
from sb3_nas.analysis.run import Run
from sb3_nas.analysis.stats import ALPHA, auto_block, best_architectures, best_networks, wilcoxon_actions

FIGURES = {
    "best-reward": "Best reward per episode (Fig. 9, 12, 14)",
    "accumulated-reward": "Accumulated reward per episode (Fig. 9, 12, 14)",
    "episode-length": "Episode length (Fig. 9, 12, 14)",
    "entropy": "Policy entropy (Fig. 10, 15a)",
    "actions": "Proportion of actions (Fig. 11, 13, 16)",
    "multi-branch": "Count of multi-branch structures (Fig. 15b)",
}
EPISODE_FIGURES = {
    "best_reward": "best-reward",
    "accumulated_reward": "accumulated-reward",
    "length": "episode-length",
}
FLOAT_FORMAT = "{:.4g}"  # the numbers of the report's tables
MISSING = {
    "entropy": "no run logged a policy entropy (progress.csv without train/entropy, e.g. random search, DQN "
    "or an evaluation run)",
    "multi-branch": "no run searched the multi-branch space (train with --multi-branch)",
}


@dataclass
class Report:
    """The figures (by id, None where a run has no data for them) and the HTML sections of a report."""

    runs: list[Run]
    block: int
    figures: dict[str, go.Figure | None] = field(default_factory=dict)
    sections: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (title, HTML)


def build_report(runs: list[Run], block: int | None = None, top: int = RETRAIN_TOP) -> Report:
    """Compute every figure and table of the report for ``runs``.

    :param block: episodes per block of the episode figures; ``None``: about ten blocks for the longest run
    """
    counts = {(run.label, env): len(run.env_episodes(env)) for run in runs for env in run.envs}
    block = auto_block(list(counts.values())) if block is None else block
    report = Report(runs, block)
    short = [f"{label} has {n} episodes on {env}" for (label, env), n in counts.items() if n < block]
    if short:
        note = (
            f"<p>Fewer episodes than a block of {block}, so a single point: {escape('; '.join(short))}.</p>"
        )
        report.sections["notes"] = ("Notes", note)
    report.sections["runs"] = ("Runs", _table(_runs_table(runs)))
    report.sections["summary"] = ("Summary per environment", _table(_summary_table(runs)))
    for metric, figure_id in EPISODE_FIGURES.items():
        report.figures[figure_id] = episode_figure(runs, metric, block)
    report.figures["entropy"] = entropy_figure(runs)
    report.figures["actions"] = action_figure(runs)
    report.figures["multi-branch"] = multi_branch_figure(runs, block)
    report.sections["wilcoxon"] = (
        "Wilcoxon signed-rank test between environments (§7)",
        _wilcoxon_html(runs),
    )
    report.sections["networks"] = ("Best networks (Appendix B)", _networks_html(runs, top))
    tables = [(run, run.path / RETRAIN_DIR / "table6.csv") for run in runs]
    found = [(run, path) for run, path in tables if path.is_file()]
    if found:
        html = "".join(
            f"<h3>{escape(run.label)}</h3>{table6(pd.read_csv(path)).html()}" for run, path in found
        )
        report.sections["table6"] = ("Intensive retraining (Table 6)", html)
    return report


def _table(frame: pd.DataFrame) -> str:
    return Table.from_frame(frame, FLOAT_FORMAT).html()


def _runs_table(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        steps = run.steps.groupby("env", sort=False).size()
        rows.append(
            {
                "run": run.label,
                "folder": str(run.path),
                "algorithm": run.algo + (" (frozen policy)" if run.frozen else ""),
                "space": run.space_name,
                "sigma": run.config.get("sigma", ""),
                "fidelity": run.fidelity or ("table look-up" if run.decision_space else ""),
                "environments (steps)": ", ".join(f"{e} ({n})" for e, n in steps.items()),
            }
        )
    return pd.DataFrame(rows)


def _summary_table(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        for env in run.envs:
            steps, episodes = run.env_steps(env), run.env_episodes(env)
            valid = steps[steps["valid"].astype(bool)]
            multi = int(episodes["multi_branch"].astype(bool).sum())
            tabular = run.decision_space is not None
            chosen = chosen_test_accuracy(steps) if tabular else float("nan")
            rows.append(
                {
                    "run": run.label,
                    "environment": env,
                    "steps": len(steps),
                    "episodes": len(episodes),
                    "best accuracy": valid["accuracy"].max() if len(valid) else 0.0,
                    "its test accuracy": chosen,
                    "test regret": table_best_test(env) - chosen if tabular else float("nan"),
                    "mean best reward": episodes["best_reward"].mean(),
                    "mean length": episodes["length"].mean(),
                    "invalid steps": len(steps) - len(valid),
                    "memo hit rate": steps["memo_hit"].astype(bool).mean()
                    if "memo_hit" in steps
                    else float("nan"),
                    "multi-branch episodes": f"{multi} of {len(episodes)}",
                }
            )
    return pd.DataFrame(rows)


def _wilcoxon_html(runs: list[Run]) -> str:
    rows = [
        {
            "run": run.label,
            "environment A": r.env_a,
            "environment B": r.env_b,
            "actions paired": r.n_actions,
            "statistic W": r.statistic,
            "p-value": r.p_value,
            f"different at α = {ALPHA}": "yes" if r.significant else "no",
        }
        for run in runs
        for r in wilcoxon_actions(run)
    ]
    if not rows:
        return "<p>No run has two or more environments to compare.</p>"
    note = (
        "<p>scipy.stats.wilcoxon (two-sided) on the proportions of each action in the two environments, "
        "paired over the run's actions; the paper found p = 0.48 between aircraft and cu_birds.</p>"
    )
    return note + _table(pd.DataFrame(rows))


def _networks_html(runs: list[Run], top: int) -> str:
    parts = []
    for run_index, run in enumerate(runs):
        parts.append(f"<h3>{escape(run.label)}</h3>")
        if run.decision_space is not None:
            parts.append(_architectures_html(run, top))
            continue
        for env in run.envs:
            figures = []
            for network in best_networks(run, env, top):
                svg = nsc_svg(network.nsc, uid=f"{run_index}-{env}-{network.rank}")
                caption = (
                    f"{ordinal(network.rank)}: early-stop accuracy {100 * network.accuracy:.2f}% "
                    f"(reward {network.reward:.4f}, step {network.step})"
                )
                figures.append(
                    f"<figure>{svg}<figcaption>{escape(caption)}<br><code>"
                    f"{escape(network.nsc_json)}</code></figcaption></figure>"
                )
            body = "".join(figures) or "<p>no valid network</p>"
            parts.append(f'<h4>{escape(env)}</h4><div class="networks">{body}</div>')
    return "".join(parts)


def _architectures_html(run: Run, top: int) -> str:
    """A tabular run's best architectures in the benchmark's notation, validation and test accuracy."""
    rows = [
        {
            "environment": env,
            "rank": ordinal(best.rank),
            "architecture": best.architecture,
            "validation accuracy": best.accuracy,
            "test accuracy": best.test_accuracy,
            "step": best.step,
        }
        for env in run.envs
        for best in best_architectures(run, env, top)
    ]
    return _table(pd.DataFrame(rows)) if rows else "<p>no valid architecture</p>"


def render_html(report: Report) -> str:
    """The report as one HTML document with plotly.js inline."""
    order = ["notes", "runs", "summary", *FIGURES, "wilcoxon", "networks", "table6"]
    titles = {**{k: v[0] for k, v in report.sections.items()}, **FIGURES}
    sections = {}
    for section_id in order:
        if section_id in report.sections:
            html = report.sections[section_id][1]
        elif section_id in report.figures:
            figure = report.figures[section_id]
            html = (
                f'<p class="note">Not shown: {escape(MISSING[section_id])}.</p>'
                if figure is None
                else figure_html(figure, section_id)
            )
        else:
            continue
        sections[section_id] = (titles[section_id], html)
    labels = ", ".join(run.label for run in report.runs)
    heading = f"<h1>sb3_nas report</h1><p>{escape(labels)}; blocks of {report.block} episodes.</p>"
    return html_page(f"sb3_nas report: {labels}", heading + html_sections(sections))


def export_png(report: Report, html_path: Path) -> list[Path]:
    """Each figure as ``<html stem>-<figure>.png`` when kaleido is installed; nothing otherwise."""
    if importlib.util.find_spec("kaleido") is None:
        return []
    written = []
    for figure_id, figure in report.figures.items():
        if figure is None:
            continue
        path = html_path.with_name(f"{html_path.stem}-{figure_id}.png")
        try:
            figure.write_image(path, width=1200)
        except Exception as error:  # kaleido needs a browser too; its failures take many forms
            print(f"warning: PNG export skipped ({str(error).strip().splitlines()[0]})", file=sys.stderr)
            break
        written.append(path)
    return written
