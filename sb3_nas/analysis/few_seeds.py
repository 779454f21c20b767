"""Statistics for comparisons over few seeds (Agarwal et al., 2021, *Deep reinforcement learning at the
edge of the statistical precipice*): interquartile means, stratified-bootstrap intervals, probability of
improvement.

The statistics are rliable's (the package of Agarwal et al.), computed here with numpy and scipy: rliable
1.2.0 (the latest) requires ``arch<8``, and arch 7 fails on import under pandas 3 (pandas'
``deprecate_kwarg()`` changed its signature), so rliable cannot be installed beside this project's pandas.
The definitions are the same:

- **IQM**, the interquartile mean: ``scipy.stats.trim_mean(scores, 0.25)`` (rliable's ``aggregate_iqm``),
  the mean of the scores left after cutting ⌊n/4⌋ from each end. With 2 or 3 seeds nothing is cut: the IQM
  of 2 is their mean.
- **95% confidence interval**: the percentile interval of a stratified bootstrap (rliable's
  ``StratifiedBootstrap`` with ``method="percentile"``): seeds are drawn with replacement, independently
  within each environment (the strata); per environment that is the plain bootstrap over seeds. With 1 seed
  there is no interval (every resample is the same run); with 2 it spans little more than the two values.
- **probability of improvement** P(X > Y): over all pairs of a run of X and a run of Y, the share in which
  X scores higher, ties counting one half (the Mann–Whitney U over m·n; rliable's
  ``probability_of_improvement``), averaged over environments for "all environments"; its interval
  resamples X's and Y's seeds independently within each environment (rliable's
  ``StratifiedIndependentBootstrap``).
- **sample-efficiency curves**: the best accuracy found so far after each environment step, IQM over seeds
  with the bootstrap interval at each step drawn as a band.

Each interval's resamples come from a generator seeded by the comparison's seed and the cell's name, so the
numbers are reproducible and do not move when other algorithms or environments are added.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import trim_mean

from sb3_nas.analysis.pages import MISSING

IQM_CUT = 0.25  # the share cut from each end: the interquartile mean
CONFIDENCE = 0.95
DEFAULT_REPS = 50_000  # bootstrap resamples per interval, rliable's default
BOOTSTRAP_SEED = 0
_BLOCK = 4_000_000  # array elements per bootstrap chunk: bounds memory whatever the reps


# -- statistics -------------------------------------------------------------------------------------------


def iqm(values: np.ndarray | Sequence[float], axis: int | None = None) -> np.ndarray | float:
    """The interquartile mean: the mean after cutting ⌊n/4⌋ values from each end (rliable's aggregate_iqm)."""
    return trim_mean(np.asarray(values, dtype=float), IQM_CUT, axis=axis)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% bootstrap interval (``low``/``high`` NaN when there is none) over ``n``
    seeds."""

    point: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def format(self, spec: str = "{:.4f}") -> str:
        """``0.9120 [0.8900, 0.9340]``; :data:`~sb3_nas.analysis.pages.MISSING` without a value; the point
        alone, marked, without interval."""
        if not math.isfinite(self.point):
            return MISSING
        point = spec.format(self.point)
        if self.has_interval:
            return f"{point} [{spec.format(self.low)}, {spec.format(self.high)}]"
        return f"{point} (no interval)"


def cell_rng(seed: int, *names: object) -> np.random.Generator:
    """The bootstrap generator of one cell: seeded by ``seed`` and the cell's names, nothing else."""
    key = zlib.crc32("\x1f".join(map(str, names)).encode())
    return np.random.default_rng([seed, key])


def _percentile_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return low, high


def _chunks(reps: int, per_rep: int) -> list[int]:
    size = max(1, _BLOCK // max(1, per_rep))
    return [min(size, reps - start) for start in range(0, reps, size)]


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def _iqm_of_rows(samples: np.ndarray) -> np.ndarray:
    """:func:`iqm` along the last axis, as ``trim_mean`` cuts (⌊n/4⌋ from each end), by one sort."""
    n = samples.shape[-1]
    cut = int(IQM_CUT * n)
    return np.sort(samples, axis=-1)[..., cut : n - cut].mean(axis=-1)


def iqm_interval(scores: Sequence[float] | np.ndarray, reps: int, rng: np.random.Generator) -> Interval:
    """The IQM over seeds of one environment's scores with its bootstrap interval; NaN scores are left out."""
    x = _finite(scores)
    n = len(x)
    if n == 0:
        return Interval(math.nan)
    point = float(iqm(x))
    if n < 2:
        return Interval(point, n=n)
    samples = np.concatenate(
        [_iqm_of_rows(x[rng.integers(0, n, size=(size, n))]) for size in _chunks(reps, n)]
    )
    low, high = _percentile_interval(samples)
    return Interval(point, float(low), float(high), n)


def _improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) over every pair of a run of X (``x``) and a run of Y (``y``)."""
    return float(_pair_scores(x, y).mean())


def _pair_scores(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where x_i > y_j, ½ where equal, 0 where lower: the Mann–Whitney kernel."""
    difference = x[:, None] - y[None, :]
    return (difference > 0) + 0.5 * (difference == 0)


def probability_of_improvement(
    x_tasks: Sequence[Sequence[float]], y_tasks: Sequence[Sequence[float]]
) -> float:
    """rliable's probability of improvement: per task P(X > Y) + ½ P(X = Y) over all pairs of runs, averaged
    over the tasks (a task where X or Y has no finite score is left out; NaN when none is left)."""
    pairs = [(_finite(x), _finite(y)) for x, y in zip(x_tasks, y_tasks, strict=True)]
    pairs = [(x, y) for x, y in pairs if len(x) and len(y)]
    if not pairs:
        return math.nan
    return float(np.mean([_improvement(x, y) for x, y in pairs]))


def improvement_interval(
    x_tasks: Sequence[Sequence[float]],
    y_tasks: Sequence[Sequence[float]],
    reps: int,
    rng: np.random.Generator,
) -> Interval:
    """:func:`probability_of_improvement` with its interval: X's and Y's seeds resampled independently
    within each task. No interval when every task has a single run of each."""
    pairs = [(_finite(x), _finite(y)) for x, y in zip(x_tasks, y_tasks, strict=True)]
    pairs = [(x, y) for x, y in pairs if len(x) and len(y)]
    if not pairs:
        return Interval(math.nan)
    point = probability_of_improvement([x for x, _ in pairs], [y for _, y in pairs])
    n = min(min(len(x), len(y)) for x, y in pairs)
    if all(len(x) < 2 and len(y) < 2 for x, y in pairs):
        return Interval(point, n=n)
    total = np.zeros(reps)
    for x, y in pairs:  # a resample is how often it draws each run: P = counts_x · S · counts_y / (n m)
        kernel, start = _pair_scores(x, y), 0
        for size in _chunks(reps, len(x) + len(y)):
            counts_x, counts_y = _draw_counts(len(x), size, rng), _draw_counts(len(y), size, rng)
            total[start : start + size] += ((counts_x @ kernel) * counts_y).sum(axis=1) / (len(x) * len(y))
            start += size
    low, high = _percentile_interval(total / len(pairs))
    return Interval(point, float(low), float(high), n)


def _draw_counts(n: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` runs is drawn in each of ``reps`` resamples of ``n`` draws with replacement."""
    draws = rng.integers(0, n, size=(reps, n)) + n * np.arange(reps)[:, None]
    return np.bincount(draws.ravel(), minlength=reps * n).reshape(reps, n).astype(float)


def iqm_band(curves: np.ndarray, reps: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """IQM over seeds (rows) at each point (columns) with the bootstrap interval at each point, seeds
    resampled jointly across points (a seed's curve stays whole); ``low``/``high`` are NaN with one seed."""
    curves = np.asarray(curves, dtype=float)
    n, points = curves.shape
    point = np.asarray(iqm(curves, axis=0), dtype=float)
    if n < 2:
        return point, np.full(points, np.nan), np.full(points, np.nan)
    by_point = curves.T  # (points, n): a resample draws whole seeds, the same ones at every point
    samples = np.concatenate(
        [_iqm_of_rows(by_point[:, rng.integers(0, n, size=(size, n))]) for size in _chunks(reps, n * points)],
        axis=1,
    )
    low, high = _percentile_interval(samples.T)
    return point, low, high
