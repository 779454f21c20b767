"""Comparing algorithms over seeds: every algorithm × seed on the same environments and the same reward
memo, then the statistics that reinforcement-learning evaluation with few seeds calls for (Agarwal et al.,
2021, *Deep reinforcement learning at the edge of the statistical precipice*), as a Markdown table and an HTML
report.

A comparison folder holds one run folder per algorithm and seed, ``DIR/<algo>/seed-<s>/``. A run already there
with the same configuration is reused when complete and resumed when not; one of another configuration is
refused. Each run's wall time is added up in its ``timing.json`` (every session that ran it).

The scores, per run and environment:

- **best accuracy**: the highest early-stop accuracy of a valid network the run found on the environment;
- **mean best reward of the last K episodes**: the sweeps' score (:class:`sb3_nas.tuning.spec.Objective`):
  the mean of ``best_reward`` over the environment's last K finished NAS episodes (no value without one);
- **distinct networks trained**: valid networks told apart by their canonical form
  (:func:`sb3_nas.space.canonical_network`), whether this run trained them or found them in the memo.

On a tabular benchmark the best accuracy is the best **validation** accuracy (the reward), and two scores join
them, as the benchmarks' protocol asks: the **test accuracy** of the architecture chosen by validation (the
first step of the best validation accuracy) and its **regret**, the table's best test accuracy minus it. The
sample-efficiency curves are drawn against steps and against distinct architectures queried.

The statistics are those of :mod:`sb3_nas.analysis.few_seeds`; running the runs is
:mod:`sb3_nas.experiment.comparison`. The package's modules, each re-exported here:

- ``records``: the scores, curves, wall time and memo hit rate of one run folder (:class:`RunRecord`);
- ``scoring``: the statistics over seeds (:class:`Comparison`, :func:`build_comparison`) and the scores;
- ``tables``: what the Markdown and the HTML both show; ``markdown`` and ``html`` (with ``figures``) write
  them; ``files`` writes ``comparison.md`` and ``comparison.html``.
"""

from sb3_nas.analysis.comparison.figures import curves_figure, scores_figure
from sb3_nas.analysis.comparison.files import HTML_FILE, MARKDOWN_FILE, write_comparison
from sb3_nas.analysis.comparison.html import render_html
from sb3_nas.analysis.comparison.markdown import DISTINCT_POINTS, render_markdown, scores_markdown
from sb3_nas.analysis.comparison.records import (
    RunRecord,
    best_so_far,
    chosen_test_accuracy,
    distinct_networks,
    distinct_so_far,
    read_run_record,
    read_timing,
    table_best_test,
)
from sb3_nas.analysis.comparison.scoring import (
    ALL_ENVS,
    CURVE_FRACTIONS,
    CURVE_POINTS,
    DEFAULT_LAST_EPISODES,
    LOWER_IS_BETTER,
    NSC_SCORES,
    RANKED_SCORES,
    REFERENCE_ALGO,
    SCORES,
    TABULAR_SCORES,
    TABULAR_TITLES,
    Comparison,
    build_comparison,
    compare_plan,
    curve_steps,
)

__all__ = [
    "ALL_ENVS",
    "CURVE_FRACTIONS",
    "CURVE_POINTS",
    "DEFAULT_LAST_EPISODES",
    "DISTINCT_POINTS",
    "HTML_FILE",
    "LOWER_IS_BETTER",
    "MARKDOWN_FILE",
    "NSC_SCORES",
    "RANKED_SCORES",
    "REFERENCE_ALGO",
    "SCORES",
    "TABULAR_SCORES",
    "TABULAR_TITLES",
    "Comparison",
    "RunRecord",
    "best_so_far",
    "build_comparison",
    "chosen_test_accuracy",
    "compare_plan",
    "curve_steps",
    "curves_figure",
    "distinct_networks",
    "distinct_so_far",
    "read_run_record",
    "read_timing",
    "render_html",
    "render_markdown",
    "scores_figure",
    "scores_markdown",
    "table_best_test",
    "write_comparison",
]
