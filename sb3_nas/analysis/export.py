"""Exporting the networks a run found: one folder per network, usable without this package.

For each environment of a run, its best networks by reward (the choice ``retrain`` makes,
:func:`~sb3_nas.analysis.stats.best_networks`) are written to ``OUT/<env>/<rank>/``: ``network.py`` (a
standalone PyTorch module, :mod:`sb3_nas.space.codegen`), ``nsc.json`` (what rebuilds it:
:mod:`sb3_nas.space.exported`), ``architecture.svg`` and ``README.md`` (a model card). Trained (``train``),
the folder also gets ``weights.safetensors`` and ``network.onnx``, checked against PyTorch under onnxruntime
on the run's test images. A tabular benchmark's architectures have no network to build: they are written as
``architecture.json`` in the benchmark's notation, with the table's accuracies.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from sb3_nas.analysis.diagram import layer_label, nsc_svg
from sb3_nas.analysis.pages import Table
from sb3_nas.analysis.run import Run
from sb3_nas.analysis.stats import best_networks
from sb3_nas.data import load_dataset
from sb3_nas.errors import InputError
from sb3_nas.estimation import (
    Fidelity,
    PreparedData,
    evaluate_network,
    get_fidelity,
    is_table_spec,
    parse_table_spec,
    prepare_data,
)
from sb3_nas.space import (
    CONV_FILTERS,
    DENSE_UNITS,
    DROPOUT,
    NetworkPlan,
    NSCNetwork,
    nasbench201,
    plan_network,
)
from sb3_nas.space.codegen import CLASS_NAME, network_source
from sb3_nas.space.exported import (
    ARCHITECTURE_FILE,
    CARD_FILE,
    DIAGRAM_FILE,
    EXPORT_FORMAT,
    NETWORK_FILE,
    NSC_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
)
from sb3_nas.space.nsc import MERGE, LayerType

EXPORT_TOP = 1  # networks per environment
ONNX_CHECK_IMAGES = 256  # test images on which the ONNX network's outputs are compared with PyTorch's
ONNX_OPSET = 18
ONNX_INLINE_BYTES = 1 << 30  # weights up to this size live inside network.onnx (protobuf's limit is 2 GiB)
EXPORT_PACKAGES = ("safetensors", "onnx", "onnxruntime", "onnxscript")
INSTALL_EXPORT = "pip install 'sb3_nas[export]'"


class ExportUsageError(InputError):
    """An export that cannot be made: no valid network in the run, an existing folder, a missing extra."""


def missing_export_packages() -> list[str]:
    """The packages of the ``export`` extra that cannot be imported here."""
    import importlib.util

    return [name for name in EXPORT_PACKAGES if importlib.util.find_spec(name) is None]


def env_folder_name(env: str) -> str:
    """A dataset spec as a folder name: ``folder:/data/x`` → ``folder_data_x``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("_") or "env"


@dataclass
class Exported:
    """One exported network (or tabular architecture): where it went and what was measured."""

    env: str
    rank: int
    folder: Path
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """One line: where it went, its reward and, when trained, the accuracy reached and the ONNX check."""
        d = self.description
        text = f"{self.env} #{self.rank}: {self.folder}"
        if "validation_accuracy" in d:  # a tabular benchmark's architecture
            return text + f" (validation {d['validation_accuracy']:.4f}, test {d['test_accuracy']:.4f})"
        details = [f"reward {d['search']['reward']:.4f}"]
        trained = d.get("training", {})
        if trained.get("accuracy") is not None:
            details.append(f"trained {trained['accuracy']:.4f}")
        elif trained.get("reason"):
            details.append(f"training failed: {trained['reason']}")
        if "onnx" in d:
            details.append(f"ONNX max |Δ| {d['onnx']['max_abs_difference']:.2e}")
        return text + f" ({', '.join(details)})"


# -- the files of one network ----------------------------------------------------------------------------


def _float_state(network: nn.Module) -> dict[str, torch.Tensor]:
    """The weights on the CPU in float32, contiguous (what safetensors stores and a plain network reads)."""
    return {
        key: (value.float() if value.is_floating_point() else value).detach().cpu().contiguous()
        for key, value in network.state_dict().items()
    }


def _images(data: PreparedData, count: int) -> torch.Tensor:
    """The first ``count`` test images as the network reads them: float NCHW in [0, 1] on the CPU."""
    return data.test_x[:count].cpu().float().div_(255.0)


def check_source(source: str, reference: nn.Module) -> None:
    """The generated module must compile and build a network with ``reference``'s ``state_dict`` keys."""
    namespace: dict[str, Any] = {}
    exec(compile(source, NETWORK_FILE, "exec"), namespace)  # our own generated text, never a user's file
    keys = list(namespace[CLASS_NAME]().state_dict())
    if keys != list(reference.state_dict()):
        raise RuntimeError("the generated network.py does not match the built network's state_dict")


def _parameter_bytes(network: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in network.state_dict().values())


def write_onnx(network: nn.Module, images: torch.Tensor, path: Path) -> float:
    """Export ``network`` to ONNX (a dynamic batch) and return the largest output difference between
    onnxruntime and PyTorch on ``images``."""
    import warnings

    import onnxruntime

    network = network.eval()
    batch = torch.export.Dim("batch", min=1)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # its notes on operators of packages not installed (torchvision's)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network,
                (images[:2],),
                str(path),
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                opset_version=ONNX_OPSET,
                dynamo=True,
                external_data=_parameter_bytes(network) > ONNX_INLINE_BYTES,
                verbose=False,
            )
    finally:
        onnx_logger.setLevel(level)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"images": images.numpy()})
    with torch.inference_mode():
        torch_out = network(images).numpy()
    return float(np.abs(onnx_out - torch_out).max())


def _layers_table(plan: NetworkPlan) -> Table:
    rows: list[list[object]] = [[0, "input", "", "{}×{}×{}".format(*plan.input_shape)]]
    for row, shape in zip(plan.rows, plan.shapes[1:], strict=True):
        sources = f"{row.pred1}, {row.pred2}" if row.type in MERGE else f"{row.pred1}"
        rows.append([row.index, layer_label(row), sources, "{}×{}×{}".format(*shape)])
    c, h, w = plan.feature_shape
    head = f"flatten → dense {plan.dense_units} → ReLU → dropout → dense {plan.n_classes}"
    rows.append(["", head, ", ".join(map(str, plan.leaves)), f"{c * h * w} features"])
    return Table(["node", "layer", "from", "output (C×H×W)"], rows, right=[True, False, False, False])


def model_card(plan: NetworkPlan, description: dict[str, Any]) -> str:
    """The README.md of an export folder: diagram, layers, size, accuracy, data, origin, how to load."""
    search, training = description.get("search", {}), description.get("training", {})
    c, h, w = plan.input_shape
    lines = [
        f"# {description['name']}",
        "",
        f"A CNN found by neural architecture search with sb3_nas ({search.get('algo', '?')}) on "
        f"`{description['dataset']}`: {len(plan.rows)} searched layers, {plan.n_params:,} parameters, "
        f"{plan.flops:,} FLOPs per image.",
        "",
        f"![architecture]({DIAGRAM_FILE})",
        "",
        "## Layers",
        "",
        _layers_table(plan).markdown(),
        "",
        f"NSC rows (index, type, kernel, predecessor 1, predecessor 2): `{json.dumps(description['nsc'])}`",
        "",
        "## Accuracy",
        "",
        f"- Found by the search: reward {search.get('reward', float('nan')):.4f} (accuracy on the test "
        f"third after the early-stop training at the `{description['fidelity']}` fidelity"
        + (f", step {search['step']})." if search.get("step") is not None else ")."),
    ]
    if training.get("accuracy") is not None:
        lines.append(
            f"- Trained for this export: accuracy {training['accuracy']:.4f} on the test third after "
            f"{training['epochs']} epoch(s), seed {training['seed']} (`{training['fidelity']}` fidelity)."
        )
    elif training.get("reason"):
        lines.append(f"- Training for this export failed: {training['reason']}.")
    if "onnx" in description:
        lines.append(
            f"- `{ONNX_FILE}` against PyTorch under onnxruntime on {description['onnx']['images']} test "
            f"images: largest output difference {description['onnx']['max_abs_difference']:.2e}."
        )
    lines += [
        "",
        "## Data",
        "",
        f"Images of `{description['dataset']}`, {description['n_classes']} classes, resized to {c}×{h}×{w} "
        "(channels × height × width), values in [0, 1], NCHW. The test third is the fidelity's split "
        f"(seed {description.get('split_seed', 0)}).",
        "",
        "## How it was found",
        "",
        f"Run `{search.get('run', '?')}` ({search.get('algo', '?')}), environment "
        f"`{description['dataset']}`, the network of rank {search.get('rank')} by reward among the "
        "distinct networks the run evaluated.",
        "",
        "## Load it",
        "",
        "```python",
        f"from network import {CLASS_NAME}  # plain PyTorch, no sb3_nas needed",
        f"model = {CLASS_NAME}().eval()",
    ]
    if (description.get("files") or {}).get("weights"):
        lines.insert(-2, "from safetensors.torch import load_file")
        lines.append(f'model.load_state_dict(load_file("{WEIGHTS_FILE}"))')
    lines += [
        "```",
        "",
        "or, with sb3_nas installed: `sb3_nas.space.load_exported(FOLDER)` (weights included when present).",
        "",
    ]
    return "\n".join(lines)


def write_network_export(
    folder: Path,
    plan: NetworkPlan,
    description: dict[str, Any],
    dropout: float = DROPOUT,
    trained: nn.Module | None = None,
    data: PreparedData | None = None,
) -> dict[str, Any]:
    """Write the files of one network into ``folder``; with ``trained`` (and ``data``, the run's images)
    also its weights and its ONNX file. Returns the description written to ``nsc.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = NSCNetwork(plan, dropout)
    source = network_source(
        plan, dropout, title=f"{description['name']}: the CNN {plan.network or '(empty)'}"
    )
    check_source(source, reference)
    files = {"network": NETWORK_FILE, "description": NSC_FILE, "card": CARD_FILE, "diagram": DIAGRAM_FILE}
    if trained is not None:
        from safetensors.torch import save_file

        state = _float_state(trained)
        save_file(state, str(folder / WEIGHTS_FILE))
        files["weights"] = WEIGHTS_FILE
        if data is not None:
            reference.load_state_dict(state)
            images = _images(data, ONNX_CHECK_IMAGES)
            difference = write_onnx(reference, images, folder / ONNX_FILE)
            description["onnx"] = {
                "images": len(images),
                "max_abs_difference": difference,
                "opset": ONNX_OPSET,
            }
            files["onnx"] = ONNX_FILE
    description["files"] = files
    (folder / NETWORK_FILE).write_text(source)
    (folder / DIAGRAM_FILE).write_text(
        nsc_svg(description["nsc"], plan.dense_units, uid=f"net-{folder.name}")
    )
    (folder / NSC_FILE).write_text(json.dumps(description, indent=2) + "\n")
    (folder / CARD_FILE).write_text(model_card(plan, description))
    return description


def network_description(
    plan: NetworkPlan,
    env: str,
    fidelity: Fidelity,
    conv_filters: int | Sequence[int] = CONV_FILTERS,
    dense_units: int = DENSE_UNITS,
    dropout: float = DROPOUT,
    **extra: Any,
) -> dict[str, Any]:
    """What ``nsc.json`` holds for a network of ``plan``: everything ``build_network`` needs, and more."""
    return {
        "format": EXPORT_FORMAT,
        "name": extra.pop("name", f"{env} network"),
        "class_name": CLASS_NAME,
        "nsc": [list(map(int, row)) for row in plan.rows],
        "network": plan.network,
        "input_shape": list(plan.input_shape),
        "n_classes": plan.n_classes,
        "build": {
            "conv_filters": conv_filters if isinstance(conv_filters, int) else list(conv_filters),
            "dense_units": dense_units,
            "dropout": dropout,
        },
        "dataset": env,
        "fidelity": fidelity.name,
        "fidelity_digest": fidelity.digest,
        "image_size": fidelity.image_size,
        "split_seed": fidelity.split_seed,
        "n_params": plan.n_params,
        "flops": plan.flops,
        **extra,
    }


def train_for_export(
    plan: NetworkPlan, data: PreparedData, fidelity: Fidelity, dropout: float = DROPOUT
) -> tuple[nn.Module | None, dict[str, Any]]:
    """Train the network of ``plan`` at ``fidelity`` (seeded by ``fidelity.seed``): the trained network (None
    if its training failed) and what to record about the training."""
    built: list[nn.Module] = []

    def build() -> nn.Module:
        built.append(NSCNetwork(plan, dropout))
        return built[-1]

    evaluation = evaluate_network(build, data, fidelity)
    record = {
        "fidelity": fidelity.name,
        "epochs": fidelity.epochs,
        "seed": fidelity.seed,
        "device": str(data.train_x.device),
        "train_seconds": round(evaluation.train_seconds, 3),
        "accuracy": evaluation.accuracy if evaluation.valid else None,
    }
    if not evaluation.valid:
        record["reason"] = evaluation.reason
        return None, record
    return built[-1], record


# -- a run's networks ------------------------------------------------------------------------------------


def _tabular_best(run: Run, env: str, top: int) -> list[pd.Series]:
    steps = run.env_steps(env)
    steps = steps[steps["valid"].astype(bool)].sort_values(["reward", "step"], ascending=[False, True])
    return [row for _, row in steps.drop_duplicates("network").head(top).iterrows()]


def _claim(folder: Path, overwrite: bool) -> None:
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ExportUsageError(f"{folder} already holds an export: pass --overwrite or choose another -f")


def export_tabular(run: Run, env: str, out: Path, top: int, overwrite: bool) -> list[Exported]:
    """A tabular benchmark's best architectures as ``architecture.json`` (no network, no weights)."""
    benchmark = parse_table_spec(env).benchmark
    done = []
    for rank, row in enumerate(_tabular_best(run, env, top), start=1):
        folder = out / env_folder_name(env) / str(rank)
        _claim(folder, overwrite)
        folder.mkdir(parents=True, exist_ok=True)
        description = {
            "format": EXPORT_FORMAT,
            "benchmark": benchmark.title,
            "dataset": env,
            "architecture": json.loads(row["architecture"]),
            "network": str(row["network"]),
            "validation_accuracy": float(row["accuracy"]),
            "test_accuracy": float(row["test_accuracy"]),
            "n_params": int(row["n_params"]),
            "search": {"run": str(run.path), "algo": run.algo, "rank": rank, "step": int(row["step"])},
        }
        if benchmark.key == nasbench201.BENCHMARK:  # its own notation beside AnalogNAS-Bench's op indices
            description["arch_string"] = nasbench201.arch_string(description["architecture"])
        (folder / ARCHITECTURE_FILE).write_text(json.dumps(description, indent=2) + "\n")
        (folder / CARD_FILE).write_text(
            f"# {env} architecture #{rank}\n\n{benchmark.title} architecture "
            f"`{description.get('arch_string', row['architecture'])}`: "
            f"validation accuracy {description['validation_accuracy']:.4f}, test accuracy "
            f"{description['test_accuracy']:.4f} (the benchmark's table; no weights exist for it). Found by "
            f"{run.algo} in run `{run.path}`, step {description['search']['step']}.\n"
        )
        done.append(Exported(env, rank, folder, description))
    return done


def export_run(
    run: Run,
    out: str | Path,
    envs: Sequence[str] | None = None,
    top: int = EXPORT_TOP,
    train: bool = False,
    fidelity: Fidelity | None = None,
    epochs: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    overwrite: bool = False,
    on_export: Callable[[Exported], None] | None = None,
) -> list[Exported]:
    """Export the best ``top`` networks of each of ``run``'s environments (``envs``: some of them) into
    ``out`` (see the module text).

    :param train: also train each network (at ``fidelity``, default the run's, for ``epochs``, default the
        fidelity's, seeded by ``seed``) and write its weights and ONNX file
    :raises ExportUsageError: no valid network in an environment, an existing export without ``overwrite``,
        ``train`` without the ``export`` extra (the untrained files are written first)
    """
    out = Path(out)
    envs = list(run.envs if envs is None else envs)
    missing = missing_export_packages() if train else []
    fidelity_name = run.fidelity if fidelity is None else fidelity.name
    exported: list[Exported] = []
    for env in envs:
        if is_table_spec(env):
            done = export_tabular(run, env, out, top, overwrite)
        else:
            base = fidelity or get_fidelity(fidelity_name or "")
            done = _export_nsc(
                run, env, out, top, train and not missing, base, epochs, device, seed, overwrite
            )
        if not done:
            raise ExportUsageError(f"run folder {run.path}: {env} has no valid network to export")
        for item in done:
            if on_export is not None:
                on_export(item)
        exported += done
    if missing:
        raise ExportUsageError(
            f"--train needs {', '.join(missing)}: {INSTALL_EXPORT} (network.py and nsc.json are written)"
        )
    return exported


def _export_nsc(
    run: Run,
    env: str,
    out: Path,
    top: int,
    train: bool,
    fidelity: Fidelity,
    epochs: int | None,
    device: str | torch.device | None,
    seed: int,
    overwrite: bool,
) -> list[Exported]:
    networks = best_networks(run, env, top)
    folders = [out / env_folder_name(env) / str(network.rank) for network in networks]
    for folder in folders:
        _claim(folder, overwrite)
    data = prepare_data(load_dataset(env), fidelity, device) if networks else None
    done = []
    for network, folder in zip(networks, folders, strict=True):
        assert data is not None
        plan = plan_network(network.nsc, data.input_shape, data.n_classes)
        description = network_description(
            plan,
            env,
            fidelity,
            name=f"{env} network #{network.rank}",
            search={
                "run": str(run.path),
                "algo": run.algo,
                "rank": network.rank,
                "step": network.step,
                "reward": network.reward,
                "accuracy": network.accuracy,
            },
        )
        trained = None
        if train:
            training_fidelity = fidelity.replace(seed=seed, **({"epochs": epochs} if epochs else {}))
            trained, description["training"] = train_for_export(plan, data, training_fidelity)
        write_network_export(folder, plan, description, trained=trained, data=data)
        done.append(Exported(env, network.rank, folder, description))
    return done


def retrained_conv_filters(plan: NetworkPlan) -> list[int]:
    """The filters of each convolution of ``plan``, in order (``nsc.json``'s per-convolution form)."""
    return [f for row, f in zip(plan.rows, plan.filters, strict=True) if row.type == LayerType.CONVOLUTION]


def retrained_saver(
    run: Run,
    out: str | Path,
    fidelity: Fidelity,
    epochs: int,
    top: int,
    envs: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Callable[[Any, nn.Module, PreparedData, dict[str, Any]], None]:
    """The ``on_network`` of :func:`~sb3_nas.analysis.retraining.retrain` that writes each retrained
    network (its first training) as an export folder ``out/<env>/<rank>/``, weights and ONNX file included.

    Refuses at once (before any training) when the ``export`` extra is missing or an export is in the way.
    """
    out = Path(out)
    missing = missing_export_packages()
    if missing:
        raise ExportUsageError(f"--save needs {', '.join(missing)}: {INSTALL_EXPORT}")
    from sb3_nas.analysis.retraining import RETRAIN_DENSE_UNITS, candidates, retrain_filters

    for candidate in candidates(run, top, list(envs) if envs is not None else None):
        if candidate.nsc:
            _claim(out / env_folder_name(candidate.env) / str(candidate.rank), overwrite)

    def save(candidate: Any, network: nn.Module, data: PreparedData, row: dict[str, Any]) -> None:
        nsc = json.loads(candidate.nsc)
        plan = plan_network(
            nsc,
            data.input_shape,
            data.n_classes,
            conv_filters=retrain_filters,
            dense_units=RETRAIN_DENSE_UNITS,
        )
        description = network_description(
            plan,
            candidate.env,
            fidelity,
            conv_filters=retrained_conv_filters(plan),
            dense_units=RETRAIN_DENSE_UNITS,
            name=f"{candidate.env} network #{candidate.rank}, retrained",
            search={
                "run": str(run.path),
                "algo": run.algo,
                "rank": candidate.rank,
                "reward": candidate.early_stop_accuracy,
                "accuracy": candidate.early_stop_accuracy,
            },
            training={
                "fidelity": f"{fidelity.name}-retrain",
                "epochs": epochs,
                "seed": int(row["seed"]),
                "device": str(data.train_x.device),
                "train_seconds": round(float(row["train_seconds"]), 3),
                "accuracy": float(row["accuracy"]),
            },
        )
        folder = out / env_folder_name(candidate.env) / str(candidate.rank)
        write_network_export(folder, plan, description, trained=network, data=data)

    return save


__all__ = [
    "EXPORT_TOP",
    "ExportUsageError",
    "Exported",
    "export_run",
    "missing_export_packages",
    "model_card",
    "network_description",
    "retrained_conv_filters",
    "retrained_saver",
    "train_for_export",
    "write_network_export",
]
