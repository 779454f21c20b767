"""Loading a saved MetaA2C policy without running anything the file holds.

SB3's ``load`` (``MetaA2C.load``) unpickles the ``:serialized:`` entries of a model.zip's ``data`` with
cloudpickle, which runs whatever code the file carries. :func:`load_model` never unpickles: it reads the
``data`` JSON as plain JSON and the weights with ``torch.load(weights_only=True)``, and rebuilds every pickled
entry from something it trusts:

* ``policy_class``: the pickle is *read* (its opcodes, never executed) and must be a bare reference to one of
  MetaA2C's policy classes, which is then taken from ``MetaA2C.policy_aliases``;
* ``observation_space``/``action_space``: given by the caller (the environment the model will run on), or
  the chain or multi-branch NAS space in the meta-RL wrapper, whichever the weights' shapes fit;
* ``policy_kwargs``: MetaA2C's defaults, updated by the readable copy of its items SB3 writes beside the
  pickle (plain JSON values, and known classes named by their ``str``);
* ``learning_rate``: the plain number, else the constant of ``lr_schedule``'s readable copy, else MetaA2C's
  default; ``lr_schedule``/``clip_range`` are MetaA2C's constants; the rollout state (``_last_obs``,
  ``_last_episode_starts``, episode buffers) starts empty, as after SB3's ``load`` with an environment;
  any other pickled entry is ignored.

A file that cannot be loaded this way is refused with a one-line ``ModelError`` naming it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import pickletools
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import torch as th
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.torch_layers import FlattenExtractor

from sb3_nas.algos import MetaA2C, MetaRLWrapper
from sb3_nas.envs import NasEnv, TabularNasEnv
from sb3_nas.errors import ModelError
from sb3_nas.estimation import BENCHMARKS

MODEL_FILE = "model.zip"  # a meta-RL run's policy, beside its config.yml
DATA, POLICY, OPTIMIZER = "data", "policy.pth", "policy.optimizer.pth"

SERIALIZED = ":serialized:"

# the policy classes a MetaA2C file may name, by (module, qualified name) as a pickle refers to them
POLICY_CLASSES = {(cls.__module__, cls.__qualname__): cls for cls in MetaA2C.policy_aliases.values()}


def _classes_by_str(*classes: type) -> dict[str, type]:
    """Classes by ``str(cls)``, the way SB3's readable copy of a pickled dict names a class-valued item."""
    return {str(cls): cls for cls in classes}


# policy_kwargs: items read as plain JSON (with their type), and class-valued items chosen from known classes
PLAIN_POLICY_KWARGS: dict[str, type | tuple[type, ...]] = {
    "lstm_hidden_size": int,
    "n_lstm_layers": int,
    "net_arch": (list, dict),
    "shared_lstm": bool,
    "enable_critic_lstm": bool,
    "ortho_init": bool,
    "log_std_init": (int, float),
    "normalize_images": bool,
    "share_features_extractor": bool,
    "optimizer_kwargs": dict,
    "lstm_kwargs": dict,
    "features_extractor_kwargs": dict,
}
CLASS_POLICY_KWARGS = {
    "optimizer_class": _classes_by_str(
        RMSpropTFLike, th.optim.RMSprop, th.optim.Adam, th.optim.AdamW, th.optim.SGD
    ),
    "activation_fn": _classes_by_str(
        th.nn.Tanh, th.nn.ReLU, th.nn.LeakyReLU, th.nn.ELU, th.nn.GELU, th.nn.SiLU, th.nn.Sigmoid
    ),
    "features_extractor_class": _classes_by_str(FlattenExtractor),
}
IGNORED_POLICY_KWARGS = {"device"}  # SB3's load drops it too

# MetaA2C's arguments read from plain JSON fields (the file's name for them, the argument, the type)
HYPERPARAMETERS = [
    ("n_steps", "n_steps", int),
    ("gamma", "gamma", float),
    ("gae_lambda", "gae_lambda", float),
    ("ent_coef", "ent_coef", float),
    ("vf_coef", "vf_coef", float),
    ("max_grad_norm", "max_grad_norm", float),
    ("normalize_advantage", "normalize_advantage", bool),
    ("_stats_window_size", "stats_window_size", int),
    ("verbose", "verbose", int),
]
COUNTERS = [  # the training progress, set on the loaded model as SB3's load does
    ("num_timesteps", int),
    ("_total_timesteps", int),
    ("_num_timesteps_at_start", int),
    ("_n_updates", int),
    ("_episode_num", int),
    ("_current_progress_remaining", float),
]
CONSTANT_SCHEDULE = re.compile(r"ConstantSchedule\(val=([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\)")

# pickle opcodes that only frame or memoize: a bare class reference may hold them around its two names
BOOKKEEPING_OPCODES = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "STOP"}
STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}


def load_model(
    path: str | Path,
    env: gym.Env | None = None,
    *,
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    device: th.device | str = "cpu",
) -> MetaA2C:
    """Load a saved MetaA2C without unpickling anything; a bad file is a one-line ``ModelError``.

    :param env: the environment the model will run on; only its spaces are used (it is not bound to it)
    :param observation_space: the observation space (default: ``env``'s, else the NAS space the weights fit)
    :param action_space: the action space (default: ``env``'s, else the NAS space the weights fit)
    :param device: where the policy lives
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    data, raw_states = _read_zip(path)
    policy_class = _policy_class(
        path, data
    )  # another algorithm's model is named so before its weights are read
    policy_state, optimizer_state = _read_states(path, raw_states)
    if env is not None:
        observation_space = env.observation_space if observation_space is None else observation_space
        action_space = env.action_space if action_space is None else action_space
    if observation_space is None or action_space is None:
        inferred_observations, inferred_actions = _nas_spaces_fitting(path, policy_state)
        observation_space = inferred_observations if observation_space is None else observation_space
        action_space = inferred_actions if action_space is None else action_space
    arguments = _hyperparameters(path, data)
    policy_kwargs = _policy_kwargs(path, data)
    seed = _plain(path, data, "seed", int)
    try:
        model = MetaA2C(
            policy_class,
            env=cast(Any, None),  # no environment: the spaces are set below, as SB3's load does
            policy_kwargs=policy_kwargs,
            seed=seed,
            device=device,
            _init_setup_model=False,
            **arguments,
        )
        model.observation_space, model.action_space, model.n_envs = observation_space, action_space, 1
        model._setup_model()
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as error:
        raise ModelError(f"model file {path} has settings MetaA2C cannot use ({_reason(error)})") from None
    for name, kind in COUNTERS:
        value = _plain(path, data, name, kind)
        if value is not None:
            setattr(model, name, value)
    _load_weights(path, model, policy_state, optimizer_state)
    return model


def nas_spaces(multi_branch: bool) -> tuple[gym.Space, gym.Space]:
    """The observation and action spaces MetaA2C sees on the chain or multi-branch NAS space (§4.2.4).

    They are those of ``NasEnv`` in ``MetaRLWrapper``, built without a dataset (the spaces need none).
    """
    env = MetaRLWrapper(SpacesOnly(*NasEnv.spaces(multi_branch)), trial_steps=1)  # type: ignore[arg-type]
    return env.observation_space, env.action_space


def _reason(error: BaseException) -> str:
    """An exception as one short line."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else ""
    text = text[:160] + ("…" if len(text) > 160 else "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _read_zip(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The ``data`` JSON, read as JSON (pickled entries stay base64 text), and the state dicts' raw bytes."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if DATA not in names:
                raise ModelError(f"model file {path} is not a saved SB3 model (it has no {DATA})")
            data = json.loads(archive.read(DATA).decode("utf-8"))
            if not isinstance(data, dict):
                raise ModelError(f"model file {path} is not a saved SB3 model ({DATA} is not a JSON object)")
            raw = {name: archive.read(name) for name in (POLICY, OPTIMIZER) if name in names}
    except ModelError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, RuntimeError,
            NotImplementedError, ValueError) as error:  # fmt: skip
        raise ModelError(f"model file {path} is not a saved SB3 model ({_reason(error)})") from None
    return data, raw


def _read_states(path: Path, raw: dict[str, bytes]) -> tuple[dict[str, th.Tensor], dict[str, Any]]:
    """The policy's and the optimizer's state dicts, read with ``weights_only=True``."""
    for name in (POLICY, OPTIMIZER):
        if name not in raw:
            raise ModelError(f"model file {path} is not a saved SB3 model (it has no {name})")
    policy_state = _torch_load(path, POLICY, raw[POLICY])
    if not all(isinstance(key, str) and isinstance(value, th.Tensor) for key, value in policy_state.items()):
        raise ModelError(f"model file {path} has a corrupt {POLICY} (not a dict of tensors)")
    return policy_state, _torch_load(path, OPTIMIZER, raw[OPTIMIZER])


def _torch_load(path: Path, name: str, raw: bytes) -> dict[str, Any]:
    """A state dict read with ``weights_only=True``: tensors and plain containers, never arbitrary objects."""
    try:
        state = th.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a corrupt or hostile file; all are refused
        raise ModelError(f"model file {path} has a corrupt {name} ({_reason(error)})") from None
    if not isinstance(state, dict):
        raise ModelError(f"model file {path} has a corrupt {name} (not a state dict)")
    return state


def _pickled_global(payload: bytes) -> tuple[str, str] | None:
    """The (module, name) of a pickle that is nothing but a reference to a global, read without running it."""
    strings: list[str] = []
    found: tuple[str, str] | None = None
    try:
        for opcode, argument, _ in pickletools.genops(payload):
            if opcode.name in BOOKKEEPING_OPCODES:
                continue
            if found is not None:
                return None
            if opcode.name in STRING_OPCODES and len(strings) < 2:
                strings.append(str(argument))
            elif opcode.name == "STACK_GLOBAL" and len(strings) == 2:
                found = (strings[0], strings[1])
            elif opcode.name == "GLOBAL" and not strings and " " in str(argument):
                module, name = str(argument).split(" ", 1)
                found = (module, name)
            else:
                return None
    except Exception:  # not a well-formed pickle: not a class reference either
        return None
    if found is None or not all(part.isidentifier() for part in ".".join(found).split(".")):
        return None
    return found


def _policy_class(path: Path, data: dict[str, Any]) -> type:
    """MetaA2C's policy class the file names; another algorithm's model is refused."""
    entry = data.get("policy_class")
    if isinstance(entry, str) and entry in MetaA2C.policy_aliases:  # a name, as MetaA2C("MlpLstmPolicy", …)
        return MetaA2C.policy_aliases[entry]
    reference = None
    if isinstance(entry, dict) and isinstance(entry.get(SERIALIZED), str):
        try:
            reference = _pickled_global(_base64_decode(entry[SERIALIZED]))
        except ValueError:
            reference = None
    if reference in POLICY_CLASSES:
        return POLICY_CLASSES[cast(tuple[str, str], reference)]
    if reference is not None:
        found = ".".join(reference)
    elif entry is None:
        found = "not named"
    else:
        found = "not a plain class reference"
    raise ModelError(f"model file {path} is not a MetaA2C model (its policy is {found})")


def _base64_decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError(str(error)) from None


def _readable(entry: Any) -> dict[str, Any] | None:
    """A dict entry: as plain JSON, or the readable copy SB3 writes beside its pickle (never the pickle)."""
    if not isinstance(entry, dict):
        return None
    if SERIALIZED in entry:
        if entry.get(":type:") != str(dict):
            return None
        return {key: value for key, value in entry.items() if key not in (SERIALIZED, ":type:")}
    return entry


def _policy_kwargs(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The policy's arguments: MetaA2C's defaults, updated by the items of the file it can read safely."""
    if "policy_kwargs" not in data:
        return {}
    items = _readable(data["policy_kwargs"])
    if items is None:
        raise ModelError(f"model file {path} has policy_kwargs that cannot be read without unpickling")
    kwargs: dict[str, Any] = {}
    for key, value in items.items():
        if key in IGNORED_POLICY_KWARGS:
            continue
        if key in CLASS_POLICY_KWARGS:
            known = CLASS_POLICY_KWARGS[key]
            if value not in known:
                raise ModelError(
                    f"model file {path} has policy_kwargs {key} {_short(value)}, not a known class"
                )
            kwargs[key] = known[value]
        elif key in PLAIN_POLICY_KWARGS:
            kind = PLAIN_POLICY_KWARGS[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ModelError(f"model file {path} has a bad policy_kwargs {key} ({_short(value)})")
            kwargs[key] = value
        else:
            raise ModelError(
                f"model file {path} has policy_kwargs {key}, which cannot be loaded without unpickling"
            )
    return kwargs


def _plain(path: Path, data: dict[str, Any], name: str, kind: type) -> Any:
    """A plain JSON field of ``kind``, ``None`` when absent or null; another type is refused."""
    value = data.get(name)
    if value is None:
        return None
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        raise ModelError(f"model file {path} has a bad {name} ({_short(value)})")
    return kind(value)


def _hyperparameters(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """MetaA2C's arguments from the file's plain fields; the schedules become constants."""
    arguments = {}
    for name, argument, kind in HYPERPARAMETERS:
        value = _plain(path, data, name, kind)
        if value is not None:
            arguments[argument] = value
    if arguments.get("n_steps", 1) < 1:
        raise ModelError(f"model file {path} has a bad n_steps ({arguments['n_steps']})")
    learning_rate = data.get("learning_rate")
    if isinstance(learning_rate, dict):  # a schedule, pickled: the constant its readable copy names, if any
        schedule = data.get("lr_schedule")
        text = schedule.get("value_schedule") if isinstance(schedule, dict) else None
        match = CONSTANT_SCHEDULE.fullmatch(text) if isinstance(text, str) else None
        learning_rate = float(match.group(1)) if match else None
    if learning_rate is not None:
        arguments["learning_rate"] = _plain(path, {"learning_rate": learning_rate}, "learning_rate", float)
    return arguments


def _policy_shapes(path: Path, state: dict[str, th.Tensor]) -> tuple[int, int]:
    """The observation size and the action count the policy weights were made for."""
    try:
        return int(state["lstm_actor.weight_ih_l0"].shape[1]), int(state["action_net.weight"].shape[0])
    except (KeyError, IndexError):
        raise ModelError(f"model file {path} has no MetaA2C LSTM policy in its {POLICY}") from None


class SpacesOnly(gym.Env):
    """An environment that only declares its spaces: what ``MetaRLWrapper`` needs to derive its own."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space


def search_spaces() -> dict[str, tuple[gym.Space, gym.Space]]:
    """The spaces MetaA2C sees (in the meta-RL wrapper) on each search space, by name: the NSC chain and
    multi-branch spaces and each tabular benchmark's."""
    spaces = {"chain": nas_spaces(False), "multi-branch": nas_spaces(True)}
    for benchmark in BENCHMARKS.values():
        wrapped = MetaRLWrapper(SpacesOnly(*TabularNasEnv.spaces(benchmark.space)), trial_steps=1)
        spaces[benchmark.title] = (wrapped.observation_space, wrapped.action_space)
    return spaces


def _nas_spaces_fitting(path: Path, policy_state: dict[str, th.Tensor]) -> tuple[gym.Space, gym.Space]:
    """The search space (in the meta-RL wrapper) whose sizes the weights fit."""
    n_observations, n_actions = _policy_shapes(path, policy_state)
    candidates = search_spaces()
    for observation_space, action_space in candidates.values():
        fits = gym.spaces.flatdim(observation_space) == n_observations
        if fits and int(cast(gym.spaces.Discrete, action_space).n) == n_actions:
            return observation_space, action_space
    raise ModelError(
        f"model file {path} fits no search space ({', '.join(candidates)}): {n_observations} observations, "
        f"{n_actions} actions"
    )


def _load_weights(
    path: Path, model: MetaA2C, policy_state: dict[str, th.Tensor], optimizer_state: dict
) -> None:
    """The policy weights (every tensor, with the policy's shapes) and the optimizer state."""
    expected = model.policy.state_dict()
    missing = sorted(set(expected) - set(policy_state))
    unexpected = sorted(set(policy_state) - set(expected))
    if missing or unexpected:
        which = f"lacks {missing[0]}" if missing else f"has an unexpected {unexpected[0]}"
        raise ModelError(f"model file {path}: its {POLICY} {which} (not the policy its settings describe)")
    for key, tensor in expected.items():
        if tuple(policy_state[key].shape) != tuple(tensor.shape):
            raise ModelError(
                f"model file {path}: its {POLICY} holds {key} of shape {tuple(policy_state[key].shape)}, "
                f"where the policy has {tuple(tensor.shape)} (another observation or action space?)"
            )
    try:
        model.policy.load_state_dict(policy_state, strict=True)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ModelError(f"model file {path} has a corrupt {POLICY} ({_reason(error)})") from None
    _check_optimizer_state(path, model, optimizer_state)
    try:
        model.policy.optimizer.load_state_dict(optimizer_state)
    except (RuntimeError, TypeError, ValueError, KeyError, IndexError) as error:
        raise ModelError(f"model file {path} has a corrupt {OPTIMIZER} ({_reason(error)})") from None


def _check_optimizer_state(path: Path, model: MetaA2C, state: dict[str, Any]) -> None:
    """The optimizer state's per-parameter tensors must have their parameters' shapes."""
    parameters = [p for group in model.policy.optimizer.param_groups for p in group["params"]]
    per_parameter = state.get("state")
    groups = state.get("param_groups")
    if not isinstance(per_parameter, dict) or not isinstance(groups, list):
        raise ModelError(f"model file {path} has a corrupt {OPTIMIZER} (not an optimizer state)")
    for index, values in per_parameter.items():
        if not isinstance(index, int) or not 0 <= index < len(parameters) or not isinstance(values, dict):
            raise ModelError(f"model file {path} has a corrupt {OPTIMIZER} (state of parameter {index!r})")
        for value in values.values():
            if isinstance(value, th.Tensor) and value.dim() > 0 and value.shape != parameters[index].shape:
                raise ModelError(
                    f"model file {path} has a corrupt {OPTIMIZER} (parameter {index} state of shape "
                    f"{tuple(value.shape)}, the parameter's is {tuple(parameters[index].shape)})"
                )
