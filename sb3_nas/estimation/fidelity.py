"""Fidelities: named, versioned settings of the early-stop performance estimation (§4.1.2)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from numbers import Integral, Real

from sb3_nas.errors import InputError


class FidelityError(InputError):
    """A fidelity that cannot be used: a setting of the wrong type or out of its range, or one that does
    not fit the dataset; the message names the fidelity and the setting."""


class UnknownFidelityError(FidelityError):
    """A fidelity name that is not registered, or a malformed override of a registered one."""


# Settings left out of the digest while they hold their default (None): a fidelity that does not use them
# keeps the digest, and with it every memo key, that it has without them.
_UNDIGESTED_WHEN_NONE = ("max_params",)


@dataclass(frozen=True)
class Fidelity:
    """How a sampled network is trained and scored. Defaults are the paper's (§4.1.2, §6.1)."""

    name: str
    version: int = 1
    image_size: int = 84  # images resized bilinearly to image_size × image_size
    channels: int | None = 3  # 3: grey images repeated to RGB as meta-dataset does; None: native
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    lr_decay_factor: float = 0.2
    lr_decay_every: int = 5  # epochs
    lr_schedule: bool = True  # the reference's schedule never ran (a TF1 bug); False reproduces that
    max_train_images: int | None = None  # cap on the training two thirds (stratified), None: all
    test_fraction: float = 1 / 3
    split_seed: int = 0
    seed: int = 0  # seeds weight initialisation and batch order
    description: str = ""
    max_params: int | None = None  # a network with more parameters scores 0 untrained; None: no limit

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def id(self) -> str:
        """``name@version``, as stored in the memo."""
        return f"{self.name}@{self.version}"

    @property
    def digest(self) -> str:
        """Hash of every setting that changes an accuracy, so an edited fidelity never reuses old rewards."""
        settings = dataclasses.asdict(self)
        settings.pop("description")
        for key in _UNDIGESTED_WHEN_NONE:
            if settings[key] is None:
                del settings[key]
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: object) -> Fidelity:
        """A copy with some settings changed (unknown names raise ``TypeError`` naming them)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown fidelity setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


def _validate(fidelity: Fidelity) -> None:
    """Normalise number types and check every setting's range (raises :class:`FidelityError`, one line)."""
    name = fidelity.name

    def fail(problem: str) -> FidelityError:
        return FidelityError(f"fidelity {name!r}: {problem}")

    if not isinstance(name, str) or not name.strip():
        raise FidelityError(f"a fidelity needs a non-empty name, got {name!r}")
    for spec in dataclasses.fields(fidelity):
        key, value = spec.name, getattr(fidelity, spec.name)
        kind = str(spec.type)
        if kind.endswith("| None") and value is None:
            continue
        if kind.startswith("int"):
            if not isinstance(value, Integral) or isinstance(value, bool):
                raise fail(f"{key} must be an integer, got {value!r}")
            object.__setattr__(fidelity, key, int(value))
        elif kind == "float":
            if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
                raise fail(f"{key} must be a finite number, got {value!r}")
            object.__setattr__(fidelity, key, float(value))
        elif kind == "bool" and not isinstance(value, bool):
            raise fail(f"{key} must be true or false, got {value!r}")
        elif kind == "str" and not isinstance(value, str):
            raise fail(f"{key} must be text, got {value!r}")
    f = fidelity
    at_least_one = ["version", "image_size", "epochs", "batch_size", "lr_decay_every"]
    at_least_one += [key for key in ("max_train_images", "max_params") if getattr(f, key) is not None]
    for key in at_least_one:
        if getattr(f, key) < 1:
            raise fail(f"{key} must be at least 1, got {getattr(f, key)}")
    if f.channels not in (None, 1, 3):
        raise fail(f"channels must be 1, 3 or None (native), got {f.channels}")
    for key in ("learning_rate", "adam_eps", "lr_decay_factor"):
        if getattr(f, key) <= 0.0:
            raise fail(f"{key} must be positive, got {getattr(f, key)}")
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(f, key) < 1.0:
            raise fail(f"{key} must lie in [0, 1), got {getattr(f, key)}")
    if not 0.0 < f.test_fraction < 1.0:
        raise fail(f"test_fraction must lie in (0, 1), got {f.test_fraction}")
    for key in ("split_seed", "seed"):
        if not 0 <= getattr(f, key) < 2**32:
            raise fail(f"{key} must lie in 0..2**32-1, got {getattr(f, key)}")


FIDELITIES: dict[str, Fidelity] = {
    "paper": Fidelity(
        name="paper",
        description="§4.1.2 exactly: 84×84×3 images, 12 epochs, batch 128, Adam 1e-3, lr ×0.2 every 5 epochs",
    ),
    "paper64": Fidelity(
        name="paper64",
        image_size=64,
        description=(
            "§4.1.2 at 64×64: 64×64×3 images, 12 epochs, batch 128, Adam 1e-3, lr ×0.2 every 5 epochs; ranks "
            "networks like paper (fidelity study: Kendall τ 0.65 digits, 0.71 photos) at about half its cost"
        ),
    ),
    "cpu": Fidelity(
        name="cpu",
        image_size=16,
        channels=None,
        epochs=6,
        lr_decay_every=3,
        max_train_images=1200,
        description=(
            "CPU default: 16×16 native-channel images, at most 1200 training images, 6 epochs with the "
            "lr ×0.2 step every 3 epochs; about a second per mid-size network on two cores"
        ),
    ),
    "tiny": Fidelity(
        name="tiny",
        image_size=12,
        channels=None,
        epochs=1,
        max_train_images=256,
        description="for tests only: 12×12 images, 256 training images, one epoch",
    ),
}
DEFAULT_FIDELITY = "cpu"


def get_fidelity(fidelity: str | Fidelity | None = None) -> Fidelity:
    """A registered fidelity by name (``None``: the default), with optional overrides; a ``Fidelity`` passes.

    ``"cpu,batch_size=64"`` is the ``cpu`` fidelity with batch 64 (Experiment 3, §6.2): settings after the
    name, comma-separated, replace the registered values. The whole text becomes the fidelity's name, so the
    memo keeps its rewards apart (the digest changes with every setting anyway).
    """
    if isinstance(fidelity, Fidelity):
        return fidelity
    text = DEFAULT_FIDELITY if fidelity is None else fidelity
    name, *overrides = [part.strip() for part in text.split(",")]
    if name not in FIDELITIES:
        raise UnknownFidelityError(f"unknown fidelity {name!r}; known: {', '.join(sorted(FIDELITIES))}")
    base = FIDELITIES[name]
    if not overrides:
        return base
    return base.replace(name=",".join([name, *overrides]), **_parse_overrides(base, overrides, text))


_SETTING_TYPES = {"int": int, "float": float, "bool": bool, "int | None": int}


def _parse_overrides(base: Fidelity, overrides: list[str], text: str) -> dict[str, object]:
    fields = {f.name: f for f in dataclasses.fields(base) if f.name not in ("name", "version", "description")}
    changes: dict[str, object] = {}
    for override in overrides:
        key, sep, raw = (part.strip() for part in override.partition("="))
        if not sep or key not in fields:
            raise UnknownFidelityError(
                f"bad fidelity override {override!r} in {text!r}: expected setting=value with a setting "
                f"among {', '.join(fields)}"
            )
        kind = _SETTING_TYPES.get(str(fields[key].type))
        try:
            if raw.lower() == "none" and "None" in str(fields[key].type):
                changes[key] = None
            elif kind is bool:
                changes[key] = {"true": True, "false": False}[raw.lower()]
            else:
                changes[key] = kind(raw) if kind is not None else raw
        except (KeyError, ValueError):
            raise UnknownFidelityError(
                f"bad fidelity override {override!r} in {text!r}: {raw!r} is not a {fields[key].type}"
            ) from None
    return changes
