"""Loading a saved MetaA2C policy for evaluation, with one-line errors for files that are not one."""

from __future__ import annotations

import zipfile
from pathlib import Path

from stable_baselines3.common.save_util import load_from_zip_file

from sb3_nas.algos import MetaA2C
from sb3_nas.errors import ModelError

MODEL_FILE = "model.zip"  # a meta-RL run's policy, beside its config.yml


def load_model(path: str | Path) -> MetaA2C:
    """Load a saved MetaA2C; a missing file or another algorithm's model is a one-line ``ModelError``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        data, _, _ = load_from_zip_file(path, load_data=True, device="cpu")
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as error:
        raise ModelError(f"model file {path} is not a saved SB3 model ({error})") from None
    policy_class = getattr(data.get("policy_class"), "__module__", "") if data else ""
    if "meta_a2c" not in policy_class:
        found = data.get("policy_class") if data else None
        raise ModelError(f"model file {path} is not a MetaA2C model (its policy is {found})")
    return MetaA2C.load(path, device="cpu")
