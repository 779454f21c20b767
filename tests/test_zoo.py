"""rl-baselines3-zoo (sb3_nas.zoo): the project's files translated for the zoo; the zoo on a short budget."""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import sb3_nas
from sb3_nas.experiment.hyperparams import ConfigError
from sb3_nas.zoo import TRIAL_WRAPPER, export, main, zoo_hyperparams

CHAIN = "sb3_nas/NasChain-v0"
T_MAX = 20
needs_zoo = pytest.mark.skipif(
    importlib.util.find_spec("rl_zoo3") is None, reason="rl_zoo3 is not installed (pip install -e '.[zoo]')"
)


def env_kwargs(tmp_path: Path) -> list[str]:
    """``--env-kwargs`` as the zoo reads them: each value is evaluated as Python, so text is quoted."""
    return ["--env-kwargs", "fidelity:'tiny'", f"memo:'{tmp_path / 'memo.sqlite'}'"]


def run_folder(log_folder: Path, algo: str) -> Path:
    return log_folder / algo / "sb3_nas-NasChain-v0_1"


def monitor_rows(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "0.monitor.csv").read_text().splitlines()
    return list(csv.DictReader(lines[1:]))  # the first line is the Monitor's JSON header


def test_dqn_fractions_become_step_counts() -> None:
    hyperparams = zoo_hyperparams("dqn", CHAIN, 1000)
    assert hyperparams["n_timesteps"] == 1000
    assert hyperparams["buffer_size"] == 500  # t_max / 2
    assert hyperparams["learning_starts"] == 150  # 0.15 t_max
    assert not {"buffer_size_fraction", "learning_starts_fraction"} & set(hyperparams)


def test_meta_a2c_gets_the_trial_wrapper_of_the_budget() -> None:
    hyperparams = zoo_hyperparams("meta_a2c", CHAIN, 300)
    assert hyperparams["env_wrapper"] == [{TRIAL_WRAPPER: {"trial_steps": 300}}]
    assert "env_wrapper" not in zoo_hyperparams("maskable_ppo", CHAIN, 300)  # plain NAS observation
    assert zoo_hyperparams("ppo_lstm", CHAIN, 300)["policy"] == "MlpLstmPolicy"  # the zoo's name too


def test_export_is_the_zoo_format(tmp_path: Path) -> None:
    table = yaml.safe_load(export(["--algo", "dqn", "--env", CHAIN, "-n", "40"]))
    assert list(table) == [CHAIN] and table[CHAIN]["buffer_size"] == 20
    with pytest.raises(ConfigError, match="random"):
        zoo_hyperparams("random", CHAIN, 40)
    with pytest.raises(ConfigError, match="no entry"):
        zoo_hyperparams("dqn", "CartPole-v1", 40)


@needs_zoo
@pytest.mark.parametrize("algo", ["a2c", "ppo", "ppo_lstm", "dqn", "meta_a2c", "maskable_ppo"])
def test_every_translated_file_builds_a_zoo_model(algo: str, tmp_path: Path) -> None:
    """The zoo's ExperimentManager reads each translated file and the algorithm takes every key left."""
    from rl_zoo3.exp_manager import ExperimentManager

    from sb3_nas.zoo import register

    register()
    conf = tmp_path / f"{algo}.yml"
    conf.write_text(export(["--algo", algo, "--env", CHAIN, "-n", str(T_MAX)]))
    manager = ExperimentManager(
        argparse.Namespace(), algo, CHAIN, str(tmp_path / "logs"), n_timesteps=T_MAX, eval_freq=-1,
        env_kwargs={"fidelity": "tiny", "memo": str(tmp_path / "memo.sqlite")}, config=str(conf), seed=0,
        verbose=0, device="cpu",
    )  # fmt: skip
    model, saved = manager.setup_experiment()
    assert saved["n_timesteps"] == T_MAX and model.env is not None
    model.env.close()


@needs_zoo
def test_zoo_trains_dqn(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    argv = ["train", "--algo", "dqn", "--env", CHAIN, "-n", str(T_MAX), "-f", str(logs), "--seed", "0"]
    assert main([*argv, *env_kwargs(tmp_path)]) == 0
    folder = run_folder(logs, "dqn")
    assert (folder / "sb3_nas-NasChain-v0.zip").is_file()
    config = dict(yaml.load((folder / "sb3_nas-NasChain-v0" / "config.yml").read_text(), Loader=yaml.Loader))
    assert config["buffer_size"] == T_MAX // 2 and config["learning_starts"] == 3  # round(0.15 * 20)
    args = yaml.load((folder / "sb3_nas-NasChain-v0" / "args.yml").read_text(), Loader=yaml.Loader)
    assert args["eval_freq"] == -1  # evaluation off unless asked for: each of its steps trains a network
    assert not (folder / "evaluations.npz").exists()


@needs_zoo
def test_zoo_trains_meta_a2c_in_whole_trials(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    argv = ["train", "--algo", "meta_a2c", "--env", CHAIN, "-n", str(2 * T_MAX), "-f", str(logs)]
    argv += ["-params", f"env_wrapper:[{{'{TRIAL_WRAPPER}':{{'trial_steps':{T_MAX}}}}}]"]  # two trials
    argv += ["--eval-freq", str(T_MAX), "--eval-episodes", "1", "--seed", "0"]
    assert main([*argv, *env_kwargs(tmp_path)]) == 0
    folder = run_folder(logs, "meta_a2c")
    assert (folder / "sb3_nas-NasChain-v0.zip").is_file()
    assert [int(row["l"]) for row in monitor_rows(folder)] == [T_MAX, T_MAX]  # a Monitor episode is a trial
    import numpy as np

    evaluations = np.load(folder / "evaluations.npz")
    assert evaluations["ep_lengths"].ravel().tolist() == [T_MAX, T_MAX]  # and so is an evaluation episode


@needs_zoo
def test_plain_zoo_loads_the_exported_dqn_file(tmp_path: Path) -> None:
    conf = tmp_path / "dqn.yml"
    conf.write_text(export(["--algo", "dqn", "--env", CHAIN, "-n", str(T_MAX)]))
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", "dqn", "--env", CHAIN, "-conf", str(conf)]
    command += ["--gym-packages", "sb3_nas", "--eval-freq", "-1", "-f", str(logs), *env_kwargs(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = run_folder(logs, "dqn")
    assert (folder / "sb3_nas-NasChain-v0.zip").is_file()
    assert sum(int(row["l"]) for row in monitor_rows(folder)) <= T_MAX


@needs_zoo
@pytest.mark.parametrize(("zoo_algo", "shipped"), [("a2c", "a2c"), ("ppo_lstm", "recurrent_ppo")])
def test_plain_zoo_loads_a_shipped_file_unchanged(zoo_algo: str, shipped: str, tmp_path: Path) -> None:
    conf = Path(sb3_nas.__file__).parent / "zoo_configs" / f"{shipped}.yml"
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", zoo_algo, "--env", CHAIN, "-conf", str(conf)]
    params = ["n_steps:4", *(["batch_size:4"] if zoo_algo == "ppo_lstm" else [])]  # a rollout inside -n 8
    command += ["--gym-packages", "sb3_nas", "-n", "8", "--eval-freq", "-1", "-params", *params]
    command += ["-f", str(logs), *env_kwargs(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run_folder(logs, zoo_algo) / "sb3_nas-NasChain-v0.zip").is_file()


@needs_zoo
@pytest.mark.parametrize("env_id", [CHAIN, "sb3_nas/NasMultiBranch-v0"])
def test_plain_zoo_loads_the_shipped_dqn_file_unchanged(env_id: str, tmp_path: Path) -> None:
    """rl_zoo3 builds the file's BudgetFractions callback, which sizes the buffer and warm-up from -n; both
    environments."""
    from stable_baselines3 import DQN

    conf = Path(sb3_nas.__file__).parent / "zoo_configs" / "dqn.yml"
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", "dqn", "--env", env_id, "-conf", str(conf)]
    command += ["--gym-packages", "sb3_nas", "-n", str(T_MAX), "--eval-freq", "-1", "-f", str(logs)]
    done = subprocess.run([*command, *env_kwargs(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    name = env_id.replace("/", "-")
    model = DQN.load(logs / "dqn" / f"{name}_1" / f"{name}.zip", device="cpu")
    assert (model.buffer_size, model.learning_starts) == (T_MAX // 2, 3)  # 0.5 and 0.15 of 20 steps


def test_budget_fractions_size_the_buffer_and_warm_up_at_the_start_of_training() -> None:
    import gymnasium as gym
    from stable_baselines3 import DQN

    from sb3_nas.experiment.budget import BudgetFractions

    model = DQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=1000, device="cpu")
    model.learn(40, callback=BudgetFractions(buffer_size_fraction=0.5, learning_starts_fraction=0.15))
    assert (model.buffer_size, model.replay_buffer.buffer_size, model.learning_starts) == (20, 20, 6)
    assert model.replay_buffer.size() == 20  # filled, wrapped around: the rebuilt buffer is the one used
    # a buffer that already holds transitions (a resumed model) is kept
    model.learn(40, callback=BudgetFractions(buffer_size_fraction=0.25), reset_num_timesteps=False)
    assert model.replay_buffer.buffer_size == 20


def test_the_budget_callback_entry_reads_as_fraction_keys(tmp_path: Path) -> None:
    from stable_baselines3 import DQN

    from sb3_nas.experiment.hyperparams import BUDGET_CALLBACK, load_hyperparams

    def load(entry: dict) -> dict:
        conf = tmp_path / "dqn.yml"
        conf.write_text(yaml.safe_dump({CHAIN: {"policy": "MlpPolicy", **entry}}))
        return load_hyperparams("dqn", CHAIN, DQN, conf)

    callback = {BUDGET_CALLBACK: {"buffer_size_fraction": 0.5}}
    assert load({"callback": [callback]})["buffer_size_fraction"] == 0.5
    assert load({"callback": callback, "learning_starts_fraction": 0.1})["learning_starts_fraction"] == 0.1
    assert "callback" not in load({"callback": BUDGET_CALLBACK})
    with pytest.raises(ConfigError, match="callback 'rl_zoo3.callbacks.RawStatisticsCallback' is for"):
        load({"callback": ["rl_zoo3.callbacks.RawStatisticsCallback"]})
    with pytest.raises(ConfigError, match="takes buffer_size_fraction and learning_starts_fraction"):
        load({"callback": [{BUDGET_CALLBACK: {"buffer_size": 10}}]})
    with pytest.raises(ConfigError, match="buffer_size_fraction given twice"):
        load({"callback": [callback], "buffer_size_fraction": 0.25})
    from sb3_nas.experiment.budget import BudgetFractions

    module, name = BUDGET_CALLBACK.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is BudgetFractions
