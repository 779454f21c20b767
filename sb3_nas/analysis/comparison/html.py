"""A comparison as one HTML page: the tables of the Markdown, the scores as a figure and the whole
sample-efficiency curves."""

from __future__ import annotations

from html import escape

from sb3_nas.analysis.comparison import tables
from sb3_nas.analysis.comparison.figures import curves_figure, scores_figure
from sb3_nas.analysis.comparison.scoring import RANKED_SCORES, Comparison
from sb3_nas.analysis.pages import figure_html, html_page, html_sections


def render_html(comparison: Comparison) -> str:
    """The comparison as one HTML document, plotly.js inline so that it works offline."""
    c = comparison
    sections = {
        "scores": (
            "Scores: IQM over seeds [95% CI]",
            tables.scores_table(c).html() + figure_html(scores_figure(c), "scores"),
        ),
        "ranking": (
            f"Ranking by {c.score_title(RANKED_SCORES[c.tabular][0])}, per environment",
            "".join(f"<h3>{escape(env)}</h3>{tables.ranking_table(c, env).html()}" for env in c.envs),
        ),
        "improvement": ("Probability of improvement P(X > Y) [95% CI]", _improvement_html(c)),
        "curves": (
            "Sample efficiency: best accuracy so far, IQM over seeds with its 95% CI",
            figure_html(curves_figure(c), "curves"),
        ),
        **(
            {
                "distinct": (
                    "Sample efficiency: best validation accuracy against distinct architectures queried",
                    figure_html(curves_figure(c, "networks"), "distinct"),
                )
            }
            if c.tabular
            else {}
        ),
        "runs": ("Runs", tables.runs_table(c).html()),
        "per-run": ("Scores per run", tables.run_scores_table(c).html()),
    }
    settings = "".join(f"<li>{escape(line)}</li>" for line in tables.settings(c))
    notes = "".join(f"<li>{escape(note)}</li>" for note in tables.notes(c))
    title = f"sb3_nas comparison: {', '.join(c.algos)}"
    heading = f'<h1>{escape(title)}</h1><ul>{settings}</ul><ul class="notes">{notes}</ul>'
    return html_page(title, heading + html_sections(sections))


def _improvement_html(c: Comparison) -> str:
    improvement = tables.improvement_tables(c)
    if not improvement:
        return f"<p>{escape(tables.NO_IMPROVEMENT)}</p>"
    return "".join(f"<h3>{escape(title)}</h3>{table.html()}" for title, table in improvement.items())
