"""A database password reaches no file the project writes and none of its output: run configs, run records,
Optuna's attributes, reports, summaries, logs. Run against the PostgreSQL server that .ci/run starts."""

import contextlib
import io

import optuna
import pytest
import sqlalchemy as sa

from sb3_nas import report, summary, sweep, train

POSTGRES_ENV = "SB3_NAS_TEST_POSTGRES_URL"


@pytest.fixture
def server_url(postgres_database):
    """A fresh database on the test server, and the password of its URL (one found nowhere else)."""
    password = sa.engine.make_url(postgres_database).password or ""
    if len(password) < 8 or password in "sb3_nas/NasChain-v0 postgresql":
        pytest.skip("the test server's password must be one found nowhere else (.ci/run sets one)")
    return postgres_database, password


def run_quietly(main, argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


def test_a_password_reaches_no_file_and_no_output(server_url, tmp_path):
    url, password = server_url
    tiny = ["--fidelity", "tiny", "--timesteps", "6", "--no-progress"]
    outputs = []
    code, text = run_quietly(train.main, ["--algo", "meta_a2c", "--envs", "digits", "--memo", url,
                                          "-f", str(tmp_path / "runs" / "exp1-meta_a2c"), *tiny])  # fmt: skip
    assert code == 0, text
    outputs.append(text)
    sweep_argv = ["--storage", url, "--study-name", "secrets", "--n-trials", "1", "--envs", "digits"]
    code, text = run_quietly(sweep.main, [*sweep_argv, "-f", str(tmp_path / "sweeps"), *tiny])
    assert code == 0, text
    outputs.append(text)
    code, text = run_quietly(train.main, ["--algo", "random", "--envs", "digits", "--memo", url.replace(
        password, "wrong-password"), "-f", str(tmp_path / "refused"), *tiny])  # fmt: skip
    assert code == 2 and "***" in text  # an error naming the URL masks it too
    outputs.append(text)
    for args in (
        [str(tmp_path / "runs" / "exp1-meta_a2c")],
        [str(tmp_path / "runs"), "-f", str(tmp_path / "keep")],
    ):
        main = report.main if len(args) == 1 else summary.main
        code, text = run_quietly(main, args)
        assert code == 0, text
        outputs.append(text)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "config.yml" for path in written) and any(
        path.suffix == ".html" for path in written
    )
    for path in written:
        assert password.encode() not in path.read_bytes(), path
    assert all(password not in text for text in outputs)
    study = optuna.load_study(study_name="secrets", storage=url)
    attributes = [study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
    attributes += [a for trial in study.trials for a in (trial.user_attrs, trial.system_attrs, trial.params)]
    assert password not in repr(attributes)
    assert "***" in (tmp_path / "runs" / "exp1-meta_a2c" / "config.yml").read_text()  # recorded, masked
