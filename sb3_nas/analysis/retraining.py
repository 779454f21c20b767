"""Experiment 2's intensive retraining (§6.1, Table 6): the best designed networks against a two-block VGG-19.

The searched networks get 2^(4+i) filters in their i-th convolution (32 → 64 → 128) and a 4096-unit dense
layer; every network, the VGG baseline included, is trained on the same data and split as the search's
fidelity with Adam and an exponentially decaying learning rate, several times with different seeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from sb3_nas.analysis.pages import Table
from sb3_nas.analysis.run import Run
from sb3_nas.analysis.stats import STD_DDOF, best_networks
from sb3_nas.data import load_dataset
from sb3_nas.estimation import Fidelity, PreparedData, evaluate_network, prepare_data
from sb3_nas.space import DROPOUT, InvalidArchitecture, build_network

RETRAIN_EPOCHS = 100  # §6.1 Exp. 2
RETRAIN_RUNS = 5  # Table 6: five independent trainings
RETRAIN_TOP = 2  # the two best networks per environment
RETRAIN_DENSE_UNITS = 4096  # the first dense layer of the prediction module, §6.1 Exp. 2
# Exponential decay per epoch; about the reference's ×0.9 every 100 Adam steps (its VGG benchmark) at the
# paper's dataset sizes (50–60 batches of 128 per epoch).
LR_DECAY_PER_EPOCH = 0.95
VGG_BLOCKS = (64, 128)  # VGG-19's first two blocks: two 3×3 same-padded convolutions each, then max-pooling
VGG_LABEL = "VGG19-like"
RETRAIN_DIR = "retrain"  # where sb3_nas.retrain writes inside a run folder, and the report looks
RESULT_COLUMNS = [
    "env",
    "architecture",
    "nsc",
    "early_stop_accuracy",
    "run",
    "seed",
    "accuracy",
    "n_params",
    "train_seconds",
    "reason",
]


def retrain_filters(conv_count: int) -> int:
    """Filters of the ``conv_count``-th convolution (counting from 1) when retraining: 2^(4+i)."""
    return 2 ** (4 + conv_count)


class VGGTwoBlocks(nn.Sequential):
    """The baseline of Table 6: VGG-19 cut to its first two blocks, then two dense layers and the classifier.

    Each block is two 3×3 convolutions with same padding and ReLU, then a 2×2 max-pooling; the prediction
    module is Flatten → (Linear(4096) → ReLU → Dropout) × 2 → Linear(n_classes).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        n_classes: int,
        blocks: tuple[int, ...] = VGG_BLOCKS,
        dense_units: int = RETRAIN_DENSE_UNITS,
        dropout: float = DROPOUT,
    ) -> None:
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for filters in blocks:
            for _ in range(2):
                layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU()]
                channels = filters
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        if min(height, width) < 1:
            raise InvalidArchitecture(
                f"{len(blocks)} VGG blocks need images of at least {2 ** len(blocks)} px"
            )
        dense: list[nn.Module] = []
        for in_features in (channels * height * width, dense_units):
            dense += [nn.Linear(in_features, dense_units), nn.ReLU(), nn.Dropout(dropout)]
        super().__init__(*layers, nn.Flatten(), *dense, nn.Linear(dense_units, n_classes))


@dataclass(frozen=True)
class Candidate:
    """A network to retrain: a designed one (with its NSC and early-stop accuracy) or the VGG baseline."""

    env: str
    architecture: str  # the Table 6 column
    nsc: str = ""  # JSON rows; empty for the baseline
    early_stop_accuracy: float = float("nan")
    rank: int = 0  # by reward among the run's networks in ``env``; 0 for the baseline

    def build(self, data: PreparedData) -> nn.Module:
        """The network for ``data``'s images; raises ``InvalidArchitecture`` if they are too small for it."""
        if not self.nsc:
            return VGGTwoBlocks(data.input_shape, data.n_classes)
        return build_network(
            json.loads(self.nsc),
            data.input_shape,
            data.n_classes,
            conv_filters=retrain_filters,
            dense_units=RETRAIN_DENSE_UNITS,
        )


def ordinal(rank: int) -> str:
    """1st, 2nd, 3rd, 4th, …"""
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix}"


def candidates(run: Run, top: int = RETRAIN_TOP, envs: list[str] | None = None) -> list[Candidate]:
    """Per environment (default: all of the run's): the ``top`` networks by reward, then the baseline."""
    found = []
    for env in run.envs if envs is None else envs:
        for network in best_networks(run, env, top):
            found.append(
                Candidate(
                    env,
                    f"{run.algo} ({ordinal(network.rank)})",
                    network.nsc_json,
                    network.accuracy,
                    network.rank,
                )
            )
        found.append(Candidate(env, VGG_LABEL))
    return found


def retrain_fidelity(base: Fidelity, epochs: int, seed: int) -> Fidelity:
    """``base``'s data and optimiser for ``epochs`` epochs, the lr ×LR_DECAY_PER_EPOCH after each one."""
    return base.replace(
        name=f"{base.name}-retrain",
        epochs=epochs,
        lr_decay_every=1,
        lr_decay_factor=LR_DECAY_PER_EPOCH,
        lr_schedule=True,
        seed=seed,
    )


def train_candidate(
    candidate: Candidate, data: PreparedData, fidelity: Fidelity, keep: list[nn.Module] | None = None
) -> dict[str, object]:
    """Train one candidate from scratch (weights and batch order seeded by ``fidelity.seed``) and score it.

    :param keep: where to append the network trained (it is otherwise discarded)
    :return: ``accuracy`` (NaN when the candidate cannot be built for ``data``'s images, 0 when its training
        failed, as the early-stop estimator scores it), ``n_params``, ``train_seconds`` and ``reason``
    """

    def build() -> nn.Module:
        network = candidate.build(data)
        if keep is not None:
            keep.append(network)
        return network

    try:
        result = evaluate_network(build, data, fidelity)
    except InvalidArchitecture as error:
        size = f"{data.input_shape[1]}×{data.input_shape[2]}"
        return {
            "accuracy": float("nan"),
            "n_params": 0,
            "train_seconds": 0.0,
            "reason": f"not buildable on {size} images: {error.reason}",
        }
    return {
        "accuracy": result.accuracy,
        "n_params": result.n_params,
        "train_seconds": result.train_seconds,
        "reason": result.reason,
    }


def retrain(
    run: Run,
    fidelity: Fidelity,
    top: int = RETRAIN_TOP,
    runs: int = RETRAIN_RUNS,
    epochs: int = RETRAIN_EPOCHS,
    seed: int = 0,
    envs: list[str] | None = None,
    on_result: Callable[[dict[str, object]], None] | None = None,
    device: str | torch.device | None = None,
    on_network: Callable[[Candidate, nn.Module, PreparedData, dict[str, object]], None] | None = None,
) -> pd.DataFrame:
    """Retrain the best networks of ``run`` and the baseline ``runs`` times each (seeds seed, seed+1, …).

    :param fidelity: the image size, channels, split and optimiser (the run's fidelity by default)
    :param envs: the environments to retrain on (default: all of the run's)
    :param device: where to train (``None``/``"auto"``: the GPU when there is one, else the CPU)
    :param on_network: given each designed network's first training (seed ``seed``) when it succeeded: the
        candidate, the trained network, its data and its result row
    :return: one row per training, ``RESULT_COLUMNS``
    """
    rows = []
    for candidate in candidates(run, top, envs):
        # cached per dataset, fidelity and device
        data = prepare_data(load_dataset(candidate.env), fidelity, device)
        for index in range(runs):
            kept: list[nn.Module] = []
            result = train_candidate(candidate, data, retrain_fidelity(fidelity, epochs, seed + index), kept)
            row = {
                "env": candidate.env,
                "architecture": candidate.architecture,
                "nsc": candidate.nsc,
                "early_stop_accuracy": candidate.early_stop_accuracy,
                "run": index + 1,
                "seed": seed + index,
                **result,
            }
            rows.append(row)
            if on_network is not None and index == 0 and candidate.nsc and kept and not result["reason"]:
                on_network(candidate, kept[-1], data, row)
            if on_result is not None:
                on_result(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Table 6 in long form: accuracy (%) mean and 2 std over the runs, per environment and architecture."""
    rows = []
    for (env, architecture), group in results.groupby(["env", "architecture"], sort=False):
        accuracy = group["accuracy"].dropna().to_numpy() * 100
        rows.append(
            {
                "env": env,
                "architecture": architecture,
                "nsc": group["nsc"].fillna("").iloc[0],
                "early_stop_accuracy": group["early_stop_accuracy"].iloc[0] * 100,
                "n_params": int(group["n_params"].iloc[0]),
                "runs": len(accuracy),
                "mean": accuracy.mean() if len(accuracy) else np.nan,
                "two_std": 2 * accuracy.std(ddof=STD_DDOF) if len(accuracy) else np.nan,
                "failed": int((group["reason"].fillna("") != "").sum()),
            }
        )
    return pd.DataFrame(rows)


def table6(summary: pd.DataFrame) -> Table:
    """Table 6's layout: a row per dataset, a column per architecture, ``mean ± 2 std`` (%) in each cell."""
    cells = summary.assign(
        cell=[
            "" if np.isnan(mean) else f"{mean:.2f} ± {two_std:.2f}"
            for mean, two_std in zip(summary["mean"], summary["two_std"], strict=True)
        ]
    )
    columns = list(dict.fromkeys(summary["architecture"]))
    wide = cells.pivot(index="env", columns="architecture", values="cell").reindex(columns=columns)
    wide = wide.reindex(index=list(dict.fromkeys(summary["env"]))).fillna("")
    rows = [[env, *row] for env, row in zip(wide.index, wide.to_numpy(), strict=True)]
    return Table(["dataset", *wide.columns], rows)


def markdown_table(summary: pd.DataFrame) -> str:
    """Table 6 as Markdown, then each network's NSC and early-stop accuracy and any failed training."""
    lines = [table6(summary).markdown()]
    runs = sorted(set(summary["runs"]))
    lines += ["", f"Accuracy (%) on the test third, mean ± 2 std over {'/'.join(map(str, runs))} trainings."]
    for row in summary.itertuples(index=False):
        if row.nsc:
            lines.append(
                f"- {row.env}, {row.architecture}: early-stop accuracy {row.early_stop_accuracy:.2f}, "
                f"NSC `{row.nsc}`"
            )
        if row.failed:
            lines.append(f"- {row.env}, {row.architecture}: {row.failed} training(s) failed (see runs.csv)")
    return "\n".join(lines) + "\n"
