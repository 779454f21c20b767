"""The report: every figure from small real runs, its statistics recomputed by hand, and bad run folders."""

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from sb3_nas import report
from sb3_nas.analysis import (
    action_proportions,
    best_networks,
    block_stats,
    entropy_curve,
    load_run,
    load_runs,
    nsc_svg,
    wilcoxon_actions,
)
from sb3_nas.analysis import report as report_library
from sb3_nas.analysis.run import EPISODE_COLUMNS, STEP_COLUMNS
from sb3_nas.experiment import EPISODE_COLUMNS as RECORDED_EPISODE_COLUMNS
from sb3_nas.experiment import STEP_COLUMNS as RECORDED_STEP_COLUMNS
from sb3_nas.space import ACTION_NAMES, canonical_network, validate_nsc

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
META_A2C = (
    FIXTURES / "meta_a2c_multi_branch"
)  # train --algo meta_a2c --multi-branch --sigma 0.1, digits,photos
RANDOM = FIXTURES / "random"  # train --algo random, chain, digits,photos
BLOCK = 10


def blocks_by_hand(values, block):
    """Mean and population std of consecutive blocks, written out."""
    means, stds = [], []
    for start in range(0, len(values), block):
        chunk = [float(v) for v in values[start : start + block]]
        mean = sum(chunk) / len(chunk)
        means.append(mean)
        stds.append(math.sqrt(sum((v - mean) ** 2 for v in chunk) / len(chunk)))
    return means, stds


def wilcoxon_statistic_by_hand(a, b):
    """min(W+, W−) over the non-zero differences, ties given their average rank."""
    diffs = [x - y for x, y in zip(a, b, strict=True) if x != y]
    ordered = sorted(abs(d) for d in diffs)
    rank = {}
    for value in set(ordered):
        positions = [i + 1 for i, v in enumerate(ordered) if v == value]
        rank[value] = sum(positions) / len(positions)
    plus = sum(rank[abs(d)] for d in diffs if d > 0)
    minus = sum(rank[abs(d)] for d in diffs if d < 0)
    return min(plus, minus)


@pytest.fixture(scope="module")
def runs():
    return load_runs([META_A2C, RANDOM])


@pytest.fixture(scope="module")
def built(runs):
    return report_library.build_report(runs, block=BLOCK)


def test_the_analysis_reads_only_recorded_columns():
    assert set(STEP_COLUMNS) <= set(RECORDED_STEP_COLUMNS)
    assert set(EPISODE_COLUMNS) <= set(RECORDED_EPISODE_COLUMNS)


@pytest.mark.parametrize("metric", ["best_reward", "accumulated_reward", "length"])
def test_episode_blocks_match_a_hand_computation(runs, built, metric):
    figure = built.figures[report_library.EPISODE_FIGURES[metric]]
    for run in runs:
        episodes = pd.read_csv(run.path / "episodes.csv")
        for axis, env in (("x", "digits"), ("x2", "photos")):
            values = episodes[episodes["env"] == env].sort_values("episode")[metric].tolist()
            means, stds = blocks_by_hand(values, BLOCK)
            stats = block_stats(values, BLOCK)
            assert stats.mean == pytest.approx(means) and stats.std == pytest.approx(stds)
            assert list(stats.start) == list(range(0, len(values), BLOCK))
            (line,) = [t for t in figure.data if t.name == run.label and t.xaxis == axis and t.mode]
            assert list(line.y) == pytest.approx(means)
            (band,) = [t for t in figure.data if t.legendgroup == run.label and t.xaxis == axis and t.fill]
            upper = list(band.y[: len(means)])
            assert upper == pytest.approx([m + s for m, s in zip(means, stds, strict=True)])


def test_multi_branch_counts_per_block(runs, built):
    figure = built.figures["multi-branch"]
    meta_a2c = runs[0]
    episodes = pd.read_csv(META_A2C / "episodes.csv")
    digits = episodes[episodes["env"] == "digits"].sort_values("episode")["multi_branch"]
    flags = [1 if str(v) == "True" else 0 for v in digits]
    assert sum(flags) > 0  # the fixture did find multi-branch networks
    means, _ = blocks_by_hand(flags, BLOCK)
    (line,) = [t for t in figure.data if t.name == meta_a2c.label and t.xaxis == "x" and t.mode]
    assert list(line.y) == pytest.approx(means)
    counts = [sum(flags[s : s + BLOCK]) for s in range(0, len(flags), BLOCK)]
    assert [int(text.split(": ")[1].split()[0]) for text in line.text] == counts
    assert not [t for t in figure.data if t.name == runs[1].label]  # the chain run has no such trace


def test_action_proportions_match_counts(runs, built):
    figure = built.figures["actions"]
    for run in runs:
        steps = pd.read_csv(run.path / "steps.csv")
        for axis, env in (("x", "digits"), ("x2", "photos")):
            actions = steps[steps["env"] == env]["action"].tolist()
            counts = Counter(actions)
            expected = [counts.get(a, 0) / len(actions) for a in range(14)]
            assert list(action_proportions(actions, 14)) == pytest.approx(expected)
            (bars,) = [t for t in figure.data if t.name == run.label and t.xaxis == axis]
            assert [label.split()[0] for label in bars.x] == list(ACTION_NAMES)
            assert list(bars.y) == pytest.approx(expected)
    assert list(figure.data[0].x[:4]) == ["A0 conv 1×1", "A1 conv 3×3", "A2 conv 5×5", "A3 max-pool 2×2"]
    merges_and_shifts = ["A7 terminal", "A8 add", "A9 concat", "A10 p1 ↑", "A11 p1 ↓", "A12 p2 ↑", "A13 p2 ↓"]
    assert list(figure.data[0].x[7:]) == merges_and_shifts


def test_the_block_follows_the_episodes_and_a_short_run_is_noted(runs):
    most = max(len(run.env_episodes(env)) for run in runs for env in run.envs)
    report = report_library.build_report(runs)  # no block given
    assert report.block == max(1, round(most / 10))
    for trace in report.figures["best-reward"].data:
        if trace.fill == "toself":
            assert trace.mode == "lines"  # a ± 1 std band: no markers at its corners
    wide = report_library.build_report(runs, block=most + 1)
    assert (
        "Notes" in report_library.render_html(wide) and f"a block of {most + 1}" in wide.sections["notes"][1]
    )
    assert "notes" not in report.sections or f"a block of {report.block}" in report.sections["notes"][1]


def test_wilcoxon_between_environments(runs):
    for run in runs:
        steps = pd.read_csv(run.path / "steps.csv")
        n_actions = 14 if run.multi_branch else 8
        shares = {}
        for env in ("digits", "photos"):
            counts = Counter(steps[steps["env"] == env]["action"])
            total = sum(counts.values())
            shares[env] = [counts.get(a, 0) / total for a in range(n_actions)]
        (result,) = wilcoxon_actions(run)
        assert (result.env_a, result.env_b, result.n_actions) == ("digits", "photos", n_actions)
        assert result.statistic == pytest.approx(
            wilcoxon_statistic_by_hand(shares["digits"], shares["photos"])
        )
        assert 0.0 <= result.p_value <= 1.0 and result.significant == (result.p_value < 0.05)


def test_entropy_curve_is_the_logged_entropy(runs, built):
    meta_a2c, random = runs
    progress = pd.read_csv(META_A2C / "progress.csv").dropna(subset=["train/entropy"])
    curve = entropy_curve(meta_a2c)
    assert list(curve["entropy"]) == pytest.approx(list(progress["train/entropy"]))
    assert list(curve["timestep"]) == list(progress["time/total_timesteps"])
    assert entropy_curve(random) is None
    assert [t.name for t in built.figures["entropy"].data] == [meta_a2c.label]


def test_entropy_of_algorithms_that_restart_their_step_count():
    run = load_run(RANDOM)  # 60 steps on digits, then 40 on photos
    run.progress = pd.DataFrame(
        {"time/total_timesteps": [20, 40, 60, 20, 40], "train/entropy_loss": [-2.0, -1.9, -1.8, -2.0, -1.5]}
    )
    curve = entropy_curve(run)
    assert list(curve["timestep"]) == [20, 40, 60, 80, 100]
    assert list(curve["entropy"]) == [2.0, 1.9, 1.8, 2.0, 1.5]


def test_best_networks_are_distinct_and_ranked_by_reward(runs):
    for run in runs:
        steps = pd.read_csv(run.path / "steps.csv")
        for env in run.envs:
            valid = steps[(steps["env"] == env) & steps["valid"]]
            best = best_networks(run, env, top=3)
            assert [n.rank for n in best] == [1, 2, 3]
            assert best[0].reward == pytest.approx(valid["reward"].max())
            assert [n.reward for n in best] == sorted((n.reward for n in best), reverse=True)
            keys = [canonical_network(validate_nsc(n.nsc)) for n in best]
            assert len(set(keys)) == 3
            for network in best:  # each is a state the run did reach, with that reward
                reached = valid[valid["reward"] == network.reward]["nsc"].map(json.loads)
                assert any(canonical_network(validate_nsc(r)) == keys[network.rank - 1] for r in reached)


def test_a_multi_branch_diagram_draws_every_layer_and_edge():
    nsc = [[1, 1, 3, 0, 0], [2, 2, 2, 0, 0], [3, 1, 1, 1, 0], [4, 5, 0, 3, 2], [5, 7, 0, 0, 0]]
    svg = nsc_svg(nsc, uid="t")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 6  # input, four layers, prediction module
    for label in ("input", "1: conv 3×3", "2: max-pool 2×2", "3: conv 1×1", "4: add 3 + 2", "dense 1024"):
        assert label in svg
    # edges: 0→1, 0→2, 1→3, 3→4, 2→4, 4→head; plus the arrow head's own path
    assert svg.count("<path") == 6 + 1 and svg.count('marker-end="url(#arrow-t)"') == 6


def test_report_html_has_every_figure_and_works_offline(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert report.main([str(META_A2C), str(RANDOM), "--out", str(out), "--block", str(BLOCK)]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    for figure_id in report_library.FIGURES:
        assert f'id="fig-{figure_id}"' in html, figure_id
    for section in ("runs", "summary", "wilcoxon", "networks"):
        assert f'<section id="{section}">' in html
    assert html.count("<figure><svg") == 8  # two networks per environment and run
    assert "<script src=" not in html and "plotly.js v" in html  # plotly.js inline
    assert "meta_a2c/meta_a2c_multi_branch" in html and "random/random" in html
    assert not list(tmp_path.glob("*.png"))  # kaleido is not installed here


def test_figures_without_data_are_named_not_drawn(tmp_path):
    out = tmp_path / "random.html"
    assert report.main([str(RANDOM), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert 'id="fig-entropy"' not in html and 'id="fig-multi-branch"' not in html
    assert html.count("Not shown:") == 2
    assert 'id="fig-best-reward"' in html and 'id="fig-actions"' in html


def test_repeated_folder_names_get_distinct_labels():
    labels = [run.label for run in load_runs([RANDOM, RANDOM])]
    assert labels == ["random/random", "random/random #2"]


def _broken_copy(tmp_path, edit):
    folder = tmp_path / "run"
    shutil.copytree(RANDOM, folder)
    edit(folder)
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: (f / "episodes.csv").unlink(), "lacks episodes.csv"),
        (lambda f: [(f / n).unlink() for n in ("steps.csv", "config.yml")], "lacks config.yml, steps.csv"),
        (
            lambda f: (
                pd.read_csv(f / "episodes.csv").drop(columns=["multi_branch"]).to_csv(f / "episodes.csv")
            ),
            "episodes.csv lacks column(s) multi_branch",
        ),
        (
            lambda f: pd.read_csv(f / "steps.csv").drop(columns=["nsc", "valid"]).to_csv(f / "steps.csv"),
            "steps.csv lacks column(s) valid, nsc",
        ),
        (lambda f: (f / "steps.csv").write_text(""), "steps.csv is empty"),
        (lambda f: shutil.rmtree(f), "does not exist"),
    ],
)
def test_a_bad_run_folder_is_one_line_and_exit_2(tmp_path, capsys, edit, message):
    folder = _broken_copy(tmp_path, edit)
    assert report.main([str(folder), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run folder") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_png_export_when_kaleido_is_there(tmp_path, monkeypatch, built):
    import importlib.util

    import plotly.graph_objects as go

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name == "kaleido" else find_spec(name)
    )
    monkeypatch.setattr(go.Figure, "write_image", lambda self, path, **kw: Path(path).write_bytes(b"png"))
    written = report_library.export_png(built, tmp_path / "r.html")
    expected = sorted(f"r-{figure_id}.png" for figure_id in report_library.FIGURES)
    assert sorted(p.name for p in written) == expected

    def fail(self, path, **kw):
        raise RuntimeError("Kaleido requires Google Chrome to be installed")

    monkeypatch.setattr(go.Figure, "write_image", fail)
    assert report_library.export_png(built, tmp_path / "s.html") == []  # a warning, not a crash
