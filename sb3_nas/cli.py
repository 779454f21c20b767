"""What the commands share: one spelling of each option, one error handler, and the ``sb3-nas`` dispatcher.

Every command takes the options it needs from :data:`SHARED_OPTIONS`, so ``--envs``, ``--timesteps``,
``--fidelity``, ``--memo``, ``--device``, ``--seed``, ``--out`` (``-f``) and ``--no-progress`` mean the same
everywhere; hyper-parameters are overridden as rl-baselines3-zoo users type them (``-params n_steps:10``). Bad
input of any kind ends in one ``error: …`` line and exit status 2. Only commands import this module.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from sb3_nas.errors import InputError, UsageError
from sb3_nas.estimation import ANY_PRECISION, AUTO, DEFAULT_FIDELITY, FIDELITIES, KNOWN_PRECISIONS
from sb3_nas.estimation.retry import DEFAULT_RETRY_S, MEMO_RETRY_ENV
from sb3_nas.experiment import PAPER, best_per_env
from sb3_nas.experiment.ray_executor import Placement

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
EXECUTORS = ("local", "ray")
RUNS_DIR = Path("results") / "runs"
COMMANDS = {  # sb3-nas COMMAND → the module whose main() runs it (also python -m sb3_nas.COMMAND)
    "train": "sb3_nas.train",
    "evaluate": "sb3_nas.evaluate",
    "retrain": "sb3_nas.retrain",
    "report": "sb3_nas.report",
    "summary": "sb3_nas.summary",
    "sweep": "sb3_nas.sweep",
    "compare": "sb3_nas.compare",
    "export": "sb3_nas.export",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are a :class:`UsageError`, reported in one line like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``: the comma-separated lists of every command."""
    return [part.strip() for part in text.split(",") if part.strip()]


def int_list(text: str, alternative: str = "") -> list[int]:
    """An argparse type: comma-separated integers (``0,1,2``); ``alternative`` names another value taken."""
    try:
        return [int(part) for part in split_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers{alternative}, got {text!r}"
        ) from None


def timesteps_value(text: str) -> str | list[int]:
    """An argparse type: ``paper``, one count for every environment, or comma-separated counts."""
    return PAPER if text.strip() == PAPER else int_list(text, alternative=f" or {PAPER!r}")


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number of at least 0 (a fraction of a GPU, say)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def hyperparams_value(text: str) -> tuple[str, Any]:
    """An argparse type: ``key:value``, the value read as YAML (``learning_rate:0.0005``, ``gamma:0.9``)."""
    key, sep, raw = text.partition(":")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key:value, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"value of {key.strip()} is not readable: {raw!r}") from None


# name → (flags, argparse keywords); a command picks the ones it takes and may change the default and help
SHARED_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "envs": (("--envs",), {"type": split_list, "metavar": "DATASETS",
                           "help": "datasets in order, comma-separated: built-in task names or specs "
                                   "(folder:PATH, npz:PATH, tfrecords:PATH, torchvision:NAME[:ROOT]), or "
                                   "tabular benchmarks (nbgraph:DATASET, nb201:cifar10[/METRIC])"}),
    "timesteps": (("--timesteps", "-n"), {"type": timesteps_value, "metavar": "T",
                                          "help": "t_max per environment: one count for all, one per "
                                                  "environment (comma-separated), or 'paper'"}),
    "fidelity": (("--fidelity",), {"default": None, "metavar": "NAME[,setting=value...]",
                                   "help": f"how networks are trained and scored: {', '.join(FIDELITIES)} "
                                           f"(default {DEFAULT_FIDELITY}), with optional overrides such as "
                                           "cpu,batch_size=64; not for tabular benchmarks"}),
    "memo": (("--memo",), {"metavar": "URL", "help": "reward memo: a SQLAlchemy URL or a file path "
                                                    "(default $SB3_NAS_MEMO, else results/memo.sqlite)"}),
    "device": (("--device",), {"default": AUTO, "help": "where networks train: auto (a GPU when there is "
                                                        "one), cpu or cuda:N"}),
    "accept_precision": (("--accept-precision",), {"type": split_list, "default": [], "metavar": "PRECISIONS",
                                                   "help": "memo entries trained in these other numeric "
                                                           "precisions answer too, after the device's own: "
                                                           f"{', '.join(KNOWN_PRECISIONS)}, or "
                                                           f"{ANY_PRECISION}"}),
    "seed": (("--seed",), {"type": int, "default": 0, "help": "random seed (default 0)"}),
    "out": (("-f", "--out"), {"metavar": "DIR", "help": "output folder"}),
    "no_progress": (("--no-progress",), {"action": "store_true", "help": "no progress bar"}),
    "hyperparams": (("-params", "--hyperparams"), {"type": hyperparams_value, "nargs": "+", "default": [],
                                                    "metavar": "KEY:VALUE",
                                                    "help": "hyper-parameters replacing the config file's, "
                                                            "e.g. -params learning_rate:0.0005 n_steps:10"}),
    "conf_file": (("-conf", "--conf-file"), {"metavar": "FILE", "help": "a hyper-parameter file in "
                                                                        "rl-baselines3-zoo's format "
                                                                        "(default zoo_configs/<algo>.yml)"}),
    "overwrite": (("--overwrite",), {"action": "store_true", "help": "replace a run already in --out"}),
    "tensorboard_log": (("-tb", "--tensorboard-log"), {"metavar": "DIR", "help": "log to TensorBoard too, in "
                                                       "DIR/<run folder name> (the tensorboard extra)"}),
    "executor": (("--executor",), {"choices": EXECUTORS, "default": "local",
                                   "help": "local: on this machine (default); ray: as tasks on a Ray cluster "
                                           "(the ray extra)"}),
    "ray_address": (("--ray-address",), {"metavar": "ADDR",
                                         "help": "--executor ray: the cluster's head, HOST:PORT (default: "
                                                 "Ray's own rule: $RAY_ADDRESS, else a cluster started on "
                                                 "this machine, else a new local instance)"}),
    "cpus_per_run": (("--cpus-per-run",), {"type": positive_int, "metavar": "C",
                                           "help": "--executor ray: CPUs each task reserves, its torch "
                                                   "threads (default 1)"}),
    "gpus_per_run": (("--gpus-per-run",), {"type": non_negative_float, "metavar": "G",
                                           "help": "--executor ray: GPUs each task reserves, a fraction to "
                                                   "share one (default 0); --device auto is then the task's "
                                                   "GPU"}),
}  # fmt: skip
RAY_OPTIONS = ("ray_address", "cpus_per_run", "gpus_per_run")  # what only --executor ray takes


class MemoRetry(argparse.Action):
    """``--memo-retry SECONDS``: how long the reward memo retries a database outage, set as
    :data:`~sb3_nas.estimation.retry.MEMO_RETRY_ENV` so that this process's workers follow it too."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        try:
            seconds = float(values)
        except ValueError:
            seconds = float("nan")
        if not seconds >= 0:
            parser.error(f"argument --memo-retry: expected 0 or more seconds, got {values!r}")
        os.environ[MEMO_RETRY_ENV] = repr(seconds)
        setattr(namespace, self.dest, seconds)


MEMO_RETRY_OPTION = (
    ("--memo-retry",),
    {"action": MemoRetry, "metavar": "SECONDS", "default": None,
     "help": "retry a memo database outage (a lost connection, a server restarting, a lock) for up to "
             f"SECONDS before failing (default {DEFAULT_RETRY_S:.0f})"},
)  # fmt: skip


def add_shared(parser: argparse.ArgumentParser, *names: str, **changes: dict[str, Any]) -> None:
    """Add the shared options ``names`` to ``parser``; ``changes[name]`` updates that option's keywords.
    ``memo`` brings ``--memo-retry`` with it."""
    for name in names:
        flags, keywords = SHARED_OPTIONS[name]
        parser.add_argument(*flags, dest=name, **{**keywords, **changes.get(name, {})})
        if name == "memo":
            parser.add_argument(*MEMO_RETRY_OPTION[0], dest="memo_retry", **MEMO_RETRY_OPTION[1])


def ray_placement(args: argparse.Namespace) -> Placement | None:
    """What each Ray task reserves under ``--executor ray``; ``None`` for the local executor, which refuses
    the Ray executor's options in one line."""
    if args.executor == "local":
        given = [f"--{name.replace('_', '-')}" for name in RAY_OPTIONS if getattr(args, name) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --executor ray")
        return None
    return Placement(cpus=args.cpus_per_run or 1, gpus=args.gpus_per_run or 0.0)


def default_out(name: str) -> Path:
    """``results/runs/<name>-<time>``: a new run folder per run."""
    return RUNS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def print_results(title: str, out: Path) -> None:
    """The closing lines of a run: the best accuracy per environment and where the results are."""
    print(title)
    print(best_per_env(out))
    print(f"results: {out.resolve()}")


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def run_command(
    parser: argparse.ArgumentParser, execute: Callable[[argparse.Namespace], int], argv: Sequence[str] | None
) -> int:
    """Parse ``argv`` and run ``execute``: bad input → one ``error:`` line and 2; Ctrl-C or SIGTERM → 130,
    after the run has written what it recorded (SIGTERM is handled as Ctrl-C)."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        return execute(parser.parse_args(argv))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``sb3-nas COMMAND [options]``: the commands of ``python -m sb3_nas.COMMAND`` under one name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = f"usage: sb3-nas {{{','.join(COMMANDS)}}} [options]   (sb3-nas COMMAND --help for its options)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else EXIT_USAGE
    command, *rest = argv
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[command])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
