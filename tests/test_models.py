"""Loading model files without running what they hold: saved models round-trip, crafted ones run nothing."""

import base64
import io
import json
import pathlib
import pickle
import zipfile

import cloudpickle
import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3 import DQN
from stable_baselines3.common.save_util import load_from_zip_file

from sb3_nas import evaluate
from sb3_nas.algos import MetaA2C, MetaRLWrapper
from sb3_nas.envs import NasEnv
from sb3_nas.errors import ModelError
from sb3_nas.experiment import load_model
from sb3_nas.experiment.models import nas_spaces


class WritesMarker:
    """Unpickling this writes ``marker``: what a hostile model file would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (pathlib.Path(self.marker), "pwned")


def payload(marker: pathlib.Path) -> str:
    """A cloudpickle payload as SB3 stores one in ``data`` (base64)."""
    return base64.b64encode(cloudpickle.dumps(WritesMarker(marker))).decode()


def rewrite_zip(source: pathlib.Path, target: pathlib.Path, **members: bytes) -> pathlib.Path:
    """A copy of the model zip ``source`` with some members replaced (names with "." written as "__")."""
    replaced = {name.replace("__", "."): content for name, content in members.items()}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            new.writestr(name, replaced.pop(name, None) or old.read(name))
        for name, content in replaced.items():
            new.writestr(name, content)
    return target


def read_data(path: pathlib.Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


def serialized_entries(data: dict) -> list[str]:
    return [key for key, value in data.items() if isinstance(value, dict) and ":serialized:" in value]


@pytest.fixture(scope="module")
def memo_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('memo') / 'm.sqlite'}"


@pytest.fixture(scope="module")
def chain_env(memo_url):
    return MetaRLWrapper(NasEnv(dataset="digits", fidelity="tiny", memo=memo_url), trial_steps=10)


@pytest.fixture(scope="module")
def trained(chain_env, tmp_path_factory):
    """A MetaA2C trained for a few steps on the chain space, and its model.zip (no config.yml beside it)."""
    model = MetaA2C("MlpLstmPolicy", chain_env, seed=0)
    model.learn(10)
    path = tmp_path_factory.mktemp("chain") / "model.zip"
    model.save(path)
    return model, path


def predictions(model, observations):
    """Deterministic actions and LSTM states along a sequence of observations, from a zeroed state."""
    state, start, out = None, np.ones((1,), dtype=bool), []
    for observation in observations:
        action, state = model.predict(observation, state=state, episode_start=start, deterministic=True)
        out.append((int(action), [np.array(s) for s in state]))
        start = np.zeros((1,), dtype=bool)
    return out


def test_a_saved_model_loads_with_its_weights_optimizer_and_predictions(trained, chain_env, monkeypatch):
    model, path = trained

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the loader unpickled something")

    for module in (pickle, cloudpickle):  # SB3 unpickles with cloudpickle.loads; nothing may
        monkeypatch.setattr(module, "loads", no_unpickling)
        monkeypatch.setattr(module, "load", no_unpickling)
    loaded = load_model(path)
    monkeypatch.undo()

    assert isinstance(loaded, MetaA2C) and type(loaded.policy) is type(model.policy)
    assert (
        loaded.observation_space == chain_env.observation_space
        and loaded.action_space == chain_env.action_space
    )
    weights, saved = loaded.policy.state_dict(), model.policy.state_dict()
    assert list(weights) == list(saved) and all(th.equal(weights[key], saved[key]) for key in saved)
    optimizer, saved_optimizer = loaded.policy.optimizer.state_dict(), model.policy.optimizer.state_dict()
    assert optimizer["param_groups"] == saved_optimizer["param_groups"]
    assert saved_optimizer["state"] and optimizer["state"].keys() == saved_optimizer["state"].keys()
    for index, values in saved_optimizer["state"].items():
        for key, value in values.items():
            got = optimizer["state"][index][key]
            assert th.equal(got, value) if isinstance(value, th.Tensor) else got == value
    assert (loaded.n_steps, loaded.gamma, loaded.ent_coef, loaded.learning_rate) == (5, 0.9, 0.01, 1e-3)
    assert (loaded.num_timesteps, loaded._n_updates) == (model.num_timesteps, model._n_updates) == (10, 2)
    assert loaded.policy_kwargs == model.policy_kwargs

    rng = np.random.default_rng(0)
    observations = [rng.uniform(0, 1, loaded.observation_space.shape).astype(np.float32) for _ in range(6)]
    expected, got = predictions(model, observations), predictions(loaded, observations)
    assert [a for a, _ in got] == [a for a, _ in expected]
    for (_, got_states), (_, expected_states) in zip(got, expected, strict=True):
        assert all(np.array_equal(g, e) for g, e in zip(got_states, expected_states, strict=True))


def test_the_nas_spaces_are_the_environments(chain_env):
    observation_space, action_space = nas_spaces(multi_branch=False)
    assert observation_space == chain_env.observation_space and action_space == chain_env.action_space


def test_multi_branch_and_chain_models_are_told_apart(trained, memo_url, tmp_path):
    env = MetaRLWrapper(NasEnv(dataset="digits", fidelity="tiny", memo=memo_url, multi_branch=True), 10)
    MetaA2C("MlpLstmPolicy", env, seed=0).save(tmp_path / "model.zip")
    multi_branch = load_model(tmp_path / "model.zip")
    assert multi_branch.action_space == env.action_space and multi_branch.action_space.n == 14
    assert multi_branch.observation_space == env.observation_space
    assert load_model(trained[1]).action_space.n == 8

    def followed(path):  # evaluate, for a model without its run folder, reads the space from the model
        args = evaluate.build_parser().parse_args(["--model", str(path)])
        return evaluate.followed_settings(args)[0]["multi_branch"]

    assert [bool(followed(tmp_path / "model.zip")), bool(followed(trained[1]))] == [True, False]
    with pytest.raises(ModelError, match=r"its policy\.pth holds .* of shape"):  # the spaces given must fit
        load_model(trained[1], observation_space=env.observation_space, action_space=env.action_space)


def test_crafted_payloads_never_run(trained, tmp_path):
    model, path = trained
    marker = tmp_path / "marker"
    data = read_data(path)
    entries = serialized_entries(data)
    assert {"policy_class", "policy_kwargs", "observation_space", "action_space", "lr_schedule"} <= set(
        entries
    )

    def crafted(name, keys, extra=()):
        poisoned = json.loads(json.dumps(data))
        for key in keys:
            poisoned[key][":serialized:"] = payload(marker)
        for (
            key
        ) in extra:  # plain fields turned into pickles, and a pickle SB3 would load though none expects it
            poisoned[key] = {":type:": "<class 'float'>", ":serialized:": payload(marker)}
        return rewrite_zip(path, tmp_path / f"{name}.zip", data=json.dumps(poisoned).encode())

    for key in entries:
        crafted_path = crafted(key, [key])
        if key == "policy_class":
            with pytest.raises(ModelError, match="is not a MetaA2C model"):
                load_model(crafted_path)
        else:  # the entry is rebuilt from something trusted: the model loads as saved
            loaded = load_model(crafted_path)
            assert th.equal(loaded.policy.action_net.weight, model.policy.action_net.weight)
        assert not marker.exists(), f"loading a model ran the payload in {key}"
    others = [key for key in entries if key != "policy_class"]
    everything = crafted("all", others, extra=["learning_rate", "seed_sneaked_in"])
    assert load_model(everything).learning_rate == 1e-3  # lr_schedule's readable copy gives the constant
    with pytest.raises(ModelError, match="is not a MetaA2C model"):
        load_model(crafted("all_and_policy", entries))
    evil_weights = io.BytesIO()
    th.save(WritesMarker(marker), evil_weights)
    for member in ("policy__pth", "policy__optimizer__pth"):
        with pytest.raises(ModelError, match="has a corrupt policy"):
            load_model(rewrite_zip(path, tmp_path / f"{member}.zip", **{member: evil_weights.getvalue()}))
    assert not marker.exists()

    # the control: the same files do run code when loaded the way SB3 loads them
    load_from_zip_file(everything, device="cpu")
    assert marker.read_text() == "pwned"
    marker.unlink()
    th.load(io.BytesIO(evil_weights.getvalue()), weights_only=False)
    assert marker.exists()
    marker.unlink()
    cloudpickle.loads(base64.b64decode(payload(marker)))
    assert marker.exists()


def test_evaluate_runs_a_crafted_model_without_running_its_payload(trained, tmp_path, memo_url, capsys):
    marker = tmp_path / "marker"
    data = read_data(trained[1])
    for key in serialized_entries(data):
        if key != "policy_class":
            data[key][":serialized:"] = payload(marker)
    crafted = rewrite_zip(trained[1], tmp_path / "model.zip", data=json.dumps(data).encode())
    argv = ["--model", str(crafted), "--envs", "digits", "--timesteps", "2", "--fidelity", "tiny"]
    argv += ["--memo", memo_url, "--no-progress", "--out", str(tmp_path / "eval")]
    assert evaluate.main(argv) == 0
    assert not marker.exists()
    data["policy_class"][":serialized:"] = payload(marker)
    rewrite_zip(trained[1], crafted, data=json.dumps(data).encode())
    capsys.readouterr()
    assert evaluate.main([*argv[:-1], str(tmp_path / "eval2")]) == 2
    assert "is not a MetaA2C model" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize(
    ("algo", "policy"),
    [
        (DQN, "stable_baselines3.dqn.policies.DQNPolicy"),
        (RecurrentPPO, "sb3_contrib.common.recurrent.policies.RecurrentActorCriticPolicy"),
    ],
)
def test_another_algorithms_model_is_refused(algo, policy, chain_env, tmp_path):
    kwargs = {"buffer_size": 10} if algo is DQN else {}
    algo_policy = "MlpPolicy" if algo is DQN else "MlpLstmPolicy"
    algo(algo_policy, chain_env, **kwargs).save(tmp_path / "other.zip")
    with pytest.raises(ModelError) as error:
        load_model(tmp_path / "other.zip")
    assert (
        str(error.value)
        == f"model file {tmp_path / 'other.zip'} is not a MetaA2C model (its policy is {policy})"
    )


def test_missing_files_and_non_models_are_refused(tmp_path):
    with pytest.raises(ModelError, match="model file .*none.zip does not exist"):
        load_model(tmp_path / "none.zip")
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(ModelError, match="text.zip is not a saved SB3 model"):
        load_model(tmp_path / "text.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("readme", "no data")
    with pytest.raises(ModelError, match="empty.zip is not a saved SB3 model"):
        load_model(tmp_path / "empty.zip")


def corrupt_members(trained_path):
    with zipfile.ZipFile(trained_path) as archive:
        policy = archive.read("policy.pth")
    state = th.load(io.BytesIO(policy), weights_only=True)
    reshaped = dict(state, **{"action_net.weight": th.zeros(9, 128)})
    missing = {key: value for key, value in state.items() if key != "value_net.bias"}
    saved = {}
    for name, content in (("reshaped", reshaped), ("missing", missing), ("list", [1, 2])):
        buffer = io.BytesIO()
        th.save(content, buffer)
        saved[name] = buffer.getvalue()
    return {
        "garbage": ({"policy__pth": b"not a tensor file"}, "has a corrupt policy.pth"),
        "truncated": ({"policy__pth": policy[: len(policy) // 2]}, "has a corrupt policy.pth"),
        "not a state dict": ({"policy__pth": saved["list"]}, "has a corrupt policy.pth"),
        "reshaped": ({"policy__pth": saved["reshaped"]}, "fits no search space (chain, multi-branch"),
        "missing key": ({"policy__pth": saved["missing"]}, "its policy.pth lacks value_net.bias"),
        "optimizer": ({"policy__optimizer__pth": b"\x00" * 64}, "has a corrupt policy.optimizer.pth"),
    }


def test_a_corrupt_state_dict_is_a_one_line_error(trained, tmp_path):
    for case, (members, message) in corrupt_members(trained[1]).items():
        target = rewrite_zip(trained[1], tmp_path / f"{case.replace(' ', '_')}.zip", **members)
        with pytest.raises(ModelError) as error:
            load_model(target)
        text = str(error.value)
        assert message in text and str(target) in text and "\n" not in text, (case, text)
