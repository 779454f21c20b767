"""How faithfully a cheap fidelity ranks networks like the paper's: the pieces of
``benchmarks/fidelity.py``.

- The chain space at an input size, counted with the builder's own shape rule (:func:`spatial_size`, no
  training): valid chains per depth and the share of random chains that are invalid.
- A seeded sample of distinct chains, stratified by depth and drawn uniformly among the valid chains of each
  depth (by the counts, not by rejection, so deep chains at small inputs are found too).
- Rank agreement of two accuracy vectors over the same networks: Kendall τ and Spearman ρ (scipy) with
  bootstrap 95% intervals (``scipy.stats.bootstrap``, networks resampled in pairs), and the overlap of the
  top fraction.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from sb3_nas.analysis.pages import Table
from sb3_nas.space import KERNELS, LayerType, canonical_network, spatial_size, validate_nsc

# The chain space's single-input layers (Table 2, A0–A6), in action order.
CHAIN_LAYERS: tuple[tuple[LayerType, int], ...] = tuple(
    (layer_type, kernel) for layer_type, kernels in KERNELS.items() for kernel in kernels
)
STUDY_DEPTHS = tuple(range(1, 10))  # the study's depths: chains of 1–9 layers


@functools.cache
def valid_continuations(size: int, depth: int) -> int:
    """The number of sequences of ``depth`` chain layers that keep an input of ``size`` × ``size`` at a
    spatial size of at least 1 after every layer."""
    if depth == 0:
        return 1
    total = 0
    for layer_type, kernel in CHAIN_LAYERS:
        after = spatial_size(layer_type, kernel, size)
        if after >= 1:
            total += valid_continuations(after, depth - 1)
    return total


def valid_chains(image_size: int, depth: int) -> int:
    """Valid chains of exactly ``depth`` layers on ``image_size`` × ``image_size`` inputs."""
    return valid_continuations(image_size, depth)


def invalid_share(image_size: int, depths: Sequence[int] = STUDY_DEPTHS) -> float:
    """The share of random chains that are invalid: a depth drawn uniformly from ``depths``, then every layer
    uniformly among the seven single-input layers."""
    n = len(CHAIN_LAYERS)
    return 1.0 - float(np.mean([valid_chains(image_size, d) / n**d for d in depths]))


def chain_rows(layers: Sequence[tuple[LayerType, int]]) -> list[tuple[int, int, int, int, int]]:
    """NSC rows of a chain: layer i reads layer i − 1 (node 0 is the image)."""
    return [(i, int(t), k, i - 1, 0) for i, (t, k) in enumerate(layers, start=1)]


def _draw_valid_chain(image_size: int, depth: int, rng: np.random.Generator) -> list[tuple[LayerType, int]]:
    """One chain of ``depth`` layers drawn uniformly among the valid ones at ``image_size``."""
    size, layers = image_size, []
    for left in range(depth, 0, -1):
        options, weights = [], []
        for layer in CHAIN_LAYERS:
            after = spatial_size(*layer, size)
            if after >= 1 and valid_continuations(after, left - 1):
                options.append((layer, after))
                weights.append(valid_continuations(after, left - 1))
        pick = rng.choice(len(options), p=np.asarray(weights) / sum(weights))
        layer, size = options[pick]
        layers.append(layer)
    return layers


def sample_chains(
    n: int,
    image_size: int,
    seed: int,
    depths: Sequence[int] = STUDY_DEPTHS,
    exclude_valid_at: int | None = None,
) -> list[list[tuple[int, int, int, int, int]]]:
    """``n`` distinct chains valid at ``image_size``, stratified by depth: ``n`` split as evenly as the depths
    allow (the first ``n mod len(depths)`` depths get one more), each depth's chains drawn uniformly among
    its valid chains, in a seeded order.

    :param exclude_valid_at: keep only chains that are *invalid* at this (smaller) size: the networks that
        only the larger inputs allow (:func:`larger_only_depths` lists the depths that have some)
    :raises ValueError: when a depth has fewer distinct chains than asked
    """
    rng = np.random.default_rng(seed)
    per_depth = [n // len(depths) + (i < n % len(depths)) for i in range(len(depths))]
    chosen: list[list[tuple[int, int, int, int, int]]] = []
    for depth, count in zip(depths, per_depth, strict=True):
        available = valid_chains(image_size, depth)
        if exclude_valid_at is not None:
            available -= valid_chains(exclude_valid_at, depth)
        if available < count:
            raise ValueError(
                f"depth {depth} has {available} chains to draw from at {image_size}, not {count}"
            )
        seen: set[str] = set()
        while len(seen) < count:
            layers = _draw_valid_chain(image_size, depth, rng)
            if exclude_valid_at is not None and _is_valid(layers, exclude_valid_at):
                continue
            rows = chain_rows(layers)
            key = canonical_network(validate_nsc(rows))
            if key not in seen:
                seen.add(key)
                chosen.append(rows)
    return chosen


def larger_only_depths(image_size: int, smaller: int, depths: Sequence[int] = STUDY_DEPTHS) -> list[int]:
    """The depths with chains valid at ``image_size`` but not at ``smaller``."""
    return [d for d in depths if valid_chains(image_size, d) > valid_chains(smaller, d)]


def _is_valid(layers: Sequence[tuple[LayerType, int]], image_size: int) -> bool:
    size = image_size
    for layer in layers:
        size = spatial_size(*layer, size)
        if size < 1:
            return False
    return True


@dataclass(frozen=True)
class Interval:
    """A statistic and its bootstrap 95% interval (``nan`` where it is undefined, e.g. a constant vector)."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.kendalltau(x, y).statistic)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.spearmanr(x, y).statistic)


def _with_interval(statistic, x: np.ndarray, y: np.ndarray, reps: int, seed: int) -> Interval:
    with warnings.catch_warnings():  # a constant vector (or resample) has no rank correlation: nan, said once
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return _bootstrapped(statistic, x, y, reps, seed)


def _bootstrapped(statistic, x: np.ndarray, y: np.ndarray, reps: int, seed: int) -> Interval:
    value = statistic(x, y)
    if not math.isfinite(value):
        return Interval(math.nan, math.nan, math.nan)
    result = stats.bootstrap(
        (x, y),
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=reps,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(value, float(low), float(high))


def top_overlap(cheap: Sequence[float], full: Sequence[float], fraction: float) -> float:
    """The share of the ``full`` top ``fraction`` (at least one network, rounded up) that the ``cheap`` top
    of the same size also holds; ties broken by order, the same way for both."""
    cheap, full = np.asarray(cheap, float), np.asarray(full, float)
    k = max(1, math.ceil(fraction * len(full)))
    top = lambda scores: set(np.argsort(-scores, kind="stable")[:k].tolist())  # noqa: E731
    return len(top(cheap) & top(full)) / k


@dataclass(frozen=True)
class RankAgreement:
    """How a cheap fidelity's accuracies rank the same networks as the reference's."""

    n: int
    kendall_tau: Interval
    spearman_rho: Interval
    top10: float
    top25: float


def rank_agreement(
    cheap: Sequence[float], full: Sequence[float], reps: int = 9999, seed: int = 0
) -> RankAgreement:
    """Kendall τ and Spearman ρ of ``cheap`` against ``full`` (the same networks in the same order) with
    percentile-bootstrap 95% intervals over networks, and the top-10% and top-25% overlaps."""
    x, y = np.asarray(cheap, float), np.asarray(full, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(
            f"rank agreement needs two equal-length vectors of at least 3, got {x.shape}, {y.shape}"
        )
    return RankAgreement(
        n=len(x),
        kendall_tau=_with_interval(_kendall, x, y, reps, seed),
        spearman_rho=_with_interval(_spearman, x, y, reps, seed),
        top10=top_overlap(x, y, 0.10),
        top25=top_overlap(x, y, 0.25),
    )


def frame_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a Markdown table: numbers right-aligned, floats with ``digits`` decimals, text left."""
    return Table.from_frame(frame, f"{{:.{digits}f}}").markdown()
