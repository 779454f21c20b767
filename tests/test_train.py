"""The training and evaluation commands on tiny budgets: files, columns, transfer, and bad input."""

import pandas as pd
import pytest
import yaml

from sb3_nas import evaluate, train
from sb3_nas.callbacks import EPISODE_COLUMNS, STEP_COLUMNS, RunRecorder
from sb3_nas.config import load_hyperparams, resolve_fractions

ENVS, TIMESTEPS = "digits,faces", "10,6"


@pytest.fixture(scope="module")
def memo_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('memo') / 'memo.sqlite'}"


def run_cli(algo, out, memo_url, *extra):
    argv = ["--algo", algo, "--envs", ENVS, "--timesteps", TIMESTEPS, "--fidelity", "tiny", "--out", str(out)]
    return train.main([*argv, "--memo", memo_url, "--no-progress", *extra])


@pytest.mark.parametrize("algo", list(train.ALGOS))
def test_every_algorithm_writes_the_run_files(algo, tmp_path, memo_url, capsys):
    extra = []
    if algo in ("ppo", "recurrent_ppo"):  # rollouts short enough to update within the tiny budget
        policy = "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy"
        conf = tmp_path / "conf.yml"
        conf.write_text(f"sb3_nas/NasChain-v0:\n  policy: {policy}\n  n_steps: 4\n  batch_size: 4\n")
        extra = ["--conf", str(conf)]
    assert run_cli(algo, tmp_path, memo_url, *extra) == 0
    assert f"results: {tmp_path.resolve()}" in capsys.readouterr().out
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert list(steps.columns) == STEP_COLUMNS
    assert steps.groupby("env", sort=False).size().to_dict() == {"digits": 10, "faces": 6}
    assert steps["accuracy"].between(0, 1).all() and steps["action"].between(0, 7).all()
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert list(episodes.columns) == EPISODE_COLUMNS and len(episodes) >= 1
    assert (episodes["best_reward"] <= episodes["accumulated_reward"] + 1e-9).all()
    assert (tmp_path / "progress.csv").stat().st_size > 0
    config = yaml.safe_load((tmp_path / "config.yml").read_text())
    assert config["algo"] == algo and config["timesteps"] == [10, 6] and config["fidelity"] == "tiny"
    if algo == "meta_a2c":
        assert (tmp_path / "model.zip").exists()
        assert config["hyperparams"]["digits"]["n_steps"] == 5
    elif algo != "random":
        assert (tmp_path / "model_digits.zip").exists() and (tmp_path / "model_faces.zip").exists()


def test_episode_rows_agree_with_step_rows(tmp_path, memo_url):
    assert run_cli("random", tmp_path, memo_url) == 0
    steps = pd.read_csv(tmp_path / "steps.csv")
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    for _, episode in episodes.iterrows():
        rows = steps[(steps["env"] == episode["env"]) & (steps["episode"] == episode["episode"])]
        assert len(rows) == episode["length"]
        assert rows["reward"].max() == pytest.approx(episode["best_reward"])
        assert rows["reward"].sum() == pytest.approx(episode["accumulated_reward"])


@pytest.mark.parametrize("algo", ["random", "dqn"])
def test_several_workers_train_networks_concurrently_and_keep_the_budget(algo, tmp_path, memo_url):
    assert run_cli(algo, tmp_path, memo_url, "--n-envs", "2") == 0
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert steps.groupby("env", sort=False).size().to_dict() == {"digits": 10, "faces": 6}
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    for env, rows in episodes.groupby("env", sort=False):
        assert rows["episode"].is_monotonic_increasing and rows["episode"].is_unique
        for _, episode in rows.iterrows():  # every finished episode's steps came from one worker
            mine = steps[(steps["env"] == env) & (steps["episode"] == episode["episode"])]
            assert len(mine) == episode["length"]
            assert mine["episode_step"].tolist() == list(range(1, len(mine) + 1))
    assert yaml.safe_load((tmp_path / "config.yml").read_text())["n_envs"] == 2


def test_recorder_keeps_each_workers_episode_apart():
    recorder = RunRecorder("digits")
    step = {"nsc": [], "accuracy": 0.5, "valid": True}
    recorder.record(0, 0.1, {**step, "episode_step": 1}, worker=0)
    recorder.record(1, 0.2, {**step, "episode_step": 1}, worker=1)
    recorder.record(2, 0.3, {**step, "episode_step": 2, "ended_by": "terminal"}, worker=1)
    recorder.record(3, 0.4, {**step, "episode_step": 2, "ended_by": "terminal"}, worker=0)
    recorder.record(4, 0.5, {**step, "episode_step": 1}, worker=1)
    assert [s["episode"] for s in recorder.steps] == [0, 1, 1, 0, 2]
    assert [(e["episode"], e["length"], e["accumulated_reward"]) for e in recorder.episodes] == [
        (1, 2, pytest.approx(0.5)),
        (0, 2, pytest.approx(0.5)),
    ]


def test_dqn_gets_the_paper_settings():
    hyperparams = resolve_fractions(load_hyperparams("dqn", "sb3_nas/NasChain-v0", train.DQN), 6500)
    assert hyperparams["buffer_size"] == 3250 and hyperparams["batch_size"] == 20
    assert (hyperparams["exploration_initial_eps"], hyperparams["exploration_final_eps"]) == (1.0, 0.1)
    assert hyperparams["exploration_fraction"] == 1.0 and hyperparams["learning_rate"] == 5e-4
    assert hyperparams["target_update_interval"] == 100


def test_evaluate_runs_the_frozen_policy_on_unseen_tasks(tmp_path, memo_url, capsys):
    assert run_cli("meta_a2c", tmp_path / "train", memo_url) == 0
    model = tmp_path / "train" / "model.zip"
    before = model.read_bytes()
    argv = ["--model", str(model), "--envs", "mnist", "--timesteps", "8", "--fidelity", "tiny"]
    assert evaluate.main([*argv, "--memo", memo_url, "--out", str(tmp_path / "eval")]) == 0
    steps = pd.read_csv(tmp_path / "eval" / "steps.csv")
    assert list(steps.columns) == STEP_COLUMNS and len(steps) == 8 and set(steps["env"]) == {"mnist"}
    assert model.read_bytes() == before  # the policy is frozen


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "sac"], "unknown algorithm 'sac'"),
        (["--envs", "digits,nope", "--timesteps", "5"], "unknown dataset 'nope'"),
        (["--timesteps", "5,x"], "comma-separated integers"),
        (["--envs", "digits,faces", "--timesteps", "1,2,3"], "one positive count per environment"),
        (["--fidelity", "huge"], "unknown fidelity 'huge'"),
        (["--fidelity", "cpu,batch=64"], "bad fidelity override 'batch=64'"),
        (["--n-envs", "2"], "meta_a2c is a one-worker algorithm"),
        (["--algo", "random", "--n-envs", "0"], "--n-envs must be at least 1"),
        (["--device", "gpu0"], "unknown device 'gpu0'"),
    ],
)
def test_bad_options_give_one_line_errors(argv, message, tmp_path, memo_url, capsys):
    assert train.main([*argv, "--out", str(tmp_path), "--memo", memo_url, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_config_with_unknown_keys_is_refused(tmp_path, capsys):
    conf = tmp_path / "bad.yml"
    conf.write_text("sb3_nas/NasChain-v0:\n  policy: MlpLstmPolicy\n  n_step: 5\n")
    assert train.main(["--conf", str(conf), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key(s) for meta_a2c on sb3_nas/NasChain-v0: n_step" in capsys.readouterr().err


def test_evaluate_refuses_missing_or_foreign_models(tmp_path, memo_url, capsys):
    assert evaluate.main(["--model", str(tmp_path / "none.zip")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_cli("dqn", tmp_path / "dqn", memo_url) == 0
    capsys.readouterr()
    assert evaluate.main(["--model", str(tmp_path / "dqn" / "model_digits.zip"), "--out", str(tmp_path)]) == 2
    assert "is not a MetaA2C model" in capsys.readouterr().err
