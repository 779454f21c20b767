"""The paper's experiments at the paper's scale on the tabular benchmarks, 10 seeds each.

    python benchmarks/tabular_experiments.py [--stages exp1,exp2,nb201,analog,study,tuned] [--seeds 10]
        [--n-jobs 2] [--root results/tabular]

Stages (each resumable: a complete run is reused, an incomplete one continued; run them again at will):

- ``exp1``: Experiment 1 on NAS-Bench-Graph: meta_a2c transferring across the three training datasets
  (``nasbench_graph.TRAIN_DATASETS``), every other algorithm from scratch on each, at the paper's budgets.
- ``exp2``: Experiment 2: each seed's frozen meta_a2c policy from ``exp1`` on the six held-out datasets,
  2000 steps each, against dqn and random learning from scratch there.
- ``nb201``: Experiment 1's comparison on NAS-Bench-201 CIFAR-10 (``baseline_accuracy``; one dataset, so no
  transfer), 7000 steps for every algorithm.
- ``analog``: Experiment 2's analogue: meta_a2c trained on the digital accuracies (baseline, PTQ, QAT) at the
  paper's budgets, then frozen on ``analog_accuracy`` for 2000 steps, against dqn and random from scratch.
- ``study``: the Optuna study of j, η and α (``sweeps/meta_a2c_nbgraph.yml``, 30 trials, full budget, on
  ``ROOT/optuna.sqlite``: ``optuna-dashboard sqlite:///ROOT/optuna.sqlite``).
- ``tuned``: the study's best values re-run over the seeds against the paper's values (``exp1``'s runs).

Run folders go to ``ROOT`` (not committed); each stage's ``comparison.md`` is copied to
``results/reference/tabular-<stage>/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd

from sb3_nas.analysis.comparison import (
    DEFAULT_LAST_EPISODES,
    RunRecord,
    build_comparison,
    compare_plan,
    read_run_record,
    write_comparison,
)
from sb3_nas.experiment import RunConfig, run
from sb3_nas.experiment.comparison import execute_plan, plan_comparison, run_folder
from sb3_nas.space import nasbench_graph

ALGOS = ("meta_a2c", "dqn", "random", "ppo", "recurrent_ppo", "maskable_ppo")
TRAIN = tuple(f"nbgraph:{d}" for d in nasbench_graph.TRAIN_DATASETS)
HELD_OUT = tuple(f"nbgraph:{d}" for d in nasbench_graph.HELD_OUT_DATASETS)
NB201 = ("nb201:cifar10",)
DIGITAL = ("nb201:cifar10", "nb201:cifar10/ptq_accuracy", "nb201:cifar10/qat_accuracy")
ANALOG = ("nb201:cifar10/analog_accuracy",)
EVALUATION_STEPS = 2000  # Exp. 2, per held-out environment
NB201_STEPS = 7000
REFERENCE = Path("results") / "reference"
STUDY_SWEEP = "meta_a2c_nbgraph"
STUDY_TRIALS = 30


def say(text: str) -> None:
    print(text, flush=True)


def compare(out: Path, algos: Sequence[str], seeds: Sequence[int], envs: Sequence[str], timesteps, n_jobs):
    """A comparison through the experiment layer, as ``python -m sb3_nas.compare`` runs it."""
    plan = plan_comparison(out, algos, seeds, envs=envs, timesteps=timesteps)
    say(f"{out}: {sum(p.action != 'reuse' for p in plan)} of {len(plan)} runs to do")
    done = lambda p, seconds, _where: say(f"  {p.algo} {p.seed}: {seconds:.0f} s")  # noqa: E731
    execute_plan(plan, n_jobs=n_jobs, progress=False, on_done=done)
    return plan


def publish(comparison, out: Path, stage: str) -> None:
    markdown, _ = write_comparison(comparison, out)
    target = REFERENCE / f"tabular-{stage}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(markdown, target / "comparison.md")
    say(f"{stage}: {target / 'comparison.md'}")


def frozen_records(
    models: Path, out: Path, seeds: Sequence[int], envs: Sequence[str], label: str
) -> list[RunRecord]:
    """Each seed's frozen meta_a2c policy of the comparison in ``models`` on ``envs`` (Experiment 2)."""
    records = []
    for seed in seeds:
        folder = out / label / f"seed-{seed}"
        steps = folder / "steps.csv"
        if not steps.is_file() or len(pd.read_csv(steps, usecols=["env"])) < EVALUATION_STEPS * len(envs):
            model = run_folder(models, "meta_a2c", seed) / "model.zip"
            config = RunConfig.create(
                "meta_a2c", envs=envs, timesteps=[EVALUATION_STEPS] * len(envs), seed=seed, model=model
            )
            run(config, folder, progress=False, overwrite=True)
            say(f"  {label} {seed}: frozen on {', '.join(envs)}")
        record = read_run_record(folder, seed, DEFAULT_LAST_EPISODES)
        record.algo = label
        records.append(record)
    return records


def experiment_2(root: Path, models: Path, seeds, envs, stage: str, n_jobs: int) -> None:
    out = root / stage
    plan = compare(out, ("dqn", "random"), seeds, envs, [EVALUATION_STEPS] * len(envs), n_jobs)
    frozen = frozen_records(models, out, seeds, envs, "meta_a2c_frozen")
    scratch = [read_run_record(p.folder, p.seed, DEFAULT_LAST_EPISODES) for p in plan]
    algos = ["meta_a2c_frozen", "dqn", "random"]
    budgets = {algo: dict.fromkeys(envs, EVALUATION_STEPS) for algo in algos}
    publish(build_comparison([*frozen, *scratch], algos, envs, budgets), out, stage)


def study(root: Path) -> dict:
    storage = f"sqlite:///{root / 'optuna.sqlite'}"
    command = [sys.executable, "-m", "sb3_nas.sweep", "--sweep", STUDY_SWEEP, "--storage", storage,
               "--out", str(root / "study"), "--n-trials", str(STUDY_TRIALS), "--no-progress"]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    (name,) = optuna.get_all_study_names(storage)
    best = optuna.load_study(study_name=name, storage=storage).best_trial
    say(f"study {name}: best trial {best.number}, value {best.value:.4f}, {best.params}")
    return dict(best.params)


def tuned(root: Path, seeds, params: dict) -> None:
    out = root / "tuned"
    records = []
    for seed in seeds:
        folder = run_folder(out, "meta_a2c_tuned", seed)
        config = RunConfig.create("meta_a2c", envs=TRAIN, timesteps="paper", seed=seed, hyperparams=params)
        steps = folder / "steps.csv"
        if not steps.is_file() or len(pd.read_csv(steps, usecols=["env"])) < sum(config.timesteps):
            run(config, folder, progress=False, overwrite=True)
            say(f"  meta_a2c_tuned {seed}: {params}")
        record = read_run_record(folder, seed, DEFAULT_LAST_EPISODES)
        record.algo = "meta_a2c_tuned"
        records.append(record)
    paper = [read_run_record(run_folder(root / "exp1", algo, seed), seed, DEFAULT_LAST_EPISODES)
             for algo in ("meta_a2c", "random") for seed in seeds]  # fmt: skip
    algos = ["meta_a2c_tuned", "meta_a2c", "random"]
    baseline = RunConfig.create("random", envs=TRAIN, timesteps="paper")
    configs = {"meta_a2c_tuned": config, "meta_a2c": config, "random": baseline}
    budgets = {algo: dict(zip(TRAIN, c.timesteps, strict=True)) for algo, c in configs.items()}
    publish(build_comparison([*records, *paper], algos, TRAIN, budgets), out, "tuned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="exp1,exp2,nb201,analog,study,tuned")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--root", type=Path, default=Path("results") / "tabular")
    args = parser.parse_args()
    seeds, root, stages = list(range(args.seeds)), args.root, args.stages.split(",")
    if "exp1" in stages:
        plan = compare(root / "exp1", ALGOS, seeds, TRAIN, "paper", args.n_jobs)
        publish(compare_plan(plan), root / "exp1", "exp1")
    if "exp2" in stages:
        experiment_2(root, root / "exp1", seeds, HELD_OUT, "exp2", args.n_jobs)
    if "nb201" in stages:
        plan = compare(root / "nb201", ALGOS, seeds, NB201, [NB201_STEPS], args.n_jobs)
        publish(compare_plan(plan), root / "nb201", "nb201")
    if "analog" in stages:
        compare(root / "digital", ("meta_a2c",), seeds, DIGITAL, "paper", args.n_jobs)
        experiment_2(root, root / "digital", seeds, ANALOG, "analog", args.n_jobs)
    if "study" in stages or "tuned" in stages:
        params = study(root)
        if "tuned" in stages:
            tuned(root, seeds, params)


if __name__ == "__main__":
    main()
