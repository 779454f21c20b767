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
:mod:`sb3_nas.experiment.comparison`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from sb3_nas.analysis.few_seeds import (
    BOOTSTRAP_SEED,
    DEFAULT_REPS,
    Interval,
    cell_rng,
    improvement_interval,
    iqm_band,
    iqm_interval,
)
from sb3_nas.analysis.figures import band_trace, run_color
from sb3_nas.analysis.run import load_run
from sb3_nas.estimation import TableEstimator, is_table_spec, masked_url
from sb3_nas.experiment.comparison import PLAN_OUTCOMES, TIMING_FILE, PlannedRun
from sb3_nas.experiment.files import replace_atomically
from sb3_nas.experiment.records import tabular_steps
from sb3_nas.space import InvalidNSC, canonical_network, validate_nsc

MARKDOWN_FILE, HTML_FILE = "comparison.md", "comparison.html"
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


# -- the scores of one run ----------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One run of a comparison: where it is, what this comparison did with it, and its scores.

    :param scores: per environment, each score of :data:`SCORES` (NaN where there is none)
    :param curves: per environment, the best accuracy found so far after each of its steps
    """

    algo: str
    seed: int
    folder: Path
    action: str = "reused"
    steps: int = 0
    wall_seconds: float | None = None
    memo_hit_rate: float = math.nan
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    distinct: dict[str, np.ndarray] = field(default_factory=dict)  # distinct networks met up to each step


def _network_keys(steps: pd.DataFrame) -> list[str | None]:
    """Each step's network in canonical form, ``None`` for an invalid one: the ``network`` column where the
    run recorded it (tabular benchmarks), else the canonical form of its NSC (valid and built)."""
    valid = steps["valid"].astype(bool).to_numpy(copy=True)
    if "network" in steps and tabular_steps(steps):
        return [str(key) if ok else None for key, ok in zip(steps["network"], valid, strict=True)]
    if "n_params" in steps:
        valid = valid & (steps["n_params"].fillna(0).astype(float).to_numpy() > 0)
    keys: list[str | None] = []
    for text, ok in zip(steps["nsc"], valid, strict=True):
        try:
            keys.append(canonical_network(validate_nsc(json.loads(text))) if ok else None)
        except (InvalidNSC, ValueError, TypeError):
            keys.append(None)
    return keys


def distinct_so_far(steps: pd.DataFrame) -> np.ndarray:
    """The number of distinct valid networks met up to each step."""
    seen: set[str] = set()
    counts = np.zeros(len(steps), dtype=int)
    for position, key in enumerate(_network_keys(steps)):
        if key is not None:
            seen.add(key)
        counts[position] = len(seen)
    return counts


def distinct_networks(steps: pd.DataFrame) -> int:
    """Valid networks (built, with parameters) among ``steps``, told apart by their canonical form."""
    return len({key for key in _network_keys(steps) if key is not None})


@functools.cache
def table_best_test(env: str) -> float:
    """The best test accuracy of a tabular benchmark's table (what regret is measured against)."""
    return TableEstimator(env).best_test_accuracy


def chosen_test_accuracy(steps: pd.DataFrame) -> float:
    """The test accuracy of the architecture of the best validation accuracy (its first step)."""
    valid = steps[steps["valid"].astype(bool)]
    if valid.empty:
        return 0.0
    return float(pd.to_numeric(valid["test_accuracy"]).loc[valid["accuracy"].astype(float).idxmax()])


def best_so_far(steps: pd.DataFrame) -> np.ndarray:
    """The best accuracy of a valid network found up to each step (0 before the first)."""
    accuracy = np.where(steps["valid"].astype(bool), steps["accuracy"].astype(float), 0.0)
    return np.maximum.accumulate(accuracy) if len(accuracy) else accuracy


def read_timing(folder: Path) -> float | None:
    """The wall time of every session that ran the run in ``folder`` (``None`` when not recorded)."""
    path = folder / TIMING_FILE
    try:
        return float(json.loads(path.read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_run_record(folder: str | Path, seed: int, last_episodes: int, action: str = "reused") -> RunRecord:
    """The scores, curves, wall time and memo hit rate of a run folder."""
    loaded = load_run(folder)
    record = RunRecord(loaded.algo, seed, Path(folder), action, steps=len(loaded.steps))
    record.wall_seconds = read_timing(record.folder)
    if "memo_hit" in loaded.steps:
        record.memo_hit_rate = float(loaded.steps["memo_hit"].astype(bool).mean())
    for env in [str(env) for env in loaded.config.get("envs", loaded.envs)]:
        steps, episodes = loaded.env_steps(env), loaded.env_episodes(env)
        valid = steps[steps["valid"].astype(bool)]
        last = episodes["best_reward"].astype(float).to_numpy()[-last_episodes:]
        distinct = distinct_so_far(steps)
        record.scores[env] = {
            "best_accuracy": float(valid["accuracy"].max()) if len(valid) else 0.0,
            "last_best_reward": float(last.mean()) if len(last) else math.nan,
            "networks": float(distinct[-1]) if len(distinct) else 0.0,
        }
        if is_table_spec(env):
            test = chosen_test_accuracy(steps)
            record.scores[env].update(test_accuracy=test, regret=table_best_test(env) - test)
        record.curves[env] = best_so_far(steps)
        record.distinct[env] = distinct
    return record


# -- the comparison ------------------------------------------------------------------------------------------


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


# -- Markdown -----------------------------------------------------------------------------------------------


def _improvement_rows(table: pd.DataFrame, columns: list[str]) -> list[list[object]]:
    """A row per ordered pair (X, Y): P(X > Y) [95% CI] in each environment's column."""
    rows = []
    for (x, y), group in table.groupby(["x", "y"], sort=False):
        cells = {
            row.environment: Interval(row.probability, row.low, row.high).format("{:.2f}")
            for row in group.itertuples()
        }
        rows.append([x, y, *[cells[env] for env in columns]])
    return rows


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(map(_md_cell, header)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def _value(value: float, spec: str) -> str:
    return spec.format(value) if math.isfinite(value) else "—"


def _seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _percent(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.0%}"


def _settings(comparison: Comparison) -> list[str]:
    budgets = {
        algo: ", ".join(f"{env} ({comparison.timesteps[algo][env]} steps)" for env in comparison.envs)
        for algo in comparison.algos
    }
    same = len(set(budgets.values())) == 1
    envs = (
        next(iter(budgets.values()))
        if same
        else ", ".join(comparison.envs) + " (budgets per algorithm below)"
    )
    lines = [
        f"algorithms: {', '.join(comparison.algos)}; seeds: {', '.join(map(str, comparison.seeds))} "
        f"({len(comparison.runs)} runs)",
        f"environments: {envs}",
        "rewards: table look-up (validation accuracy)"
        if comparison.tabular
        else f"fidelity: {comparison.fidelity}; memo: {comparison.memo}",
    ]
    if not same:
        lines += [f"budgets of {algo}: {text}" for algo, text in budgets.items()]
    return lines


def _notes(comparison: Comparison) -> list[str]:
    k = comparison.last_episodes
    notes = [
        "IQM: the interquartile mean over seeds (scipy.stats.trim_mean(scores, 0.25), rliable's "
        "aggregate_iqm); with 2 or 3 seeds nothing is cut and the IQM is the mean.",
        f"[low, high]: the 95% percentile interval of a stratified bootstrap over seeds ({comparison.reps} "
        "resamples; per environment the plain bootstrap over seeds).",
        "Scores per run and environment: the best accuracy of a valid network found; the mean best reward of "
        f"the last {k} finished NAS episodes (the sweeps' score; none without a finished episode); the "
        "number of distinct valid networks (canonical form) trained or found in the memo."
        if not comparison.tabular
        else "Scores per run and environment: the best validation accuracy found (the reward); the test "
        "accuracy of the architecture chosen by it (never a reward) and its regret, the table's best test "
        f"accuracy minus it; the mean best reward of the last {k} finished NAS episodes; the number of "
        "distinct architectures (canonical form) queried.",
        "P(X > Y): the probability that a run of X scores higher than a run of Y, ties counting one half "
        "(rliable's probability of improvement); 'all environments' averages it over the environments.",
    ]
    counts = {len([r for r in comparison.runs if r.algo == algo]) for algo in comparison.algos}
    if 1 in counts:
        notes.append("With 1 seed there is no interval: a single run says nothing about the spread.")
    if 2 in counts:
        notes.append(
            "With 2 seeds the IQM is their mean and the interval spans the two values: it says little."
        )
    return notes


def render_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown: settings, scores, probabilities of improvement, curve points, runs."""
    c = comparison
    parts = [f"# Comparison: {', '.join(c.algos)}", "", *[f"- {line}" for line in _settings(c)], ""]
    parts += [*[f"- {note}" for note in _notes(c)], ""]
    parts += ["## Scores: IQM over seeds [95% CI]", "", scores_markdown(c), ""]
    parts += [f"## Ranking by {c.score_title(RANKED_SCORES[c.tabular][0])}, per environment", ""]
    for env in c.envs:
        parts += [f"### {env}", "", _md_table(*_ranking_rows(c, env), 2), ""]
    parts += ["## Probability of improvement P(X > Y) [95% CI]", ""]
    columns = list(dict.fromkeys(c.improvement["environment"])) if len(c.improvement) else []
    for score in [score for score in c.score_ids if score not in LOWER_IS_BETTER]:
        table = c.improvement[c.improvement["score"] == score] if len(c.improvement) else c.improvement
        if table.empty:
            parts += ["One algorithm: nothing to compare.", ""]
            break
        rows = _improvement_rows(table, columns)
        parts += [f"### {c.score_title(score)}", "", _md_table(["X", "Y", *columns], rows, 2), ""]
    parts += ["## Sample efficiency: best accuracy so far, IQM over seeds [95% CI]", ""]
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
    parts += [_md_table(header, rows, 2), ""]
    if c.tabular:
        parts += ["## Sample efficiency: best validation accuracy against distinct architectures queried", ""]
        parts += [_md_table(*_distinct_rows(c), 2), ""]
    parts += ["The whole curves are in the HTML report.", ""]
    parts += ["## Runs", "", _md_table(*_runs_rows(c), 4), ""]
    parts += ["## Scores per run", "", _md_table(*_run_scores_rows(c), 3), ""]
    return "\n".join(parts)


def scores_markdown(comparison: Comparison) -> str:
    """The table of IQMs and intervals: a row per algorithm and environment, a column per score."""
    return _md_table(*_scores_rows(comparison), 2)


def _scores_rows(c: Comparison) -> tuple[list[str], list[list[object]]]:
    header = ["algorithm", "environment", "seeds", *[c.score_title(score) for score in c.score_ids]]
    rows = []
    for algo in c.algos:
        for env in c.envs:
            intervals = {score: c.interval(algo, env, score) for score in c.score_ids}
            seeds = max(interval.n for interval in intervals.values())
            rows.append([algo, env, seeds, *[intervals[s].format(SCORES[s][1]) for s in c.score_ids]])
    return header, rows


def _ranking_rows(c: Comparison, env: str) -> tuple[list[str], list[list[object]]]:
    """The algorithms on ``env`` from the highest IQM of the first ranked score down, each with its interval
    and the probability that the reference algorithm improves on it (on each ranked score)."""
    ranked = RANKED_SCORES[c.tabular]
    reference = c.reference
    header = ["rank", "algorithm", "seeds"]
    for score in ranked:
        header += [c.score_title(score), f"P({reference} > algorithm), {c.score_title(score)}"]

    def key(algo: str) -> float:  # highest first; an algorithm without a value last
        point = c.interval(algo, env, ranked[0]).point
        return -point if math.isfinite(point) else math.inf

    order = sorted(c.algos, key=key)
    rows = []
    for rank, algo in enumerate(order, start=1):
        row: list[object] = [rank, algo, c.interval(algo, env, ranked[0]).n]
        for score in ranked:
            improvement = None if algo == reference else c.improvement_of(reference, algo, env, score)
            row += [
                c.interval(algo, env, score).format(SCORES[score][1]),
                "—" if improvement is None else improvement.format("{:.2f}"),
            ]
        rows.append(row)
    return header, rows


DISTINCT_POINTS = (10, 100, 1000)  # distinct architectures at which the Markdown table reads the curves


def _distinct_rows(c: Comparison) -> tuple[list[str], list[list[object]]]:
    header = ["algorithm", "environment", "distinct reached", *[f"at {n}" for n in DISTINCT_POINTS]]
    rows = []
    for (algo, env), curve in c.distinct_curves.items():
        cells = []
        for n in DISTINCT_POINTS:
            at = curve[curve["networks"] >= n]
            cells.append("—" if at.empty else Interval(*at.iloc[0][["iqm", "low", "high"]]).format())
        reached = int(curve["networks"].max()) if len(curve) else 0
        rows.append([algo, env, reached, *cells])
    return header, rows


def _runs_rows(c: Comparison) -> tuple[list[str], list[list[object]]]:
    header = ["algorithm", "seed", "folder", "this time", "steps", "wall time", "memo hit rate"]
    rows = [
        [
            r.algo,
            r.seed,
            str(r.folder),
            r.action,
            r.steps,
            _seconds(r.wall_seconds),
            _percent(r.memo_hit_rate),
        ]
        for r in c.runs
    ]
    return header, rows


def _run_scores_rows(c: Comparison) -> tuple[list[str], list[list[object]]]:
    header = ["algorithm", "seed", "environment", *[c.score_title(score) for score in c.score_ids]]
    rows = []
    for r in c.runs:
        for env in c.envs:
            cells = [_value(r.scores[env][score], SCORES[score][1]) for score in c.score_ids]
            rows.append([r.algo, r.seed, env, *cells])
    return header, rows


# -- HTML ---------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table.table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
table.table th, table.table td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
table.table th:nth-child(-n+2), table.table td:nth-child(-n+2) { text-align: left; }
p.note, ul.notes { color: #555; font-size: 0.9em; }
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


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


def render_html(comparison: Comparison) -> str:
    """The comparison as one HTML document, plotly.js inline so that it works offline."""
    c = comparison

    def figure_html(figure: go.Figure, name: str) -> str:
        return pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}")

    sections = {
        "scores": (
            "Scores: IQM over seeds [95% CI]",
            _html_table(*_scores_rows(c)) + figure_html(scores_figure(c), "scores"),
        ),
        "ranking": (
            f"Ranking by {c.score_title(RANKED_SCORES[c.tabular][0])}, per environment",
            "".join(f"<h3>{escape(env)}</h3>{_html_table(*_ranking_rows(c, env))}" for env in c.envs),
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
        "runs": ("Runs", _html_table(*_runs_rows(c))),
        "per-run": ("Scores per run", _html_table(*_run_scores_rows(c))),
    }
    contents = "".join(
        f'<li><a href="#{key}">{escape(title)}</a></li>' for key, (title, _) in sections.items()
    )
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{html}</section>'
        for key, (title, html) in sections.items()
    )
    settings = "".join(f"<li>{escape(line)}</li>" for line in _settings(c))
    notes = "".join(f"<li>{escape(note)}</li>" for note in _notes(c))
    title = f"sb3_nas comparison: {', '.join(c.algos)}"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f'<h1>{escape(title)}</h1><ul>{settings}</ul><ul class="notes">{notes}</ul>'
        f"<ul>{contents}</ul>{body}</body></html>"
    )


def _improvement_html(c: Comparison) -> str:
    if c.improvement.empty:
        return "<p>One algorithm: nothing to compare.</p>"
    columns = list(dict.fromkeys(c.improvement["environment"]))
    parts = []
    for score in [score for score in c.score_ids if score not in LOWER_IS_BETTER]:
        table = c.improvement[c.improvement["score"] == score]
        rows = _improvement_rows(table, columns)
        parts.append(f"<h3>{escape(c.score_title(score))}</h3>{_html_table(['X', 'Y', *columns], rows)}")
    return "".join(parts)


def write_comparison(comparison: Comparison, out: str | Path) -> tuple[Path, Path]:
    """Write ``out/comparison.md`` and ``out/comparison.html``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in ((MARKDOWN_FILE, render_markdown(comparison)), (HTML_FILE, render_html(comparison))):
        write = lambda partial, text=text: partial.write_text(text, encoding="utf-8")  # noqa: E731
        written.append(replace_atomically(out / name, write))
    return written[0], written[1]
