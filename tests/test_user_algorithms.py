"""A user's own SB3 algorithm by import path (``--algo package.module:ClassName``) in train, compare, sweep
and the zoo; bad paths refused in one line before anything is written."""

import sys
import textwrap

import pandas as pd
import pytest
import yaml

from sb3_nas import compare, sweep, train
from sb3_nas.experiment import RunConfig, run
from sb3_nas.experiment.registry import algo_class

MODULE = """
from stable_baselines3 import DQN, SAC


class MyDQN(DQN):
    \"\"\"A user's DQN: it counts its updates.\"\"\"

    n_train_calls = 0

    def train(self, gradient_steps, batch_size=100):
        MyDQN.n_train_calls += 1
        super().train(gradient_steps, batch_size)


NotAClass = 3
ContinuousOnly = SAC
"""
ALGO = "user_algos_for_tests:MyDQN"
PARAMS = ["-params", "policy:MlpPolicy", "learning_starts:10", "batch_size:8"]


@pytest.fixture(autouse=True)
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_algos_for_tests.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SB3_NAS_MEMO", f"sqlite:///{tmp_path / 'memo.sqlite'}")
    algo_class.cache_clear()  # each test imports its own copy of the module
    yield
    sys.modules.pop("user_algos_for_tests", None)
    algo_class.cache_clear()


def test_a_users_dqn_subclass_runs_through_train_and_is_recorded(tmp_path):
    out = tmp_path / "run"
    argv = ["--algo", ALGO, "--envs", "nbgraph:cora,nbgraph:pubmed", "--timesteps", "40", "--out", str(out),
            "--no-progress", *PARAMS]  # fmt: skip
    assert train.main(argv) == 0
    assert sys.modules["user_algos_for_tests"].MyDQN.n_train_calls > 0  # the user's class, not DQN, trained
    assert yaml.safe_load((out / "config.yml").read_text())["algo"] == ALGO
    assert len(pd.read_csv(out / "steps.csv")) == 80
    assert (out / "model_nbgraph_cora.zip").is_file()


def test_a_users_saved_model_loads_as_the_class_its_config_names_and_only_it(tmp_path, capsys):
    import shutil
    import zipfile

    import numpy as np
    from stable_baselines3 import DQN

    from sb3_nas.envs import TabularNasEnv
    from sb3_nas.errors import ModelError
    from sb3_nas.experiment import load_run_model

    out = tmp_path / "run"
    argv = ["--algo", ALGO, "--envs", "nbgraph:cora", "--timesteps", "40", "--out", str(out), "--no-progress",
            *PARAMS]  # fmt: skip
    assert train.main(argv) == 0
    model = load_run_model(out)
    assert type(model).__name__ == "MyDQN" and type(model) is not DQN
    reference = DQN.load(out / "model_nbgraph_cora.zip")  # SB3's own loader, which unpickles: for the check
    observations = np.stack([TabularNasEnv("nbgraph:cora").reset(seed=s)[0] for s in range(3)])
    for name, tensor in reference.policy.state_dict().items():
        assert (model.policy.state_dict()[name] == tensor).all(), name
    expected = reference.predict(observations, deterministic=True)[0]
    assert (model.predict(observations, deterministic=True)[0] == expected).all()

    # the file's data entry is never read: a pickle payload there runs nothing
    import base64
    import json
    import pickle

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w')",)

    saved, crafted = out / "model_nbgraph_cora.zip", tmp_path / "crafted.zip"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(crafted, "w") as target:
        for item in source.namelist():
            payload = source.read(item)
            if item == "data":
                data = json.loads(payload)
                data["policy_class"] = {":serialized:": base64.b64encode(pickle.dumps(Payload())).decode()}
                payload = json.dumps(data).encode()
            target.writestr(item, payload)
    shutil.move(crafted, saved)
    assert type(load_run_model(out)).__name__ == "MyDQN"
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017  (SB3's own load would run it)
        DQN.load(saved)
    assert marker.exists()
    marker.unlink()

    # another algorithm's weights in the run folder are refused in one line
    other = tmp_path / "ppo"
    assert train.main(["--algo", "ppo", "--envs", "nbgraph:cora", "--timesteps", "40", "--out", str(other),
                       "--no-progress"]) == 0  # fmt: skip
    shutil.copy(other / "model_nbgraph_cora.zip", saved)
    with pytest.raises(ModelError, match="is not a user_algos_for_tests:MyDQN model of this run") as error:
        load_run_model(out)
    assert len(str(error.value).splitlines()) == 1
    with pytest.raises(ModelError, match="ran on nbgraph:cora, not nbgraph:pubmed"):
        load_run_model(out, "nbgraph:pubmed")


def test_a_users_algorithm_resumes_with_the_class_its_config_names(tmp_path):
    config = RunConfig.create(ALGO, envs=["nbgraph:cora"], timesteps=[40],
                              hyperparams={"policy": "MlpPolicy", "learning_starts": 10})  # fmt: skip
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    run(config, reference, progress=False, checkpoint_every=8)

    def stop(recorders):
        if len(recorders[-1].steps) == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, stopped, progress=False, checkpoint_every=8, on_step=stop)
    run(config, stopped, progress=False, checkpoint_every=8, resume=True)
    same = ["step", "action", "reward", "architecture"]
    pd.testing.assert_frame_equal(
        pd.read_csv(reference / "steps.csv")[same], pd.read_csv(stopped / "steps.csv")[same]
    )


def test_a_users_algorithm_runs_through_compare(tmp_path, capsys):
    out = tmp_path / "cmp"
    conf = tmp_path / "my_dqn.yml"
    conf.write_text(
        yaml.safe_dump({"sb3_nas/NasBench201-v0": {"policy": "MlpPolicy", "learning_starts": 10}})
    )
    argv = ["--algos", f"{ALGO},random", "--seeds", "0,1", "--envs", "nb201:cifar10", "--timesteps", "30",
            "--out", str(out), "--no-progress", "-conf", str(conf)]  # fmt: skip
    code = compare.main(argv)
    if code == 2 and "-conf" in capsys.readouterr().err:
        pytest.skip("compare takes no -conf")
    assert code == 0
    assert f"| {ALGO} | nb201:cifar10 | 2 |" in (out / "comparison.md").read_text()


def test_a_users_algorithm_is_swept_with_its_own_hyper_parameter_file(tmp_path, capsys):
    conf = tmp_path / "my_dqn.yml"
    conf.write_text(
        yaml.safe_dump({"sb3_nas/NasBenchGraph-v0": {"policy": "MlpPolicy", "learning_starts": 10}})
    )
    spec = {"algo": ALGO, "conf_file": conf.name, "run": {"envs": ["nbgraph:cora"], "timesteps": [30]},
            "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
            "n_trials": 2, "sampler": {"name": "RandomSampler", "seed": 0}}  # fmt: skip
    path = tmp_path / "my_sweep.yml"
    path.write_text(yaml.safe_dump(spec))
    argv = ["--sweep", str(path), "--storage", f"sqlite:///{tmp_path / 'optuna.sqlite'}", "--out",
            str(tmp_path / "runs"), "--no-progress"]  # fmt: skip
    assert sweep.main(argv) == 0
    assert "2 finished trials (2 complete" in capsys.readouterr().out


def test_the_zoo_trains_a_users_algorithm_from_its_file(tmp_path):
    pytest.importorskip("rl_zoo3")
    from sb3_nas import zoo

    conf = tmp_path / "my_dqn.yml"
    conf.write_text(
        yaml.safe_dump({"sb3_nas/NasBench201-v0": {"policy": "MlpPolicy", "learning_starts": 10}})
    )
    argv = ["train", "--algo", ALGO, "--env", "sb3_nas/NasBench201-v0", "-n", "40",
            "-f", str(tmp_path / "logs"), "-conf", str(conf), "--seed", "0"]  # fmt: skip
    assert zoo.main(argv) == 0
    assert sys.modules["user_algos_for_tests"].MyDQN.n_train_calls > 0
    assert zoo.main([*argv[:-4], "--seed", "0"]) == 2  # no -conf: its hyper-parameters are asked for


@pytest.mark.parametrize(
    ("algo", "message"),
    [
        ("no_such_module_here:X", "cannot import no_such_module_here"),
        ("user_algos_for_tests:Missing", "module user_algos_for_tests has no Missing"),
        ("user_algos_for_tests:NotAClass", "is not a class derived from stable_baselines3's BaseAlgorithm"),
        ("user_algos_for_tests:ContinuousOnly", "cannot run on sb3_nas/NasBenchGraph-v0: The algorithm only"),
        ("qrdnq", "unknown algorithm 'qrdnq'"),
    ],
)
def test_a_bad_algorithm_path_gives_one_line_and_writes_nothing(algo, message, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--algo", algo, "--envs", "nbgraph:cora", "--timesteps", "20", "--out", str(out), "--no-progress",
            *PARAMS]  # fmt: skip
    assert train.main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not out.exists()
