"""``python -m sb3_nas.export RUN``: the networks a run found, as files a user can take away.

For each environment of the run, its best --top networks by reward (the choice ``retrain`` makes) go to
DIR/<env>/<rank>/: network.py (a standalone PyTorch module, no sb3_nas needed), nsc.json (the NSC rows and
every build setting), architecture.svg and README.md (a model card). With --train, each network is trained
(at the run's fidelity or --fidelity, for --epochs, seeded by --seed) and its weights.safetensors and
network.onnx (checked against PyTorch under onnxruntime) are written too; that needs the export extra
(pip install 'sb3_nas[export]'). A tabular benchmark's architectures are written as architecture.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sb3_nas.analysis import load_run
from sb3_nas.analysis.export import EXPORT_TOP, export_run
from sb3_nas.cli import ArgumentParser, add_shared, positive_int, run_command
from sb3_nas.estimation import get_fidelity, is_table_spec
from sb3_nas.experiment import RunFolderError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.export", description=__doc__)
    parser.add_argument("run", help="a run folder written by sb3_nas.train, sb3_nas.evaluate or compare")
    parser.add_argument(
        "--top", type=positive_int, default=EXPORT_TOP, help=f"networks per environment ({EXPORT_TOP})"
    )
    parser.add_argument("--train", action="store_true", help="train each network: weights and ONNX file")
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs of --train (default: the fidelity's)"
    )
    add_shared(parser, "envs", "fidelity", "device", "seed", "out", "overwrite",
               envs={"help": "only these of the run's environments, comma-separated (default: all)"},
               fidelity={"default": None, "help": "the networks' input size and --train's settings "
                                                  "(default: the run's)"},
               seed={"help": "seed of --train's weights and batch order (default 0)"},
               out={"required": True, "help": "output folder"},
               overwrite={"help": "replace exports already in --out"})  # fmt: skip
    return parser


def execute(args: argparse.Namespace) -> int:
    run = load_run(args.run)
    envs = run.chosen_envs(args.envs)
    fidelity_name = args.fidelity or run.fidelity
    if fidelity_name is None and not all(is_table_spec(env) for env in envs):
        raise RunFolderError(f"run folder {run.path}: config.yml names no fidelity; pass --fidelity")
    fidelity = get_fidelity(fidelity_name) if fidelity_name else None
    out = Path(args.out)
    print(f"exporting {run.label} into {out}")
    export_run(
        run, out, envs, args.top, args.train, fidelity, args.epochs, args.device, args.seed, args.overwrite,
        on_export=lambda item: print(f"  {item.summary}", flush=True),
    )  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
