"""The fidelity study's pieces: the chain-space counts against brute force through the builder, the
rank statistics on known inputs, the sampler's stratification, and the benchmark end to end at ``tiny``."""

import itertools
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sb3_nas.analysis.fidelity_study import (
    CHAIN_LAYERS,
    chain_rows,
    invalid_share,
    larger_only_depths,
    rank_agreement,
    sample_chains,
    top_overlap,
    valid_chains,
)
from sb3_nas.space import InvalidArchitecture, canonical_network, plan_network, validate_nsc

ROOT = Path(__file__).resolve().parent.parent


def _brute_force_valid(image_size: int, depth: int) -> int:
    """Valid chains of ``depth`` layers counted by building each one's plan (the builder's own rules)."""
    valid = 0
    for layers in itertools.product(CHAIN_LAYERS, repeat=depth):
        try:
            plan_network(chain_rows(layers), (1, image_size, image_size), 10)
            valid += 1
        except InvalidArchitecture:
            pass
    return valid


@pytest.mark.parametrize("image_size", [1, 2, 3, 5, 8, 12])
def test_valid_chain_counts_match_the_builder_by_brute_force(image_size):
    for depth in range(1, 5):  # 7**4 = 2401 chains at depth 4
        assert valid_chains(image_size, depth) == _brute_force_valid(image_size, depth), (image_size, depth)


def test_invalid_share_is_the_mean_over_depths_and_matches_the_issue():
    n = len(CHAIN_LAYERS)
    assert n == 7
    expected = 1 - np.mean([_brute_force_valid(5, d) / n**d for d in (1, 2, 3)])
    assert invalid_share(5, depths=(1, 2, 3)) == pytest.approx(expected)
    # the study's figures for depths 1–9: about 60% invalid at 16×16, 27% at 84×84, 81× fewer valid chains
    assert invalid_share(16) == pytest.approx(0.60, abs=0.01)
    assert invalid_share(84) == pytest.approx(0.27, abs=0.01)
    ratio = sum(valid_chains(84, d) for d in range(1, 11)) / sum(valid_chains(16, d) for d in range(1, 11))
    assert round(ratio) == 81


def test_sampler_is_stratified_distinct_valid_and_seeded():
    chains = sample_chains(40, 12, seed=3)
    depths = Counter(len(nsc) for nsc in chains)
    assert sorted(depths) == list(range(1, 10))
    assert max(depths.values()) - min(depths.values()) <= 1 and sum(depths.values()) == 40
    keys = {canonical_network(validate_nsc(nsc)) for nsc in chains}
    assert len(keys) == 40
    for nsc in chains:  # valid at the smallest size, hence at every larger one
        plan_network(nsc, (3, 12, 12), 10)
    assert sample_chains(40, 12, seed=3) == chains
    assert sample_chains(40, 12, seed=4) != chains


def test_sampler_draws_uniformly_among_the_valid_chains_of_a_depth():
    """At 4×4, depth 2 has few valid chains: 2000 draws of one each cover them about equally."""
    n_valid = valid_chains(4, 2)
    draws = Counter()
    for seed in range(400):
        for nsc in sample_chains(5, 4, seed=seed, depths=[2]):
            draws[canonical_network(validate_nsc(nsc))] += 1
    assert len(draws) == n_valid
    # 5 distinct per draw: uniform without replacement still gives every chain the same chance
    counts = np.array(list(draws.values()))
    assert stats.chisquare(counts).pvalue > 0.001


def test_larger_only_networks_are_invalid_at_the_small_size_and_valid_at_the_large():
    depths = larger_only_depths(84, 12)
    assert depths and 1 not in depths  # every single layer fits 12×12
    chains = sample_chains(9, 84, seed=0, depths=depths, exclude_valid_at=12)
    assert len(chains) == 9
    for nsc in chains:
        plan_network(nsc, (3, 84, 84), 10)
        with pytest.raises(InvalidArchitecture):
            plan_network(nsc, (3, 12, 12), 10)


def test_sampler_refuses_more_chains_than_a_depth_has():
    with pytest.raises(ValueError, match="depth 1 has 7 chains"):
        sample_chains(16, 84, seed=0, depths=[1, 2])


def test_rank_agreement_on_known_inputs():
    x = np.arange(20.0)
    same = rank_agreement(x, x * 2 + 1, reps=999)
    assert same.kendall_tau.value == pytest.approx(1.0) and same.spearman_rho.value == pytest.approx(1.0)
    assert same.top10 == 1.0 and same.top25 == 1.0
    reverse = rank_agreement(x, -x, reps=999)
    assert reverse.kendall_tau.value == pytest.approx(-1.0) and reverse.top25 == 0.0
    # one swapped pair among 20: tau = 1 - 2 * 1 / C(20, 2)
    y = x.copy()
    y[[0, 1]] = y[[1, 0]]
    swapped = rank_agreement(x, y, reps=999)
    assert swapped.kendall_tau.value == pytest.approx(1 - 2 / math.comb(20, 2))
    rng = np.random.default_rng(0)
    a = rng.random(60)
    b = a + rng.normal(0, 0.3, 60)
    noisy = rank_agreement(a, b, reps=1999, seed=1)
    assert noisy.kendall_tau.value == pytest.approx(stats.kendalltau(a, b).statistic)
    assert noisy.spearman_rho.value == pytest.approx(stats.spearmanr(a, b).statistic)
    assert noisy.kendall_tau.low < noisy.kendall_tau.value < noisy.kendall_tau.high < 1
    assert noisy.kendall_tau.high - noisy.kendall_tau.low > 0.05  # 60 noisy pairs leave real uncertainty
    constant = rank_agreement(np.ones(10), x[:10], reps=99)
    assert math.isnan(constant.kendall_tau.value)


def test_top_overlap_counts_the_shared_top_networks():
    full = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    cheap = [0.8, 0.9, 0.1, 0.6, 0.5, 0.4, 0.3, 0.7]  # top 2 kept, third replaced by the last
    assert top_overlap(cheap, full, 0.25) == 1.0  # k = 2
    assert top_overlap(cheap, full, 0.375) == pytest.approx(2 / 3)  # k = 3
    assert top_overlap(cheap, full, 0.01) == 0.0  # k = 1: the cheap best is the full second


def test_the_benchmark_runs_resumes_and_reports_at_tiny(tmp_path):
    """benchmarks/fidelity.py on a tiny budget: every network × fidelity in the CSV, the agreement and space
    tables written; a second call trains nothing (every reward from the memo)."""
    out, memo = tmp_path / "study", tmp_path / "memo.sqlite"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "fidelity.py"), "--tasks", "digits", "--n", "9",
        "--n-larger", "2", "--reference", "tiny,image_size=16", "--fidelities", "tiny,tiny,epochs=2",
        "--memo", str(memo), "--out", str(out), "--reps", "199",
    ]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = pd.read_csv(out / "accuracies.csv")
    assert len(rows) == 11 * 3 and set(rows["fidelity"]) == {"tiny", "tiny,epochs=2", "tiny,image_size=16"}
    larger = rows[rows["group"] == "larger-only"]
    assert len(larger) == 6 and not larger[larger["fidelity"] == "tiny"]["valid"].any()
    summary = json.loads((out / "study.json").read_text())
    assert [row["fidelity"] for row in summary["agreement"]] == ["tiny", "tiny,epochs=2"]
    assert all(row["n"] == 9 and -1 <= row["tau"] <= 1 for row in summary["agreement"])
    assert [row["image_size"] for row in summary["space"]] == [12, 12, 16]
    assert "Rank agreement" in (out / "study.md").read_text() and "tau_digits_tiny=" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    assert pd.read_csv(out / "accuracies.csv")["memo_hit"].all(), second.stdout
    # --no-train reads the same rewards from the memo (PerformanceEstimator.lookup) and writes the same tables
    subprocess.run([*command, "--no-train"], capture_output=True, text=True, check=True)
    looked_up = pd.read_csv(out / "accuracies.csv")
    pd.testing.assert_frame_equal(looked_up.drop(columns="memo_hit"), rows.drop(columns="memo_hit"))
    subprocess.run([*command, "--no-train", "--accept-precision", "any"], capture_output=True, check=True)
    assert pd.read_csv(out / "accuracies.csv")["memo_hit"].all()  # its own precision still answers first
    refused = subprocess.run([*command, "--accept-precision", "fp16"], capture_output=True, text=True)
    assert refused.returncode == 2 and "unknown precision 'fp16'" in refused.stderr


def test_the_benchmark_refuses_an_impossible_sample_in_one_line(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "fidelity.py"), "--n", "1000"]
    command += ["--out", str(tmp_path), "--memo", str(tmp_path / "memo.sqlite")]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --n/--n-larger: depth 1 has 7 chains to draw from at 12, not 112"
