"""An exported network's folder: its description (``nsc.json``) and loading it back as a module.

An export folder holds ``network.py`` (a standalone module, see :mod:`sb3_nas.space.codegen`), ``nsc.json``
(the NSC rows, the input shape, the class count and every :func:`~sb3_nas.space.builder.build_network`
keyword), and, when the network was trained, ``weights.safetensors`` and ``network.onnx``.
:func:`load_exported` rebuilds the network from ``nsc.json`` with ``build_network`` and reads the weights
with safetensors: it never imports the folder's ``network.py`` and never unpickles anything, and refuses a
folder that holds a pickle.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from sb3_nas.space.builder import build_network
from sb3_nas.space.nsc import InvalidArchitecture

NSC_FILE = "nsc.json"
NETWORK_FILE = "network.py"
WEIGHTS_FILE = "weights.safetensors"
ONNX_FILE = "network.onnx"
CARD_FILE = "README.md"
DIAGRAM_FILE = "architecture.svg"
ARCHITECTURE_FILE = "architecture.json"  # a tabular benchmark's architecture: no network to build
EXPORT_FORMAT = 1

# the suffixes of the usual pickle containers (torch.save, joblib, pickle); content is checked as well
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin", ".joblib", ".npy", ".npz"})
_PICKLE_PROTOCOLS = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))


class ExportError(ValueError):
    """An export folder that cannot be loaded; its message is one line naming the folder and the problem."""


def conv_filters_argument(filters: int | Sequence[int]) -> Any:
    """``build_network``'s ``conv_filters`` from its recorded form: a count, or one count per convolution."""
    if isinstance(filters, int):
        return filters
    counts = [int(f) for f in filters]
    return lambda conv_count: counts[conv_count - 1]


def _holds_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with path.open("rb") as file:
        head = file.read(2)
    if head in _PICKLE_PROTOCOLS:
        return True
    if zipfile.is_zipfile(path):  # torch.save's format: a zip holding data.pkl
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".pkl") for name in archive.namelist())
    return False


def read_description(folder: str | Path) -> dict[str, Any]:
    """The ``nsc.json`` of export folder ``folder``; a missing or malformed one is an :class:`ExportError`."""
    folder = Path(folder)
    path = folder / NSC_FILE
    if not path.is_file():
        tabular = (folder / ARCHITECTURE_FILE).is_file()
        why = f" (its {ARCHITECTURE_FILE} describes a tabular benchmark's architecture: no network)"
        raise ExportError(f"export folder {folder} holds no {NSC_FILE}{why if tabular else ''}")
    try:
        description = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{path} is not readable JSON ({error})") from None
    needed = {"nsc": list, "input_shape": list, "n_classes": int, "build": dict}
    for key, kind in needed.items():
        if not isinstance(description, dict) or not isinstance(description.get(key), kind):
            raise ExportError(f"{path} has no valid {key!r} ({kind.__name__})")
    return description


def load_exported(folder: str | Path, weights: bool = True) -> nn.Module:
    """The network of export folder ``folder``, built by ``build_network`` from its ``nsc.json``, with the
    trained weights of ``weights.safetensors`` when the folder has them (and ``weights`` is true).

    The network is in eval mode. A folder holding a pickle, or whose description or weights do not make a
    network, is refused with a one-line :class:`ExportError`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"export folder {folder} does not exist")
    pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and _holds_pickle(p))
    if pickles:
        raise ExportError(
            f"export folder {folder} holds a pickle ({', '.join(pickles)}): refused, an export is read from "
            f"{NSC_FILE} and {WEIGHTS_FILE} only"
        )
    description = read_description(folder)
    build = dict(description["build"])
    unknown = set(build) - {"conv_filters", "dense_units", "dropout"}
    if unknown:
        raise ExportError(f"{folder / NSC_FILE} has unknown build settings: {', '.join(sorted(unknown))}")
    if "conv_filters" in build:
        build["conv_filters"] = conv_filters_argument(build["conv_filters"])
    try:
        network = build_network(
            description["nsc"], tuple(description["input_shape"]), description["n_classes"], **build
        )
    except (InvalidArchitecture, TypeError, ValueError, IndexError) as error:
        raise ExportError(f"{folder / NSC_FILE} does not describe a buildable network ({error})") from None
    weights_path = folder / WEIGHTS_FILE
    if weights and weights_path.is_file():
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ExportError(f"{weights_path} needs safetensors: pip install 'sb3_nas[export]'") from None
        try:
            state = load_file(weights_path)
            network.load_state_dict(state, strict=True)
        except Exception as error:  # a corrupt file or weights of another network: one line either way
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise ExportError(f"{weights_path} does not hold this network's weights ({reason})") from None
    return network.eval()
