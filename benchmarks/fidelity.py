"""Fidelity study: how the cheap fidelities rank networks against the paper's.

    python benchmarks/fidelity.py                                   # the study: 2 tasks × (40 + 8) networks
    python benchmarks/fidelity.py --no-train                        # the tables from what the memo holds
    python benchmarks/fidelity.py --tasks digits --n 18 --n-larger 0 --reference tiny,image_size=16 \\
        --fidelities tiny                                           # a smoke test in seconds

A seeded sample of distinct chain networks, stratified by depth (1–9) and drawn uniformly among the chains
valid at the smallest input size compared (so every one is valid at every fidelity), plus ``--n-larger``
chains that only the reference's larger inputs allow (reported apart). Each is trained at every compared
fidelity and at the reference (``paper`` by default; give ``paper,max_train_images=N`` to cap its training
images) through the reward memo, so the study resumes where it stopped and its networks serve later runs.

Per cheap fidelity and task: Kendall τ and Spearman ρ against the reference with percentile-bootstrap 95%
intervals, the overlap of the top 10% and top 25%, and the median seconds per network (as the memo recorded
them when the network was trained); per input size, from the builder's shape rule alone: the invalid share of
random chains and the valid chains per depth. Writes ``OUT/accuracies.csv`` (one row per network, task and
fidelity, streamed), ``OUT/study.md`` and ``OUT/study.json``.
"""

from __future__ import annotations

import sb3_nas  # noqa: F401  (first: it turns PyTorch's huge pages on before torch allocates anything)

# isort: split

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sb3_nas.analysis.fidelity_study import (
    STUDY_DEPTHS,
    frame_markdown,
    invalid_share,
    larger_only_depths,
    rank_agreement,
    sample_chains,
    valid_chains,
)
from sb3_nas.cli import positive_int, run_command, split_list
from sb3_nas.errors import UsageError
from sb3_nas.estimation import (
    FIDELITIES,
    PerformanceEstimator,
    configure_threads,
    get_fidelity,
    open_memo,
    parse_precisions,
)
from sb3_nas.estimation.memo import DEFAULT_MEMO_URL

# Middle-fidelity candidates: the paper's network and optimiser, smaller inputs and fewer epochs (the lr step
# every 3 of 6 epochs, as the cpu fidelity), the paper's three channels; every training image of the tasks.
CANDIDATES = (
    "paper,image_size=32,epochs=6,lr_decay_every=3",
    "paper,image_size=48,epochs=6,lr_decay_every=3",
)
DEFAULT_TASKS = "digits,photos"  # easy (10 digits, ~97%) and hard (6 photo classes, ~55%)
FIELDS = ["task", "group", "depth", "network", "nsc", "fidelity", "image_size", "accuracy", "valid", "reason",
          "train_seconds", "memo_hit"]  # fmt: skip


def default_fidelities() -> list[str]:
    return [name for name in FIDELITIES if name != "paper"] + list(CANDIDATES)


def fidelity_names(text: str) -> list[str]:
    """``cpu,tiny,paper,image_size=32,epochs=6`` → ``cpu``, ``tiny``, ``paper,image_size=32,epochs=6``: a part
    holding ``=`` is a setting of the fidelity before it (names never hold one)."""
    names: list[str] = []
    for part in split_list(text):
        if "=" in part and names:
            names[-1] += f",{part}"
        else:
            names.append(part)
    return names


def study_networks(n: int, n_larger: int, smallest: int, largest: int, seed: int) -> list[tuple[str, list]]:
    """(group, nsc) pairs: ``n`` chains valid everywhere, then ``n_larger`` valid only at ``largest``, each
    group in a seeded shuffled order so that a study stopped half-way covers every depth."""
    rng = np.random.default_rng(seed)
    main = sample_chains(n, smallest, seed)
    larger = []
    if n_larger:
        depths = larger_only_depths(largest, smallest)
        larger = sample_chains(n_larger, largest, seed + 1, depths=depths, exclude_valid_at=smallest)
    main = [main[i] for i in rng.permutation(len(main))]
    larger = [larger[i] for i in rng.permutation(len(larger))]
    return [("main", nsc) for nsc in main] + [("larger-only", nsc) for nsc in larger]


def run_study(args, fidelities, reference, networks, out: Path) -> pd.DataFrame:
    """Train (or find in the memo) every network at every fidelity; stream rows to OUT/accuracies.csv."""
    memo = open_memo(args.memo)
    rows = []
    out.mkdir(parents=True, exist_ok=True)
    path = out / "accuracies.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        accepted = parse_precisions(args.accept_precision)
        for task in split_list(args.tasks):
            estimators = {
                f.name: PerformanceEstimator(task, f, memo, args.device, accept_precision=accepted)
                for f in [*fidelities, reference]
            }
            for i, (group, nsc) in enumerate(networks, start=1):
                started, line = time.perf_counter(), []
                for fidelity in [*fidelities, reference]:
                    estimator = estimators[fidelity.name]
                    if args.no_train:
                        entry, hit = estimator.lookup(nsc), True
                        if entry is None:
                            continue
                    else:
                        estimate = estimator.estimate(nsc)
                        entry, hit = estimate.entry, estimate.memo_hit
                    row = {
                        "task": task, "group": group, "depth": len(nsc), "network": entry.network,
                        "nsc": json.dumps(nsc), "fidelity": fidelity.name, "image_size": fidelity.image_size,
                        "accuracy": entry.accuracy, "valid": entry.valid, "reason": entry.reason,
                        "train_seconds": entry.train_seconds, "memo_hit": hit,
                    }  # fmt: skip
                    writer.writerow(row)
                    rows.append(row)
                    line.append(f"{entry.accuracy:.3f}")
                handle.flush()
                if not args.no_train:
                    took = time.perf_counter() - started
                    head = f"{task} {i}/{len(networks)} {group} depth {len(nsc)}"
                    print(f"{head}: {' '.join(line)} ({took:.0f} s)", flush=True)
    return pd.DataFrame(rows, columns=FIELDS)


def space_table(fidelities, reference) -> pd.DataFrame:
    """Per input size, from the builder's shape rule: invalid share of random chains, valid chains."""
    rows = []
    for fidelity in [*fidelities, reference]:
        size = fidelity.image_size
        counts = [valid_chains(size, d) for d in STUDY_DEPTHS]
        rows.append({
            "fidelity": fidelity.name, "image_size": size, "invalid_share": invalid_share(size),
            "valid_chains_1_9": sum(counts), "per_depth": " ".join(str(c) for c in counts),
        })  # fmt: skip
    return pd.DataFrame(rows).drop_duplicates("fidelity")


def agreement_table(results: pd.DataFrame, fidelities, reference, reps: int, seed: int) -> pd.DataFrame:
    rows = []
    main = results[results["group"] == "main"]
    for task, of_task in main.groupby("task", sort=False):
        wide = of_task.pivot_table(index="network", columns="fidelity", values="accuracy", aggfunc="first")
        seconds = of_task.groupby("fidelity")["train_seconds"].median()
        for fidelity in fidelities:
            if fidelity.name not in wide or reference.name not in wide:
                continue
            both = wide[[fidelity.name, reference.name]].dropna()
            if len(both) < 3:
                continue
            agreement = rank_agreement(both[fidelity.name], both[reference.name], reps=reps, seed=seed)
            rows.append({
                "task": task, "fidelity": fidelity.name, "n": agreement.n,
                "kendall_tau": str(agreement.kendall_tau), "spearman_rho": str(agreement.spearman_rho),
                "tau": agreement.kendall_tau.value, "tau_low": agreement.kendall_tau.low,
                "top10": agreement.top10, "top25": agreement.top25,
                "median_s": seconds.get(fidelity.name, float("nan")),
                "reference_median_s": seconds.get(reference.name, float("nan")),
                "mean_acc": both[fidelity.name].mean(), "reference_mean_acc": both[reference.name].mean(),
            })  # fmt: skip
    return pd.DataFrame(rows)


def larger_only_table(results: pd.DataFrame, reference) -> pd.DataFrame:
    """The larger-only networks against the main sample at the reference: how many reach its top 10%."""
    rows = []
    at_reference = results[results["fidelity"] == reference.name]
    for task, of_task in at_reference.groupby("task", sort=False):
        main = of_task[of_task["group"] == "main"]["accuracy"]
        larger = of_task[of_task["group"] == "larger-only"]["accuracy"]
        if larger.empty or main.empty:
            continue
        threshold = np.quantile(of_task["accuracy"], 0.9)
        rows.append({
            "task": task, "n_main": len(main), "n_larger_only": len(larger),
            "main_median": main.median(), "larger_only_median": larger.median(),
            "main_best": main.max(), "larger_only_best": larger.max(),
            "larger_only_in_top10pct": int((larger >= threshold).sum()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"built-in tasks (default {DEFAULT_TASKS})")
    parser.add_argument(
        "--fidelities",
        default=None,
        help="cheap fidelities compared, comma-separated, each with its settings: cpu,paper,image_size=32,"
        "epochs=6 is cpu and paper,image_size=32,epochs=6 (default: the registered ones and the candidates)",
    )
    parser.add_argument("--reference", default="paper", help="the fidelity ranked against (default paper)")
    parser.add_argument(
        "--n", type=positive_int, default=40, help="networks valid at every fidelity (default 40)"
    )
    parser.add_argument(
        "--n-larger", type=int, default=8, help="networks only the reference allows (default 8)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--valid-at",
        type=positive_int,
        default=None,
        metavar="SIZE",
        help="draw the networks valid at SIZE (default: the smallest input compared); the study's SIZE "
        "reruns its networks at other fidelities, such as the reference with another seed",
    )
    parser.add_argument(
        "--memo", default=None, help=f"reward memo (default $SB3_NAS_MEMO, else {DEFAULT_MEMO_URL})"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--accept-precision",
        type=split_list,
        default=[],
        metavar="PRECISIONS",
        help="memo entries of these other precisions answer too (the reference study's are bf16)",
    )
    parser.add_argument("--reps", type=int, default=9999, help="bootstrap resamples (default 9999)")
    parser.add_argument("--no-train", action="store_true", help="tables from the memo only, train nothing")
    parser.add_argument(
        "--out", default="results/fidelity", help="folder of the outputs (default results/fidelity)"
    )
    return parser


def execute(args: argparse.Namespace) -> int:
    configure_threads()
    reference = get_fidelity(args.reference)
    fidelities = [
        get_fidelity(name)
        for name in (fidelity_names(args.fidelities) if args.fidelities else default_fidelities())
    ]
    smallest = args.valid_at or min(f.image_size for f in [*fidelities, reference])
    try:
        networks = study_networks(args.n, args.n_larger, smallest, reference.image_size, args.seed)
    except ValueError as error:  # more networks asked for than a depth has
        raise UsageError(f"--n/--n-larger: {error}") from None
    print(f"fidelity study: {len(networks)} networks × {len(fidelities) + 1} fidelities on {args.tasks}; "
          f"reference {reference.name}; networks valid at {smallest}×{smallest}")  # fmt: skip
    print("accuracies in the order: " + ", ".join(f.name for f in [*fidelities, reference]))
    started = time.perf_counter()
    results = run_study(args, fidelities, reference, networks, Path(args.out))
    space = space_table(fidelities, reference)
    agreement = agreement_table(results, fidelities, reference, args.reps, args.seed)
    larger = larger_only_table(results, reference)
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    shown = ["task", "fidelity", "n", "kendall_tau", "spearman_rho", "top10", "top25", "median_s", "mean_acc",
             "reference_mean_acc"]  # fmt: skip
    text = [
        f"# Fidelity study against `{reference.name}`",
        "",
        f"`python {' '.join(['benchmarks/fidelity.py', *sys.argv[1:]])}`; {len(networks)} networks; "
        f"{time.perf_counter() - started:.0f} s this call; median seconds as the memo recorded each training",
        "",
        "## Rank agreement with the reference (networks valid everywhere)",
        "",
        frame_markdown(agreement[shown]) if not agreement.empty else "(nothing yet)",
        "",
        "## The chain space per input size (builder's shape rule, no training)",
        "",
        frame_markdown(space),
        "",
        "## Networks only the reference's inputs allow",
        "",
        frame_markdown(larger) if not larger.empty else "(none)",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.md").write_text("\n".join(text) + "\n")
    summary = {"agreement": agreement.to_dict("records"), "space": space.to_dict("records"),
               "larger_only": larger.to_dict("records")}  # fmt: skip
    (out / "study.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    print(
        agreement[shown].to_string(index=False, float_format=fmt)
        if not agreement.empty
        else "no agreement yet"
    )
    print(space.to_string(index=False, float_format=fmt))
    if not larger.empty:
        print(larger.to_string(index=False, float_format=fmt))
    if not agreement.empty:
        print(
            " ".join(
                f"tau_{r.task}_{r.fidelity.split(',')[0]}{_size(r.fidelity)}={r.tau:.2f}"
                for r in agreement.itertuples()
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), execute, argv)


def _size(name: str) -> str:
    return "" if "image_size=" not in name else name.split("image_size=")[1].split(",")[0]


if __name__ == "__main__":
    sys.exit(main())
