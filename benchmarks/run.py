"""Performance-estimation benchmarks, every figure from this one run.

    python benchmarks/run.py --quick                          # CPU, default fidelity, under five minutes
    python benchmarks/run.py                                  # + networks per hour with 1, 2, 4 trainers
    python benchmarks/run.py --device cuda --fidelity paper   # on a GPU machine
    python benchmarks/run.py --quick --profile                # + the operator profile of one training
    python benchmarks/run.py --fidelity paper --cpu-history --only g   # paper fidelity, CPU, step by step

Prints (a) seconds per network and accuracy, sb3_nas's trainer against a plain PyTorch loop
(benchmarks/plain_loop.py), for chain networks of 1, 4 and 9 layers; (b) achieved FLOP/s against the peak of a
large matmul measured here; (c) environment steps per second from the memo; (d) the memo hit rate of a default
meta_a2c run; (e) the projected time of Experiment 1 at the paper's fidelity and data sizes; (f) networks per
hour with 1, 2 and 4 trainers at once; (g) with ``--cpu-history``, the 1- and 4-layer chains trained side by
side without the CPU speed-ups and with each added in turn: PyTorch's transparent huge pages on (as
``import sb3_nas`` sets), the network's channels_last gradient at the Flatten, and the dense layers in bf16
where the CPU runs bf16 natively (``SpeedSettings.bf16_dense``).
The last line is ``cpu_speedup=<ratio> memo_steps_per_s=<rate> ...``
(``gpu_speedup`` on a GPU).
"""

from __future__ import annotations

import sb3_nas  # noqa: F401  (first: it turns PyTorch's huge pages on before torch allocates anything)

# isort: split

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from estimation_speed import CHAINS  # noqa: E402
from memo_steps import play  # noqa: E402
from plain_loop import plain_train_and_test, to_float_datasets  # noqa: E402

from sb3_nas import HUGE_PAGES_VARIABLE  # noqa: E402
from sb3_nas.cli import split_list  # noqa: E402
from sb3_nas.data import load_dataset  # noqa: E402
from sb3_nas.envs import NasEnv  # noqa: E402
from sb3_nas.estimation import (  # noqa: E402
    SpeedSettings,
    configure_threads,
    evaluate_network,
    evaluate_plan,
    get_fidelity,
    prepare_data,
    resolve_device,
)
from sb3_nas.space import (  # noqa: E402
    InvalidArchitecture,
    NSCNetwork,
    canonical_network,
    plan_network,
    validate_nsc,
)

# Experiment 1 of the paper (§6.1): steps per environment and each dataset's image count
# (omniglot 1623 characters × 20; Oxford flowers 8189; DTD 5640), all split 2/3 train, 1/3 test.
PAPER_EXP1 = {"omniglot": (8000, 32_460), "vgg_flower": (7000, 8_189), "dtd": (7000, 5_640)}
# Distinct networks for the concurrency measurement: the three chains with each kernel size of layer 1
# (those too deep for the fidelity's image size are left out).
CONCURRENCY_NETWORKS = [[(1, 1, k, 0, 0), *chain[1:]] for chain in CHAINS.values() for k in (1, 3, 5)]


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large matmul in ``dtype``, best of five."""
    size = 8192 if device.type == "cuda" else 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    synchronize(device)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops(plan, data, fidelity) -> float:
    """Forward FLOPs × (3 per trained image: forward and backward) + one forward per test image."""
    return plan.flops * (3 * data.train_x.shape[0] * fidelity.epochs + data.test_x.shape[0])


def time_ours(plan, data, fidelity, device, settings: SpeedSettings | None = None) -> tuple[float, float]:
    synchronize(device)
    start = time.perf_counter()
    accuracy = evaluate_plan(plan, data, fidelity, settings).accuracy
    synchronize(device)
    return time.perf_counter() - start, accuracy


def time_plain(plan, float_data, fidelity, device) -> tuple[float, float]:
    synchronize(device)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fidelity.seed)  # the same initial weights as evaluate_plan
        accuracy = plain_train_and_test(NSCNetwork(plan), *float_data, fidelity, device)
    synchronize(device)
    return time.perf_counter() - start, accuracy


def speed_table(task: str, fidelity, device, repeats: int, peak: float) -> pd.DataFrame:
    """(a) and (b): median seconds per network, ours and the plain loop interleaved, same networks."""
    data = prepare_data(load_dataset(task), fidelity, device)
    float_data = to_float_datasets(data)
    warm = plan_network(CHAINS[4], data.input_shape, data.n_classes)
    time_ours(warm, data, fidelity.replace(epochs=1), device)  # warm-up: allocator, kernels, threads
    time_plain(warm, float_data, fidelity.replace(epochs=1), device)
    rows = []
    for depth, nsc in CHAINS.items():
        plan = plan_network(nsc, data.input_shape, data.n_classes)
        ours, plain = [], []
        for _ in range(repeats):
            ours.append(time_ours(plan, data, fidelity, device))
            plain.append(time_plain(plan, float_data, fidelity, device))
        ours_s, plain_s = statistics.median(s for s, _ in ours), statistics.median(s for s, _ in plain)
        rows.append({
            "layers": depth, "ours_s": ours_s, "plain_s": plain_s, "speedup": plain_s / ours_s,
            "ours_acc": ours[0][1], "plain_acc": plain[0][1],
            "flops_frac": training_flops(plan, data, fidelity) / ours_s / peak,
        })  # fmt: skip
    return pd.DataFrame(rows)


def variant_table(task: str, fidelity, device, repeats: int) -> pd.DataFrame:
    """Seconds per network of each speed setting alone, to justify ``SpeedSettings.for_device``."""
    data = prepare_data(load_dataset(task), fidelity, device)
    variants = {
        "baseline": SpeedSettings(),
        "fused_adam": SpeedSettings(fused_adam=True),
        "channels_last": SpeedSettings(channels_last=True),
        "bf16": SpeedSettings(autocast_dtype=torch.bfloat16),
        "bf16_dense": SpeedSettings(autocast_dtype=torch.bfloat16, bf16_dense=True),
        "chosen": SpeedSettings.for_device(device),
        "all": SpeedSettings(True, torch.bfloat16, fused_adam=True, bf16_dense=True),
    }
    rows = []
    for depth, nsc in CHAINS.items():
        plan = plan_network(nsc, data.input_shape, data.n_classes)
        row = {"layers": depth}
        for name, settings in variants.items():
            runs = [time_ours(plan, data, fidelity, device, settings) for _ in range(repeats)]
            row[f"{name}_s"] = statistics.median(s for s, _ in runs)
            row[f"{name}_acc"] = runs[0][1]
        rows.append(row)
    return pd.DataFrame(rows)


def memo_rate(steps: int) -> float:
    """(c) steps per second of a replayed action sequence, every reward from the memo's cache."""
    with tempfile.TemporaryDirectory() as folder:
        env = NasEnv("digits", "tiny", Path(folder) / "memo.sqlite", device="cpu", memo_info=True)
        actions = np.random.default_rng(0).integers(env.action_space.n, size=steps)
        play(env, actions)
        hits, seconds = play(env, actions)
    assert hits == steps, f"replay had {steps - hits} memo misses"
    return steps / seconds


def find_run(given: str | None) -> Path | None:
    if given:
        return Path(given)
    runs = Path("results/runs")
    candidates = [*sorted(runs.glob("meta_a2c-*")), runs / "reduced" / "exp1-meta_a2c"]
    found = [run for run in candidates if (run / "steps.csv").exists()]
    return found[-1] if found else None


def _network_key(nsc_json: str) -> str:
    try:
        return canonical_network(validate_nsc(json.loads(nsc_json)))
    except (InvalidArchitecture, ValueError):
        return nsc_json


def hit_rate(run: Path | None) -> tuple[float, float, int] | None:
    """(d) the share of a run's steps served by the memo as recorded (a shared memo counts earlier runs' work
    too) and as an empty memo would have served them (the network was already met earlier in this run on
    this environment), and the run's step count."""
    if run is None or not (run / "steps.csv").exists():
        return None
    steps = pd.read_csv(run / "steps.csv", usecols=["env", "nsc", "memo_hit"])
    keys = steps["env"] + "|" + steps["nsc"].map(_network_key)
    return float(steps["memo_hit"].astype(bool).mean()), float(keys.duplicated().mean()), len(steps)


def projection(seconds_per_network: float, data, unique_per_step: float) -> tuple[float, list[str]]:
    """(e) hours of Experiment 1: per environment, steps × unique share × seconds per network, the seconds
    scaled from the measured dataset to the paper's by training cost (3 per train image, 1 per test image)."""
    measured_cost = 3 * data.train_x.shape[0] + data.test_x.shape[0]
    total, lines = 0.0, []
    for name, (steps, images) in PAPER_EXP1.items():
        per_network = seconds_per_network * (3 * images * 2 / 3 + images / 3) / measured_cost
        seconds = steps * unique_per_step * per_network
        total += seconds
        lines.append(f"  {name}: {steps} steps × {unique_per_step:.2f} unique × {per_network:.1f} s/network")
    return total / 3600, lines


def _worker_init(workers: int, task: str, fidelity_name: str, device: str) -> None:
    configure_threads(workers)
    prepare_data(load_dataset(task), get_fidelity(fidelity_name), device)


def _worker_evaluate(nsc, task: str, fidelity_name: str, device: str) -> float:
    fidelity = get_fidelity(fidelity_name)
    data = prepare_data(load_dataset(task), fidelity, device)
    return evaluate_plan(plan_network(nsc, data.input_shape, data.n_classes), data, fidelity).accuracy


def valid_networks(data) -> list:
    networks = []
    for nsc in CONCURRENCY_NETWORKS:
        try:
            plan_network(nsc, data.input_shape, data.n_classes)
            networks.append(nsc)
        except InvalidArchitecture:
            pass
    return networks


def networks_per_hour(workers: int, task: str, fidelity_name: str, device: str) -> float:
    """(f) networks trained per hour by ``workers`` processes sharing the machine (and its GPU)."""
    networks = valid_networks(prepare_data(load_dataset(task), get_fidelity(fidelity_name), device))
    context = get_context("spawn")
    args = (task, fidelity_name, device)
    with ProcessPoolExecutor(workers, context, _worker_init, (workers, *args)) as pool:
        list(pool.map(_worker_evaluate, [CHAINS[4]] * workers, *[[a] * workers for a in args]))  # warm-up
        start = time.perf_counter()
        list(pool.map(_worker_evaluate, networks, *[[a] * len(networks) for a in args]))
        return len(networks) / (time.perf_counter() - start) * 3600


def _timed_worker_init(task: str, fidelity_name: str, device: str) -> None:
    configure_threads()  # one worker at a time: every physical core
    fidelity = get_fidelity(fidelity_name)
    data = prepare_data(load_dataset(task), fidelity, device)
    warm = plan_network(CHAINS[4], data.input_shape, data.n_classes)
    evaluate_plan(warm, data, fidelity.replace(epochs=1))  # warm-up: allocator, kernels, threads


class Step(NamedTuple):
    """What one CPU speed-up turns on, with every one before it."""

    huge_pages: bool  # PyTorch's transparent huge pages (the worker process's environment)
    flatten: bool  # SpeedSettings.flatten_keeps_layout: the Flatten keeps channels_last gradients
    bf16_dense: bool  # SpeedSettings.bf16_dense as the device chooses it (else off)


# (g) the CPU trainer's speed-ups, each added to the ones before
HISTORY = {
    "before": Step(huge_pages=False, flatten=False, bf16_dense=False),
    "huge_pages": Step(huge_pages=True, flatten=False, bf16_dense=False),
    "flatten": Step(huge_pages=True, flatten=True, bf16_dense=False),
    "now": Step(huge_pages=True, flatten=True, bf16_dense=True),
}


def _timed_evaluate(
    depth: int, variant: str, task: str, fidelity_name: str, device: str
) -> tuple[float, float, str]:
    fidelity = get_fidelity(fidelity_name)
    data = prepare_data(load_dataset(task), fidelity, device)
    plan = plan_network(CHAINS[depth], data.input_shape, data.n_classes)
    step = HISTORY[variant]
    settings = SpeedSettings.for_device(resolve_device(device))
    settings = dataclasses.replace(
        settings, flatten_keeps_layout=step.flatten, bf16_dense=settings.bf16_dense and step.bf16_dense
    )
    start = time.perf_counter()
    evaluation = evaluate_network(lambda: NSCNetwork(plan), data, fidelity, settings)
    seconds = time.perf_counter() - start
    assert evaluation.valid, evaluation.reason
    return seconds, evaluation.accuracy, os.environ.get(HUGE_PAGES_VARIABLE, "")


def _huge_pages_pool(enabled: bool, task: str, fidelity_name: str, device: str) -> ProcessPoolExecutor:
    """A one-worker pool whose interpreter starts with huge pages on or off (PyTorch reads the variable once,
    at its first allocation, so the setting needs a process of its own)."""
    saved = os.environ.get(HUGE_PAGES_VARIABLE)
    os.environ[HUGE_PAGES_VARIABLE] = "1" if enabled else "0"  # inherited by the spawned worker
    try:
        pool = ProcessPoolExecutor(1, get_context("spawn"), _timed_worker_init, (task, fidelity_name, device))
        pool.submit(int).result()  # start it now, under this setting
    finally:
        os.environ[HUGE_PAGES_VARIABLE] = saved if saved is not None else "1"
    return pool


def history_table(task: str, fidelity, device, repeats: int, peak: float) -> pd.DataFrame:
    """(g) seconds per network of the 1- and 4-layer chains without the CPU speed-ups and with each added in
    turn, the variants interleaved (before, huge_pages, flatten, now, before, …) so all see the same machine;
    ``before`` runs in a worker with huge pages off, the others in one with them on. Accuracies: seed 0's."""
    data = prepare_data(load_dataset(task), fidelity, device)
    args = (task, fidelity.name, str(device))
    pools = {on: _huge_pages_pool(on, *args) for on in (False, True)}
    times: dict[tuple[int, str], list[tuple[float, float]]] = {}
    try:
        for _ in range(repeats):
            for depth in (1, 4):
                for variant, step in HISTORY.items():
                    result = pools[step.huge_pages].submit(_timed_evaluate, depth, variant, *args).result()
                    seconds, accuracy, setting = result
                    assert setting == ("1" if step.huge_pages else "0"), (
                        f"{variant} ran with huge pages {setting!r}"
                    )
                    times.setdefault((depth, variant), []).append((seconds, accuracy))
    finally:
        for pool in pools.values():
            pool.shutdown()
    rows = []
    for depth in (1, 4):
        plan = plan_network(CHAINS[depth], data.input_shape, data.n_classes)
        flops = training_flops(plan, data, fidelity)
        seconds = {v: statistics.median(s for s, _ in times[depth, v]) for v in HISTORY}
        rows.append({
            "layers": depth, **{f"{v}_s": s for v, s in seconds.items()},
            "speedup": seconds["before"] / seconds["now"],
            "before_acc": times[depth, "before"][0][1], "now_acc": times[depth, "now"][0][1],
            "before_flops_frac": flops / seconds["before"] / peak,
            "now_flops_frac": flops / seconds["now"] / peak,
        })  # fmt: skip
    return pd.DataFrame(rows)


def profile(task: str, fidelity, device, depth: int = 1) -> None:
    """The operator profile of one training of the ``depth``-layer chain (1: the most expensive network)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    data = prepare_data(load_dataset(task), fidelity, device)
    plan = plan_network(CHAINS[depth], data.input_shape, data.n_classes)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        time_ours(plan, data, fidelity, device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU benchmarks only, under five minutes")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--fidelity", default=None, help="default: cpu on a CPU, paper on a GPU")
    parser.add_argument("--task", default="digits")
    parser.add_argument("--repeats", type=int, default=None, help="timings per network (default 3, quick 2)")
    parser.add_argument(
        "--memo-steps", type=int, default=None, help="replayed steps (default 2000, quick 1000)"
    )
    parser.add_argument("--run", default=None, help="a meta_a2c run folder for the memo hit rate")
    parser.add_argument("--workers", default=None, help="concurrency levels, e.g. 1,2,4 (quick: none)")
    parser.add_argument(
        "--profile",
        nargs="?",
        type=int,
        const=1,
        choices=sorted(CHAINS),
        metavar="LAYERS",
        help="print the operator profile of one training of the 1-layer chain (or of LAYERS: 4, 9)",
    )
    parser.add_argument("--variants", action="store_true", help="time each speed setting on its own")
    parser.add_argument(
        "--cpu-history",
        "--huge-pages",
        action="store_true",
        help="(g) 1- and 4-layer chains without the CPU speed-ups and with each added in turn",
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="LETTERS",
        help="only these sections, e.g. g or acd ((b) always)",
    )
    args = parser.parse_args(argv)
    sections = set(args.only or "acdefg")
    device = resolve_device(args.device)
    fidelity = get_fidelity(args.fidelity or ("paper" if device.type == "cuda" else "cpu"))
    repeats = args.repeats or (2 if args.quick else 3)
    workers = [int(w) for w in split_list(args.workers or ("" if args.quick else "1,2,4"))]
    configure_threads()  # every physical core for one trainer
    print(f"machine: {machine(device)}")
    print(f"fidelity {fidelity.id}: {fidelity.description}")

    compute = SpeedSettings.for_device(device).autocast_dtype or torch.float32
    peaks = {dtype: peak_flops(device, dtype) for dtype in (torch.float32, torch.bfloat16)}
    peak = peaks[compute]
    shown = ", ".join(f"{p / 1e9:,.0f} GFLOP/s {str(d)[6:]}" for d, p in peaks.items())
    print(f"(b) peak of a large matmul: {shown}; flops_frac: of the {str(compute)[6:]} peak (the trainer's)")
    kind = "gpu" if device.type == "cuda" else "cpu"
    pairs: dict[str, str] = {}
    table = None
    if "a" in sections:
        table = speed_table(args.task, fidelity, device, repeats, peak)
        print(f"(a) {args.task}, median of {repeats}, ours vs the plain DataLoader loop:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        speedup = table["plain_s"].sum() / table["ours_s"].sum()
        accuracy_gap = (table["ours_acc"] - table["plain_acc"]).abs().max()
        print(f"    speedup over the three networks {speedup:.2f}×, largest accuracy gap {accuracy_gap:.3f}")
        pairs[f"{kind}_speedup"] = f"{speedup:.2f}"

    if args.variants:
        print("    each speed setting alone (seconds, accuracy):")
        variants = variant_table(args.task, fidelity, device, repeats)
        print(variants.to_string(index=False, float_format="{:.3f}".format))

    if "c" in sections:
        rate = memo_rate(args.memo_steps or (1000 if args.quick else 2000))
        print(f"(c) memo-served steps: {rate:,.0f} steps/s")
        pairs["memo_steps_per_s"] = f"{rate:.0f}"
    run = find_run(args.run)
    rate_and_steps = hit_rate(run) if "d" in sections else None
    if "d" in sections and rate_and_steps is None:
        print("(d) no meta_a2c run found (run `python -m sb3_nas.train` first, or pass --run)")
    elif rate_and_steps is not None:
        recorded, hits, n_steps = rate_and_steps
        print(f"(d) memo hit rate of {run} over {n_steps} steps: {hits:.3f} from an empty memo "
              f"({recorded:.3f} as recorded, on a memo shared with earlier runs)")  # fmt: skip
        pairs["memo_hit_rate"] = f"{hits:.3f}"
        if fidelity.name == "paper" and table is not None:
            data = prepare_data(load_dataset(args.task), fidelity, device)
            hours, lines = projection(float(table["ours_s"].mean()), data, 1 - hits)
            print(f"(e) Experiment 1 at paper fidelity on this device: {hours:.1f} h")
            print("\n".join(lines))
            pairs["exp1_hours"] = f"{hours:.1f}"
        else:
            print("(e) the Experiment 1 projection needs --fidelity paper and section (a)")
    for n in workers if "f" in sections else []:
        per_hour = networks_per_hour(n, args.task, fidelity.name, str(device))
        print(f"(f) {n} trainer(s) at once: {per_hour:,.0f} networks/hour")
        pairs[f"networks_per_hour_{n}"] = f"{per_hour:.0f}"
    if args.cpu_history and "g" in sections:
        table = history_table(args.task, fidelity, device, repeats, peak)
        steps = ", ".join(HISTORY)
        print(f"(g) {args.task}, median of {repeats}, seconds per network at each CPU speed-up ({steps}):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        for depth, speedup in zip(table["layers"], table["speedup"], strict=True):
            pairs[f"cpu_speedup_{depth}"] = f"{speedup:.2f}"
    if args.profile:
        profile(args.task, fidelity, device, args.profile)
    print(" ".join(f"{name}={value}" for name, value in pairs.items()))


if __name__ == "__main__":
    main()
