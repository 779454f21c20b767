"""Checkpoint and resume: a run killed with -9 continues to exactly the run it would have been."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sb3_nas import train
from sb3_nas.experiment import CHECKPOINT_FILE, RunConfig, run

ENVS, TIMESTEPS = ["digits", "photos"], [30, 30]
SAME = [
    "env",
    "step",
    "trial",
    "episode",
    "episode_step",
    "action",
    "reward",
    "accuracy",
    "valid",
    "n_params",
    "nsc",
]


def options(algo: str, memo: Path, out: Path) -> list[str]:
    budget = ["--envs", ",".join(ENVS), "--timesteps", ",".join(map(str, TIMESTEPS)), "--fidelity", "tiny"]
    return ["--algo", algo, *budget, "--memo", f"sqlite:///{memo}", "--out", str(out), "--no-progress",
            "--checkpoint-every", "8"]  # fmt: skip


def kill_when(out: Path, rows: int, process: subprocess.Popen, timeout: float = 120) -> int:
    """kill -9 the process once steps.csv holds ``rows`` rows; returns the rows it had."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = out / "steps.csv"
        if steps.is_file() and (lines := steps.read_text().count("\n") - 1) >= rows:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return lines
        assert process.poll() is None, "the run ended before it was killed"
        time.sleep(0.05)
    raise AssertionError("the run did not reach the step to kill it at")


@pytest.mark.parametrize(
    ("algo", "kill_at"),
    [
        ("meta_a2c", 41),
        ("dqn", 20),
        ("random", 37),
        ("qrdqn", 20),
        ("trpo", 37),
        ("ars", 29),
        ("rea", 45),
        ("local_search", 45),
        ("tpe", 45),
    ],
)
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_run(algo, kill_at, tmp_path, capsys):
    reference = tmp_path / "reference"
    assert train.main(options(algo, tmp_path / "reference.sqlite", reference)) == 0
    killed = tmp_path / "killed"  # its own, empty memo: it trains every network itself, slowly enough to kill
    argv = [sys.executable, "-m", "sb3_nas.train", *options(algo, tmp_path / "killed.sqlite", killed)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert kill_when(killed, kill_at, process) < sum(TIMESTEPS)
    assert (killed / CHECKPOINT_FILE).is_file()
    capsys.readouterr()
    assert train.main(["--resume", str(killed), "--memo", f"sqlite:///{tmp_path / 'killed.sqlite'}",
                       "--no-progress"]) == 0  # fmt: skip
    assert "resumed:" in capsys.readouterr().out
    expected, resumed = pd.read_csv(reference / "steps.csv"), pd.read_csv(killed / "steps.csv")
    assert len(resumed) == sum(TIMESTEPS)  # no step missing, none twice
    pd.testing.assert_frame_equal(resumed[SAME], expected[SAME])  # the same actions, rewards and networks
    pd.testing.assert_frame_equal(
        pd.read_csv(killed / "episodes.csv"), pd.read_csv(reference / "episodes.csv")
    )
    progress, expected_progress = (
        pd.read_csv(killed / "progress.csv"),
        pd.read_csv(reference / "progress.csv"),
    )
    learned = [c for c in expected_progress if c.startswith("train/")]
    pd.testing.assert_frame_equal(progress[learned], expected_progress[learned], atol=1e-5)  # same updates
    assert not (killed / CHECKPOINT_FILE).exists()  # a finished run keeps no checkpoint


def test_resume_refuses_a_complete_run_and_options_of_its_own(tmp_path, capsys):
    config = RunConfig.create("random", envs=["digits"], timesteps=5, fidelity="tiny", memo="sqlite://")
    run(config, tmp_path, progress=False)
    assert train.main(["--resume", str(tmp_path)]) == 2
    assert "is complete (5 steps of 5): nothing to resume" in capsys.readouterr().err
    assert train.main(["--resume", str(tmp_path), "--algo", "dqn", "--seed", "3"]) == 2
    assert "--algo, --seed cannot be given with it" in capsys.readouterr().err


def test_resume_asks_again_for_a_memo_password(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SB3_NAS_MEMO", raising=False)
    config = RunConfig.create("random", envs=["digits"], timesteps=5, fidelity="tiny", memo="sqlite://")
    config.replace(memo="postgresql://sb3:s3cret@db.example/memo").write(tmp_path)
    assert "s3cret" not in (tmp_path / "config.yml").read_text()
    assert train.main(["--resume", str(tmp_path)]) == 2
    assert "needs its password: give --memo or set $SB3_NAS_MEMO" in capsys.readouterr().err


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    config = RunConfig.create("random", envs=["digits"], timesteps=50, fidelity="tiny", memo="sqlite://")
    config.write(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    assert train.main(["--resume", str(tmp_path), "--memo", "sqlite://"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: checkpoint {tmp_path / CHECKPOINT_FILE} cannot be read")
        and err.count("\n") == 1
    )
    assert yaml.safe_load((tmp_path / "config.yml").read_text())["timesteps"] == [50]  # nothing changed


def test_resume_may_accept_other_precisions_as_it_may_change_the_device(tmp_path):
    config = RunConfig.create("random", envs=["digits"], timesteps=5, fidelity="tiny", memo="sqlite://")
    config.write(tmp_path)
    parser = train.build_parser()
    args = parser.parse_args(["--resume", str(tmp_path), "--accept-precision", "fp32,bf16"])
    assert train.resumed_config(args, parser).accept_precision == ("fp32", "bf16")
    assert train.resumed_config(parser.parse_args(["--resume", str(tmp_path)]), parser).accept_precision == ()


def test_a_tpe_study_on_a_storage_survives_a_kill_with_every_trial_once(tmp_path, capsys):
    import optuna

    from sb3_nas.experiment.runner import study_name

    def trials(out: Path, database: Path) -> dict[str, list]:
        url = f"sqlite:///{database}"
        studies = {env: optuna.load_study(study_name=study_name(out, env), storage=url) for env in ENVS}
        return {env: [(t.params, t.value) for t in study.trials] for env, study in studies.items()}

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    storage = ["--storage", f"sqlite:///{tmp_path / 'reference-studies.sqlite'}"]
    assert train.main([*options("tpe", tmp_path / "reference.sqlite", reference), *storage]) == 0
    storage = ["--storage", f"sqlite:///{tmp_path / 'killed-studies.sqlite'}"]
    argv = [
        sys.executable,
        "-m",
        "sb3_nas.train",
        *options("tpe", tmp_path / "killed.sqlite", killed),
        *storage,
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert kill_when(killed, 45, process) < sum(TIMESTEPS)
    capsys.readouterr()
    assert train.main(["--resume", str(killed), "--memo", f"sqlite:///{tmp_path / 'killed.sqlite'}",
                       "--no-progress"]) == 0  # fmt: skip
    expected = trials(reference, tmp_path / "reference-studies.sqlite")
    assert trials(killed, tmp_path / "killed-studies.sqlite") == expected  # each trial once, as uninterrupted
    assert all(len(expected[env]) >= 2 for env in ENVS)
