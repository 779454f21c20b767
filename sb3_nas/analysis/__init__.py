"""Analysis of run folders (§6, §7): the statistics and figures of the report, network diagrams and the
intensive retraining of Experiment 2."""

from sb3_nas.analysis.diagram import nsc_svg
from sb3_nas.analysis.run import Run, RunFolderError, load_run, load_runs
from sb3_nas.analysis.stats import (
    BLOCK,
    BestNetwork,
    Blocks,
    WilcoxonResult,
    action_proportions,
    best_networks,
    block_stats,
    entropy_curve,
    wilcoxon_actions,
)

__all__ = [
    "BLOCK",
    "BestNetwork",
    "Blocks",
    "Run",
    "RunFolderError",
    "WilcoxonResult",
    "action_proportions",
    "best_networks",
    "block_stats",
    "entropy_curve",
    "load_run",
    "load_runs",
    "nsc_svg",
    "wilcoxon_actions",
]
