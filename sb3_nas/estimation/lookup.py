"""Table look-up as a performance-estimation strategy: the task specs that name a benchmark's table, and the
estimator that answers a reward by an array index.

Task specs, wherever a dataset name is taken (``--envs``)::

    nbgraph:<dataset>            NAS-Bench-Graph, one of its nine datasets
    nb201:cifar10[/<metric>]     NAS-Bench-201 on CIFAR-10 (AnalogNAS-Bench), a metric of its accuracies
                                 (default baseline_accuracy)

The reward is the table's **validation** accuracy (NAS-Bench-Graph's ``valid_perf``; AnalogNAS-Bench's
chosen accuracy / 100: the benchmark reports one CIFAR-10 accuracy per metric, so there its validation and
test accuracy are the same number). The **test** accuracy is never a reward; it is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sb3_nas.estimation.tables import BENCHMARKS, Benchmark, BenchmarkError, decoded_arrays
from sb3_nas.space import nasbench201

TABLE_SPEC_GRAMMAR = "nbgraph:DATASET or nb201:cifar10[/METRIC]"
NOT_IN_TABLE = "not in the benchmark's table"


def is_table_spec(text: str) -> bool:
    """Whether ``text`` names a tabular benchmark (``nbgraph:…``, ``nb201:…``)."""
    kind, sep, _ = str(text).partition(":")
    return bool(sep) and kind in BENCHMARKS


@dataclass(frozen=True)
class TableSpec:
    """A parsed task spec: the benchmark, its dataset and the metric rewards come from."""

    benchmark: Benchmark
    dataset: str
    metric: str

    @property
    def name(self) -> str:
        """The spec in its canonical spelling (the default metric left out)."""
        metric = "" if self.metric == self.benchmark.metrics[0] else f"/{self.metric}"
        return f"{self.benchmark.key}:{self.dataset}{metric}"


def parse_table_spec(text: str) -> TableSpec:
    """Parse ``nbgraph:cora`` or ``nb201:cifar10/analog_accuracy`` (one-line :class:`BenchmarkError`)."""
    kind, sep, rest = str(text).partition(":")
    if not sep or kind not in BENCHMARKS:
        raise BenchmarkError(f"task spec {text!r}: expected {TABLE_SPEC_GRAMMAR}")
    benchmark = BENCHMARKS[kind]
    dataset, _, metric = rest.strip().partition("/")
    if dataset not in benchmark.datasets:
        raise BenchmarkError(
            f"task spec {text!r}: {benchmark.title} has no dataset {dataset!r} "
            f"(known: {', '.join(benchmark.datasets)})"
        )
    metric = metric or benchmark.metrics[0]
    if metric not in benchmark.metrics:
        raise BenchmarkError(
            f"task spec {text!r}: {benchmark.title} has no metric {metric!r} "
            f"(known: {', '.join(benchmark.metrics)})"
        )
    return TableSpec(benchmark, dataset, metric)


class TableEstimator:
    """Scores architectures of a tabular benchmark by look-up: validation accuracy as reward, test accuracy
    beside it, no training and no memo (the table is the memo).

    :param spec: a task spec (``nbgraph:cora``) or a parsed :class:`TableSpec`
    """

    def __init__(self, spec: str | TableSpec) -> None:
        self.spec = spec if isinstance(spec, TableSpec) else parse_table_spec(spec)
        benchmark = self.spec.benchmark
        self.space = benchmark.space
        arrays = decoded_arrays(benchmark, self.spec.dataset)
        if benchmark is BENCHMARKS[nasbench201.BENCHMARK]:
            validation = test = arrays[self.spec.metric] / 100.0
            n_params = latency = np.full(self.space.size, np.nan)
        else:
            validation, test = arrays["validation"], arrays["test"]
            n_params, latency = arrays["n_params"], arrays["latency"]
        self.present = ~np.isnan(validation)
        self.validation = np.where(self.present, validation, 0.0)
        self.test = np.where(self.present, test, 0.0)
        self.n_params = n_params
        self.latency = latency
        self.canonical = arrays.get("hash")  # NAS-Bench-Graph's hash of equivalent DAGs; else the index
        counts = np.rint(np.nan_to_num(n_params) * 1e6).astype(np.int64)  # millions → parameters
        # Python lists: indexing one is several times faster than a numpy scalar read, and a step reads four
        self._lists = (self.present.tolist(), self.validation.tolist(), self.test.tolist())
        self._parameters = counts.tolist()

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def best_validation_index(self) -> int:
        """The architecture of the table's best validation accuracy (ties: the first in table order)."""
        return int(np.argmax(self.validation))

    @cached_property
    def best_test_accuracy(self) -> float:
        """The table's best test accuracy: what the regret is measured against."""
        return float(self.test[self.present].max())

    @cached_property
    def oracle_test_accuracy(self) -> float:
        """The test accuracy of the architecture of the best validation accuracy (the best a search by
        validation can report)."""
        return float(self.test[self.best_validation_index])

    def parameters(self, index: int) -> int:
        """The architecture's parameter count (0 where the benchmark does not give it)."""
        return self._parameters[index]

    def score(self, index: int) -> tuple[bool, float, float]:
        """``(present, validation, test)`` of flat ``index``: the environment's per-step look-up."""
        present, validation, test = self._lists
        return present[index], validation[index], test[index]
