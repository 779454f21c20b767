"""A comparison as Markdown: settings, scores, rankings, probabilities of improvement, the curves read at a
few points, runs."""

from __future__ import annotations

from sb3_nas.analysis.comparison import tables
from sb3_nas.analysis.comparison.scoring import CURVE_FRACTIONS, RANKED_SCORES, Comparison
from sb3_nas.analysis.few_seeds import Interval
from sb3_nas.analysis.pages import MISSING, Table

DISTINCT_POINTS = (10, 100, 1000)  # distinct architectures at which the Markdown table reads the curves


def render_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown: settings, scores, probabilities of improvement, curve points, runs."""
    c = comparison
    parts = [f"# Comparison: {', '.join(c.algos)}", "", *[f"- {line}" for line in tables.settings(c)], ""]
    parts += [*[f"- {note}" for note in tables.notes(c)], ""]
    parts += ["## Scores: IQM over seeds [95% CI]", "", scores_markdown(c), ""]
    parts += [f"## Ranking by {c.score_title(RANKED_SCORES[c.tabular][0])}, per environment", ""]
    for env in c.envs:
        parts += [f"### {env}", "", tables.ranking_table(c, env).markdown(), ""]
    parts += ["## Probability of improvement P(X > Y) [95% CI]", ""]
    improvement = tables.improvement_tables(c)
    for title, table in improvement.items():
        parts += [f"### {title}", "", table.markdown(), ""]
    if not improvement:
        parts += [tables.NO_IMPROVEMENT, ""]
    parts += ["## Sample efficiency: best accuracy so far, IQM over seeds [95% CI]", ""]
    parts += [_curve_points_table(c).markdown(), ""]
    if c.tabular:
        parts += ["## Sample efficiency: best validation accuracy against distinct architectures queried", ""]
        parts += [_distinct_table(c).markdown(), ""]
    parts += ["The whole curves are in the HTML report.", ""]
    parts += ["## Runs", "", tables.runs_table(c).markdown(), ""]
    parts += ["## Scores per run", "", tables.run_scores_table(c).markdown(), ""]
    return "\n".join(parts)


def scores_markdown(comparison: Comparison) -> str:
    """The table of IQMs and intervals: a row per algorithm and environment, a column per score."""
    return tables.scores_table(comparison).markdown()


def _curve_points_table(c: Comparison) -> Table:
    """The best accuracy so far at each of :data:`CURVE_FRACTIONS` of t_max, per algorithm and environment."""
    header = [
        "algorithm",
        "environment",
        "t_max",
        *[f"{fraction:.0%} of t_max" for fraction in CURVE_FRACTIONS],
    ]
    rows = []
    for (algo, env), curve in c.curves.items():
        t_max = c.timesteps[algo][env]
        cells = []
        for fraction in CURVE_FRACTIONS:
            at = curve[curve["step"] == max(1, round(fraction * t_max))].iloc[0]
            cells.append(f"step {int(at['step'])}: " + Interval(at["iqm"], at["low"], at["high"]).format())
        rows.append([algo, env, t_max, *cells])
    return Table(header, rows, 2)


def _distinct_table(c: Comparison) -> Table:
    """The best validation accuracy once :data:`DISTINCT_POINTS` distinct architectures were queried."""
    header = ["algorithm", "environment", "distinct reached", *[f"at {n}" for n in DISTINCT_POINTS]]
    rows = []
    for (algo, env), curve in c.distinct_curves.items():
        cells = []
        for n in DISTINCT_POINTS:
            at = curve[curve["networks"] >= n]
            cells.append(MISSING if at.empty else Interval(*at.iloc[0][["iqm", "low", "high"]]).format())
        reached = int(curve["networks"].max()) if len(curve) else 0
        rows.append([algo, env, reached, *cells])
    return Table(header, rows, 2)
