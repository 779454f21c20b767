"""Hyper-parameter studies: the shipped sweep files, a small real study, pruning, failures, resuming, the
dashboard's view of it, many workers on PostgreSQL, and bad input."""

import contextlib
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from sb3_nas import sweep
from sb3_nas.estimation import RewardMemo
from sb3_nas.experiment import RunRecorder
from sb3_nas.tuning import SWEEPS, Objective, SweepError, load_sweep, objective
from sb3_nas.tuning.study import OBJECTIVE_NAME, PAPER_ATTR, SWEEP_ATTR

# Optuna 5's APIs only: a deprecated or experimental Optuna feature used by the sweep fails the test
pytestmark = pytest.mark.filterwarnings(
    "error:.*deprecated:FutureWarning", "error::optuna.exceptions.ExperimentalWarning"
)
TINY = ["--fidelity", "tiny", "--timesteps", "10"]  # a trial: 10 steps (τ: an episode ends) on each task
META_A2C = SWEEPS / "meta_a2c.yml"
SCORED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def run_sweep(tmp: Path, *extra: str, config: Path = META_A2C, memo: str | None = None) -> int:
    storage = f"sqlite:///{tmp / 'optuna.sqlite'}"
    memo = memo or f"sqlite:///{tmp / 'memo.sqlite'}"
    argv = ["--sweep", str(config), "--storage", storage, "--memo", memo, "--out", str(tmp / "runs")]
    return sweep.main([*argv, *TINY, *extra])


def load(tmp: Path, name: str = "meta_a2c-tiny-10-10-10") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp / 'optuna.sqlite'}")


def write_sweep(tmp: Path, **changes) -> Path:
    """The shipped meta_a2c sweep file with some top-level entries replaced."""
    table = yaml.safe_load(META_A2C.read_text())
    table.update(changes)
    path = tmp / "sweep.yml"
    path.write_text(yaml.safe_dump(table))
    return path


@pytest.fixture(scope="module")
def shared_memo(tmp_path_factory) -> str:
    """A memo for the tests that need trials but not their own memo (the networks are trained once)."""
    return f"sqlite:///{tmp_path_factory.mktemp('memo') / 'memo.sqlite'}"


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A three-trial study of the shipped meta_a2c sweep at the tiny fidelity, its output captured."""
    tmp = tmp_path_factory.mktemp("study")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run_sweep(tmp, "--n-trials", "3") == 0
    (tmp / "stdout.txt").write_text(stdout.getvalue())
    return tmp


def test_shipped_sweep_files_search_ranges_that_hold_the_papers_values():
    meta = load_sweep(META_A2C)
    assert {p.name for p in meta.params} == {"n_steps", "ent_coef", "learning_rate"}
    assert meta.paper_values == {"n_steps": 5, "ent_coef": 0.01, "learning_rate": 1e-3}
    for path in sorted(SWEEPS.glob("*.yml")):  # every shipped sweep file loads
        spec = load_sweep(path)
        assert spec.enqueue_paper_values and spec.n_trials > 1
        assert all(p.contains(spec.paper_values[p.name]) for p in spec.params)
        assert spec.sampler["name"] == "TPESampler" and spec.pruner["name"] == "MedianPruner"
    # a value the zoo file leaves out is the algorithm's default: sb3-contrib ARS's learning rate and noise
    assert load_sweep(SWEEPS / "ars.yml").paper_values == {
        "n_delta": 2,
        "learning_rate": 0.02,
        "delta_std": 0.05,
    }


def test_the_study_holds_every_trial_with_its_run_and_the_papers_values_first(study_dir):
    study = load(study_dir)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2] and all(t.state in SCORED for t in trials)
    assert trials[0].params == {"n_steps": 5, "ent_coef": 0.01, "learning_rate": 1e-3}
    assert trials[0].user_attrs[PAPER_ATTR] is True
    assert study.user_attrs[SWEEP_ATTR]["timesteps"] == [10, 10, 10]
    assert study.user_attrs[SWEEP_ATTR]["fidelity"] == "tiny"
    assert study.metric_names == [OBJECTIVE_NAME]  # the dashboard names the value
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        steps = pd.read_csv(run_dir / "steps.csv")
        assert run_dir.name == f"trial-{trial.number:04d}"
        assert trial.user_attrs["memo_hit_rate"] == pytest.approx(steps["memo_hit"].mean())
        best = trial.user_attrs["best_architecture"]
        assert list(best) == list(dict.fromkeys(steps["env"]))  # the environments the run reached, in order
        for env, rows in steps.groupby("env"):
            assert best[env]["accuracy"] == pytest.approx(rows["accuracy"].max())
            assert json.dumps(best[env]["nsc"]) in set(rows["nsc"].map(lambda s: json.dumps(json.loads(s))))
        config = yaml.safe_load((run_dir / "config.yml").read_text())
        assert config["hyperparams"]["digits"]["n_steps"] == trial.params["n_steps"] <= 10  # within t_max
        assert trial.user_attrs["n_updates"] == {env: 10 // trial.params["n_steps"] for env in best}
        assert config["hyperparams"]["textures"]["learning_rate"] == pytest.approx(
            trial.params["learning_rate"]
        )
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:  # the value is the file's objective, reported 4 times per environment
        episodes = pd.read_csv(Path(trial.user_attrs["run_dir"]) / "episodes.csv")
        last = episodes.groupby("env", sort=False)["best_reward"].apply(lambda s: s.tail(10).mean())
        assert trial.value == pytest.approx(last.mean())
        # once an episode has finished; always at the end of each environment (reports 4, 8 and 12)
        assert {4, 8, 12} <= set(trial.intermediate_values) <= set(range(1, 13))
        assert trial.intermediate_values[12] == pytest.approx(trial.value)
        assert list(trial.user_attrs["best_architecture"]) == ["digits", "photos", "textures"]
    stdout = (study_dir / "stdout.txt").read_text()
    assert "this worker ran 0, 1, 2" in stdout and f"best: trial {study.best_trial.number}" in stdout
    assert "paper's values: trial 0" in stdout and "watch: optuna-dashboard sqlite:///" in stdout


def test_networks_trained_by_one_trial_are_memo_hits_for_later_trials(study_dir):
    seen: set[tuple[str, str]] = set()
    misses = 0
    for trial in load(study_dir).get_trials():
        steps = pd.read_csv(Path(trial.user_attrs["run_dir"]) / "steps.csv")
        keys = list(zip(steps["env"], steps["nsc"], strict=True))
        earlier = [key in seen for key in keys]
        assert steps["memo_hit"][earlier].all()  # trained by an earlier trial: never trained again
        seen.update(keys)
        misses += int((~steps["memo_hit"]).sum())
    memo = RewardMemo(f"sqlite:///{study_dir / 'memo.sqlite'}")
    assert len(memo) == misses  # one memo for the whole study: each network trained once, by one trial
    memo.close()


def test_resuming_runs_only_the_missing_trials(study_dir, capsys):
    assert run_sweep(study_dir, "--n-trials", "4") == 0
    assert "this worker ran 3" in capsys.readouterr().out
    assert run_sweep(study_dir, "--n-trials", "4") == 0
    assert "4 finished trials" in capsys.readouterr().out
    assert len(load(study_dir).trials) == 4


def test_a_study_is_not_resumed_with_another_budget(study_dir, capsys):
    storage = f"sqlite:///{study_dir / 'optuna.sqlite'}"
    argv = [
        "--storage",
        storage,
        "--study-name",
        "meta_a2c-tiny-10-10-10",
        "--fidelity",
        "tiny",
        "--timesteps",
        "5",
    ]
    assert sweep.main([*argv, "--memo", f"sqlite:///{study_dir / 'memo.sqlite'}"]) == 2
    err = capsys.readouterr().err
    assert (
        "study meta_a2c-tiny-10-10-10 was made with other search_space, timesteps" in err
        and err.count("\n") == 1
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_optuna_dashboard_serves_the_study_and_its_trials(study_dir):
    executable = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    executable = executable or shutil.which("optuna-dashboard")
    assert executable, "optuna-dashboard is a dependency of sb3_nas"
    port = _free_port()
    storage = f"sqlite:///{study_dir / 'optuna.sqlite'}"
    argv = [executable, "--host", "127.0.0.1", "--port", str(port), "--server", "wsgiref", "--quiet", storage]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while True:
            try:
                studies = _get_json(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "optuna-dashboard did not answer within 60 s"
                time.sleep(0.5)
        summary = next(s for s in studies if s["study_name"] == "meta_a2c-tiny-10-10-10")
        detail = _get_json(f"{base}/api/studies/{summary['study_id']}")
        expected = load(study_dir).get_trials()
        assert [t["number"] for t in detail["trials"]] == [t.number for t in expected]
        for served, trial in zip(detail["trials"], expected, strict=True):
            attrs = {a["key"]: a["value"] for a in served["user_attrs"]}
            assert attrs["run_dir"] == trial.user_attrs["run_dir"] and "memo_hit_rate" in attrs
            assert served["state"].upper() == trial.state.name
        assert {p["name"] for p in detail["union_search_space"]} == {"n_steps", "ent_coef", "learning_rate"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_trial_that_crashes_is_failed_and_the_study_goes_on(tmp_path, shared_memo, monkeypatch, capsys):
    real_run, calls = objective.run, []

    def crash_first(config, out, *args, **kwargs):
        calls.append(out)
        if len(calls) == 1:
            raise RuntimeError("out of memory (simulated)")
        return real_run(config, out, *args, **kwargs)

    monkeypatch.setattr(objective, "run", crash_first)
    assert run_sweep(tmp_path, "--n-trials", "2", memo=shared_memo) == 0
    states = [t.state for t in load(tmp_path).get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert "2 finished trials (1 complete, 0 pruned, 1 failed)" in capsys.readouterr().out


class _Trial:
    """The part of ``optuna.Trial`` a reporter uses."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return False


def test_reports_are_comparable_means_over_every_environment_so_far():
    trial = _Trial()
    reporter = objective.TrialReporter(trial, [4, 6], Objective(last_episodes=2, reports_per_env=2))
    first, second = RunRecorder("a"), RunRecorder("b")
    first.steps = [{}] * 4
    first.episodes = [{"env": "a", "best_reward": r} for r in (0.2, 0.6, 0.8)]  # the last two count
    reporter([first])  # step 4 of 4: report 2 of environment a
    second.steps = [{}] * 3
    reporter([first, second])  # report 1 of b is skipped: b has no finished episode yet
    second.episodes = [{"env": "b", "best_reward": 0.3}]
    second.steps = [{}] * 5
    reporter([first, second])  # 5 steps: no report is due
    second.steps = [{}] * 6
    reporter([first, second])  # report 2 of b: the mean of a's and b's scores
    assert trial.reports == [(2, pytest.approx(0.7)), (4, pytest.approx(0.5))]


def test_a_weak_trial_is_pruned_from_its_intermediate_values(tmp_path, shared_memo):
    config = write_sweep(tmp_path, pruner={"name": "ThresholdPruner", "lower": 2.0}, n_trials=1)  # prune all
    assert run_sweep(tmp_path, config=config, memo=shared_memo) == 0
    (trial,) = optuna.load_study(
        study_name="sweep-tiny-10-10-10", storage=f"sqlite:///{tmp_path / 'optuna.sqlite'}"
    ).trials
    assert trial.state == optuna.trial.TrialState.PRUNED and len(trial.intermediate_values) == 1
    (report,) = trial.intermediate_values  # the first report once an episode has finished
    steps = pd.read_csv(Path(trial.user_attrs["run_dir"]) / "steps.csv")
    assert len(steps) == trial.user_attrs["steps"] == round(10 * report / 4) < 30  # the run stopped there


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"search_space": {"n_step": {"type": "int", "low": 2, "high": 9}}},
            "unknown parameter(s) for meta_a2c: n_step",
        ),
        (
            {"search_space": {"n_steps": {"type": "int", "low": 9, "high": 2}}},
            "n_steps: empty or inverted range",
        ),
        (
            {"search_space": {"gamma": {"type": "float", "low": 0.9, "high": 0.9}}},
            "gamma: empty or inverted range",
        ),
        ({"search_space": {"policy": {"type": "categorical", "choices": []}}}, "policy: empty range"),
        (
            {"search_space": {"n_steps": {"type": "int", "low": 6, "high": 9}}},
            "the paper's n_steps 5 lies outside",
        ),
        ({"sampler": {"name": "Tpe"}}, "unknown sampler 'Tpe'"),
        ({"pruner": {"name": "MedianPruner", "patience": 3}}, "pruner MedianPruner: "),
        ({"budget": 3}, "unknown key(s) in the file: budget"),
    ],
)
def test_bad_sweep_files_give_one_line_errors(tmp_path, capsys, changes, message):
    assert run_sweep(tmp_path, config=write_sweep(tmp_path, **changes)) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: sweep file ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (
            "postgresql://sb3_nas:secret@127.0.0.1:1/none",
            "study storage postgresql://sb3_nas:***@127.0.0.1:1/none: cannot open",
        ),
        ("nosuchdb://host/x", "study storage nosuchdb://host/x: cannot open"),
    ],
)
def test_an_unreachable_storage_gives_a_one_line_error(tmp_path, capsys, storage, message):
    argv = ["--storage", storage, "--memo", f"sqlite:///{tmp_path / 'memo.sqlite'}", *TINY]
    assert sweep.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "secret" not in err and err.count("\n") == 1


def test_two_workers_share_one_postgresql_study_and_memo(postgres_database, tmp_path):
    argv = [sys.executable, "-m", "sb3_nas.sweep", "--sweep", str(META_A2C), "--storage", postgres_database,
            "--study-name", "workers", "--n-trials", "3", "--out", str(tmp_path / "runs"), *TINY]  # fmt: skip
    logs = [(tmp_path / f"worker{i}.out").open("w+") for i in range(2)]
    workers = [subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path) for log in logs]
    ran: list[int] = []
    for worker, log in zip(workers, logs, strict=True):
        assert worker.wait(timeout=600) == 0, Path(log.name).read_text()[-3000:]
        log.close()
        output = Path(log.name).read_text()
        ran += [int(n) for n in output.split("this worker ran ")[1].split("\n")[0].split(", ")]
        assert "watch: optuna-dashboard postgresql://" in output and ":***@" in output  # no password printed
    trials = optuna.load_study(study_name="workers", storage=postgres_database).get_trials()
    assert sorted(ran) == [t.number for t in trials] == list(range(len(trials)))  # every trial, once
    assert 3 <= len(trials) <= 4 and all(t.state in SCORED for t in trials)  # the budget, or one over
    assert sum(bool(t.user_attrs.get(PAPER_ATTR)) for t in trials) == 1  # the paper's values: enqueued once
    memo = RewardMemo(postgres_database)  # the memo lives in the study's database by default
    table = memo.to_dataframe()
    memo.close()
    assert len(table) > 0 and set(table["dataset"]) == {"digits", "photos", "textures"}
    assert not table.duplicated(["dataset_fingerprint", "fidelity", "network"]).any()
    assert table["key"].is_unique


def test_rollout_lengths_are_sampled_within_the_budget_or_refused(tmp_path):
    sweep_file = load_sweep(META_A2C)  # n_steps from 2 to 20
    assert {p.name: p.high for p in sweep_file.replace(timesteps=(12, 7, 9)).search_space}["n_steps"] == 7
    assert {p.name: p.high for p in sweep_file.search_space}["n_steps"] == 20  # the file's 140 steps fit
    with pytest.raises(SweepError, match="every n_steps of int \\[2, 20\\] exceeds the budget of 1 steps"):
        sweep_file.replace(timesteps=(1, 1, 1))


def test_the_objective_builds_its_run_configuration_directly(shared_memo):
    sweep_file = load_sweep(META_A2C).replace(timesteps=(10, 10, 10), fidelity="tiny")
    config = objective.make_config(sweep_file, {"n_steps": 3, "learning_rate": 5e-4}, shared_memo)
    assert config.fidelity.name == "tiny" and config.memo == shared_memo and config.timesteps == (10, 10, 10)
    assert all(values["n_steps"] == 3 and values["gamma"] == 0.9 for values in config.hyperparams.values())


def test_a_trial_whose_policy_never_updated_fails_and_is_never_best(tmp_path, shared_memo, capsys):
    # learning starts after the whole budget: DQN never updates, its score is the initial policy's
    untrained = write_sweep(
        tmp_path,
        algo="dqn",
        enqueue_paper_values=False,
        n_trials=2,
        search_space={"learning_starts_fraction": {"type": "categorical", "choices": [1.0]}},
    )
    assert run_sweep(tmp_path, config=untrained, memo=shared_memo) == 1  # a study of failures is a failure
    study = load(tmp_path, "sweep-tiny-10-10-10")
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL] * 2
    assert (
        "the policy was never updated on digits, photos, textures"
        in study.trials[0].user_attrs["fail_reason"]
    )
    assert all(
        t.user_attrs["n_updates"] == {"digits": 0, "photos": 0, "textures": 0} for t in study.get_trials()
    )
    captured = capsys.readouterr()
    assert (
        "2 finished trials (0 complete, 0 pruned, 2 failed)" in captured.out and "best:" not in captured.out
    )
    assert captured.err.strip().splitlines()[-1].startswith("error: every trial of study sweep-tiny-10-10-10")
