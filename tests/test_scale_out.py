"""Past one machine: GPUs placed round robin (the device count stubbed: no GPU here), and a two-node Ray
cluster on 127.0.0.1 (a head and a second node, started and stopped here) running a comparison whose records
equal the local executor's, Ctrl-C and resume under Ray, sweep workers and an evaluation as Ray tasks, and
the refusals."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml

import sb3_nas
from sb3_nas import compare, evaluate, sweep, train
from sb3_nas.errors import UsageError
from sb3_nas.estimation import open_memo, worker_devices
from sb3_nas.experiment import RunConfig, environments
from sb3_nas.experiment import comparison as running
from sb3_nas.experiment.ray_executor import Placement, check_databases, ray_session, task_device
from sb3_nas.tuning import SWEEPS

ALGOS, SEEDS, T_MAX = ("random", "dqn"), (0, 1), 10
REPO = Path(sb3_nas.__file__).resolve().parents[1]


def stub_gpus(monkeypatch, count: int) -> None:
    """``count`` visible CUDA GPUs, as torch reports them (nothing trains on them here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def _compare_argv(out: Path, memo: Path, algos=ALGOS, seeds=SEEDS, envs="digits", *more: str) -> list[str]:
    return ["--algos", ",".join(algos), "--seeds", ",".join(map(str, seeds)), "--envs", envs,
            "--timesteps", str(T_MAX), *(["--fidelity", "tiny"] if envs == "digits" else []),
            "--memo", str(memo), "-f", str(out), "--no-progress", "--reps", "200", *more]  # fmt: skip


def _config(folder: Path) -> dict:
    return yaml.safe_load((folder / "config.yml").read_text())


# -- GPUs placed without Ray ---------------------------------------------------------------------------------


def test_workers_take_the_visible_gpus_in_turn_with_device_auto(monkeypatch):
    stub_gpus(monkeypatch, 3)
    assert worker_devices("auto", 5) == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert worker_devices("cpu", 2) == ["cpu", "cpu"] and worker_devices("cuda:1", 2) == ["cuda:1"] * 2
    stub_gpus(monkeypatch, 1)
    assert worker_devices("auto", 3) == ["auto"] * 3  # one GPU: auto finds it, as before
    stub_gpus(monkeypatch, 0)
    assert worker_devices("auto", 2) == ["auto"] * 2


def test_n_envs_workers_spread_over_the_gpus(monkeypatch, tmp_path):
    stub_gpus(monkeypatch, 2)
    config = RunConfig.create("random", envs=["nbgraph:cora"], timesteps=[10], n_envs=3,
                              memo=str(tmp_path / "memo.sqlite"))  # fmt: skip
    made = {}

    def subproc(workers, start_method):
        made["devices"] = [worker.args[0].device for worker in workers]  # what each worker process gets
        return "venv"

    monkeypatch.setattr(environments, "SubprocVecEnv", subproc)
    assert environments.make_vec_env(config, "nbgraph:cora", open_memo(config.memo), 10) == "venv"
    assert made["devices"] == ["cuda:0", "cuda:1", "cuda:0"]


def test_train_says_where_its_n_envs_workers_train(monkeypatch, tmp_path, capsys):
    stub_gpus(monkeypatch, 2)  # here; the spawned workers see no GPU, and a table look-up needs none
    argv = ["--algo", "random", "--envs", "nbgraph:cora", "--timesteps", "10", "--n-envs", "2",
            "--no-progress", "--memo", str(tmp_path / "memo.sqlite"), "-f", str(tmp_path / "r")]  # fmt: skip
    assert train.main(argv) == 0
    assert "2 workers on cuda:0, cuda:1" in capsys.readouterr().out
    assert _config(tmp_path / "r")["worker_devices"] == ["cuda:0", "cuda:1"]  # said in config.yml too


def test_compare_n_jobs_gives_each_run_its_own_gpu(monkeypatch, tmp_path, capsys):
    stub_gpus(monkeypatch, 2)  # in the driver, which places the runs; a table look-up trains nothing
    out = tmp_path / "comparison"
    memo = tmp_path / "memo.sqlite"
    argv = _compare_argv(out, memo, ("random",), (0, 1, 2), "nbgraph:cora", "--n-jobs", "2")
    assert compare.main(argv) == 0
    printed = capsys.readouterr().out
    for seed, device in ((0, "cuda:0"), (1, "cuda:1"), (2, "cuda:0")):
        assert _config(out / "random" / f"seed-{seed}")["device"] == device
        assert f"random seed {seed}: run done in" in printed and f"seed-{seed}) on {device}" in printed
    # one job at a time, or one GPU: no placement, and the done line as it always was
    plan = running.plan_comparison(tmp_path / "other", ["random"], [0, 1], ["nbgraph:cora"], 10,
                                   memo=str(tmp_path / "memo.sqlite"))  # fmt: skip
    assert [p.config.device for p in running.place_on_gpus(plan)] == ["cuda:0", "cuda:1"]
    stub_gpus(monkeypatch, 1)
    assert running.place_on_gpus(plan) == plan


# -- a two-node Ray cluster on this machine ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cluster_processes(temp: str) -> list[int]:
    """The processes of the cluster started with ``RAY_TMPDIR=temp`` (they all inherit it): found by their
    environment, so that no other Ray process of this machine is touched."""
    mark, found = f"RAY_TMPDIR={temp}".encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _stop_cluster(temp: str) -> None:
    for _ in range(20):
        pids = _cluster_processes(temp)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    raise AssertionError(f"Ray processes left running: {_cluster_processes(temp)}")


@pytest.fixture(scope="module")
def cluster():
    """A head with 1 CPU and a second node with 1 CPU (and 2 declared GPUs, for Ray's GPU resources) on
    127.0.0.1, in their own temporary folder; the driver's environment set to reach them. Yields the
    address."""
    pytest.importorskip("ray")
    if not Path("/proc/self/environ").exists():
        pytest.skip("the cluster's processes are found through /proc (Linux)")
    temp = tempfile.mkdtemp(prefix="sb3ray", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])  # this sb3_nas
    env = {"RAY_TMPDIR": temp, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": path}  # fmt: skip
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats",
              f"--dashboard-agent-listen-port={_free_port()}"]  # fmt: skip
    head = ["--head", f"--port={port}", "--include-dashboard=false", f"--dashboard-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}"]  # fmt: skip
    second = [f"--address=127.0.0.1:{port}", "--num-gpus=2"]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        try:
            for options in (head, second):
                started = subprocess.run([shutil.which("ray") or "ray", "start", *options, *common],
                                         capture_output=True, text=True, timeout=120)  # fmt: skip
                assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
            yield f"127.0.0.1:{port}"
        finally:
            _stop_cluster(temp)
            shutil.rmtree(temp, ignore_errors=True)


def _records(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run's steps (without memo_hit: which run trained a network first depends on their order) and
    episodes."""
    steps = pd.read_csv(folder / "steps.csv").drop(columns=["memo_hit"])
    return steps, pd.read_csv(folder / "episodes.csv")


@contextlib.contextmanager
def one_thread():
    """One torch thread, as each Ray task of --cpus-per-run 1 has: the same floating-point sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_a_comparison_on_two_nodes_records_what_the_local_executor_records(cluster, tmp_path):
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    with one_thread(), contextlib.redirect_stdout(io.StringIO()):
        assert compare.main(_compare_argv(local, tmp_path / "local.sqlite")) == 0
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        argv = _compare_argv(ray_out, tmp_path / "ray.sqlite", ALGOS, SEEDS, "digits", "--executor", "ray",
                             "--ray-address", cluster, "--cpus-per-run", "1")  # fmt: skip
        assert compare.main(argv) == 0
    printed = stdout.getvalue()
    assert "4 runs (4 to run)" in printed
    for algo in ALGOS:
        for seed in SEEDS:
            mine, theirs = _records(local / algo / f"seed-{seed}"), _records(ray_out / algo / f"seed-{seed}")
            assert len(mine[0]) == T_MAX
            pd.testing.assert_frame_equal(mine[0], theirs[0])
            pd.testing.assert_frame_equal(mine[1], theirs[1])
            assert _config(ray_out / algo / f"seed-{seed}")["device"] == "cpu"  # auto, with no GPU given
    nodes = {line.split(" on node ")[1] for line in printed.splitlines() if " on node " in line}
    assert len(nodes) == 2  # two runs at once, one CPU per node: both nodes ran some
    assert (ray_out / "comparison.md").is_file() and not list(ray_out.glob(".sb3-nas-ray-check-*"))


def test_ctrl_c_under_ray_keeps_every_run_and_the_same_command_resumes(cluster, tmp_path):
    out, steps = tmp_path / "comparison", 100
    argv = _compare_argv(out, tmp_path / "memo.sqlite", ("random",), SEEDS, "digits", "--executor", "ray",
                         "--ray-address", cluster)  # fmt: skip
    argv[argv.index("--timesteps") + 1] = str(steps)

    def rows(seed: int) -> int:  # read while the run appends to it: its lines, less the header
        path = out / "random" / f"seed-{seed}" / "steps.csv"
        return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0

    driver = subprocess.Popen([sys.executable, "-m", "sb3_nas.compare", *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not all(rows(seed) >= 3 for seed in SEEDS) and driver.poll() is None:
            assert time.monotonic() < deadline, "the runs never started"
            time.sleep(0.1)
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 130
    assert "interrupted; what was recorded is kept: run the same command again to continue" in err
    for seed in SEEDS:
        assert 3 <= rows(seed) < steps
        sessions = json.loads((out / "random" / f"seed-{seed}" / "timing.json").read_text())["sessions"]
        assert [s["finished"] for s in sessions] == [False]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert compare.main(argv) == 0
    assert "2 runs (2 to resume)" in stdout.getvalue()
    for seed in SEEDS:
        assert rows(seed) == steps
        sessions = json.loads((out / "random" / f"seed-{seed}" / "timing.json").read_text())["sessions"]
        assert [s["resumed"] for s in sessions] == [False, True]


def test_sweep_workers_are_ray_tasks_meeting_in_one_storage(cluster, tmp_path):
    table = yaml.safe_load((SWEEPS / "meta_a2c.yml").read_text())
    table["enqueue_paper_values"] = False  # two workers taking one waiting trial: SQLite cannot lock it
    (tmp_path / "sweep.yml").write_text(yaml.safe_dump(table))
    storage = f"sqlite:///{tmp_path / 'optuna.sqlite'}"
    argv = ["--sweep", str(tmp_path / "sweep.yml"), "--storage", storage,
            "--memo", str(tmp_path / "memo.sqlite"), "--out", str(tmp_path / "runs"),
            "--fidelity", "tiny", "--timesteps", "10", "--n-trials", "4",
            "--no-progress", "--executor", "ray", "--ray-address", cluster, "--n-workers", "2"]  # fmt: skip
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert sweep.main(argv) == 0
    printed = stdout.getvalue()
    assert "2 Ray workers ran 0, 1, 2, 3" in printed
    assert printed.count("Ray worker ") == 2 and printed.count(" on node ") == 2
    study = optuna.load_study(study_name="sweep-tiny-10-10-10", storage=storage)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 4
    for trial in trials:
        assert Path(trial.user_attrs["run_dir"]) == (tmp_path / "runs" / "sweep-tiny-10-10-10" /
                                                     f"trial-{trial.number:04d}")  # fmt: skip
        assert (Path(trial.user_attrs["run_dir"]) / "steps.csv").is_file()


def test_an_evaluation_as_a_ray_task_records_what_it_records_here(cluster, tmp_path, capsys):
    trained = tmp_path / "trained"
    argv = ["--envs", "nbgraph:cora", "--timesteps", "20", "--out", str(trained), "--no-progress",
            "--memo", str(tmp_path / "memo.sqlite")]  # fmt: skip
    assert train.main(argv) == 0
    evaluations = {}
    for executor in ("local", "ray"):
        out = evaluations[executor] = tmp_path / executor
        where = ["--ray-address", cluster] if executor == "ray" else []
        argv = ["--model", str(trained / "model.zip"), "--envs", "nbgraph:photo,nbgraph:arxiv",
                "--timesteps", "15", "--out", str(out), "--no-progress",
                "--memo", str(tmp_path / "memo.sqlite"), "--executor", executor, *where]  # fmt: skip
        with one_thread():  # the policy's forward pass sums as the task's one thread does
            assert evaluate.main(argv) == 0
    assert "evaluated on node " in capsys.readouterr().out
    local, ray_run = _records(evaluations["local"]), _records(evaluations["ray"])
    assert len(local[0]) == 30 and list(local[0]["env"].unique()) == ["nbgraph:photo", "nbgraph:arxiv"]
    pd.testing.assert_frame_equal(local[0], ray_run[0])
    pd.testing.assert_frame_equal(local[1], ray_run[1])


def test_ray_gpu_resources_decide_the_device_of_auto(cluster):
    got = []
    with ray_session(cluster) as connected:  # only the second node declares GPUs: both tasks run there
        connected.run_tasks(task_device, [("auto",), ("cpu",)], Placement(cpus=1, gpus=1),
                            lambda index, device, where: got.append((index, device, where)))  # fmt: skip
    assert sorted((index, device) for index, device, _ in got) == [(0, "cuda:0"), (1, "cpu")]
    assert all(re.search(r", GPU [01]$", where) for _, _, where in got)  # Ray shows the task only its GPU
    assert task_device("cuda:1") == "cuda:1"  # a device given is the device used


def test_what_the_ray_executor_refuses_is_one_line(cluster, tmp_path, capsys, monkeypatch):
    memo = tmp_path / "memo.sqlite"
    for more, message in (
        (["--executor", "ray", "--ray-address", cluster, "--gpus-per-run", "3"],
         "no node of the Ray cluster has 1 CPUs and 3 GPUs for a task: lower --cpus-per-run or "
         "--gpus-per-run"),
        (["--executor", "ray", "--ray-address", f"127.0.0.1:{_free_port()}"],
         "cannot connect (Connection refused); start its head with ray start --head"),
        (["--executor", "ray", "--n-jobs", "2"], "--n-jobs is the local executor's"),
        (["--ray-address", cluster, "--cpus-per-run", "2"],
         "--ray-address, --cpus-per-run go with --executor ray"),
        (["--executor", "ray", "--gpus-per-run", "-1"], "must be 0 or more"),
    ):  # fmt: skip
        assert compare.main(_compare_argv(tmp_path / "out", memo, ("random",), (0,), "digits", *more)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert sweep.main(["--n-workers", "2"]) == 2
    assert "--n-workers goes with --executor ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    argv = _compare_argv(tmp_path / "out", memo, ("random",), (0,), "digits", "--executor", "ray")
    assert compare.main(argv) == 2
    assert capsys.readouterr().err == "error: --executor ray needs Ray: pip install 'sb3_nas[ray]'\n"


def test_a_sqlite_memo_is_refused_on_a_cluster_of_several_machines():
    one_machine = [{"NodeManagerAddress": "127.0.0.1"}, {"NodeManagerAddress": "127.0.0.1"}]
    two_machines = [{"NodeManagerAddress": "10.0.0.1"}, {"NodeManagerAddress": "10.0.0.2"}]
    check_databases(one_machine, {"--memo": "sqlite:///results/memo.sqlite"})  # one file system: fine
    check_databases(two_machines, {"--memo": "postgresql://u:secret@db/nas"})
    with pytest.raises(UsageError) as refused:
        check_databases(two_machines, {"--memo": "postgresql://u:secret@db/nas", "--storage": "results/s.db"})
    assert str(refused.value) == (
        "the Ray cluster spans 2 machines, and --storage results/s.db is a SQLite file on one: give "
        "--storage a database server every node reaches (postgresql://…)"
    )
