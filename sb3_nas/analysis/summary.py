"""The reduced experiments' four answers (transfer, frozen policy, retraining, σ), from their run folders.

``build_summary`` reads the run folders of ``benchmarks/reduced_experiments.sh`` (exp1-*, exp2-*, exp3-*); an
absent one is reported as not run, one that exists but cannot be read raises ``RunFolderError``. The command
is ``python -m sb3_nas.summary``.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sb3_nas.analysis.pages import Table, formatted
from sb3_nas.analysis.retraining import RESULT_COLUMNS, RETRAIN_DIR, VGG_LABEL, summarize
from sb3_nas.analysis.run import Run, RunFolderError, load_run, read_table
from sb3_nas.space import ACTIONS, ActionKind

EARLY_STEPS, EARLY_EPISODES = 25, 10
TRANSFER_RUNS = ("exp1-meta_a2c", "exp1-dqn", "exp1-random")
UNSEEN_RUNS = ("exp2-meta_a2c", "exp2-dqn", "exp2-random")
SIGMA_GLOB = "exp3-sigma*"
SHIFT_ACTIONS = tuple(action.id for action in ACTIONS if action.kind is ActionKind.SHIFT)  # A10–A13
# what the report needs to redraw every figure of a run (progress.csv: the entropy curve)
KEPT_FILES = ("config.yml", "episodes.csv", "steps.csv", "progress.csv")
KEPT_RETRAIN_FILES = ("table6.md", "table6.csv")
MAX_KEPT_BYTES = 1_000_000
FROZEN = "meta_a2c (frozen)"  # the algorithm of an evaluation run (sb3_nas.evaluate)
ENV_KEYS = ("env", "algo", "early_step_reward", "early_episode_best_reward", "best_accuracy")
UNSEEN_KEYS = (*ENV_KEYS, "early_invalid_fraction")
TABLE6_KEYS = ("env", "architecture", "runs", "mean", "two_std")  # of retraining.summarize's columns
SIGMA_KEYS = ("sigma", "episodes", "multi_branch_episodes", "multi_branch_fraction", "shift_fraction")
SIGMA_KEYS += ("mean_length", "best_accuracy")
# fmt: off
SECTIONS = {  # JSON key → (Markdown title, the row keys shown)
    "transfer": ("1. Transfer (Experiment 1)", ENV_KEYS),
    "unseen_tasks": ("2. Frozen policy on unseen tasks (Experiment 2)", UNSEEN_KEYS),
    "retraining": ("3. Retraining against VGG (Experiment 2)", TABLE6_KEYS),
    "sigma": ("4. σ and multi-branch networks (Experiment 3)", SIGMA_KEYS),
}
COLUMNS = {  # row key → (Markdown header, K and E filled in; cell format)
    "env": ("env", "text"), "algo": ("algorithm", "text"), "best_accuracy": ("best accuracy", "number"),
    "early_step_reward": ("mean reward, first {K} steps", "number"),
    "early_episode_best_reward": ("mean best reward, first {E} episodes", "number"),
    "early_invalid_fraction": ("invalid, first {K} steps", "percent"),
    "architecture": ("architecture", "text"), "runs": ("runs", "text"), "mean": ("accuracy (%)", "points"),
    "two_std": ("± 2 std", "points"),
    "sigma": ("σ", "text"), "episodes": ("episodes", "text"), "mean_length": ("mean length", "number"),
    "multi_branch_episodes": ("multi-branch", "text"), "shift_fraction": ("pointer-shift steps", "percent"),
    "multi_branch_fraction": ("multi-branch share", "percent"),
}
FORMATS = {"number": "{:.3f}", "percent": "{:.1%}", "points": "{:.2f}", "text": "{}"}
# fmt: on


@dataclass
class Section:
    """One question's rows (a Markdown table row each), computed statement, absent runs and extra numbers."""

    key: str
    rows: list[dict] = field(default_factory=list)
    statement: str = ""
    not_run: list[str] = field(default_factory=list)
    extra: dict[str, list[dict]] = field(default_factory=dict)


def _flags(values: pd.Series) -> pd.Series:
    """A True/False column, whether pandas read it as booleans or as text."""
    return values.astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def _best_accuracy(steps: pd.DataFrame) -> float:
    valid = steps[_flags(steps["valid"])]["accuracy"]
    return float(valid.max()) if len(valid) else math.nan


def env_numbers(run: Run, env: str, early_steps: int, early_episodes: int) -> dict[str, float]:
    """The mean reward of env's first steps, mean best reward of its first episodes, best accuracy of its
    valid networks, and the share of invalid networks among the first steps."""
    steps = run.env_steps(env)
    first = steps.head(early_steps)
    return {
        "early_step_reward": _mean(first["reward"]),
        "early_episode_best_reward": _mean(run.env_episodes(env).head(early_episodes)["best_reward"]),
        "best_accuracy": _best_accuracy(steps),
        "early_invalid_fraction": _mean(~_flags(first["valid"])),
    }


def sigma_numbers(run: Run) -> dict[str, float]:
    """Episodes, multi-branch ones and their share, share of pointer-shift steps, mean length, best acc."""
    multi = _flags(run.episodes["multi_branch"])
    return {
        "episodes": len(run.episodes),
        "multi_branch_episodes": int(multi.sum()),
        "multi_branch_fraction": _mean(multi),
        "shift_fraction": _mean(run.steps["action"].isin(SHIFT_ACTIONS)),
        "mean_length": _mean(run.episodes["length"]),
        "best_accuracy": _best_accuracy(run.steps),
    }


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def compare(rows: list[dict], metric: str, what: str, a: str, b: str, envs: list[str]) -> str:
    """'<a>'s <what> is higher than <b>'s on X and Y, lower on Z', from the rows of algorithms a and b."""
    values = {(row["env"], row["algo"]): row[metric] for row in rows}
    groups: dict[str, list[str]] = {"higher than": [], "lower than": [], "equal to": []}
    for env in envs:
        x, y = values.get((env, a), math.nan), values.get((env, b), math.nan)
        if not (math.isnan(x) or math.isnan(y)):
            groups["higher than" if x > y else "lower than" if x < y else "equal to"].append(env)
    found = [(word, where) for word, where in groups.items() if where]
    if not found:
        return f"{a}'s and {b}'s {what} cannot be compared on {_join(envs) if envs else 'any environment'}"
    (word, where), rest = found[0], found[1:]
    clauses = [f"{word} {b}'s on {_join(where)}"] + [f"{w.split()[0]} on {_join(e)}" for w, e in rest]
    return f"{a}'s {what} is " + ", ".join(clauses)


def env_section(key: str, runs_dir: Path, names: tuple[str, ...], early: tuple[int, int]):
    """Questions 1 and 2: ``env_numbers`` per environment and run; returns the section and the envs."""
    runs = {name: load_run(runs_dir / name) for name in names if (runs_dir / name).exists()}
    section = Section(key, not_run=[name for name in names if name not in runs])
    envs = list(dict.fromkeys(env for run in runs.values() for env in run.envs))
    for env in envs:
        for name, run in ((name, run) for name, run in runs.items() if env in run.envs):
            labels = {"env": env, "run": name, "algo": FROZEN if run.frozen else run.algo}
            section.rows.append(labels | env_numbers(run, env, *early))
    return section, envs


def transfer_section(runs_dir: Path, early: tuple[int, int]) -> Section:
    """Question 1: does meta_a2c start better than dqn on the environments after the first?"""
    section, envs = env_section("transfer", runs_dir, TRANSFER_RUNS, early)
    if envs:
        what = f"mean reward over the first {early[0]} steps"
        steps = compare(section.rows, "early_step_reward", what, "meta_a2c", "dqn", envs[1:])
        what = f"mean best reward over the first {early[1]} episodes"
        episodes = compare(section.rows, "early_episode_best_reward", what, "meta_a2c", "dqn", envs[1:])
        section.statement = f"After transfer from {envs[0]} (the no-transfer reference), {steps}; {episodes}."
    return section


def unseen_section(runs_dir: Path, early: tuple[int, int]) -> Section:
    """Question 2: the frozen policy against DQN from scratch and random search on the held-out tasks."""
    section, envs = env_section("unseen_tasks", runs_dir, UNSEEN_RUNS, early)
    if envs:
        what = f"mean reward over the first {early[0]} steps"
        clauses = (
            compare(section.rows, "early_step_reward", what, FROZEN, b, envs) for b in ("dqn", "random")
        )
        section.statement = "; ".join(clauses) + "."
    return section


def read_table6(folder: Path) -> pd.DataFrame:
    """table6.csv of a retraining folder, or its summary recomputed from runs.csv."""
    if (folder / "table6.csv").is_file():
        return read_table(folder / "table6.csv", TABLE6_KEYS, folder)
    if (folder / "runs.csv").is_file():
        runs = read_table(folder / "runs.csv", tuple(RESULT_COLUMNS), folder)
        return summarize(runs.astype({"nsc": object, "reason": object}))  # all-empty text reads as NaN
    raise RunFolderError(f"retraining folder {folder} lacks table6.csv and runs.csv")


def retrain_verdicts(table: pd.DataFrame) -> list[dict]:
    """Per env: the searched network of highest mean accuracy (%) against the VGG baseline, in points."""
    verdicts = []
    for env, group in table.groupby("env", sort=False):
        searched = group[group["architecture"] != VGG_LABEL].dropna(subset=["mean"])
        baseline = group[group["architecture"] == VGG_LABEL]["mean"].dropna()
        if len(searched) and len(baseline):
            best = searched.loc[searched["mean"].idxmax()]
            verdict = {"env": env, "best": best["architecture"], "best_mean": float(best["mean"])}
            margin = float(best["mean"] - baseline.iloc[0])
            verdict |= {"baseline_mean": float(baseline.iloc[0]), "margin": margin}
            verdicts.append(verdict | {"beats": verdict["margin"] > 0})
    return verdicts


def _verdict_clause(verdict: dict) -> str:
    best = f"on {verdict['env']} the best searched network, {verdict['best']} ({verdict['best_mean']:.2f}%),"
    baseline = f"the {VGG_LABEL} baseline ({verdict['baseline_mean']:.2f}%)"
    if verdict["beats"]:
        return f"{best} beats {baseline} by {verdict['margin']:.2f} points"
    return f"{best} does not beat {baseline}: {verdict['margin']:+.2f} points"


def retrain_section(runs_dir: Path) -> Section:
    """Question 3: Table 6's means ± 2 std, and whether the best searched network beats the VGG baseline."""
    folder = runs_dir / UNSEEN_RUNS[0] / RETRAIN_DIR
    if not folder.exists():
        return Section("retraining", not_run=[f"{UNSEEN_RUNS[0]}/{RETRAIN_DIR}"])
    table = read_table6(folder)
    rows = [{key: row[key] for key in TABLE6_KEYS} for row in table.to_dict("records")]
    verdicts = retrain_verdicts(table)
    clauses = [_verdict_clause(verdict) for verdict in verdicts]
    statement = "; ".join(clauses) + "." if clauses else "no env has both a searched and a baseline mean."
    return Section("retraining", rows, statement[0].upper() + statement[1:], extra={"verdicts": verdicts})


def _sigma_of(run: Run) -> float:
    if "sigma" not in run.config:
        raise RunFolderError(f"run folder {run.path}: config.yml has no sigma")
    return float(run.config["sigma"])


def sigma_section(runs_dir: Path) -> Section:
    """Question 4: per σ run, how often episodes end on a multi-branch network and steps shift a pointer."""
    runs = [load_run(path) for path in sorted(runs_dir.glob(SIGMA_GLOB)) if path.is_dir()]
    if not runs:
        return Section("sigma", not_run=[SIGMA_GLOB])
    rows = [{"run": run.path.name, "sigma": _sigma_of(run)} | sigma_numbers(run) for run in runs]
    rows.sort(key=lambda row: row["sigma"])
    low, high = rows[0], rows[-1]
    shares = "{multi_branch_fraction:.1%} of episodes ended multi-branch and {shift_fraction:.1%} of steps "
    shares += "were pointer shifts"
    if low is high:
        return Section("sigma", rows, f"Only σ = {low['sigma']:g} was run: {shares.format(**low)}.")
    statement = f"With σ = {high['sigma']:g}, {shares.format(**high)}; with σ = {low['sigma']:g}, "
    return Section("sigma", rows, statement + f"{shares.format(**low)}.")


def build_summary(runs_dir: Path, early_steps: int = EARLY_STEPS, early_episodes: int = EARLY_EPISODES):
    """The four sections; raises ``RunFolderError`` for a run folder that exists but cannot be read."""
    early = (early_steps, early_episodes)
    sections = [transfer_section(runs_dir, early), unseen_section(runs_dir, early)]
    return sections + [retrain_section(runs_dir), sigma_section(runs_dir)]


def markdown_table(section: Section, early: tuple[int, int]) -> str:
    """A section's rows as Markdown, the columns of :data:`SECTIONS`, numbers right-aligned."""
    keys = SECTIONS[section.key][1]
    headers = [COLUMNS[key][0].format(K=early[0], E=early[1]) for key in keys]
    rows = [[formatted(row[key], FORMATS[COLUMNS[key][1]]) for key in keys] for row in section.rows]
    return Table(headers, rows, [COLUMNS[key][1] != "text" for key in keys]).markdown()


def render_markdown(sections: list[Section], runs_dir: Path, early: tuple[int, int]) -> str:
    """summary.md: per question a table, the computed statement, and the runs that were not run."""
    lines = [f"# Reduced experiments: summary of {runs_dir}", ""]
    for section in sections:
        lines += [f"## {SECTIONS[section.key][0]}", ""]
        if section.rows:
            lines += [markdown_table(section, early), "", section.statement]
        lines += [f"Not run: {name}." for name in section.not_run] + [""]
    return "\n".join(lines)


def _plain(value):
    """JSON-ready: NaN as null."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def summary_json(sections: list[Section], early: tuple[int, int]) -> dict:
    data = {"early_steps": early[0], "early_episodes": early[1]}
    for section in sections:
        data[section.key] = {"rows": section.rows, "statement": section.statement or None}
        data[section.key] |= {"not_run": section.not_run, **section.extra}
    return _plain(data)


def copy_kept_files(runs_dir: Path, keep_dir: Path) -> list[Path]:
    """Copy each run's small files into keep_dir/<run>/; files over MAX_KEPT_BYTES are skipped with a note."""
    folders = [runs_dir / name for name in TRANSFER_RUNS + UNSEEN_RUNS] + sorted(runs_dir.glob(SIGMA_GLOB))
    sources = [folder / name for folder in folders for name in KEPT_FILES]
    sources += [runs_dir / UNSEEN_RUNS[0] / RETRAIN_DIR / name for name in KEPT_RETRAIN_FILES]
    copied = []
    for source in (path for path in sources if path.is_file()):
        size = source.stat().st_size
        if size > MAX_KEPT_BYTES:
            print(f"note: not kept {source} ({size / 1e6:.1f} MB, over {MAX_KEPT_BYTES / 1e6:g} MB)")
            continue
        target = keep_dir / source.relative_to(runs_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        copied.append(Path(shutil.copy2(source, target)))
    return copied
