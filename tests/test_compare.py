"""python -m sb3_nas.compare: the few-seed statistics against hand-computed values, and a real comparison at
the tiny fidelity (random and DQN × 2 seeds on digits, 10 steps) checked against its runs' own records."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sb3_nas import compare
from sb3_nas.analysis import comparison as lib
from sb3_nas.analysis.few_seeds import (
    cell_rng,
    improvement_interval,
    iqm,
    iqm_band,
    iqm_interval,
    probability_of_improvement,
)
from sb3_nas.experiment import comparison as running
from sb3_nas.space import canonical_network, validate_nsc

ALGOS, SEEDS, T_MAX = ("random", "dqn"), (0, 1), 10


# -- the statistics, by hand ---------------------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm([4.0, 1.0, 3.0, 2.0]) == pytest.approx(2.5)  # 1 cut from each end: (2 + 3) / 2
    assert iqm([5, 1, 9, 2, 100, 3, 4, 7]) == pytest.approx((3 + 4 + 5 + 7) / 4)  # 2 cut from each end
    assert iqm([0.2, 0.9]) == pytest.approx(0.55)  # 2 seeds: nothing cut, the mean
    assert iqm([0.2, 0.9, 0.4]) == pytest.approx(0.5)  # 3 seeds: nothing cut either


def test_probability_of_improvement_counts_ties_as_half_and_averages_tasks():
    # task 1: 0.6 vs (0.6, 0.5, 0.8) → ½ + 1 + 0; 0.7 vs them → 1 + 1 + 0: 3.5 of 6 pairs
    assert probability_of_improvement([[0.6, 0.7]], [[0.6, 0.5, 0.8]]) == pytest.approx(3.5 / 6)
    # task 2: X always below Y → 0; the mean over the two tasks
    both = probability_of_improvement([[0.6, 0.7], [0.1]], [[0.6, 0.5, 0.8], [0.3, 0.2]])
    assert both == pytest.approx((3.5 / 6 + 0.0) / 2)
    assert probability_of_improvement([[0.4, 0.4]], [[0.4]]) == 0.5


def test_bootstrap_intervals():
    # 2 seeds: a quarter of the resamples is the lower value twice, a quarter the higher twice, so the 2.5th
    # and 97.5th percentiles of the resampled means are exactly the two values
    interval = iqm_interval([0.9, 0.2], 4000, cell_rng(0, "a"))
    assert (interval.point, interval.low, interval.high, interval.n) == pytest.approx((0.55, 0.2, 0.9, 2))
    # P(X > Y) with X = (1) and Y = (0, 2): Y's resamples (0, 0), (0, 2), (2, 2) give 1, ½, 0
    poi = improvement_interval([[1.0]], [[0.0, 2.0]], 4000, cell_rng(0, "b"))
    assert (poi.point, poi.low, poi.high) == pytest.approx((0.5, 0.0, 1.0))
    # 1 seed: no interval, and the table says so; NaN scores (no finished episode) are left out
    single = iqm_interval([0.7, math.nan], 4000, cell_rng(0, "c"))
    assert single.n == 1 and not single.has_interval and single.format() == "0.7000 (no interval)"
    assert iqm_interval([math.nan], 10, cell_rng(0, "d")).format() == "—"
    assert not improvement_interval([[0.3]], [[0.1]], 100, cell_rng(0, "e")).has_interval
    # reproducible per cell, and the interval holds the point
    values = [0.1, 0.5, 0.35, 0.8, 0.6]
    first, again = (iqm_interval(values, 3000, cell_rng(0, "x")) for _ in range(2))
    assert first == again and first.low <= first.point <= first.high
    point, low, high = iqm_band(np.array([[0.1, 0.5, 0.5], [0.3, 0.5, 0.7]]), 3000, cell_rng(0, "f"))
    np.testing.assert_allclose(point, [0.2, 0.5, 0.6])
    np.testing.assert_allclose(low, [0.1, 0.5, 0.5])
    np.testing.assert_allclose(high, [0.3, 0.5, 0.7])


def test_last_episodes_default_is_the_sweeps():
    from sb3_nas.tuning.spec import Objective

    assert Objective().last_episodes == lib.DEFAULT_LAST_EPISODES


# -- a real comparison --------------------------------------------------------------------------------------


def _argv(out: Path, memo: Path, algos=ALGOS, seeds=SEEDS, *more: str) -> list[str]:
    return ["--algos", ",".join(algos), "--seeds", ",".join(map(str, seeds)), "--envs", "digits",
            "--timesteps", str(T_MAX), "--fidelity", "tiny", "--memo", str(memo), "-f", str(out),
            "--no-progress", "--reps", "2000", *more]  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path, str]:
    """Random and DQN × seeds 0, 1 on digits at the tiny fidelity: the folder, the memo, what was printed."""
    root = tmp_path_factory.mktemp("compare")
    out, memo = root / "comparison", root / "memo.sqlite"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert compare.main([*_argv(out, memo), "-tb", str(root / "tb")]) == 0
    return out, memo, stdout.getvalue()


def test_each_run_of_a_comparison_logs_to_tensorboard(made):
    board = made[0].parent / "tb"
    for algo in ALGOS:
        for seed in SEEDS:
            assert list((board / algo / f"seed-{seed}").glob("events.out.tfevents.*")), (algo, seed)


def _scores(out: Path, algo: str, seed: int) -> dict[str, float]:
    """The scores recomputed from the run's own records."""
    folder = out / algo / f"seed-{seed}"
    steps, episodes = pd.read_csv(folder / "steps.csv"), pd.read_csv(folder / "episodes.csv")
    valid = steps[steps["valid"] & (steps["n_params"] > 0)]
    networks = {canonical_network(validate_nsc(json.loads(nsc))) for nsc in valid["nsc"]}
    last = episodes["best_reward"].tail(10)
    return {
        "best": steps.loc[steps["valid"], "accuracy"].max(),
        "last": last.mean() if len(last) else math.nan,
        "networks": len(networks),
        "hit": steps["memo_hit"].mean(),
        "rows": len(steps),
    }


def _row(markdown: str, *first: str) -> list[str]:
    """The cells of the Markdown row whose first cells are ``first``."""
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[: len(first)] == list(first):
            return cells
    raise AssertionError(f"no row {first} in the table")


def _interval(cell: str) -> tuple[float, float, float]:
    point, low, high = re.fullmatch(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", cell).groups()
    return float(point), float(low), float(high)


def test_comparison_outputs_the_statistics_of_its_runs(made):
    out, _, stdout = made
    markdown = (out / "comparison.md").read_text()
    html = (out / "comparison.html").read_text()
    assert "4 runs (4 to run)" in stdout
    scores = {(algo, seed): _scores(out, algo, seed) for algo in ALGOS for seed in SEEDS}
    assert all(s["rows"] == T_MAX for s in scores.values())
    for algo in ALGOS:
        cells = _row(markdown, algo, "digits")
        assert cells[2] == "2"
        for column, key in ((3, "best"), (4, "last"), (5, "networks")):
            values = [scores[(algo, seed)][key] for seed in SEEDS]
            point, low, high = _interval(cells[column])
            # 2 seeds: the IQM is their mean, and the interval spans the two values
            assert point == pytest.approx(np.mean(values), abs=6e-5)
            assert (low, high) == pytest.approx((min(values), max(values)), abs=6e-5)
            assert cells[column] in html
        # the sample-efficiency curve ends at the best accuracy found
        curve = _row(markdown.split("## Sample efficiency")[1], algo, "digits")
        assert curve[-1].startswith(f"step {T_MAX}: {cells[3]}")
    # P(random > dqn) on best accuracy, from the four runs' records
    x = [scores[("random", seed)]["best"] for seed in SEEDS]
    y = [scores[("dqn", seed)]["best"] for seed in SEEDS]
    expected = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y])
    best_section = markdown.split("### best accuracy")[1].split("###")[0]
    assert _row(best_section, "random", "dqn")[2].startswith(f"{expected:.2f}")
    # the ranking: by IQM of the best accuracy, with P(reference > each), the reference the first algorithm
    ranking = markdown.split("## Ranking by best accuracy, per environment")[1].split("\n## ")[0]
    ranked = [_row(ranking, str(rank)) for rank in (1, 2)]
    assert [cells[1] for cells in ranked] == sorted(
        ALGOS, key=lambda a: -_interval(_row(markdown, a, "digits")[3])[0]
    )
    for cells in ranked:
        assert cells[3] == _row(markdown, cells[1], "digits")[3]
        assert cells[4] == ("—" if cells[1] == "random" else _row(best_section, "random", "dqn")[2])
    assert "Ranking by best accuracy" in html
    assert "With 2 seeds the IQM is their mean" in markdown
    # wall time and memo hit rate per run
    for (algo, seed), s in scores.items():
        runs = _row(markdown.split("## Runs")[1], algo, str(seed))
        assert runs[3] == "ran" and runs[-1] == f"{s['hit']:.0%}"
        timing = json.loads((out / algo / f"seed-{seed}" / "timing.json").read_text())
        assert timing["wall_seconds"] > 0 and len(timing["sessions"]) == 1
    # one self-contained HTML file: plotly.js inline, the scores and curves as figures
    assert "<script src=" not in html and 'id="fig-scores"' in html and 'id="fig-curves"' in html
    assert len(html) > 1_000_000  # plotly.js itself


def test_running_again_reuses_every_run(made, monkeypatch, capsys):
    out, memo, _ = made
    before = {path: path.stat().st_mtime_ns for path in out.glob("*/seed-*/steps.csv")}

    def no_run(*_args, **_kwargs):
        raise AssertionError("a complete run was run again")

    monkeypatch.setattr(running, "run", no_run)
    assert compare.main(_argv(out, memo)) == 0
    assert "4 runs (4 to reuse)" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in out.glob("*/seed-*/steps.csv")} == before
    assert "| random | 0 |" in (out / "comparison.md").read_text()


def test_adding_a_seed_runs_only_the_new_runs_and_resumes_a_cut_one(made, tmp_path, capsys):
    original, memo, _ = made
    out = tmp_path / "comparison"
    shutil.copytree(original, out)
    cut = out / "dqn" / "seed-1" / "steps.csv"  # a run killed half-way, without a checkpoint
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:6]))
    kept = {path: path.stat().st_mtime_ns for path in out.glob("*/seed-[0]/steps.csv")}
    assert compare.main(_argv(out, memo, ALGOS, (0, 1, 2), "--n-jobs", "2")) == 0  # in worker processes
    printed = capsys.readouterr().out
    assert "6 runs (2 to run, 1 to resume, 3 to reuse)" in printed
    assert {path: path.stat().st_mtime_ns for path in kept} == kept
    for algo in ALGOS:
        assert _scores(out, algo, 2)["rows"] == T_MAX
    assert _scores(out, "dqn", 1)["rows"] == T_MAX
    sessions = json.loads((out / "dqn" / "seed-1" / "timing.json").read_text())["sessions"]
    assert [s["resumed"] for s in sessions] == [False, True]
    markdown = (out / "comparison.md").read_text()
    assert _row(markdown, "random", "digits")[2] == "3"
    assert _row(markdown.split("## Runs")[1], "dqn", "1")[3] == "resumed"
    assert _row(markdown.split("## Runs")[1], "random", "2")[3] == "ran"


def test_bad_input_is_one_line_and_exit_2(made, tmp_path, capsys):
    original, memo, _ = made
    out = tmp_path / "new"
    for argv, message in (
        (_argv(out, memo, ("random", "nope")), "unknown algorithm 'nope'"),
        (_argv(out, memo, ALGOS, (0, 0)), "--seeds names 0 more than once"),
        (_argv(out, memo)[:2] + ["--seeds", "a,b"], "expected comma-separated integers"),
    ):
        assert compare.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()
    # a folder holding another comparison's run (another budget) is refused and left as it was
    other = tmp_path / "other"
    shutil.copytree(original / "random" / "seed-0", other / "random" / "seed-0")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (other / "random" / "seed-0").iterdir())
    argv = _argv(other, memo, ("random",), (0,))
    argv[argv.index("--timesteps") + 1] = "12"
    assert compare.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds another comparison's run (timesteps 10 (not 12))" in err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (other / "random" / "seed-0").iterdir()) == before
    assert not (other / "comparison.md").exists()


def test_one_seed_has_no_interval():
    record = lib.RunRecord("random", 0, Path("r"), scores={"digits": {s: 0.5 for s in lib.SCORES}},
                           curves={"digits": np.array([0.1, 0.5])})  # fmt: skip
    comparison = lib.build_comparison([record], ["random"], ["digits"], {"random": {"digits": 2}}, reps=100)
    markdown = lib.render_markdown(comparison)
    assert "0.5000 (no interval)" in markdown and "With 1 seed there is no interval" in markdown
    assert "One algorithm: nothing to compare." in markdown
    interval = comparison.interval("random", "digits", "best_accuracy")
    assert (interval.point, interval.n, interval.has_interval) == (0.5, 1, False)
    assert "fig-curves" in lib.render_html(comparison)
