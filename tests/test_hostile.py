"""Hostile input: random action sequences, random NSC lists and random fidelity overrides
let nothing escape but the errors they are documented to raise, and bad files and settings given to a command
end in one ``error:`` line."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sb3_nas import cli
from sb3_nas.data import ImageDataset, load_dataset
from sb3_nas.envs import NasEnv
from sb3_nas.errors import InputError
from sb3_nas.estimation import Fidelity, PerformanceEstimator, RewardMemo, get_fidelity
from sb3_nas.experiment import ALGOS
from sb3_nas.experiment.hyperparams import ConfigError, check_keys, load_hyperparams
from sb3_nas.space import InvalidArchitecture, LayerType, build_network

ENV_EXAMPLES, NSC_EXAMPLES, OVERRIDE_EXAMPLES = 60, 150, 150


def hostile(max_examples: int) -> settings:
    """Reproducible examples, no example database written into the source tree, no per-example time limit."""
    return settings(
        max_examples=max_examples,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@pytest.fixture(scope="module")
def cheap_estimator(tmp_path_factory):
    """60 digits at their native 8×8, one batch of 40 per training; networks above 2.5 million parameters
    (the widest concatenations) are refused untrained, so one example costs well under a second."""
    digits = load_dataset("digits")
    keep = np.concatenate([np.flatnonzero(digits.labels == k)[:6] for k in range(10)])
    dataset = ImageDataset.from_arrays("digits60", digits.images[keep], digits.labels[keep])
    fidelity = get_fidelity("tiny").replace(name="hostile", image_size=8, max_params=2_500_000)
    memo = RewardMemo(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'memo.sqlite'}")
    yield PerformanceEstimator(dataset, fidelity, memo, "cpu")
    memo.close()


def check_step(env, result):
    observation, reward, terminated, truncated, info = result
    assert env.observation_space.contains(observation)
    assert isinstance(reward, float) and math.isfinite(reward) and 0.0 <= reward <= 1.0
    assert isinstance(terminated, bool) and isinstance(truncated, bool) and not (terminated and truncated)
    assert bool(info["ended_by"]) == (terminated or truncated)
    assert info["valid"] or (reward == 0.0 and info["reason"])
    if not info["valid"]:
        kinds = ("too many parameters", "training failed")
        event(f"scored 0: {next((k for k in kinds if info['reason'].startswith(k)), 'unbuildable')}")


@pytest.mark.parametrize("multi_branch", [False, True])
@hostile(ENV_EXAMPLES)
@given(data=st.data())
def test_random_action_sequences_keep_to_the_api(cheap_estimator, multi_branch, data):
    max_depth, max_steps = data.draw(st.integers(1, 10), "d"), data.draw(st.integers(1, 20), "τ")
    env = NasEnv(
        estimator=cheap_estimator,
        multi_branch=multi_branch,
        sigma=0.5,
        max_depth=max_depth,
        max_steps=max_steps,
    )
    env.reset(seed=data.draw(st.integers(0, 2**31 - 1), label="seed"))
    # half the actions a 1×1 convolution, which keeps the image size: episodes long enough for every rule
    action = st.one_of(st.just(0), st.integers(0, env.action_space.n - 1))
    actions = data.draw(st.lists(action, min_size=1, max_size=40), "actions")
    for action in actions:
        result = env.step(action)
        check_step(env, result)
        if result[2] or result[3]:
            event(f"an episode ended by {result[4]['ended_by']}")
            env.reset()


@pytest.mark.parametrize("multi_branch", [False, True])
@hostile(ENV_EXAMPLES)
@given(actions=st.lists(st.integers(0, 13), min_size=1, max_size=25))
def test_stepping_past_the_end_of_an_episode_raises_invalid_architecture_or_nothing(
    cheap_estimator, multi_branch, actions
):
    # Gymnasium leaves a step after the end undefined: here a state that has become unbuildable (a layer
    # after the terminal, a pointer past the input) is an InvalidArchitecture, and nothing else escapes
    env = NasEnv(estimator=cheap_estimator, multi_branch=multi_branch)
    env.reset(seed=0)
    for action in (a % env.action_space.n for a in actions):
        try:
            _, reward, *_ = env.step(action)
        except InvalidArchitecture as error:
            assert error.reason and "\n" not in error.reason
            event("InvalidArchitecture raised")
            return
        assert math.isfinite(reward) and 0.0 <= reward <= 1.0


LEGAL_TYPES = [int(t) for t in LayerType if t != LayerType.EMPTY]


@st.composite
def nsc_lists(draw):
    """NSC lists from plausible (every row legal on its own) to garbage (any integer, floats, text, None)."""
    rows = []
    for index in range(1, draw(st.integers(0, 7)) + 1):
        plausible = st.tuples(
            st.just(index),
            st.sampled_from(LEGAL_TYPES),
            st.sampled_from([0, 1, 2, 3, 5]),
            st.integers(0, index - 1),
            st.integers(0, index - 1),
        )
        junk = st.one_of(st.integers(-3, 12), st.sampled_from([1.0, 2.5, float("nan"), None, "1", True]))
        hostile = st.lists(junk, min_size=4, max_size=6).map(tuple)
        rows.append(draw(st.one_of(plausible, plausible, plausible, hostile)))
    return rows


@hostile(NSC_EXAMPLES)
@given(
    nsc=nsc_lists(),
    channels=st.sampled_from([1, 3]),
    height=st.integers(1, 10),
    width=st.integers(1, 10),
    n_classes=st.integers(1, 5),
    filters=st.integers(1, 6),
    dense_units=st.integers(1, 16),
)
def test_build_network_builds_or_raises_invalid_architecture(
    nsc, channels, height, width, n_classes, filters, dense_units
):
    try:
        net = build_network(nsc, (channels, height, width), n_classes, filters, dense_units)
    except InvalidArchitecture as error:
        assert error.reason and "\n" not in error.reason
        return
    assert net.plan.n_params == sum(p.numel() for p in net.parameters())  # what max_params is checked on
    with torch.no_grad():
        logits = net.eval()(torch.rand(2, channels, height, width))
    assert logits.shape == (2, n_classes) and torch.isfinite(logits).all()


SETTINGS = [
    field for field in Fidelity.__dataclass_fields__ if field not in ("name", "version", "description")
]
VALUE_TEXTS = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["none", "None", "true", "False", "", "1e400", "-0", "0x10", "nan", "3.5", "é"]),
    st.text(max_size=6),
)


@hostile(OVERRIDE_EXAMPLES)
@given(
    base=st.sampled_from(["tiny", "cpu", "paper"]),
    overrides=st.lists(
        st.tuples(st.one_of(st.sampled_from(SETTINGS), st.text(max_size=5)), VALUE_TEXTS), max_size=3
    ),
)
def test_fidelity_overrides_give_a_fidelity_or_a_one_line_input_error(base, overrides):
    text = ",".join([base, *(f"{key}={value}" for key, value in overrides)])
    try:
        fidelity = get_fidelity(text)
    except InputError as error:
        assert "\n" not in str(error)
        return
    assert fidelity.batch_size >= 1 and fidelity.epochs >= 1 and fidelity.image_size >= 1
    assert math.isfinite(fidelity.learning_rate) and fidelity.learning_rate > 0
    assert len(fidelity.digest) == 16


# --- bad files and settings given to a command: one ``error:`` line, exit status 2 ----------------------


def conf_file(tmp_path, entry: str, name: str = "hostile"):
    path = tmp_path / f"{name}.yml"
    path.write_text(f"sb3_nas/NasChain-v0:\n{entry}")
    return path


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("  n_steps: 5\n", "no policy given (known for meta_a2c: MlpLstmPolicy, CnnLstmPolicy"),
        ("  policy: MlpPolicy\n", "unknown policy 'MlpPolicy' for meta_a2c (known: MlpLstmPolicy"),
        ("  policy: MlpLstmPolicy\n  n_steps: five\n", "n_steps: 'five' is not an int"),
        ("  policy: MlpLstmPolicy\n  gamma: [0.9]\n", "gamma: [0.9] is not a float"),
        ("  policy: MlpLstmPolicy\n  learning_rate: 1e-3\n", "(YAML reads 1e-3 as text: write 0.001)"),
        ("  policy: MlpLstmPolicy\n  policy_kwargs: big\n", "policy_kwargs: 'big' is not a mapping or None"),
    ],
)
def test_a_bad_hyper_parameter_file_is_a_config_error_naming_it(tmp_path, entry, problem):
    path = conf_file(tmp_path, entry)
    with pytest.raises(ConfigError) as error:
        load_hyperparams("meta_a2c", "sb3_nas/NasChain-v0", ALGOS["meta_a2c"], path)
    assert str(error.value).startswith(f"config file {path} on sb3_nas/NasChain-v0: ")
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_hyper_parameter_types_follow_each_algorithms_constructor():
    for algo in ALGOS:  # the shipped files pass
        for env_id in ("sb3_nas/NasChain-v0", "sb3_nas/NasMultiBranch-v0"):
            load_hyperparams(algo, env_id, ALGOS[algo])
    check_keys({"buffer_size_fraction": 0.5, "train_freq": 4, "seed": None}, "dqn", ALGOS["dqn"], "here")
    with pytest.raises(ConfigError, match="here: buffer_size: '1e6' is not an int .*write 1000000\\)"):
        check_keys({"buffer_size": "1e6"}, "dqn", ALGOS["dqn"], "here")
    with pytest.raises(ConfigError, match="here: buffer_size_fraction: 'half' is not a float"):
        check_keys({"buffer_size_fraction": "half"}, "dqn", ALGOS["dqn"], "here")
    with pytest.raises(ConfigError, match="normalize_advantage: 1 is not true or false"):
        check_keys({"normalize_advantage": 1}, "ppo", ALGOS["ppo"], "here")
    with pytest.raises(ConfigError, match="hyper-parameter override: unknown policy 'Mlp' for a2c"):
        check_keys({"policy": "Mlp"}, "a2c", ALGOS["a2c"], "hyper-parameter override")


@pytest.fixture
def command(tmp_path, monkeypatch, capsys):
    """Runs ``sb3-nas train`` with a memo and output in ``tmp_path``; returns its status and stderr lines."""
    monkeypatch.chdir(tmp_path)

    def train(*options):
        status = cli.main(["train", "--memo", str(tmp_path / "memo.sqlite"), "-f", "out", "--no-progress",
                           "--timesteps", "5", *options])  # fmt: skip
        return status, capsys.readouterr().err.strip().splitlines()

    return train


def test_bad_configurations_end_in_one_error_line(command, tmp_path):
    nan_labels = tmp_path / "nan_labels.npz"
    labels = np.where(np.arange(30) == 7, np.nan, np.arange(30) % 3)
    np.savez(nan_labels, images=np.zeros((30, 8, 8), np.uint8), labels=labels)
    cases = [
        (["-conf", str(conf_file(tmp_path, "  n_steps: 5\n", "a"))], "no policy given"),
        (["-conf", str(conf_file(tmp_path, "  policy: Lstm\n", "b"))], "unknown policy 'Lstm'"),
        (["-conf", str(conf_file(tmp_path, "  policy: MlpLstmPolicy\n  n_steps: five\n", "c"))], "'five'"),
        (["-params", "n_steps:five"], "hyper-parameter override: n_steps: 'five' is not an int"),
        (["--fidelity", "tiny,batch_size=0"], "batch_size must be at least 1, got 0"),
        (["--fidelity", "tiny,image_size=0"], "image_size must be at least 1, got 0"),
        (["--fidelity", "tiny,epochs=0"], "epochs must be at least 1, got 0"),
        (["--fidelity", "tiny,learning_rate=nan"], "learning_rate must be a finite number, got nan"),
        (["--envs", str(nan_labels)], f"dataset file {nan_labels}: labels contain NaN"),
    ]
    for options, problem in cases:
        status, lines = command(*options)
        assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), (options, lines)
        assert problem in lines[0], (options, lines)
        if "-conf" in options:
            assert options[1] in lines[0]
    assert not (tmp_path / "out").exists()
