"""What the Markdown and the HTML of a comparison both show: its settings and notes, and the tables of scores,
rankings, probabilities of improvement, runs and scores per run."""

from __future__ import annotations

import math

import pandas as pd

from sb3_nas.analysis.comparison.scoring import LOWER_IS_BETTER, RANKED_SCORES, SCORES, Comparison
from sb3_nas.analysis.few_seeds import Interval
from sb3_nas.analysis.pages import MISSING, Table, formatted

NO_IMPROVEMENT = "One algorithm: nothing to compare."  # in place of the probabilities of improvement


def seconds(value: float | None) -> str:
    """A wall time: ``42.0 s`` under two minutes, ``3.5 min`` from there on."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def settings(comparison: Comparison) -> list[str]:
    """The algorithms and seeds, the environments with their budgets, where the rewards come from."""
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


def notes(comparison: Comparison) -> list[str]:
    """What the statistics and the scores are, and what few seeds say."""
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


def scores_table(c: Comparison) -> Table:
    """The IQMs and intervals: a row per algorithm and environment, a column per score."""
    header = ["algorithm", "environment", "seeds", *[c.score_title(score) for score in c.score_ids]]
    rows = []
    for algo in c.algos:
        for env in c.envs:
            intervals = {score: c.interval(algo, env, score) for score in c.score_ids}
            seeds = max(interval.n for interval in intervals.values())
            rows.append([algo, env, seeds, *[intervals[s].format(SCORES[s][1]) for s in c.score_ids]])
    return Table(header, rows, 2)


def ranking_table(c: Comparison, env: str) -> Table:
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
                MISSING if improvement is None else improvement.format("{:.2f}"),
            ]
        rows.append(row)
    return Table(header, rows, 2)


def improvement_tables(c: Comparison) -> dict[str, Table]:
    """Per score (by its title, those where higher is better), a row per ordered pair (X, Y) and
    P(X > Y) [95% CI] in each environment's column; none with one algorithm."""
    if c.improvement.empty:
        return {}
    columns = list(dict.fromkeys(c.improvement["environment"]))
    tables = {}
    for score in [score for score in c.score_ids if score not in LOWER_IS_BETTER]:
        rows = _improvement_rows(c.improvement[c.improvement["score"] == score], columns)
        tables[c.score_title(score)] = Table(["X", "Y", *columns], rows, 2)
    return tables


def _improvement_rows(table: pd.DataFrame, columns: list[str]) -> list[list[object]]:
    rows = []
    for (x, y), group in table.groupby(["x", "y"], sort=False):
        cells = {
            row.environment: Interval(row.probability, row.low, row.high).format("{:.2f}")
            for row in group.itertuples()
        }
        rows.append([x, y, *[cells[env] for env in columns]])
    return rows


def runs_table(c: Comparison) -> Table:
    """Each run: its folder, what this comparison did with it, its steps, wall time and memo hit rate."""
    header = ["algorithm", "seed", "folder", "this time", "steps", "wall time", "memo hit rate"]
    rows = [
        [
            r.algo,
            r.seed,
            str(r.folder),
            r.action,
            r.steps,
            seconds(r.wall_seconds),
            formatted(r.memo_hit_rate, "{:.0%}"),
        ]
        for r in c.runs
    ]
    return Table(header, rows, 4)


def run_scores_table(c: Comparison) -> Table:
    """Each run's scores per environment."""
    header = ["algorithm", "seed", "environment", *[c.score_title(score) for score in c.score_ids]]
    rows = []
    for r in c.runs:
        for env in c.envs:
            cells = [formatted(r.scores[env][score], SCORES[score][1]) for score in c.score_ids]
            rows.append([r.algo, r.seed, env, *cells])
    return Table(header, rows, 3)
