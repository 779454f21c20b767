"""What a checkpoint costs: seconds to write and read, bytes on disk, for MetaA2C and for DQN with the
paper's largest replay buffer (t_max / 2 = 3500 transitions on dtd).

    python benchmarks/checkpoint_cost.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from stable_baselines3 import DQN
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_nas import MetaA2C, MetaRLWrapper, NasEnv
from sb3_nas.experiment.checkpoint import CHECKPOINT_FILE, Position, load_checkpoint, save_checkpoint

REPEATS = 20


def cost(learner, folder: Path) -> tuple[float, float, int]:
    start = time.perf_counter()
    for _ in range(REPEATS):
        save_checkpoint(folder, Position(0, 100), learner, 0)
    write = (time.perf_counter() - start) / REPEATS
    start = time.perf_counter()
    load_checkpoint(folder)
    return write, time.perf_counter() - start, (folder / CHECKPOINT_FILE).stat().st_size


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        memo = f"sqlite:///{tmp}/memo.sqlite"
        meta = MetaA2C(
            "MlpLstmPolicy", DummyVecEnv([lambda: MetaRLWrapper(NasEnv("digits", "tiny", memo), 100)])
        )
        dqn = DQN("MlpPolicy", DummyVecEnv([lambda: NasEnv("digits", "tiny", memo)]), buffer_size=3500)
        dqn.replay_buffer.full = True  # the arrays are allocated whole; full makes the file hold them all
        for name, learner in (("meta_a2c", meta), ("dqn, 3500 transitions", dqn)):
            write, read, size = cost(learner, Path(tmp))
            print(f"{name}: write {write * 1e3:.1f} ms, read {read * 1e3:.1f} ms, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
