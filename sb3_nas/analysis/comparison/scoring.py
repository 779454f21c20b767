"""The statistics of a comparison: per algorithm, environment and score the IQM over seeds with its interval,
the probabilities of improvement, and the sample-efficiency curves; the scores and their titles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sb3_nas.analysis.comparison.records import RunRecord, read_run_record
from sb3_nas.analysis.few_seeds import (
    BOOTSTRAP_SEED,
    DEFAULT_REPS,
    Interval,
    cell_rng,
    improvement_interval,
    iqm_band,
    iqm_interval,
)
from sb3_nas.estimation import is_table_spec, masked_url
from sb3_nas.experiment.comparison import PLAN_OUTCOMES, PlannedRun

DEFAULT_LAST_EPISODES = 10  # the sweeps' default (sb3_nas.tuning.spec.Objective.last_episodes)
CURVE_POINTS = 100  # steps per environment at which a sample-efficiency curve is computed
CURVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of t_max: the curve's points in the Markdown table
ALL_ENVS = "all environments"
SCORES = {  # id → (title, format); {k} is the number of last episodes
    "best_accuracy": ("best accuracy", "{:.4f}"),
    "test_accuracy": ("test accuracy of the best by validation", "{:.4f}"),
    "regret": ("test regret against the table's best", "{:.4f}"),
    "last_best_reward": ("mean best reward of the last {k} episodes", "{:.4f}"),
    "networks": ("distinct networks trained", "{:.1f}"),
}
NSC_SCORES = ("best_accuracy", "last_best_reward", "networks")
TABULAR_SCORES = ("best_accuracy", "test_accuracy", "regret", "last_best_reward", "networks")
TABULAR_TITLES = {"best_accuracy": "best validation accuracy", "networks": "distinct architectures queried"}
RANKED_SCORES = {False: ("best_accuracy",), True: ("best_accuracy", "test_accuracy")}  # by tabular
REFERENCE_ALGO = "meta_a2c"  # the rankings' P(reference > each)
LOWER_IS_BETTER = frozenset({"regret"})  # no probability of improvement: test accuracy's says the same


@dataclass
class Comparison:
    """The statistics of a comparison and the runs they come from.

    ``scores``: one row per algorithm, environment and score (``iqm``, ``low``, ``high``, ``seeds``);
    ``improvement``: one row per score, environment (or :data:`ALL_ENVS`) and ordered pair of algorithms
    (``probability``, ``low``, ``high``); ``curves``: per (algorithm, environment), the step, IQM and band.
    """

    algos: list[str]
    seeds: list[int]
    envs: list[str]
    runs: list[RunRecord]
    timesteps: dict[str, dict[str, int]]
    fidelity: str = ""
    memo: str = ""
    last_episodes: int = DEFAULT_LAST_EPISODES
    reps: int = DEFAULT_REPS
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    improvement: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    distinct_curves: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # x: distinct networks

    @property
    def tabular(self) -> bool:
        """Whether the environments are a tabular benchmark's (validation rewards, test accuracy beside)."""
        return all(is_table_spec(env) for env in self.envs)

    @property
    def score_ids(self) -> tuple[str, ...]:
        """The scores of this comparison: :data:`TABULAR_SCORES` on a tabular benchmark, else the NSC ones."""
        return TABULAR_SCORES if self.tabular else NSC_SCORES

    def score_title(self, score: str) -> str:
        title = TABULAR_TITLES.get(score, SCORES[score][0]) if self.tabular else SCORES[score][0]
        return title.format(k=self.last_episodes)

    @property
    def reference(self) -> str:
        """The algorithm the rankings give the probability of improvement of: meta_a2c, else the first."""
        return REFERENCE_ALGO if REFERENCE_ALGO in self.algos else self.algos[0]

    def improvement_of(self, x: str, y: str, env: str, score: str) -> Interval | None:
        """P(x > y) on ``score`` in ``env`` [95% CI] (``None`` where it was not computed)."""
        table = self.improvement
        if table.empty:
            return None
        rows = table[
            (table["x"] == x) & (table["y"] == y) & (table["environment"] == env) & (table["score"] == score)
        ]
        if rows.empty:
            return None
        row = rows.iloc[0]
        return Interval(float(row["probability"]), float(row["low"]), float(row["high"]))

    def interval(self, algo: str, env: str, score: str) -> Interval:
        row = self.scores[
            (self.scores["algorithm"] == algo)
            & (self.scores["environment"] == env)
            & (self.scores["score"] == score)
        ].iloc[0]
        return Interval(float(row["iqm"]), float(row["low"]), float(row["high"]), int(row["seeds"]))


def curve_steps(t_max: int, points: int = CURVE_POINTS) -> np.ndarray:
    """The steps (from 1) at which a curve of ``t_max`` steps is computed: evenly spread, and the quarters."""
    grid = np.rint(np.linspace(1, t_max, min(points, t_max))).astype(int)
    quarters = [max(1, round(fraction * t_max)) for fraction in CURVE_FRACTIONS]
    return np.unique(np.concatenate([grid, quarters]))


def build_comparison(
    runs: Sequence[RunRecord],
    algos: Sequence[str],
    envs: Sequence[str],
    timesteps: dict[str, dict[str, int]],
    *,
    fidelity: str = "",
    memo: str = "",
    last_episodes: int = DEFAULT_LAST_EPISODES,
    reps: int = DEFAULT_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> Comparison:
    """The statistics of ``runs`` (every algorithm of ``algos`` on every environment of ``envs``).

    :param timesteps: t_max per algorithm and environment (the curves' length)
    """
    algos, envs = list(algos), list(envs)
    seeds = sorted({record.seed for record in runs})
    comparison = Comparison(
        algos,
        seeds,
        envs,
        list(runs),
        timesteps,
        fidelity,
        masked_url(memo) if memo else "",
        last_episodes,
        reps,
    )
    by_algo = {algo: [record for record in runs if record.algo == algo] for algo in algos}

    def values(algo: str, env: str, score: str) -> np.ndarray:
        return np.array([record.scores[env][score] for record in by_algo[algo]], dtype=float)

    rows = []
    for algo in algos:
        for env in envs:
            for score in comparison.score_ids:
                interval = iqm_interval(
                    values(algo, env, score), reps, cell_rng(seed, "iqm", algo, env, score)
                )
                rows.append(
                    {
                        "algorithm": algo,
                        "environment": env,
                        "score": score,
                        "seeds": interval.n,
                        "iqm": interval.point,
                        "low": interval.low,
                        "high": interval.high,
                    }
                )
    comparison.scores = pd.DataFrame(rows)
    rows = []
    for score in [score for score in comparison.score_ids if score not in LOWER_IS_BETTER]:
        for env in [*envs, ALL_ENVS] if len(envs) > 1 else envs:
            tasks = envs if env == ALL_ENVS else [env]
            for x in algos:
                for y in algos:
                    if x == y:
                        continue
                    interval = improvement_interval(
                        [values(x, t, score) for t in tasks],
                        [values(y, t, score) for t in tasks],
                        reps,
                        cell_rng(seed, "improvement", score, env, x, y),
                    )
                    rows.append(
                        {
                            "score": score,
                            "environment": env,
                            "x": x,
                            "y": y,
                            "probability": interval.point,
                            "low": interval.low,
                            "high": interval.high,
                        }
                    )
    comparison.improvement = pd.DataFrame(rows)
    for algo in algos:
        for env in envs:
            steps = curve_steps(timesteps[algo][env])
            curves = np.array([_at_steps(record.curves[env], steps) for record in by_algo[algo]])
            point, low, high = iqm_band(curves, reps, cell_rng(seed, "curve", algo, env))
            comparison.curves[(algo, env)] = pd.DataFrame(
                {"step": steps, "iqm": point, "low": low, "high": high}
            )
            if comparison.tabular:  # sample efficiency per architecture queried, as NAS benchmarks count
                comparison.distinct_curves[(algo, env)] = _distinct_curve(by_algo[algo], env, reps, seed)
    return comparison


def _distinct_curve(records: Sequence[RunRecord], env: str, reps: int, seed: int) -> pd.DataFrame:
    """Best accuracy so far against distinct networks met: at counts every run of the algorithm reached."""
    met = [r.distinct.get(env, np.zeros(0, dtype=int)) for r in records]
    reached = min((int(counts[-1]) if len(counts) else 0) for counts in met)
    counts = np.unique(np.rint(np.linspace(1, reached, min(CURVE_POINTS, reached))).astype(int))
    if reached < 1:
        return pd.DataFrame({"networks": [], "iqm": [], "low": [], "high": []})
    curves = []
    for record, distinct in zip(records, met, strict=True):
        at = np.searchsorted(distinct, counts)  # the first step that met that many
        curves.append(record.curves[env][at])
    point, low, high = iqm_band(np.array(curves), reps, cell_rng(seed, "distinct", records[0].algo, env))
    return pd.DataFrame({"networks": counts, "iqm": point, "low": low, "high": high})


def _at_steps(curve: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The curve after each of ``steps`` (a run cut short keeps its last value)."""
    if len(curve) == 0:
        return np.zeros(len(steps))
    return curve[np.minimum(steps, len(curve)) - 1]


def compare_plan(
    plan: Sequence[PlannedRun], last_episodes: int = DEFAULT_LAST_EPISODES, reps: int = DEFAULT_REPS
) -> Comparison:
    """The comparison of a plan's runs once they are complete."""
    runs = [read_run_record(p.folder, p.seed, last_episodes, PLAN_OUTCOMES[p.action]) for p in plan]
    algos = list(dict.fromkeys(p.algo for p in plan))
    first = plan[0].config
    timesteps = {p.algo: dict(zip(p.config.envs, p.config.timesteps, strict=True)) for p in plan}
    return build_comparison(
        runs,
        algos,
        list(first.envs),
        timesteps,
        fidelity=first.estimation,
        memo=first.memo,
        last_episodes=last_episodes,
        reps=reps,
    )
