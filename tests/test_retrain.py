"""Experiment 2's retraining on a tiny budget: the table, the architectures, determinism and bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sb3_nas import report, retrain
from sb3_nas.analysis import best_networks, load_run
from sb3_nas.analysis.retraining import (
    RETRAIN_DENSE_UNITS,
    VGG_LABEL,
    Candidate,
    VGGTwoBlocks,
    retrain_fidelity,
    train_candidate,
)
from sb3_nas.data import load_dataset
from sb3_nas.estimation import PreparedData, get_fidelity, prepare_data
from sb3_nas.estimation import trainer as trainer_module

RANDOM = Path(__file__).parent / "fixtures" / "runs" / "random"  # train --algo random, digits,photos, tiny
ARCHITECTURES = ["random (1st)", "random (2nd)", VGG_LABEL]
DESIGNED = json.dumps([[1, 1, 3, 0, 0], [2, 1, 1, 1, 0], [3, 2, 2, 2, 0], [4, 1, 1, 3, 0]])
UNBUILDABLE = json.dumps([[1, 2, 3, 0, 0], [2, 2, 3, 1, 0], [3, 2, 3, 2, 0], [4, 2, 3, 3, 0]])  # 12 px → 0
ROW_KEYS = ["accuracy", "n_params", "train_seconds", "reason"]


@pytest.fixture(scope="module")
def few_digits() -> PreparedData:
    """96 training and 48 test images of digits at the tiny fidelity: enough to check a training quickly."""
    data = prepare_data(load_dataset("digits"), get_fidelity("tiny"))
    return PreparedData(
        data.train_x[:96], data.train_y[:96], data.test_x[:48], data.test_y[:48], data.n_classes
    )


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """The random-search fixture retrained on digits: its two best networks and the VGG, 2 × 1 epoch."""
    run = tmp_path_factory.mktemp("retrain") / "random"
    shutil.copytree(RANDOM, run)
    argv = ["--run", str(run), "--envs", "digits", "--runs", "2", "--epochs", "1", "--no-progress"]
    assert retrain.main(argv) == 0
    return run


def test_the_table_has_both_networks_and_the_baseline(retrained):
    out = retrained / "retrain"
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["architecture"].unique()) == ARCHITECTURES
    assert runs.groupby("architecture")["seed"].apply(list).to_dict() == {a: [0, 1] for a in ARCHITECTURES}
    assert runs["accuracy"].between(0, 1).all() and runs["reason"].isna().all()
    table = pd.read_csv(out / "table6.csv")
    assert list(table["architecture"]) == ARCHITECTURES and set(table["env"]) == {"digits"}
    for row in table.itertuples():
        accuracy = runs[runs["architecture"] == row.architecture]["accuracy"].to_numpy() * 100
        assert row.mean == pytest.approx(accuracy.mean())
        assert row.two_std == pytest.approx(2 * np.sqrt(((accuracy - accuracy.mean()) ** 2).mean()))
        assert row.runs == 2
    markdown = (out / "table6.md").read_text()
    assert markdown.startswith("| dataset | random (1st) | random (2nd) | VGG19-like |")
    assert f"| digits | {table['mean'][0]:.2f} ± {table['two_std'][0]:.2f} |" in markdown


def test_the_retrained_networks_are_the_runs_best(retrained):
    run = load_run(RANDOM)
    runs = pd.read_csv(retrained / "retrain" / "runs.csv")
    expected = [network.nsc_json for network in best_networks(run, "digits", 2)]
    assert list(runs["nsc"].dropna().unique()) == expected


def test_a_seed_gives_the_same_accuracy(retrained):
    row = pd.read_csv(retrained / "retrain" / "runs.csv").iloc[3]  # random (2nd), seed 1
    data = prepare_data(load_dataset("digits"), get_fidelity("tiny"))
    candidate = Candidate("digits", row["architecture"], row["nsc"])
    again = train_candidate(candidate, data, retrain_fidelity(get_fidelity("tiny"), 1, int(row["seed"])))
    assert again["accuracy"] == row["accuracy"]


def test_the_report_shows_the_retraining_table(retrained, tmp_path):
    assert report.main([str(retrained), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<section id="table6">' in html and VGG_LABEL in html


def test_the_designed_networks_grow_their_filters_and_dense_layer():
    data = prepare_data(load_dataset("digits"), get_fidelity("tiny"))
    nsc = [[1, 1, 3, 0, 0], [2, 1, 1, 1, 0], [3, 2, 2, 2, 0], [4, 1, 1, 3, 0]]
    network = Candidate("digits", "x", json.dumps(nsc)).build(data)
    convs = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]  # 2^(4+i), §6.1
    assert network.head[1].out_features == RETRAIN_DENSE_UNITS


def test_the_vgg_baseline_is_two_blocks():
    vgg = VGGTwoBlocks((3, 12, 12), n_classes=5)
    convs = [m for m in vgg if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg) == 2
    dense = [m for m in vgg if isinstance(m, nn.Linear)]  # same padding: only the poolings shrink 12 → 6 → 3
    assert [(m.in_features, m.out_features) for m in dense] == [(128 * 3 * 3, 4096), (4096, 4096), (4096, 5)]
    assert vgg(torch.zeros(2, 3, 12, 12)).shape == (2, 5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run", "no/such/run"], "does not exist"),
        (["--run", str(RANDOM), "--envs", "mnist"], "has no environment mnist (it has digits, photos)"),
        (["--run", str(RANDOM), "--fidelity", "huge"], "unknown fidelity 'huge'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert retrain.main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_train_candidate_is_a_seeded_training(few_digits):
    candidate = Candidate("digits", "x", DESIGNED)
    fidelity = retrain_fidelity(get_fidelity("tiny"), 1, 4)
    with torch.random.fork_rng(devices=[]):  # the training's definition: weights seeded by the fidelity
        torch.manual_seed(fidelity.seed)
        network = candidate.build(few_digits)
        expected = trainer_module.train_and_test(network, few_digits, fidelity)
    row = train_candidate(candidate, few_digits, fidelity)
    assert list(row) == ROW_KEYS
    assert row["accuracy"] == expected and row["reason"] == "" and row["train_seconds"] > 0
    assert row["n_params"] == sum(p.numel() for p in network.parameters())


def test_an_unbuildable_candidate_has_no_accuracy(few_digits):
    row = train_candidate(Candidate("digits", "x", UNBUILDABLE), few_digits, get_fidelity("tiny"))
    assert list(row) == ROW_KEYS and np.isnan(row["accuracy"])
    assert (row["n_params"], row["train_seconds"]) == (0, 0.0)
    assert row["reason"] == (
        "not buildable on 12×12 images: "
        "layer 3 (max-pooling 3) on a 1x1 input would produce a spatial size below 1"
    )


def test_a_failed_training_scores_zero_with_its_reason(few_digits, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setattr(trainer_module, "train_and_test", fail)
    candidate = Candidate("digits", "x", DESIGNED)
    row = train_candidate(candidate, few_digits, get_fidelity("tiny"))
    assert list(row) == ROW_KEYS and row["train_seconds"] > 0
    assert (row["accuracy"], row["reason"]) == (0.0, "training failed: CUDA out of memory.")
    assert row["n_params"] == sum(p.numel() for p in candidate.build(few_digits).parameters())
