"""The reduced experiments' summary: its numbers recomputed by hand from synthetic runs, absent and broken
run folders, and the files kept."""

import csv
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from sb3_nas import summary as summary_command
from sb3_nas.analysis import summary
from sb3_nas.analysis.retraining import RESULT_COLUMNS, VGG_LABEL
from sb3_nas.experiment import EPISODE_COLUMNS, STEP_COLUMNS

REAL_MULTI_BRANCH = Path(__file__).parent / "fixtures" / "runs" / "meta_a2c_multi_branch"  # σ 0.1, real
K, E = 7, 4  # --early-steps, --early-episodes: fewer than each environment has
EXP1_ENVS, EXP2_ENVS = ("digits", "photos", "textures"), ("mnist", "mnist_noisy")
# reward offsets making meta_a2c's start better than dqn's on photos and worse on textures
OFFSET = {("meta_a2c", "photos"): 0.5, ("meta_a2c", "textures"): -0.5}
SHIFTS = {10, 11, 12, 13}  # Table 2: shift p1 up/down, shift p2 up/down
TABLE6 = [  # env, architecture, mean, two_std (%)
    ("mnist", "meta_a2c (1st)", 97.5, 0.4),
    ("mnist", "meta_a2c (2nd)", 98.25, 0.2),
    ("mnist", VGG_LABEL, 97.0, 0.6),
    ("mnist_noisy", "meta_a2c (1st)", 90.0, 1.0),
    ("mnist_noisy", "meta_a2c (2nd)", 89.0, 1.2),
    ("mnist_noisy", VGG_LABEL, 91.5, 0.8),
]


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def synthetic_run(folder, config, envs, n_steps, rng, algo="", n_actions=8):
    """A run folder with every recorded column: episodes of 1–5 steps, a quarter of the networks invalid, the
    best accuracy of each environment at its last step."""
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    steps, episodes, step = [], [], 0
    for env in envs:
        episode = count = 0
        while count < n_steps:
            length = min(rng.randint(1, 5), n_steps - count)
            for index in range(length):
                step, count = step + 1, count + 1
                last = count == n_steps  # the env's best network
                valid = last or rng.random() > 0.25
                accuracy = (0.9 + 0.1 * rng.random() if last else 0.9 * rng.random()) if valid else 0.0
                reward = accuracy + OFFSET.get((algo, env), 0.0) if valid else 0.0
                steps.append(
                    {
                        "env": env,
                        "step": step,
                        "trial": 1,
                        "episode": episode,
                        "episode_step": index + 1,
                        "action": rng.randrange(n_actions),
                        "reward": reward,
                        "accuracy": accuracy,
                        "valid": valid,
                        "memo_hit": False,
                        "n_params": 100,
                        "nsc": "[]",
                    }
                )
            episodes.append(
                {
                    "env": env,
                    "episode": episode,
                    "best_reward": rng.random(),
                    "accumulated_reward": 1.0,
                    "length": length,
                    "multi_branch": rng.random() < 0.4,
                    "best_nsc": "[]",
                }
            )
            episode += 1
    write_csv(folder / "steps.csv", STEP_COLUMNS, steps)
    write_csv(folder / "episodes.csv", EPISODE_COLUMNS, episodes)
    return steps, episodes


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def env_numbers_by_hand(steps, episodes, env):
    first = [row for row in steps if row["env"] == env][:K]
    ordered = sorted((row for row in episodes if row["env"] == env), key=lambda row: int(row["episode"]))[:E]
    valid = [float(row["accuracy"]) for row in steps if row["env"] == env and str(row["valid"]) == "True"]
    return {
        "early_step_reward": sum(float(row["reward"]) for row in first) / len(first),
        "early_episode_best_reward": sum(float(row["best_reward"]) for row in ordered) / len(ordered),
        "best_accuracy": max(valid),
        "early_invalid_fraction": sum(str(row["valid"]) != "True" for row in first) / len(first),
    }


def sigma_numbers_by_hand(steps, episodes):
    multi = sum(str(row["multi_branch"]) == "True" for row in episodes)
    return {
        "episodes": len(episodes),
        "multi_branch_episodes": multi,
        "multi_branch_fraction": multi / len(episodes),
        "shift_fraction": sum(int(row["action"]) in SHIFTS for row in steps) / len(steps),
        "mean_length": sum(int(row["length"]) for row in episodes) / len(episodes),
        "best_accuracy": max(float(row["accuracy"]) for row in steps if str(row["valid"]) == "True"),
    }


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    """Every run of reduced_experiments.sh (σ 0.1 the real fixture), the summary, and the expected numbers."""
    runs_dir, rng, expected = tmp_path_factory.mktemp("runs"), random.Random(0), {}
    for algo in ("meta_a2c", "dqn", "random"):
        data = synthetic_run(runs_dir / f"exp1-{algo}", {"algo": algo}, EXP1_ENVS, 20, rng, algo)
        expected.update({(f"exp1-{algo}", env): env_numbers_by_hand(*data, env) for env in EXP1_ENVS})
    (runs_dir / "exp1-meta_a2c" / "model.zip").write_bytes(b"zip")
    (runs_dir / "exp1-dqn" / "progress.csv").write_text("time/total_timesteps\n1\n")
    for name, config in (
        ("meta_a2c", {"frozen_policy": True}),
        ("dqn", {"algo": "dqn"}),
        ("random", {"algo": "random"}),
    ):
        data = synthetic_run(runs_dir / f"exp2-{name}", config, EXP2_ENVS, 15, rng, name)
        expected.update({(f"exp2-{name}", env): env_numbers_by_hand(*data, env) for env in EXP2_ENVS})
    retrain = runs_dir / "exp2-meta_a2c" / "retrain"
    retrain.mkdir()
    write_csv(
        retrain / "table6.csv",
        [
            "env",
            "architecture",
            "nsc",
            "early_stop_accuracy",
            "n_params",
            "runs",
            "mean",
            "two_std",
            "failed",
        ],
        [
            {
                "env": e,
                "architecture": a,
                "nsc": "",
                "early_stop_accuracy": 50.0,
                "n_params": 1,
                "runs": 2,
                "mean": m,
                "two_std": s,
                "failed": 0,
            }
            for e, a, m, s in TABLE6
        ],
    )
    (retrain / "table6.md").write_text("| dataset |\n")
    data = synthetic_run(  # sorted after exp3-sigma0.1 by name: σ must come from config.yml
        runs_dir / "exp3-sigma_zero", {"algo": "meta_a2c", "sigma": 0.0}, ["digits"], 60, rng, n_actions=14
    )
    expected["exp3-sigma_zero"] = sigma_numbers_by_hand(*data)
    shutil.copytree(REAL_MULTI_BRANCH, runs_dir / "exp3-sigma0.1")
    real = [read_rows(REAL_MULTI_BRANCH / name) for name in ("steps.csv", "episodes.csv")]
    expected["exp3-sigma0.1"] = sigma_numbers_by_hand(*real)
    (runs_dir / "exp1-report.html").write_text("<html>")
    keep = tmp_path_factory.mktemp("keep")
    argv = [str(runs_dir), "--out", str(keep), "--early-steps", str(K), "--early-episodes", str(E)]
    assert summary_command.main(argv) == 0
    return runs_dir, keep, json.loads((keep / "summary.json").read_text()), expected


@pytest.mark.parametrize("question", ["transfer", "unseen_tasks"])
def test_early_means_and_best_accuracy_match_a_hand_computation(experiments, question):
    *_, data, expected = experiments
    rows = data[question]["rows"]
    assert len(rows) == (9 if question == "transfer" else 6) and data[question]["not_run"] == []
    for row in rows:
        by_hand = expected[(row["run"], row["env"])]
        for key in summary.ENV_KEYS[2:] + (("early_invalid_fraction",) if question == "unseen_tasks" else ()):
            assert row[key] == pytest.approx(by_hand[key]), (row["run"], row["env"], key)
    assert [row["env"] for row in rows[::3]] == list(EXP1_ENVS if question == "transfer" else EXP2_ENVS)


def test_the_statements_come_from_the_comparison(experiments):
    _, keep, data, expected = experiments
    statement = data["transfer"]["statement"]
    assert statement.startswith(
        "After transfer from digits (the no-transfer reference), meta_a2c's mean reward over the first 7 "
        "steps is higher than dqn's on photos, lower on textures; meta_a2c's mean best reward over the "
        "first 4 episodes is "
    )
    unseen = data["unseen_tasks"]["statement"]
    for other in ("dqn", "random"):
        higher = [
            env
            for env in EXP2_ENVS
            if expected[("exp2-meta_a2c", env)]["early_step_reward"]
            > expected[(f"exp2-{other}", env)]["early_step_reward"]
        ]
        if higher:
            assert f"higher than {other}'s on {' and '.join(higher)}" in unseen
    markdown = (keep / "summary.md").read_text()
    assert statement in markdown and unseen in markdown and "Not run" not in markdown
    assert (
        markdown.count("\n## ") == 4
        and "| mean reward, first 7 steps | mean best reward, first 4 episodes |" in markdown
    )


def test_the_retraining_verdict_per_environment(experiments):
    _, keep, data, _ = experiments
    verdicts = {verdict["env"]: verdict for verdict in data["retraining"]["verdicts"]}
    assert verdicts["mnist"]["best"] == "meta_a2c (2nd)" and verdicts["mnist"]["beats"] is True
    assert verdicts["mnist"]["margin"] == pytest.approx(1.25)
    assert verdicts["mnist_noisy"]["best"] == "meta_a2c (1st)" and verdicts["mnist_noisy"]["beats"] is False
    assert verdicts["mnist_noisy"]["margin"] == pytest.approx(-1.5)
    assert [
        (r["env"], r["architecture"], r["mean"], r["two_std"]) for r in data["retraining"]["rows"]
    ] == TABLE6
    assert "beats the VGG19-like baseline (97.00%) by 1.25 points" in data["retraining"]["statement"]
    assert "does not beat the VGG19-like baseline (91.50%): -1.50 points" in data["retraining"]["statement"]


def test_the_retraining_falls_back_to_runs_csv(tmp_path):
    rows = [
        {
            "env": "mnist",
            "architecture": a,
            "nsc": "",
            "early_stop_accuracy": 0.5,
            "run": i,
            "seed": i,
            "accuracy": acc,
            "n_params": 1,
            "train_seconds": 1.0,
            "reason": "",
        }
        for a, accuracies in (("dqn (1st)", (0.9, 0.8)), (VGG_LABEL, (0.86, 0.86)))
        for i, acc in enumerate(accuracies)
    ]
    write_csv(tmp_path / "runs.csv", RESULT_COLUMNS, rows)
    [verdict] = summary.retrain_verdicts(summary.read_table6(tmp_path))
    assert verdict["best_mean"] == pytest.approx(85.0) and verdict["margin"] == pytest.approx(-1.0)


def test_sigma_runs_match_a_hand_computation(experiments):
    *_, data, expected = experiments
    rows = data["sigma"]["rows"]
    assert [(row["run"], row["sigma"]) for row in rows] == [("exp3-sigma_zero", 0.0), ("exp3-sigma0.1", 0.1)]
    for row in rows:
        for key, value in expected[row["run"]].items():
            assert row[key] == pytest.approx(value), (row["run"], key)
    assert 0 < rows[1]["shift_fraction"] < 1 and 0 < rows[1]["multi_branch_fraction"] < 1  # the real run
    high, low = expected["exp3-sigma0.1"], expected["exp3-sigma_zero"]
    shares = "{:.1%} of episodes ended multi-branch and {:.1%} of steps were pointer shifts"
    assert data["sigma"]["statement"] == (
        f"With σ = 0.1, {shares.format(high['multi_branch_fraction'], high['shift_fraction'])}; "
        f"with σ = 0, {shares.format(low['multi_branch_fraction'], low['shift_fraction'])}."
    )


def test_only_the_small_files_are_kept(experiments):
    runs_dir, keep, *_ = experiments
    kept = sorted(str(path.relative_to(keep)) for path in keep.rglob("*") if path.is_file())
    runs = [f"exp1-{a}" for a in ("dqn", "meta_a2c", "random")] + [f"exp2-{a}" for a in ("dqn", "meta_a2c")]
    runs += ["exp2-random", "exp3-sigma0.1", "exp3-sigma_zero"]
    expected = [f"{run}/{name}" for run in runs for name in ("config.yml", "episodes.csv", "steps.csv")]
    expected += ["exp2-meta_a2c/retrain/table6.csv", "exp2-meta_a2c/retrain/table6.md"]
    expected += ["exp1-dqn/progress.csv", "exp3-sigma0.1/progress.csv"]  # where the runs have one
    assert kept == sorted([*expected, "summary.json", "summary.md"])
    assert (keep / "exp1-dqn" / "steps.csv").read_bytes() == (
        runs_dir / "exp1-dqn" / "steps.csv"
    ).read_bytes()


def test_files_over_1_mb_are_skipped_with_a_note(tmp_path, capsys):
    run = tmp_path / "runs" / "exp2-dqn"
    run.mkdir(parents=True)
    (run / "steps.csv").write_bytes(b"x" * (summary.MAX_KEPT_BYTES + 1))
    (run / "episodes.csv").write_bytes(b"x" * summary.MAX_KEPT_BYTES)
    (run / "model_mnist.zip").write_bytes(b"x")
    copied = summary.copy_kept_files(tmp_path / "runs", tmp_path / "keep")
    assert copied == [tmp_path / "keep" / "exp2-dqn" / "episodes.csv"]
    assert f"note: not kept {run / 'steps.csv'} (1.0 MB, over 1 MB)" in capsys.readouterr().out


def test_absent_runs_are_reported_as_not_run(tmp_path):
    runs_dir = tmp_path / "runs"
    synthetic_run(runs_dir / "exp1-dqn", {"algo": "dqn"}, EXP1_ENVS, 10, random.Random(1), "dqn")
    assert summary_command.main([str(runs_dir), "--out", str(tmp_path / "keep")]) == 0
    markdown = (tmp_path / "keep" / "summary.md").read_text()
    for name in ("exp1-meta_a2c", "exp1-random", "exp2-meta_a2c", "exp2-dqn", "exp2-random"):
        assert f"Not run: {name}." in markdown
    assert "Not run: exp2-meta_a2c/retrain." in markdown and "Not run: exp3-sigma*." in markdown
    data = json.loads((tmp_path / "keep" / "summary.json").read_text())
    assert (
        data["transfer"]["not_run"] == ["exp1-meta_a2c", "exp1-random"] and len(data["transfer"]["rows"]) == 3
    )
    assert "cannot be compared" in data["transfer"]["statement"] and data["sigma"]["rows"] == []


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("exp1-random", "lacks steps.csv, episodes.csv"),
        ("exp3-sigma0.5", "config.yml has no sigma"),
        ("exp2-meta_a2c/retrain", "lacks table6.csv and runs.csv"),
    ],
)
def test_a_broken_run_folder_is_a_one_line_error(tmp_path, capsys, broken, message):
    runs_dir = tmp_path / "runs"
    synthetic_run(runs_dir / "exp2-meta_a2c", {"frozen_policy": True}, EXP2_ENVS, 5, random.Random(2))
    synthetic_run(
        runs_dir / "exp3-sigma0.5", {"algo": "meta_a2c", "sigma": 0.5}, ["digits"], 5, random.Random(3)
    )
    (runs_dir / broken).mkdir(exist_ok=True)
    (runs_dir / broken / "config.yml").write_text("algo: random\n")
    assert summary_command.main([str(runs_dir), "--out", str(tmp_path / "keep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "keep").exists()
