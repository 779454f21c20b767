"""Does the numeric precision change the reward? Accuracies over training seeds per precision, task and depth.

    python benchmarks/precision.py [--fidelity cpu] [--seeds 3] [--tasks digits,photos]
    python benchmarks/precision.py --fidelity paper --precisions bf16,bf16-dense --depths 1,4 \\
        --tasks digits,photos --out results/precision-paper.csv

Every chain network (benchmarks/estimation_speed.py's 1-, 4- and 9-layer chains) is trained with seeds
0..n-1 in each precision the memo names (``fp32``; ``bf16`` autocast; ``bf16-dense``, autocast with the
dense layers' weights in bf16), the other speed settings as chosen for the device. A precision's shift from
the first one listed that is smaller than the seed-to-seed spread means the reward measures the same thing.
``--out`` streams one CSV row per training, so a long run's trainings are kept if it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from estimation_speed import CHAINS  # noqa: E402

from sb3_nas.cli import split_list  # noqa: E402
from sb3_nas.data import EVAL_TASKS, TRAIN_TASKS, load_dataset  # noqa: E402
from sb3_nas.estimation import (  # noqa: E402
    SpeedSettings,
    evaluate_plan,
    get_fidelity,
    precision_of,
    prepare_data,
    resolve_device,
)
from sb3_nas.estimation.memo import PRECISIONS  # noqa: E402
from sb3_nas.space import plan_network  # noqa: E402


def settings_for(precision: str, chosen: SpeedSettings) -> SpeedSettings:
    """The device's chosen layout and optimizer, computing in ``precision`` (a memo precision name)."""
    autocast = None if precision == "fp32" else torch.bfloat16
    settings = SpeedSettings(chosen.channels_last, autocast, chosen.fused_adam, precision == "bf16-dense")
    assert precision_of(settings) == precision
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", default="cpu")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TRAIN_TASKS + EVAL_TASKS))
    parser.add_argument("--depths", default=",".join(map(str, CHAINS)), help="chains to train, e.g. 1,4")
    parser.add_argument(
        "--precisions", default=",".join(PRECISIONS), help="the first is the reference the others shift from"
    )
    parser.add_argument("--out", default=None, help="a CSV file to stream every training's accuracy into")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    fidelity = get_fidelity(args.fidelity)
    precisions = split_list(args.precisions)
    unknown = [p for p in precisions if p not in PRECISIONS]
    depths = [int(d) for d in split_list(args.depths)]
    if unknown or not set(depths) <= set(CHAINS):
        bad = f"precision {unknown[0]!r}" if unknown else f"depths {args.depths!r}"
        parser.error(
            f"unknown {bad} (precisions: {', '.join(PRECISIONS)}; depths: {', '.join(map(str, CHAINS))})"
        )
    chosen = SpeedSettings.for_device(device)
    with contextlib.ExitStack() as stack:
        writer = None
        if args.out:  # "x": never overwrite an earlier run's file
            writer = csv.writer(stack.enter_context(Path(args.out).open("x", newline="", buffering=1)))
            writer.writerow(["task", "layers", "precision", "seed", "accuracy", "seconds"])
        compare(args, fidelity, device, {p: settings_for(p, chosen) for p in precisions}, depths, writer)


def compare(args, fidelity, device, settings: dict[str, SpeedSettings], depths: list[int], writer) -> None:
    """Train, print a row per task and depth, and the mean shifts against the first precision."""
    precisions = list(settings)
    reference = precisions[0]
    print(f"{fidelity.id} on {device}, seeds 0..{args.seeds - 1}; accuracy mean (std) in points")
    header = "".join(f" {p:>15}" for p in precisions)
    print(f"{'task':<12} {'layers':>6}{header}  shift from {reference}")
    shifts: dict[str, list[float]] = {p: [] for p in precisions[1:]}
    spreads = []
    for task in split_list(args.tasks):
        data = prepare_data(load_dataset(task), fidelity, device)
        for depth in depths:
            plan = plan_network(CHAINS[depth], data.input_shape, data.n_classes)
            points = {}
            for precision in precisions:
                runs = []
                for seed in range(args.seeds):
                    result = evaluate_plan(plan, data, fidelity.replace(seed=seed), settings[precision])
                    runs.append(100 * result.accuracy)
                    if writer is not None:
                        writer.writerow([task, depth, precision, seed, result.accuracy, result.train_seconds])
                points[precision] = np.array(runs)
            spreads.append(points[reference].std())
            cells = "".join(f" {a.mean():>7.2f} ({a.std():4.2f})" for a in points.values())
            moved = ""
            for precision in precisions[1:]:
                shift = points[precision].mean() - points[reference].mean()
                shifts[precision].append(abs(shift))
                moved += f" {precision} {shift:+.2f}"
            print(f"{task:<12} {depth:>6}{cells} {moved}", flush=True)
    moved = "; ".join(f"{p} {np.mean(s):.2f}" for p, s in shifts.items())
    std = np.mean(spreads)
    print(f"mean |shift| from {reference}: {moved} points; mean {reference} seed std {std:.2f} points")


if __name__ == "__main__":
    main()
