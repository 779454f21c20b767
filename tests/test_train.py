"""The training and evaluation commands on tiny budgets: files, columns, transfer, and bad input."""

import dataclasses
import shutil

import pandas as pd
import pytest
import yaml
from stable_baselines3 import DQN

from sb3_nas import evaluate, train
from sb3_nas.estimation import RewardMemo, get_fidelity, memo_key, training_precision
from sb3_nas.experiment import (
    ALGOS,
    EPISODE_COLUMNS,
    PAPER_TIMESTEPS,
    STEP_COLUMNS,
    RunConfig,
    RunRecorder,
    load_hyperparams,
    read_run_config,
    resolve_fractions,
    run,
)

ENVS, TIMESTEPS = "digits,faces", "10,6"


@pytest.fixture(scope="module")
def memo_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('memo') / 'memo.sqlite'}"


def run_cli(algo, out, memo_url, *extra):
    argv = ["--algo", algo, "--envs", ENVS, "--timesteps", TIMESTEPS, "--fidelity", "tiny", "--out", str(out)]
    return train.main([*argv, "--memo", memo_url, "--no-progress", *extra])


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_algorithm_writes_the_run_files(algo, tmp_path, memo_url, capsys):
    extra = []
    if algo in ("ppo", "recurrent_ppo"):  # rollouts short enough to update within the tiny budget
        policy = "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy"
        conf = tmp_path / "conf.yml"
        conf.write_text(f"sb3_nas/NasChain-v0:\n  policy: {policy}\n  n_steps: 4\n  batch_size: 4\n")
        extra = ["-conf", str(conf)]
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
    hyperparams = resolve_fractions(load_hyperparams("dqn", "sb3_nas/NasChain-v0", DQN), 6500)
    assert hyperparams["buffer_size"] == 3250 and hyperparams["batch_size"] == 20
    assert (hyperparams["exploration_initial_eps"], hyperparams["exploration_final_eps"]) == (1.0, 0.1)
    assert hyperparams["exploration_fraction"] == 1.0 and hyperparams["learning_rate"] == 5e-4
    assert hyperparams["target_update_interval"] == 100


def test_dqn_as_built_has_the_paper_settings_and_a_fresh_model_per_environment(
    tmp_path, memo_url, monkeypatch
):
    from sb3_nas.experiment import runner

    built, build = [], runner._learner
    monkeypatch.setattr(runner, "_learner", lambda *args: built.append(build(*args)) or built[-1])
    config = RunConfig.create(
        "dqn", envs=["digits", "photos"], timesteps=[20, 40], fidelity="tiny", memo=memo_url
    )
    run(config, tmp_path, progress=False)
    assert len(built) == 2 and built[0] is not built[1]  # a new policy per environment (§6.1)
    assert built[0].policy is not built[1].policy
    for model, t_max in zip(built, (20, 40), strict=True):
        assert model.num_timesteps == t_max  # each learned from zero on its own environment
        assert (model.learning_starts, model.buffer_size) == (round(0.15 * t_max), t_max // 2)
        assert (model.gamma, model.batch_size, model.target_update_interval) == (0.9, 20, 100)
        assert (model.exploration_initial_eps, model.exploration_final_eps) == (1.0, 0.1)
        assert model.exploration_fraction == 1.0 and model.learning_rate == 5e-4
        assert model.exploration_rate == pytest.approx(
            0.1
        )  # ε annealed over the whole run, reached at its end


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory, memo_url):
    """A meta_a2c run at the tiny fidelity, σ 0.1 (its model is evaluated below)."""
    out = tmp_path_factory.mktemp("meta") / "train"
    assert run_cli("meta_a2c", out, memo_url, "--sigma", "0.1") == 0
    return out


def test_evaluate_runs_the_frozen_policy_on_unseen_tasks_as_its_run_did(meta_run, tmp_path, memo_url, capsys):
    model = meta_run / "model.zip"
    before = model.read_bytes()
    capsys.readouterr()
    argv = ["--model", str(model), "--envs", "mnist", "--timesteps", "8", "--memo", memo_url, "--no-progress"]
    assert evaluate.main([*argv, "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert f"fidelity tiny from the training run's {meta_run / 'config.yml'}" in out
    assert "sigma 0.1 from the training run's" in out and "multi_branch False from" in out
    steps = pd.read_csv(tmp_path / "eval" / "steps.csv")
    assert list(steps.columns) == STEP_COLUMNS and len(steps) == 8 and set(steps["env"]) == {"mnist"}
    assert model.read_bytes() == before  # the policy is frozen
    config = read_run_config(tmp_path / "eval")  # the same format as a training run's
    assert config.frozen and config.model == str(model) and config.fidelity.name == "tiny"
    assert (config.sigma, config.envs, config.timesteps) == (0.1, ("mnist",), (8,))


def test_evaluate_says_which_setting_overrides_the_run(meta_run, tmp_path, memo_url, capsys):
    argv = ["--model", str(meta_run / "model.zip"), "--envs", "mnist", "--timesteps", "3", "--memo", memo_url]
    assert evaluate.main([*argv, "--fidelity", "tiny,epochs=2", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "fidelity tiny,epochs=2 as given (overrides tiny of the training run's" in capsys.readouterr().out
    assert read_run_config(tmp_path).fidelity.epochs == 2
    argv = [*argv, "--multi-branch", "--no-progress", "--out", str(tmp_path / "mb")]
    assert evaluate.main(argv) == 2
    assert "was not trained on the multi-branch space" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "sac"], "unknown algorithm 'sac'"),
        (["--envs", "digits,nope", "--timesteps", "5"], "unknown dataset 'nope'"),
        (["--timesteps", "5,x"], "argument --timesteps/-n: expected comma-separated integers or 'paper'"),
        (["--timesteps", "paper", "--envs", "digits"], "the paper's budgets for meta_a2c are 8000/7000/7000"),
        (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["-params", "n_step:3"], "hyper-parameter override: unknown key(s) for meta_a2c: n_step"),
        (["-params", "n_steps"], "expected key:value, got 'n_steps'"),
        (["-params", "n_steps:0"], "n_steps: 0 is out of range (at least 1)"),
        (["--algo", "dqn", "-params", "gamma:2"], "gamma: 2 is out of range (from 0 to 1)"),
        (["-params", "learning_rate:.nan"], "learning_rate: nan is"),
        (["--sigma", "2"], "--sigma must lie in [0, 1]"),
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
    assert train.main(["-conf", str(conf), "--out", str(tmp_path / "o")]) == 2
    assert (
        f"config file {conf} on sb3_nas/NasChain-v0: unknown key(s) for meta_a2c: n_step"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()  # nothing written before every input is checked


def test_evaluate_refuses_missing_or_foreign_models(tmp_path, memo_url, capsys):
    assert evaluate.main(["--model", str(tmp_path / "none.zip")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_cli("dqn", tmp_path / "dqn", memo_url) == 0
    capsys.readouterr()
    assert evaluate.main(["--model", str(tmp_path / "dqn" / "model_digits.zip"), "--out", str(tmp_path)]) == 2
    assert "is not a MetaA2C model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("algo", "timesteps", "n_steps"), [("meta_a2c", (10, 12, 9), 5), ("a2c", (7, 6, 4), 3)]
)
def test_every_complete_rollout_inside_the_budget_is_trained_on(algo, timesteps, n_steps, tmp_path, memo_url):
    envs = ["digits", "photos", "textures"]
    config = RunConfig.create(algo, envs=envs, timesteps=timesteps, fidelity="tiny",
                              memo=memo_url, hyperparams={"n_steps": n_steps})  # fmt: skip
    result = run(config, tmp_path, progress=False)
    assert result.n_updates == {env: t // n_steps for env, t in zip(config.envs, timesteps, strict=True)}
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert steps.groupby("env", sort=False).size().tolist() == list(timesteps)  # and not a step more


def test_dqn_updates_on_every_step_after_learning_starts_to_the_last(tmp_path, memo_url):
    config = RunConfig.create("dqn", envs=["digits"], timesteps=10, fidelity="tiny", memo=memo_url,
                              hyperparams={"learning_starts_fraction": 0.5})  # fmt: skip
    assert run(config, tmp_path, progress=False).n_updates == {"digits": 5}  # steps 6 to 10


def test_hyperparameter_overrides_reach_the_model_and_the_run_config(tmp_path, memo_url):
    assert run_cli("meta_a2c", tmp_path, memo_url, "-params", "n_steps:3", "learning_rate:0.0005") == 0
    config = read_run_config(tmp_path)
    assert (
        config.hyperparams["digits"]["n_steps"] == 3 and config.hyperparams["faces"]["learning_rate"] == 5e-4
    )
    assert config.hyperparams["digits"]["gamma"] == 0.9  # the zoo config's other values stay


def test_the_papers_budgets_by_name():
    def budgets(algo, envs=("a", "b", "c"), **kwargs):
        return RunConfig.create(algo, envs=envs, timesteps="paper", fidelity="tiny", memo="sqlite://",
                                check_data=False, **kwargs).timesteps  # fmt: skip

    assert budgets("meta_a2c") == PAPER_TIMESTEPS["meta_a2c"] == (8000, 7000, 7000)
    assert budgets("dqn") == budgets("random") == (6500, 5500, 7000)
    assert budgets("meta_a2c", envs=("omniglot",), multi_branch=True) == (20000,)


def test_a_finished_run_is_not_overwritten_unless_asked(tmp_path, memo_url, capsys):
    assert run_cli("random", tmp_path, memo_url) == 0
    before = (tmp_path / "steps.csv").read_bytes()
    assert run_cli("random", tmp_path, memo_url, "--seed", "1") == 2
    assert f"{tmp_path} already holds a run" in capsys.readouterr().err
    assert (tmp_path / "steps.csv").read_bytes() == before
    assert run_cli("random", tmp_path, memo_url, "--seed", "1", "--overwrite") == 0
    assert read_run_config(tmp_path).seed == 1


def test_tensorboard_receives_the_nas_figures_of_training_and_evaluation(meta_run, tmp_path, memo_url):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(folder):
        [events] = list(folder.glob("events.out.tfevents.*"))
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        return set(accumulator.Tags()["scalars"])

    board = tmp_path / "tb"
    assert run_cli("meta_a2c", tmp_path / "train", memo_url, "-tb", str(board)) == 0
    figures = {"best_accuracy", "memo_hit_rate", "invalid_share", "episode_length", "episode_best_reward"}
    assert {f"nas/{env}/{name}" for env in ("digits", "faces") for name in figures} <= scalars(
        board / "train"
    )
    assert "train/entropy" in scalars(board / "train")  # SB3's own figures beside them
    argv = [
        "--model",
        str(meta_run / "model.zip"),
        "--envs",
        "mnist",
        "--timesteps",
        "12",
        "--memo",
        memo_url,
    ]
    assert evaluate.main([*argv, "-tb", str(board), "-f", str(tmp_path / "eval"), "--no-progress"]) == 0
    assert {f"nas/mnist/{name}" for name in figures} <= scalars(board / "eval")


def test_accept_precision_lets_rewards_of_another_precision_answer(tmp_path, capsys):
    """A memo filled in another precision is cold for a run, and warm with ``--accept-precision``."""
    first = f"sqlite:///{tmp_path / 'first.sqlite'}"
    argv = ["--algo", "random", "--envs", "digits", "--timesteps", "8", "--fidelity", "tiny", "--no-progress"]
    assert train.main([*argv, "--memo", first, "--out", str(tmp_path / "first")]) == 0
    own = training_precision("cpu")
    other = "fp32" if own != "fp32" else "bf16"
    relabelled = RewardMemo(f"sqlite:///{tmp_path / 'other.sqlite'}")
    fidelity = get_fidelity("tiny")
    for entry in RewardMemo(first).entries():
        key = memo_key(entry.dataset_fingerprint, entry.network, fidelity, other)
        relabelled.put(dataclasses.replace(entry, key=key, precision=other))
    relabelled.close()
    hits = {}
    for name, extra in (("strict", []), ("lenient", ["--accept-precision", other])):
        memo = tmp_path / f"{name}.sqlite"
        shutil.copy(tmp_path / "other.sqlite", memo)
        assert train.main([*argv, "--memo", f"sqlite:///{memo}", "--out", str(tmp_path / name), *extra]) == 0
        hits[name] = pd.read_csv(tmp_path / name / "steps.csv")["memo_hit"].tolist()
        assert read_run_config(tmp_path / name).accept_precision == tuple(extra[1:])
    assert not any(hits["strict"][:1]) and all(hits["lenient"])  # the same seed meets the same networks
