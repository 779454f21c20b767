"""Median seconds per network evaluation for 1-, 4- and 9-layer chain networks on every built-in task.

    python benchmarks/estimation_speed.py [--fidelity cpu] [--repeats 3] [--tasks digits,mnist]

Each evaluation trains from scratch (no memo). The first call per task, which prepares the data, is
not timed. Prints one table row per task and network depth.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sb3_nas.cli import split_list
from sb3_nas.data import EVAL_TASKS, TRAIN_TASKS, load_dataset
from sb3_nas.estimation import evaluate_nsc, get_fidelity, prepare_data

# Chain networks of the stated depth, mixing the layer kinds a policy meets early on.
CHAINS = {
    1: [(1, 1, 3, 0, 0)],
    4: [(1, 1, 3, 0, 0), (2, 1, 3, 1, 0), (3, 2, 2, 2, 0), (4, 1, 3, 3, 0)],
    9: [
        (1, 1, 3, 0, 0),
        (2, 1, 1, 1, 0),
        (3, 1, 3, 2, 0),
        (4, 2, 2, 3, 0),
        (5, 1, 1, 4, 0),
        (6, 1, 3, 5, 0),
        (7, 1, 1, 6, 0),
        (8, 3, 2, 7, 0),
        (9, 1, 1, 8, 0),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TRAIN_TASKS + EVAL_TASKS))
    args = parser.parse_args()
    fidelity = get_fidelity(args.fidelity)
    print(f"fidelity {fidelity.id}: {fidelity.description}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'task':<12} {'layers':>6} {'median_s':>9} {'accuracy':>9} {'params':>10}")
    for task in split_list(args.tasks):
        dataset = load_dataset(task)
        prepare_data(dataset, fidelity)
        evaluate_nsc(CHAINS[1], dataset, fidelity.replace(epochs=1))  # warm-up, not timed
        for depth, nsc in CHAINS.items():
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = evaluate_nsc(nsc, dataset, fidelity)
                seconds.append(time.perf_counter() - start)
            print(
                f"{task:<12} {depth:>6} {statistics.median(seconds):>9.2f} {result.accuracy:>9.3f} "
                f"{result.n_params:>10}"
            )


if __name__ == "__main__":
    main()
