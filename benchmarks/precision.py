"""Does bf16 autocast change the reward? fp32 against bf16 accuracies over training seeds, per task and depth.

    python benchmarks/precision.py [--fidelity cpu] [--seeds 3] [--tasks digits,photos]

Every network is trained with seeds 0..n-1 in fp32 and in bf16 (the other speed settings as chosen for the
device). A bf16 shift smaller than the seed-to-seed spread of fp32 means the reward measures the same thing.
"""

from __future__ import annotations

import argparse
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
    prepare_data,
    resolve_device,
)
from sb3_nas.space import plan_network  # noqa: E402


def accuracies(plan, data, fidelity, settings, seeds: int) -> np.ndarray:
    seeded = (fidelity.replace(seed=seed) for seed in range(seeds))
    return np.array([evaluate_plan(plan, data, f, settings).accuracy for f in seeded])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", default="cpu")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TRAIN_TASKS + EVAL_TASKS))
    args = parser.parse_args()
    device = resolve_device(args.device)
    fidelity = get_fidelity(args.fidelity)
    chosen = SpeedSettings.for_device(device)
    fp32 = SpeedSettings(chosen.channels_last, None, chosen.fused_adam)
    bf16 = SpeedSettings(chosen.channels_last, torch.bfloat16, chosen.fused_adam)
    print(f"{fidelity.id} on {device}, seeds 0..{args.seeds - 1}; accuracy mean (std) in points")
    print(f"{'task':<12} {'layers':>6} {'fp32':>13} {'bf16':>13} {'shift':>6}")
    shifts, spreads = [], []
    for task in split_list(args.tasks):
        data = prepare_data(load_dataset(task), fidelity, device)
        for depth, nsc in CHAINS.items():
            plan = plan_network(nsc, data.input_shape, data.n_classes)
            a, b = (100 * accuracies(plan, data, fidelity, s, args.seeds) for s in (fp32, bf16))
            shifts.append(abs(b.mean() - a.mean()))
            spreads.append(a.std())
            print(
                f"{task:<12} {depth:>6} {a.mean():>6.2f} ({a.std():4.2f}) {b.mean():>6.2f} ({b.std():4.2f}) "
                f"{b.mean() - a.mean():>+6.2f}"
            )
    print(f"mean |shift| {np.mean(shifts):.2f} points; mean fp32 seed std {np.mean(spreads):.2f} points")


if __name__ == "__main__":
    main()
