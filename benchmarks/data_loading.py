"""Loading an image folder: the first load (decode + cache write) against a load from the decode-once cache.

    python benchmarks/data_loading.py [--images 30000] [--size 84] [--classes 100] [--format png|jpeg]

Writes a folder of ``--images`` RGB images (``--size`` square, ``--classes`` class folders) into a temporary
folder, then loads ``folder:PATH`` three times, each in a fresh Python process, with one data cache folder
that starts empty: the first load decodes every file and writes the cache entry; the second and third load
from the cache. Each process reports the wall time of ``load_dataset`` alone, then of reading every pixel
once (the content fingerprint, which a run computes anyway), and its peak resident memory from
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (which counts the cache's pages once they are read: they are
file pages shared by every process mapping the entry). The baseline is the process after importing sb3_nas
(torch, gymnasium, …). Goals: the dataset under 1 GB, a cached load under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

MEASURE = """
import json, resource, sys, time
import sb3_nas.data
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
dataset = sb3_nas.data.load_dataset(sys.argv[1])
loaded = time.perf_counter() - start
fingerprint = dataset.fingerprint
touched = time.perf_counter() - start
print(json.dumps({
    "load_s": loaded, "load_and_read_s": touched, "baseline_mb": baseline / 1024,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "shape": list(dataset.images.shape), "n_classes": dataset.n_classes,
    "data_mb": dataset.images.nbytes / 2**20, "fingerprint": fingerprint,
}))
"""


def write_class(args: tuple[Path, int, int, int, str]) -> int:
    """Write one class folder of smooth colour images (a random 6×6 pattern, upsampled, plus noise)."""
    from PIL import Image

    folder, label, count, size, fmt = args
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(label)
    written = 0
    for index in range(count):
        coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(size, size, 3))
        path = folder / f"{index:05d}.{'jpg' if fmt == 'jpeg' else 'png'}"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        written += path.stat().st_size
    return written


def measure(spec: str, cache: Path) -> dict:
    env = {**os.environ, "SB3_NAS_DATA_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, spec], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30_000)
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root, cache = Path(temporary) / "images", Path(temporary) / "cache"
        per_class = np.full(args.classes, args.images // args.classes)
        per_class[: args.images % args.classes] += 1
        start = time.perf_counter()
        jobs = [(root / f"class_{k:03d}", k, int(n), args.size, args.format) for k, n in enumerate(per_class)]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            on_disk = sum(pool.map(write_class, jobs))
        print(
            f"wrote {args.images} {args.size}x{args.size}x3 {args.format.upper()} files in "
            f"{args.classes} class folders: {on_disk / 2**20:.0f} MB on disk, "
            f"{time.perf_counter() - start:.0f} s"
        )
        spec = f"folder:{root}"
        rows = [("first (decode + cache write)", measure(spec, cache))]
        entry = sum(path.stat().st_size for path in cache.iterdir())
        rows += [(f"cached, run {k}", measure(spec, cache)) for k in (2, 3)]
        first = rows[0][1]
        print(
            f"dataset: {first['shape']} uint8, {first['n_classes']} classes, "
            f"{first['data_mb']:.0f} MB in memory; cache entry {entry / 2**20:.0f} MB; "
            "memory: peak RSS (getrusage ru_maxrss) of each process"
        )
        print(f"{'load':<30} {'load_dataset s':>14} {'+ read all s':>12} {'baseline MB':>11} {'peak MB':>8}")
        for label, row in rows:
            assert row["fingerprint"] == first["fingerprint"]
            print(
                f"{label:<30} {row['load_s']:>14.2f} {row['load_and_read_s']:>12.2f} "
                f"{row['baseline_mb']:>11.0f} {row['peak_mb']:>8.0f}"
            )
        cached = max(row["load_and_read_s"] for _, row in rows[1:])
        print(
            f"data_mb={first['data_mb']:.0f} first_load_s={first['load_and_read_s']:.1f} "
            f"cached_load_s={cached:.2f} first_peak_mb={first['peak_mb']:.0f} "
            f"cached_peak_mb={max(row['peak_mb'] for _, row in rows[1:]):.0f} "
            f"goals_met={first['data_mb'] < 1024 and cached < 5}"
        )


if __name__ == "__main__":
    main()
