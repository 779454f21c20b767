"""Records survive their process: rows are on disk as they happen, SIGTERM is Ctrl-C, kill -9 loses at most
the step in flight."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sb3_nas.experiment import EPISODE_COLUMNS, STEP_COLUMNS, RecordWriter, RunRecorder
from sb3_nas.experiment.records import reason_kind


def start_training(out: Path, memo: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "sb3_nas.train", "--algo", "random", "--envs", "digits", "-n", "100000",
            "--fidelity", "tiny", "--memo", str(memo), "--out", str(out), "--no-progress"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_rows(path: Path, rows: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().count("\n") > rows:
            return
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    raise AssertionError(f"{path} did not reach {rows} rows")


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_keeps_every_recorded_step(kill, tmp_path):
    out = tmp_path / "run"
    process = start_training(out, tmp_path / "memo.sqlite")
    try:
        wait_for_rows(out / "steps.csv", 40, process)
        process.send_signal(kill)
        code = process.wait(timeout=60)
    finally:
        process.kill()
    steps = pd.read_csv(out / "steps.csv")  # every line on disk is a whole row
    episodes = pd.read_csv(out / "episodes.csv")
    assert list(steps.columns) == STEP_COLUMNS and list(episodes.columns) == EPISODE_COLUMNS
    assert len(steps) >= 40 and steps["step"].tolist() == list(range(1, len(steps) + 1))
    for _, episode in episodes.iterrows():  # each finished episode's steps are there
        assert (steps["episode"] == episode["episode"]).sum() == episode["length"]
    assert steps["episode"].max() - episodes["episode"].max() <= 1  # at most the running episode is missing
    if kill == signal.SIGTERM:
        assert code == 130 and "interrupted; what was recorded is in" in process.stderr.read()
    else:
        assert code == -signal.SIGKILL


def test_episodes_finished_out_of_order_are_written_in_order(tmp_path):
    writer = RecordWriter(tmp_path)
    recorder = RunRecorder("digits", writer=writer)
    step = {"nsc": [], "accuracy": 0.5, "valid": True}
    recorder.record(0, 0.1, {**step, "episode_step": 1}, worker=0)
    recorder.record(1, 0.2, {**step, "episode_step": 1, "ended_by": "terminal"}, worker=1)
    recorder.record(2, 0.3, {**step, "episode_step": 2, "ended_by": "terminal"}, worker=0)
    assert pd.read_csv(tmp_path / "episodes.csv")["episode"].tolist() == [1, 0]  # as they finished, on disk
    writer.close()
    assert pd.read_csv(tmp_path / "episodes.csv")["episode"].tolist() == [0, 1]
    assert len(pd.read_csv(tmp_path / "steps.csv")) == 3


def test_reasons_for_reward_zero_are_counted_by_kind():
    shrink = "layer 4 (max-pooling 3) on a 1x1 input would produce a spatial size below 1"
    assert reason_kind(shrink) == reason_kind(shrink.replace("4", "7").replace("3)", "2)"))
    assert reason_kind("training failed: the training loss diverged (non-finite)") == (
        "training failed: the training loss diverged"
    )
