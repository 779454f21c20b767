"""Run-folder files replaced whole: a kill during a write leaves the old file or the new one, never half."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def replace_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` by calling ``write`` on a temporary file beside it, then renaming that over ``path``."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)
    return path
