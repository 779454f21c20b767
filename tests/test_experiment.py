"""The experiment layer's run configuration: checked once, one format on disk, read back by every command."""

from pathlib import Path

import pytest
import yaml

from sb3_nas.errors import InputError
from sb3_nas.estimation import KNOWN_PRECISIONS, Fidelity
from sb3_nas.experiment import RunConfig, RunFolderError, read_run_config

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


def test_a_config_holds_resolved_objects_and_round_trips_through_its_file(tmp_path):
    config = RunConfig.create("dqn", envs=["digits", "photos"], timesteps=[40, 20], fidelity="tiny,epochs=2",
                              memo=f"sqlite:///{tmp_path / 'memo.sqlite'}", seed=3, sigma=0.2)  # fmt: skip
    assert isinstance(config.fidelity, Fidelity) and config.fidelity.epochs == 2
    assert (
        config.hyperparams["digits"]["buffer_size"] == 20
        and config.hyperparams["photos"]["buffer_size"] == 10
    )
    config.write(tmp_path)
    assert read_run_config(tmp_path) == config


def test_accepted_precisions_are_checked_spelled_out_and_round_trip(tmp_path):
    create = RunConfig.create
    config = create("random", envs=["digits"], timesteps=5, memo="sqlite://", accept_precision=["bf16"])
    assert config.accept_precision == ("bf16",)
    config.write(tmp_path)
    assert read_run_config(tmp_path).accept_precision == ("bf16",)
    anything = create("random", envs=["digits"], timesteps=5, memo="sqlite://", accept_precision="any")
    assert anything.accept_precision == KNOWN_PRECISIONS  # written out, so the file says what answered
    assert create("random", envs=["digits"], timesteps=5, memo="sqlite://").accept_precision == ()
    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        create("random", envs=["digits"], timesteps=5, memo="sqlite://", accept_precision=["bf16", "fp16"])
    assert read_run_config(FIXTURES / "meta_a2c_multi_branch").accept_precision == ()  # before the setting


def test_a_database_password_is_never_written(tmp_path):
    config = RunConfig.create("random", envs=["digits"], timesteps=5, memo="sqlite://", check_data=False)
    secret = config.replace(memo="postgresql://sb3:s3cret@db.example:5432/memo")
    text = secret.write(tmp_path).read_text()
    assert "s3cret" not in text and "postgresql://sb3:***@db.example:5432/memo" in text
    assert (
        read_run_config(tmp_path, memo="sqlite://").memo == "sqlite://"
    )  # the URL comes from the user again


def test_run_folders_of_the_earlier_format_still_read():
    config = read_run_config(FIXTURES / "meta_a2c_multi_branch")
    assert config.algo == "meta_a2c" and config.multi_branch and config.sigma == 0.1
    assert config.envs == ("digits", "photos") and config.timesteps == (100, 60)
    assert config.fidelity.name == "tiny" and not config.frozen


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"algo": "random", "timesteps": [5], "fidelity": "tiny"}, "names no envs"),
        ({"algo": "random", "envs": ["digits"], "timesteps": ["x"], "fidelity": "tiny"}, "malformed value"),
        (
            {"algo": "random", "envs": ["digits"], "timesteps": [5], "fidelity": "huge"},
            "unknown fidelity 'huge'",
        ),
    ],
)
def test_a_broken_config_file_is_one_line_naming_the_folder(tmp_path, table, message):
    (tmp_path / "config.yml").write_text(yaml.safe_dump(table))
    with pytest.raises(RunFolderError, match=message) as error:
        read_run_config(tmp_path)
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"envs": []}, "--envs names no environment"),
        ({"envs": ["digits", "photos", "digits"]}, "--envs names digits more than once"),
        ({"envs": ["digits"], "timesteps": [1, 2]}, "one positive count per environment"),
        ({"envs": ["nope"]}, "unknown dataset 'nope'"),
        ({"envs": ["digits"], "hyperparams": {"n_step": 3}}, "unknown key(s) for meta_a2c: n_step"),
        ({"envs": ["digits"], "n_envs": 2}, "one-worker algorithm"),
        ({"envs": ["digits"], "memo": "nodriver://x"}, "reward memo"),
    ],
)
def test_create_checks_every_setting_before_any_work(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.create("meta_a2c", **{"timesteps": 5, "fidelity": "tiny", "memo": "sqlite://", **kwargs})
