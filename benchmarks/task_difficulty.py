"""Difficulty of each built-in task: early-stop accuracy of random chain networks (Appendix A).

    python benchmarks/task_difficulty.py [--networks 30] [--fidelity cpu] [--memo URL]

Random chain networks: a depth drawn uniformly from 1..9, each layer one of the actions A0–A6
uniformly. Networks that cannot be built (the image shrinks below 1 pixel) are counted apart and not
in the statistics, and drawing goes on until ``--networks`` valid ones are scored. Rewards go through
the reward memo, so a rerun costs nothing. Prints a Markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np

from sb3_nas.cli import split_list
from sb3_nas.data import EVAL_TASKS, TRAIN_TASKS, describe_dataset
from sb3_nas.estimation import PerformanceEstimator
from sb3_nas.space import ACTIONS, NSC


def random_chain(rng: np.random.Generator, max_layers: int = 9) -> list[NSC]:
    """A chain network of random depth whose layers are uniform among the actions A0–A6."""
    rows = []
    for index in range(1, int(rng.integers(1, max_layers + 1)) + 1):
        action = ACTIONS[int(rng.integers(7))]
        rows.append(NSC(index, int(action.layer_type), action.kernel, index - 1, 0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--fidelity", default="cpu")
    parser.add_argument("--memo", default=None)
    parser.add_argument("--tasks", default=",".join(TRAIN_TASKS + EVAL_TASKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| task | role | valid networks | invalid drawn | median | IQR (25%–75%) | min–max |")
    print("| --- | --- | ---: | ---: | ---: | --- | --- |")
    for task in split_list(args.tasks):
        estimator = PerformanceEstimator(task, args.fidelity, args.memo)
        rng = np.random.default_rng(args.seed)
        accuracies, invalid = [], 0
        while len(accuracies) < args.networks:
            entry = estimator.estimate(random_chain(rng)).entry
            if entry.valid:
                accuracies.append(entry.accuracy)
            else:
                invalid += 1
        q25, median, q75 = np.percentile(accuracies, [25, 50, 75])
        role = describe_dataset(task).rsplit(";", 1)[-1].strip()
        print(
            f"| {task} | {role} | {len(accuracies)} | {invalid} | {median:.3f} | {q25:.3f}–{q75:.3f} | "
            f"{min(accuracies):.3f}–{max(accuracies):.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
