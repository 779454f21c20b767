"""Tabular benchmarks as decoded arrays: every architecture of a space trained once, a reward a look-up.

A benchmark's raw table ships inside its wheel as a pickle. It is read once with the restricted unpickler
(:mod:`sb3_nas.estimation.safe_pickle`) and decoded into dense float64 arrays over the space's architectures
in table order (:class:`~sb3_nas.space.decisions.DecisionSpace`), NaN where the table holds none. The arrays
are stored as an ``.npz`` (read back with ``allow_pickle=False``) in the data cache folder
(``$SB3_NAS_DATA_CACHE``, else ``results/data_cache``), keyed by the source file's path, size and time, so a
later process maps them in milliseconds.

- **NAS-Bench-Graph** (``nas-bench-graph``): ``light/<dataset>.bench``, a dict keyed by the package's
  canonical hash of equivalent DAGs (``Arch(link, ops).valid_hash()``, called here for every combination of
  choices: the benchmark's own canonical form), each entry ``valid_perf``, ``perf`` (test), ``latency`` and
  ``para`` (parameters, millions).
- **NAS-Bench-201 on CIFAR-10** (``analog-nasbench``): ``data.anb``, a dict keyed by the 6-tuple of op
  indices of ``Architecture`` records holding the digital ``baseline_accuracy``, the hardware-aware
  accuracies and the drift measurements (value ± uncertainty; the value is kept), in percent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sb3_nas.data.cache import cache_dir
from sb3_nas.errors import InputError
from sb3_nas.estimation.safe_pickle import NUMPY_GLOBALS, Record, TablePickleError, load_restricted
from sb3_nas.space import nasbench201, nasbench_graph
from sb3_nas.space.decisions import DecisionSpace

TABLE_FORMAT = 1  # bump when decoding changes, so that old cache entries are not reused
TABLE_PREFIX = "table"


class BenchmarkError(InputError):
    """A tabular benchmark that cannot be used: an unknown name, dataset or metric, or a missing package."""


@dataclass(frozen=True)
class Benchmark:
    """A tabular benchmark: its space, datasets, metrics and where its raw tables ship."""

    key: str  # the spec prefix: nbgraph, nb201
    title: str
    space: DecisionSpace
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]  # the validation metrics a reward may be (the first is the default)
    package: str  # its distribution on the package index
    module: str  # its import name, located without importing it
    files: Callable[[Path, str], Path]  # (package folder, dataset) → the raw table
    decode: Callable[[Path, str], dict[str, np.ndarray]]  # (raw table, dataset) → arrays in table order

    def source(self, dataset: str) -> Path:
        """The raw table of ``dataset`` inside the installed package."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise BenchmarkError(
                f"the {self.title} benchmark needs the {self.package} package: pip install {self.package}"
            )
        path = self.files(Path(next(iter(spec.submodule_search_locations))), dataset)
        if not path.is_file():
            raise BenchmarkError(f"the {self.package} package lacks its table {path}")
        return path


# -- NAS-Bench-Graph ----------------------------------------------------------------------------------------


def _nbgraph_hashes() -> np.ndarray:
    """The package's canonical hash of every architecture of the space, in table order."""
    from nas_bench_graph.architecture import Arch

    space = nasbench_graph.SPACE
    hashes = np.empty(space.size, dtype=np.int64)
    for index, choices in enumerate(space.all_choices()):
        notation = nasbench_graph.architecture(choices)
        hashes[index] = Arch(notation["link"], notation["ops"]).valid_hash()
    return hashes


def _raw_table(path: Path, allowed: dict) -> dict:
    """The dict of architectures a benchmark pickled, read with only the globals of ``allowed``."""
    raw = load_restricted(path, allowed)
    if not isinstance(raw, dict):
        raise TablePickleError(f"benchmark table {path} is not a dict of architectures")
    return raw


def _decode_nbgraph(path: Path, dataset: str) -> dict[str, np.ndarray]:
    raw = _raw_table(path, NUMPY_GLOBALS)
    hashes = _nbgraph_hashes()
    columns = {"validation": "valid_perf", "test": "perf", "latency": "latency", "n_params": "para"}
    arrays = {name: np.full(len(hashes), np.nan) for name in columns}
    allowed = set(nasbench_graph.operations_of(dataset))
    choices = nasbench_graph.SPACE.all_choices()
    in_set = np.isin(choices[:, 1:], [nasbench_graph.OPERATIONS.index(op) for op in allowed]).all(axis=1)
    for index, key in enumerate(hashes.tolist()):
        entry = raw.get(key)
        if entry is None or not in_set[index]:
            continue
        try:
            for name, field in columns.items():
                arrays[name][index] = float(entry[field])
        except (KeyError, TypeError, ValueError) as error:
            raise TablePickleError(f"benchmark table {path}: entry {key} lacks a number ({error})") from None
    arrays["hash"] = hashes
    return arrays


NAS_BENCH_GRAPH = Benchmark(
    key=nasbench_graph.BENCHMARK,
    title="NAS-Bench-Graph",
    space=nasbench_graph.SPACE,
    datasets=nasbench_graph.DATASETS,
    metrics=("valid_perf",),
    package="nas-bench-graph",
    module="nas_bench_graph",
    files=lambda folder, dataset: folder / "light" / f"{dataset}.bench",
    decode=_decode_nbgraph,
)


# -- NAS-Bench-201 (AnalogNAS-Bench) ------------------------------------------------------------------------


def _decode_nb201(path: Path, _dataset: str) -> dict[str, np.ndarray]:
    allowed = {**NUMPY_GLOBALS, **{("analognasbench.data", name): Record for name in nasbench201.RECORDS}}
    raw = _raw_table(path, allowed)
    space = nasbench201.SPACE
    arrays = {metric: np.full(space.size, np.nan) for metric in nasbench201.METRICS}
    for key, record in raw.items():
        try:
            index = space.flat_index(tuple(int(op) for op in key))
            for metric in nasbench201.METRICS:
                value = getattr(record, metric)
                arrays[metric][index] = float(value.value if isinstance(value, Record) else value)
        except (AttributeError, TypeError, ValueError) as error:
            raise TablePickleError(f"benchmark table {path}: entry {key!r} is malformed ({error})") from None
    return arrays


NAS_BENCH_201 = Benchmark(
    key=nasbench201.BENCHMARK,
    title="NAS-Bench-201 (AnalogNAS-Bench)",
    space=nasbench201.SPACE,
    datasets=nasbench201.DATASETS,
    metrics=nasbench201.ACCURACIES,
    package="analog-nasbench",
    module="analognasbench",
    files=lambda folder, _dataset: folder / "data.anb",
    decode=_decode_nb201,
)

BENCHMARKS: dict[str, Benchmark] = {b.key: b for b in (NAS_BENCH_GRAPH, NAS_BENCH_201)}


# -- the decode-once cache ----------------------------------------------------------------------------------

_DECODED: dict[tuple[str, str], dict[str, np.ndarray]] = {}


def _entry_path(benchmark: Benchmark, dataset: str, source: Path) -> Path:
    stat = source.stat()
    identity = [TABLE_FORMAT, benchmark.key, dataset, str(source.resolve()), stat.st_size, stat.st_mtime_ns]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
    return cache_dir() / f"{TABLE_PREFIX}-{benchmark.key}-{dataset}-{key}.npz"


def decoded_arrays(benchmark: Benchmark, dataset: str) -> dict[str, np.ndarray]:
    """The decoded arrays of ``dataset``'s table: from this process, else the cache, else decoded and stored
    (a cache that cannot be written is skipped: the arrays are decoded again next time)."""
    if (benchmark.key, dataset) in _DECODED:
        return _DECODED[(benchmark.key, dataset)]
    source = benchmark.source(dataset)
    path = _entry_path(benchmark, dataset, source)
    arrays = None
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError):
            arrays = None  # a damaged entry is decoded again
    if arrays is None:
        arrays = benchmark.decode(source, dataset)
        _store(path, arrays)
    for array in arrays.values():
        array.setflags(write=False)
    _DECODED[(benchmark.key, dataset)] = arrays
    return arrays


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)


def clear_table_cache() -> None:
    """Forget the tables decoded in this process (the on-disk entries stay)."""
    _DECODED.clear()
