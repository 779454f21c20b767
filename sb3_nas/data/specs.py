"""Dataset specs: the text that names a user's dataset wherever a dataset name is taken.

Grammar (options are trailing ``:key=value`` parts, in any order)::

    folder:PATH[:size=N]                      one sub-folder per class of JPEG/PNG (…) images
    npz:PATH                                  a NumPy archive (a bare PATH ending in .npz works too)
    tfrecords:PATH[:size=N]                   a meta-dataset source: one .tfrecords file per class
    torchvision:NAME[:ROOT][:download=true][:split=S[+S…]][:size=N]

``size=N`` resizes every image to N×N; without it images keep their size when they all share one, else
they are resized to 84×84. ``ROOT`` defaults to ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sb3_nas.data.base import DatasetError

SPEC_KINDS = ("folder", "npz", "tfrecords", "torchvision")
_OPTIONS = {
    "folder": ("size",),
    "npz": (),
    "tfrecords": ("size",),
    "torchvision": ("size", "download", "split"),
}
_ALL_OPTIONS = {key for keys in _OPTIONS.values() for key in keys}
SPEC_GRAMMAR = (
    "folder:PATH[:size=N], npz:PATH, tfrecords:PATH[:size=N] or "
    "torchvision:NAME[:ROOT][:download=true][:split=S[+S...]][:size=N]"
)
DEFAULT_TORCHVISION_ROOT = "data"


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed spec: its kind, target (a path, or a torchvision class name), root and options."""

    text: str
    kind: str
    target: str
    root: str | None = None  # torchvision only
    size: int | None = None
    download: bool = False
    split: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)  # as written, for the cache key


def is_spec(text: str) -> bool:
    """Whether ``text`` starts with a spec kind and a colon (``folder:``, ``npz:``, …)."""
    kind, sep, _ = text.partition(":")
    return bool(sep) and kind in SPEC_KINDS


def parse_spec(text: str) -> DatasetSpec:
    """Parse a spec (raises :class:`DatasetError`, one line, on a malformed one)."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in SPEC_KINDS:
        raise DatasetError(f"dataset spec {text!r}: expected {SPEC_GRAMMAR}")
    parts = rest.split(":")
    options: dict[str, str] = {}
    while len(parts) > 1 and "=" in parts[-1] and parts[-1].partition("=")[0] in _ALL_OPTIONS:
        key, _, value = parts.pop().partition("=")
        if key in options:
            raise DatasetError(f"dataset spec {text!r}: option {key} given twice")
        options[key] = value.strip()
    unknown = sorted(set(options) - set(_OPTIONS[kind]))
    if unknown:
        accepted = ", ".join(_OPTIONS[kind]) or "none"
        raise DatasetError(
            f"dataset spec {text!r}: {kind} takes no option {unknown[0]} (accepted: {accepted})"
        )
    target = ":".join(parts).strip()
    root = None
    if kind == "torchvision":
        target, _, root_text = target.partition(":")
        root = root_text.strip() or DEFAULT_TORCHVISION_ROOT
        target = target.strip()
    if not target:
        what = "dataset class" if kind == "torchvision" else "path"
        raise DatasetError(f"dataset spec {text!r} names no {what}; expected {SPEC_GRAMMAR}")
    return DatasetSpec(
        text=text,
        kind=kind,
        target=target,
        root=root,
        size=_size(text, options.get("size")),
        download=_flag(text, "download", options.get("download")),
        split=_split(text, options.get("split")),
        options=options,
    )


def _size(text: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 4096:
        raise DatasetError(
            f"dataset spec {text!r}: size must be a whole number of pixels in 1..4096, got {value!r}"
        )
    return int(value)


def _flag(text: str, key: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise DatasetError(f"dataset spec {text!r}: {key} must be true or false, got {value!r}")
    return value.lower() in ("true", "1", "yes")


def _split(text: str, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = tuple(part.strip() for part in value.split("+"))
    if not all(names):
        raise DatasetError(f"dataset spec {text!r}: split must be NAME or NAME+NAME…, got {value!r}")
    return names
