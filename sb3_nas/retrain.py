"""``python -m sb3_nas.retrain``: Experiment 2's intensive retraining of the best networks (§6.1, Table 6).

The best networks of each environment (by reward) get 2^(4+i) filters in their i-th convolution and a
4096-unit dense layer, and are trained with an exponentially decaying learning rate next to VGG-19 cut to two
blocks, on the same data and split, several times with seeds --seed, --seed+1, …. Writes runs.csv (one row
per training), table6.csv and table6.md (mean ± 2 std in %) into --out (default RUN/retrain). With --save DIR,
each designed network's first training is kept as an export folder DIR/<env>/<rank>/ (network.py, nsc.json,
weights.safetensors, network.onnx, a model card: see sb3_nas.export).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from sb3_nas.analysis import load_run
from sb3_nas.analysis.export import retrained_saver
from sb3_nas.analysis.retraining import (
    RETRAIN_DIR,
    RETRAIN_EPOCHS,
    RETRAIN_RUNS,
    RETRAIN_TOP,
    candidates,
    markdown_table,
    retrain,
    summarize,
)
from sb3_nas.cli import ArgumentParser, add_shared, positive_int, run_command
from sb3_nas.estimation import get_fidelity
from sb3_nas.experiment import RunFolderError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m sb3_nas.retrain", description=__doc__)
    parser.add_argument(
        "--run", required=True, help="a run folder written by sb3_nas.train or sb3_nas.evaluate"
    )
    parser.add_argument(
        "--top", type=positive_int, default=RETRAIN_TOP, help="networks per environment (default 2)"
    )
    parser.add_argument(
        "--runs", type=positive_int, default=RETRAIN_RUNS, help="trainings per network (default 5)"
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=RETRAIN_EPOCHS, help="epochs per training (default 100)"
    )
    parser.add_argument(
        "--save", metavar="DIR", default=None,
        help="write each retrained network (its first training) as an export folder under DIR",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace exports already in --save")
    add_shared(parser, "envs", "fidelity", "device", "seed", "out", "no_progress",
               envs={"help": "only these of the run's environments, comma-separated (default: all)"},
               fidelity={"default": None, "help": "image size, split and optimiser (default: the run's)"},
               seed={"help": "seed of the first training; training k uses seed+k-1 (default 0)"},
               out={"help": f"output folder (default RUN/{RETRAIN_DIR})"})  # fmt: skip
    return parser


def execute(args: argparse.Namespace) -> int:
    run = load_run(args.run)
    fidelity_name = args.fidelity or run.fidelity
    if fidelity_name is None:
        raise RunFolderError(f"run folder {run.path}: config.yml names no fidelity; pass --fidelity")
    fidelity = get_fidelity(fidelity_name)
    envs = run.chosen_envs(args.envs)
    save = (
        retrained_saver(run, args.save, fidelity, args.epochs, args.top, envs, args.overwrite)
        if args.save
        else None
    )
    total = len(candidates(run, args.top, envs)) * args.runs
    with tqdm(total=total, desc="retrain", unit="training", disable=args.no_progress) as bar:
        results = retrain(
            run, fidelity, args.top, args.runs, args.epochs, args.seed, envs,
            on_result=lambda row: bar.update(1), device=args.device, on_network=save,
        )  # fmt: skip
    out = Path(args.out) if args.out else run.path / RETRAIN_DIR
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    table = markdown_table(summary)
    results.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "table6.csv", index=False)
    (out / "table6.md").write_text(table)
    print(f"{run.label}, {args.runs} × {args.epochs} epochs at the {fidelity.name} fidelity:")
    print(table)
    print(f"results: {out.resolve()}")
    if args.save:
        print(f"networks: {Path(args.save).resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


if __name__ == "__main__":
    sys.exit(main())
