#!/usr/bin/env bash
# The paper's three experiments at a reduced scale on the built-in tasks, end to end (about an hour on two CPU
# cores with an empty memo). Runs land in $RUNS (default results/runs/reduced); the small reports worth keeping
# are copied to results/reference/reduced/ by the last step. Every step reuses the shared reward memo, so a
# second invocation mostly replays memo hits (--overwrite replaces the earlier run folders).
set -euo pipefail
RUNS=${RUNS:-results/runs/reduced}
KEEP=${KEEP:-results/reference/reduced}
mkdir -p "$RUNS" "$KEEP"
log() { echo "[$(date +%H:%M:%S)] $*"; }

# Experiment 1 (§6.1): digits → photos → textures, 160 / 140 / 140 steps, cpu fidelity, seed 0.
for algo in meta_a2c dqn random; do
  log "exp1 $algo"
  python -m sb3_nas.train --algo "$algo" --out "$RUNS/exp1-$algo" --overwrite --no-progress
done

# Experiment 2 (§6.1): the frozen MetaA2C policy on the held-out tasks, next to random search and DQN learning
# from scratch on the same tasks and budget; then the two best networks per task retrained against VGG.
log "exp2 frozen meta_a2c"
python -m sb3_nas.evaluate --model "$RUNS/exp1-meta_a2c/model.zip" --envs mnist,mnist_noisy --timesteps 140 \
  --out "$RUNS/exp2-meta_a2c" --overwrite --no-progress </dev/null
for algo in random dqn; do
  log "exp2 $algo"
  python -m sb3_nas.train --algo "$algo" --envs mnist,mnist_noisy --timesteps 140 --out "$RUNS/exp2-$algo" \
    --overwrite --no-progress
done
log "exp2 retrain"
python -m sb3_nas.retrain --run "$RUNS/exp2-meta_a2c" --top 2 --runs 2 --epochs 5 --no-progress

# Experiment 3 (§6.2): multi-branch MetaA2C (τ 20, j 10 from zoo_configs) with batch 64, σ 0.0 and 0.1.
for sigma in 0.0 0.1; do
  log "exp3 sigma $sigma"
  python -m sb3_nas.train --algo meta_a2c --multi-branch --sigma "$sigma" --envs digits --timesteps 400 \
    --fidelity cpu,batch_size=64 --out "$RUNS/exp3-sigma$sigma" --overwrite --no-progress
done

log "reports"
python -m sb3_nas.report "$RUNS"/exp1-* --out "$RUNS/exp1-report.html"
python -m sb3_nas.report "$RUNS"/exp2-* --out "$RUNS/exp2-report.html"
python -m sb3_nas.report "$RUNS"/exp3-* --out "$RUNS/exp3-report.html"
python -m sb3_nas.summary "$RUNS" --out "$KEEP"
log "done"
