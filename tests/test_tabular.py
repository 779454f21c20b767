"""Tabular NAS benchmarks as environments: rewards equal the raw tables, foreign pickles are refused, the
environments pass both checkers, masks, the decode-once cache, and the commands on tiny budgets."""

import dataclasses
import io
import json
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from nas_bench_graph.architecture import Arch
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from sb3_nas import compare, evaluate, sweep, train
from sb3_nas.envs import (
    INVALID_ARCHITECTURE,
    MAX_DEPTH_REACHED,
    NAS_BENCH_201_ENV_ID,
    NAS_BENCH_GRAPH_ENV_ID,
    TERMINAL_ACTION,
    TabularNasEnv,
)
from sb3_nas.estimation import (
    BENCHMARKS,
    NOT_IN_TABLE,
    BenchmarkError,
    TableEstimator,
    TablePickleError,
    load_restricted,
    parse_table_spec,
)
from sb3_nas.estimation import tables as tables_module
from sb3_nas.estimation.safe_pickle import NUMPY_GLOBALS
from sb3_nas.experiment import CHECKPOINT_FILE, RunConfig, run
from sb3_nas.space import nasbench201, nasbench_graph

NBGRAPH_FOLDER = Path(BENCHMARKS["nbgraph"].source("cora")).parent
NB201_FILE = BENCHMARKS["nb201"].source("cifar10")


class _TestUnpickler(pickle.Unpickler):
    """The test's own reading of a raw table, independent of sb3_nas's: numpy scalars and plain records."""

    class Plain:
        def __setstate__(self, state):
            self.__dict__.update(state)

    def find_class(self, module, name):
        if name == "scalar" and module.startswith("numpy"):
            return lambda dtype, data: np.frombuffer(data, dtype=dtype)[0]
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if module == "analognasbench.data":
            return self.Plain
        raise pickle.UnpicklingError(f"{module}.{name}")


@pytest.fixture(autouse=True)
def own_memo(tmp_path, monkeypatch):
    """Runs open a reward memo even on a benchmark (nothing is written to it): one in the test's folder."""
    monkeypatch.setenv("SB3_NAS_MEMO", f"sqlite:///{tmp_path / 'memo.sqlite'}")


def raw_table(path: Path) -> dict:
    with open(path, "rb") as file:
        return _TestUnpickler(file).load()


@pytest.fixture(scope="module")
def cora_raw():
    return raw_table(NBGRAPH_FOLDER / "cora.bench")


def walk(env: TabularNasEnv, choices) -> tuple[float, dict]:
    env.reset(seed=0)
    for choice in choices:
        _, reward, terminated, _, info = env.step(choice)
    return reward, info


# -- rewards equal the raw tables ---------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["cora", "proteins"])
def test_rewards_and_test_accuracies_equal_the_raw_table_through_the_packages_own_hash(dataset):
    raw = raw_table(NBGRAPH_FOLDER / f"{dataset}.bench")
    env = TabularNasEnv(f"nbgraph:{dataset}")
    operations = nasbench_graph.operations_of(dataset)
    rng = np.random.default_rng(1)
    checked = 0
    while checked < 200:
        link = nasbench_graph.LINKS[rng.integers(len(nasbench_graph.LINKS))]
        ops = [operations[i] for i in rng.integers(len(operations), size=4)]
        if ops == ["skip"] * 4:
            continue
        choices = [nasbench_graph.LINKS.index(link), *(nasbench_graph.OPERATIONS.index(op) for op in ops)]
        reward, info = walk(env, choices)
        entry = raw[Arch(list(link), list(ops)).valid_hash()]
        assert reward == info["accuracy"] == float(entry["valid_perf"])
        assert info["test_accuracy"] == float(entry["perf"])
        assert info["architecture"] == {"link": list(link), "ops": ops}
        assert info["ended_by"] == MAX_DEPTH_REACHED and info["valid"]
        checked += 1


def test_every_partial_state_denotes_an_architecture_of_the_table(cora_raw):
    env = TabularNasEnv("nbgraph:cora")
    env.reset()
    _, reward, _, _, info = env.step(nasbench_graph.LINKS.index((0, 0, 1, 1)))  # the link only: gcn elsewhere
    assert info["architecture"] == {"link": [0, 0, 1, 1], "ops": ["gcn"] * 4}
    assert reward == float(cora_raw[Arch([0, 0, 1, 1], ["gcn"] * 4).valid_hash()]["valid_perf"])
    # the terminal action at the start scores the defaults: the chain of four gcn
    _, reward, terminated, _, info = env.reset() and env.step(env.space.terminal_action)
    assert terminated and info["ended_by"] == TERMINAL_ACTION
    assert reward == float(cora_raw[Arch([0, 1, 2, 3], ["gcn"] * 4).valid_hash()]["valid_perf"])


def test_nas_bench_201_rewards_are_the_chosen_metric_of_analognas_bench_over_100():
    raw = raw_table(NB201_FILE)
    rng = np.random.default_rng(2)
    for metric in ("baseline_accuracy", "analog_accuracy"):
        env = gym.make(NAS_BENCH_201_ENV_ID, metric=metric).unwrapped
        for _ in range(100):
            cell = tuple(int(op) for op in rng.integers(5, size=6))
            reward, info = walk(env, cell)
            assert reward == getattr(raw[cell], metric) / 100
            assert info["architecture"] == list(cell)
            assert nasbench201.choices_from_arch_string(info["arch_str"]) == cell


def test_analognas_op_indices_and_edges_are_nas_bench_201s():
    table = raw_table(NB201_FILE)
    assert table[(1,) * 6].baseline_accuracy == pytest.approx(10.0)  # all none: no path, chance level
    assert table[(2,) * 6].baseline_accuracy > 93  # all nor_conv_3x3: the space's strong cell
    # the output node 3 is cut off exactly when edges 3<-0, 3<-1, 3<-2 are none or their sources are cut
    for cell, record in list(table.items())[::25]:
        op = dict(zip(nasbench201.EDGES, cell, strict=True))
        reach = {0}
        for to in (1, 2, 3):
            if any(source in reach and op[(to, source)] != 1 for source in range(to)):
                reach.add(to)
        assert (3 not in reach) == (record.baseline_accuracy <= 10.5), cell
    assert nasbench201.arch_string((2, 1, 3, 0, 4, 2)) == (
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    )


def test_the_table_s_best_and_the_oracle_come_from_the_table(cora_raw):
    estimator = TableEstimator("nbgraph:cora")
    assert estimator.best_test_accuracy == max(float(e["perf"]) for e in cora_raw.values())
    best = max(cora_raw.values(), key=lambda e: e["valid_perf"])
    assert estimator.oracle_test_accuracy == float(best["perf"])


# -- safe reading -------------------------------------------------------------------------------------------


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(_Exploit.target),))


def test_a_pickle_naming_a_foreign_global_is_refused_without_running_it(tmp_path):
    _Exploit.target = str(tmp_path / "ran")
    crafted = tmp_path / "cora.bench"
    crafted.write_bytes(pickle.dumps({0: {"valid_perf": _Exploit()}}))
    with pytest.raises(TablePickleError, match=r"names the global pathlib.*Path.touch.*refused"):
        load_restricted(crafted, NUMPY_GLOBALS)
    assert not (tmp_path / "ran").exists()
    with pytest.raises(TablePickleError, match="refused"):
        tables_module.NAS_BENCH_GRAPH.decode(crafted, "cora")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pickle.dumps(np.array([1.0])), "names the global numpy"),  # arrays are not what a table holds
        (pickle.dumps(np.float64(1.0))[:-5], "is damaged"),
        (pickle.dumps({"x": np.dtype("O")}), "is damaged"),  # an object dtype is refused
        (b"not a pickle", "is damaged"),
    ],
)
def test_damaged_or_unexpected_tables_give_one_line_errors(tmp_path, payload, message):
    path = tmp_path / "table.bench"
    path.write_bytes(payload)
    with pytest.raises(TablePickleError, match=message) as raised:
        load_restricted(path, NUMPY_GLOBALS)
    assert "\n" not in str(raised.value)


def test_numpy_scalars_of_the_tables_read_back_exactly():
    value = np.float64(1.736711)
    stream = io.BytesIO(pickle.dumps({"para": value}))
    stream.seek(0)
    path_like = stream.getvalue()
    assert pickle.loads(path_like)["para"] == value  # the reference
    from sb3_nas.estimation.safe_pickle import RestrictedUnpickler

    assert RestrictedUnpickler(io.BytesIO(path_like), NUMPY_GLOBALS, "t").load()["para"] == value


# -- the environments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["nbgraph:cora", "nbgraph:proteins", "nb201:cifar10"])
def test_both_environment_checkers_pass(task):
    env = TabularNasEnv(task)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env)


def test_registered_ids_make_the_environments():
    env = gym.make(NAS_BENCH_GRAPH_ENV_ID, dataset="citeseer")
    assert env.unwrapped.estimator.name == "nbgraph:citeseer"
    assert gym.make(NAS_BENCH_201_ENV_ID).unwrapped.estimator.name == "nb201:cifar10"


def test_all_datasets_of_a_benchmark_share_one_observation_and_action_space():
    cora, proteins = TabularNasEnv("nbgraph:cora"), TabularNasEnv("nbgraph:proteins")
    assert cora.observation_space == proteins.observation_space
    assert cora.action_space == proteins.action_space


def test_proteins_masks_the_operations_its_table_lacks_and_choosing_one_ends_the_episode():
    env = TabularNasEnv("nbgraph:proteins")
    env.reset()
    assert env.action_masks().all()  # the link: every pattern is there
    env.step(0)
    masks = env.action_masks()
    allowed = {nasbench_graph.OPERATIONS[a] for a in range(9) if masks[a]}
    assert allowed == set(nasbench_graph.PROTEINS_OPERATIONS) and masks[env.space.terminal_action]
    gat = nasbench_graph.OPERATIONS.index("gat")
    assert env.mask_reason(gat) == NOT_IN_TABLE
    _, reward, terminated, _, info = env.step(gat)
    assert (reward, terminated, info["valid"], info["reason"]) == (0.0, True, False, NOT_IN_TABLE)
    assert info["ended_by"] == INVALID_ARCHITECTURE


def test_the_one_architecture_nas_bench_graph_lacks_is_masked_at_its_last_decision():
    env = TabularNasEnv("nbgraph:cora")
    skip = nasbench_graph.OPERATIONS.index("skip")
    env.reset()
    for choice in (0, skip, skip, skip):
        env.step(choice)
    assert not env.action_masks()[skip] and env.action_masks().sum() == env.space.n_actions - 1
    _, reward, _, _, info = env.step(skip)
    assert reward == 0.0 and info["reason"] == NOT_IN_TABLE


def test_equivalent_dags_count_once_among_distinct_architectures():
    env = TabularNasEnv("nbgraph:cora")
    parallel = nasbench_graph.LINKS.index((0, 0, 0, 0))  # four nodes on the input: their order is no matter
    first, second = ["gcn", "gin", "sage", "fc"], ["fc", "sage", "gcn", "gin"]
    assert Arch([0, 0, 0, 0], first).valid_hash() == Arch([0, 0, 0, 0], second).valid_hash()
    met = []
    for ops in (first, second):
        env.reset()
        for choice in (parallel, *(nasbench_graph.OPERATIONS.index(op) for op in ops)):
            met.append(env.step(choice)[4])
    assert met[4]["network"] == met[9]["network"] and met[4]["architecture"] != met[9]["architecture"]
    notations = {json.dumps(info["architecture"]) for info in met}
    hashes = {Arch(info["architecture"]["link"], info["architecture"]["ops"]).valid_hash() for info in met}
    assert env.n_distinct == len(hashes) < len(notations)


def test_observation_encodes_the_decisions_made():
    env = TabularNasEnv("nb201:cifar10")
    observation, _ = env.reset()
    assert observation.reshape(6, 6)[:, 0].all()
    observation, *_ = env.step(3)
    rows = observation.reshape(6, 6)
    assert rows[0, 4] == 1 and rows[0, 0] == 0 and rows[1:, 0].all()


# -- the decode-once cache ----------------------------------------------------------------------------------


def test_a_table_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_NAS_DATA_CACHE", str(tmp_path))
    tables_module.clear_table_cache()
    try:
        first = tables_module.decoded_arrays(tables_module.NAS_BENCH_201, "cifar10")
        assert len(list(tmp_path.glob("table-nb201-cifar10-*.npz"))) == 1
        tables_module.clear_table_cache()

        def fail(*_):
            raise AssertionError("decoded again")

        no_decoding = dataclasses.replace(tables_module.NAS_BENCH_201, decode=fail)
        again = tables_module.decoded_arrays(no_decoding, "cifar10")
        for name, array in first.items():
            np.testing.assert_array_equal(again[name], array)
        assert not again["baseline_accuracy"].flags.writeable
        # a damaged entry is decoded again
        tables_module.clear_table_cache()
        next(tmp_path.glob("table-nb201-*.npz")).write_bytes(b"broken")
        decoded = tables_module.decoded_arrays(tables_module.NAS_BENCH_201, "cifar10")
        np.testing.assert_array_equal(decoded["baseline_accuracy"], first["baseline_accuracy"])
    finally:
        tables_module.clear_table_cache()


def test_task_specs_are_checked_in_one_line():
    assert parse_table_spec("nb201:cifar10/analog_accuracy").metric == "analog_accuracy"
    assert parse_table_spec("nb201:cifar10/baseline_accuracy").name == "nb201:cifar10"
    for text, message in [("nbgraph:mnist", "no dataset 'mnist'"), ("nb201:cifar10/x", "no metric 'x'")]:
        with pytest.raises(BenchmarkError, match=message):
            parse_table_spec(text)


# -- the commands on tiny budgets ---------------------------------------------------------------------------

NBGRAPH_ENVS = "nbgraph:cora,nbgraph:proteins"


def test_train_meta_a2c_then_evaluate_frozen_on_held_out_datasets(tmp_path, capsys):
    out = tmp_path / "meta"
    argv = ["--envs", NBGRAPH_ENVS, "--timesteps", "40", "--out", str(out), "--no-progress"]
    assert train.main(argv) == 0
    printed = capsys.readouterr().out
    assert "(table look-up)" in printed and "its test accuracy" in printed
    steps = pd.read_csv(out / "steps.csv")
    assert len(steps) == 80 and steps["test_accuracy"].notna().all()
    assert json.loads(steps["architecture"].iloc[0]).keys() == {"link", "ops"}
    config = yaml_config(out)
    assert config["env_id"] == NAS_BENCH_GRAPH_ENV_ID and config["fidelity"] is None
    frozen = tmp_path / "frozen"
    argv = ["--model", str(out / "model.zip"), "--envs", "nbgraph:photo,nbgraph:arxiv", "--timesteps", "30",
            "--out", str(frozen), "--no-progress"]  # fmt: skip
    assert evaluate.main(argv) == 0
    assert len(pd.read_csv(frozen / "steps.csv")) == 60
    wrong = ["--model", str(out / "model.zip"), "--envs", "nb201:cifar10", "--timesteps", "5",
             "--no-progress", "--out", str(tmp_path / "wrong")]  # fmt: skip
    assert evaluate.main(wrong) == 2
    assert "not trained on the sb3_nas/NasBench201-v0" in capsys.readouterr().err


def yaml_config(out: Path) -> dict:
    import yaml

    return yaml.safe_load((out / "config.yml").read_text())


@pytest.mark.parametrize("algo", ["dqn", "maskable_ppo", "random", "recurrent_ppo"])
def test_baselines_train_on_nas_bench_201(algo, tmp_path):
    out = tmp_path / algo
    argv = ["--algo", algo, "--envs", "nb201:cifar10", "--timesteps", "60", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert train.main(argv) == 0
    steps = pd.read_csv(out / "steps.csv")
    assert len(steps) == 60 and steps["valid"].all()


def test_maskable_ppo_never_chooses_a_masked_operation_on_proteins(tmp_path):
    out = tmp_path / "masked"
    argv = ["--algo", "maskable_ppo", "--envs", "nbgraph:proteins", "--timesteps", "200", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert train.main(argv) == 0
    assert pd.read_csv(out / "steps.csv")["valid"].all()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--envs", "nbgraph:cora", "--fidelity", "tiny"], "--fidelity does not apply to nbgraph:cora"),
        (["--envs", "nbgraph:cora,digits"], "mixes search spaces"),
        (["--envs", "nbgraph:cora,nb201:cifar10"], "mixes search spaces"),
        (["--envs", "nbgraph:cora", "--multi-branch"], "--multi-branch is the NSC space's"),
        (["--envs", "nbgraph:imagenet"], "NAS-Bench-Graph has no dataset 'imagenet'"),
    ],
)
def test_bad_tabular_input_gives_one_line_errors(argv, message, tmp_path, capsys):
    assert train.main([*argv, "--timesteps", "5", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_resumed_tabular_run_equals_the_uninterrupted_one(tmp_path):
    config = RunConfig.create("meta_a2c", envs=["nbgraph:cora", "nbgraph:pubmed"], timesteps=[30, 30])
    reference = tmp_path / "reference"
    run(config, reference, progress=False, checkpoint_every=8)
    stopped = tmp_path / "stopped"

    def stop(recorders):
        if sum(len(r.steps) for r in recorders) == 45:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, stopped, progress=False, checkpoint_every=8, on_step=stop)
    assert (stopped / CHECKPOINT_FILE).is_file()
    run(config, stopped, progress=False, checkpoint_every=8, resume=True)
    same = ["env", "step", "episode", "action", "reward", "accuracy", "test_accuracy", "architecture"]
    pd.testing.assert_frame_equal(
        pd.read_csv(reference / "steps.csv")[same], pd.read_csv(stopped / "steps.csv")[same]
    )


def test_compare_reports_test_accuracy_regret_and_distinct_curves(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["--algos", "random,dqn", "--seeds", "0,1", "--envs", "nb201:cifar10", "--timesteps", "50",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert compare.main(argv) == 0
    printed = capsys.readouterr().out
    assert "test accuracy of the best by validation" in printed and "test regret" in printed
    markdown = (out / "comparison.md").read_text()
    assert "against distinct architectures queried" in markdown
    best = TableEstimator("nb201:cifar10").best_test_accuracy
    steps = pd.read_csv(out / "random" / "seed-0" / "steps.csv")
    chosen = steps.loc[steps["accuracy"].idxmax(), "test_accuracy"]
    assert f"{best - chosen:.4f}" in markdown  # the per-run regret of random seed 0


def test_a_sweep_runs_on_nas_bench_graph_without_a_fidelity(tmp_path, capsys):
    argv = ["--sweep", "meta_a2c_nbgraph", "--storage", f"sqlite:///{tmp_path / 'optuna.sqlite'}",
            "--out", str(tmp_path / "runs"), "--timesteps", "20", "--n-trials", "2",
            "--no-progress"]  # fmt: skip
    assert sweep.main(argv) == 0
    assert "study meta_a2c_nbgraph-table-20-20-20: 2 finished trials" in capsys.readouterr().out
    argv[argv.index("meta_a2c_nbgraph")] = "meta_a2c"  # an NSC sweep file moved to a benchmark's tasks
    assert sweep.main([*argv, "--envs", "nb201:cifar10"]) == 0


def test_the_zoo_trains_meta_a2c_on_a_benchmark_dataset(tmp_path):
    pytest.importorskip("rl_zoo3")
    from sb3_nas import zoo

    logs = tmp_path / "logs"
    argv = ["train", "--algo", "meta_a2c", "--env", NAS_BENCH_GRAPH_ENV_ID, "-n", "60", "-f", str(logs),
            "--seed", "0", "--env-kwargs", "dataset:'citeseer'"]  # fmt: skip
    assert zoo.main(argv) == 0
    assert list(logs.glob("meta_a2c/sb3_nas-NasBenchGraph-v0_1/sb3_nas-NasBenchGraph-v0.zip"))


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_flat_index_and_choices_are_inverse_and_states_complete_with_the_defaults(data):
    space = data.draw(st.sampled_from([nasbench_graph.SPACE, nasbench201.SPACE]))
    choices = tuple(data.draw(st.integers(0, count - 1)) for count in space.shape)
    assert space.choices_of(space.flat_index(choices)) == choices
    decided = data.draw(st.integers(0, space.n_decisions))
    assert space.complete(choices[:decided]) == (*choices[:decided], *space.defaults[decided:])
    rows = space.encode(choices[:decided]).reshape(space.n_decisions, space.max_choices + 1)
    assert (rows.sum(axis=1) == 1).all() and rows[decided:, 0].all()


def test_the_report_of_a_tabular_run_shows_its_benchmark_test_accuracy_and_architectures(tmp_path):
    from sb3_nas import report

    out = tmp_path / "run"
    argv = ["--envs", "nbgraph:cora", "--timesteps", "40", "--out", str(out), "--no-progress"]
    assert train.main(argv) == 0
    page = tmp_path / "report.html"
    assert report.main([str(out), "-f", str(page)]) == 0
    html = page.read_text()
    steps = pd.read_csv(out / "steps.csv")
    best = steps.loc[steps["accuracy"].idxmax()]
    assert "NAS-Bench-Graph" in html and "its test accuracy" in html and "test regret" in html
    assert json.loads(best["architecture"])["ops"][0] in html and "choice 0" in html


@pytest.mark.parametrize("algo", ["qrdqn", "trpo", "ars"])
def test_sb3_contrib_baselines_train_save_and_load_on_a_benchmark(algo, tmp_path):
    from sb3_nas.experiment import ALGOS
    from sb3_nas.experiment.runner import model_file

    out = tmp_path / algo
    argv = [
        "--algo",
        algo,
        "--envs",
        "nbgraph:cora",
        "--timesteps",
        "120",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert train.main(argv) == 0
    model = ALGOS[algo].load(out / model_file("nbgraph:cora"))
    env = TabularNasEnv("nbgraph:cora")
    observation, _ = env.reset(seed=0)
    action, _ = model.predict(observation, deterministic=True)
    assert env.action_space.contains(int(action))
