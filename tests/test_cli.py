"""The command layer: one vocabulary of options, one error handler, the sb3-nas dispatcher, and the rule
that no library module imports a command."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sb3_nas
from sb3_nas import cli

PACKAGE = Path(sb3_nas.__file__).parent
COMMAND_MODULES = {module.rsplit(".", 1)[1] for module in cli.COMMANDS.values()} | {"cli", "__main__"}
RUN = ["--envs", "--timesteps", "--fidelity", "--memo", "--device", "--seed", "--out", "--no-progress"]
SHARED = {  # command → the shared options it takes
    "train": [*RUN, "-params", "-conf", "--overwrite", "-tb", "--resume", "--checkpoint-every"],
    "evaluate": [*RUN, "--overwrite", "-tb"],
    "retrain": ["--envs", "--fidelity", "--device", "--seed", "--out", "--no-progress"],
    "sweep": [*RUN, "-tb"],
    "report": ["--out"],
    "summary": ["--out"],
    "export": ["--envs", "--fidelity", "--device", "--seed", "--out", "--overwrite"],
    "compare": ["--envs", "--timesteps", "--fidelity", "--memo", "--device", "--out", "--no-progress", "-tb"],
}


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_each_commands_help_lists_its_shared_options_spelled_alike(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m sb3_nas.{command}")
    for option in SHARED[command]:
        assert f"{option} " in text or f"{option}," in text, option
    if "--out" in SHARED[command]:
        assert "-f FILE, --out FILE" in text or "-f DIR, --out DIR" in text or "-f KEEP_DIR" in text
    assert "SPEC" not in text  # help points at nothing a user does not have


def test_shared_options_have_one_help_text():
    from sb3_nas import evaluate, train

    def help_of(parser, dest):
        return next(action.help for action in parser._actions if action.dest == dest)

    for dest in ("memo", "device", "seed", "no_progress"):
        assert help_of(train.build_parser(), dest) == help_of(evaluate.build_parser(), dest)


def test_the_dispatcher_names_its_commands_and_refuses_others(capsys):
    assert cli.main([]) == 2
    assert cli.main(["fly"]) == 2
    assert "error: unknown command 'fly'; known: train, evaluate" in capsys.readouterr().err


def test_console_script_and_module_forms_run():
    for argv in (["-m", "sb3_nas", "report", "--help"], ["-m", "sb3_nas.report", "--help"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "--block" in done.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--fidelity"], "argument --fidelity: expected one argument"),
        (["report", str(PACKAGE / "nowhere")], "does not exist"),
        (["sweep", "--sweep", "nope"], "sweep file"),
        (["retrain", "--run", str(PACKAGE / "nowhere")], "does not exist"),
        (["summary", str(PACKAGE / "nowhere"), "--out", str(PACKAGE / "x")], "does not exist"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_hyperparameter_values_are_read_as_yaml_never_evaluated():
    assert cli.hyperparams_value("learning_rate:0.0005") == ("learning_rate", 0.0005)
    assert cli.hyperparams_value("policy_kwargs:{net_arch: [64]}") == ("policy_kwargs", {"net_arch": [64]})
    assert cli.hyperparams_value("x:__import__('os')") == ("x", "__import__('os')")  # a string, not code


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_library_module_imports_a_command():
    commands = {f"sb3_nas.{name}" for name in COMMAND_MODULES}
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE and path.stem in COMMAND_MODULES:
            continue
        assert not _imported_modules(path) & commands, path


# The library's layers, bottom up, and the layers each may import at module level (CONTRIBUTING.md); an import
# inside a function may reach further up (the algorithms' and the experiment layer's use of the study storage)
LAYERS = {
    "errors": set(),
    "space": set(),
    "data": {"errors"},
    "estimation": {"errors", "data", "space"},
    "envs": {"errors", "data", "estimation", "space"},
    "algos": {"errors"},
    "experiment": {"errors", "data", "space", "estimation", "envs", "algos"},
    "tuning": {"errors", "data", "space", "estimation", "envs", "algos", "experiment"},
    "analysis": {"errors", "data", "space", "estimation", "envs", "algos", "experiment"},
}


def _module_level_imports(path: Path) -> set[str]:
    """The ``sb3_nas`` modules ``path`` imports at module level (also under a top-level ``if`` or ``try``)."""
    names = set()
    for statement in ast.parse(path.read_text()).body:
        nodes = ast.walk(statement) if isinstance(statement, ast.If | ast.Try) else [statement]
        for node in nodes:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return {name for name in names if name.startswith("sb3_nas.")}


def test_each_layer_imports_only_the_layers_below_it_at_module_level():
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        layer = parts[0] if len(parts) > 1 else path.stem
        if layer not in LAYERS:
            continue  # the package's __init__ and the commands may import any layer
        reached = {name.split(".")[1] for name in _module_level_imports(path)} - {layer}
        assert reached <= LAYERS[layer], f"{path} imports {sorted(reached - LAYERS[layer])} at module level"
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS) - {"errors"}  # every sub-package has its layer
