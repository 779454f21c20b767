"""Checking the files a user writes, one way for all: a typed model of each file, every problem in one line.

A file's model is a frozen dataclass whose fields are its keys, typed and with their defaults (a sweep file's
tables in :mod:`sb3_nas.tuning.spec`, a run folder's ``config.yml`` in :mod:`sb3_nas.experiment.config`), or
an algorithm's constructor, whose annotated arguments are the hyper-parameters a zoo config may set
(:mod:`sb3_nas.experiment.hyperparams`). :func:`read_model` reads a mapping into a dataclass model;
:func:`check_value` checks one value against a type annotation. A problem is :class:`Invalid`; each reader
puts the file it read in front of the message and raises its own error class.

The dataclasses are checked here rather than by a validation library because every message is the project's
own one line, written per key (``run.seed must be an integer, got 'x'``), which a library's errors would have
to be translated into one by one.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

ModelT = TypeVar("ModelT")
REQUIRED: Any = dataclasses.MISSING  # the default of an entry a file must give


class Invalid(Exception):
    """A value that does not fit its model; the message is the problem, without the file, which its reader
    names."""


def entry(
    default: Any = REQUIRED,
    *,
    message: str | None = None,
    accepts: Callable[[Any], bool] | None = None,
    read: Callable[[Any, Mapping[str, Any]], Any] | None = None,
    alias: str | None = None,
) -> Any:
    """A field of a model with what :func:`read_model` needs to read it.

    :param default: what a file that leaves the key out is read as (a list or dict is copied for each read);
        :data:`REQUIRED`: a file must give the key (without it, a ``KeyError`` naming the key)
    :param message: the problem when the value is not of the field's type or ``accepts`` refuses it, with
        ``{value!r}`` and ``{where}`` (the table's name) filled in; by default ``KEY: VALUE is not TYPE``
    :param accepts: what a value of the field's type must also be (``n_trials``: positive)
    :param read: instead of the type check, ``read(value, earlier)`` gives the field's value from the file's,
        or raises :class:`Invalid`; ``earlier`` holds the fields read before it, for a check between fields
    :param alias: another key to read when the file lacks this one (its name in an earlier format)
    """
    metadata = {"message": message, "accepts": accepts, "read": read, "alias": alias}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def converted(convert: Callable[[Any], Any]) -> Callable[[Any, Mapping[str, Any]], Any]:
    """A ``read`` for :func:`entry` that converts the file's value with ``convert`` (``int``, ``str``, ...);
    a value it cannot convert raises what ``convert`` raises."""
    return lambda value, _earlier: convert(value)


def read_model(model: type[ModelT], table: Any, where: str, other_keys: bool = False) -> ModelT:
    """``table`` read as the dataclass ``model``, field by field in their order.

    ``table`` is a mapping (``None``: an empty one) whose keys are the fields of ``model`` (``other_keys``:
    other keys are ignored); a key left out reads as its field's default. A field with ``read`` is read by it;
    a field whose type is itself a dataclass is read as that model from its own table, named by the field;
    any other value must be of the field's type and pass its ``accepts`` check. Raises :class:`Invalid`.

    :param where: the table's name in messages (``the file``, ``run``)
    """
    fields = dataclasses.fields(model)  # type: ignore[arg-type]
    table = section(table, where, None if other_keys else [field.name for field in fields])
    hints = typing.get_type_hints(model)
    values: dict[str, Any] = {}
    for field in fields:
        value, hint, rules = _given(field, table), hints[field.name], field.metadata
        if rules.get("read") is not None:
            value = rules["read"](value, values)
        elif dataclasses.is_dataclass(hint):
            value = read_model(hint, value, field.name)  # type: ignore[arg-type]
        else:
            check_value(field.name, value, hint, rules.get("message"), rules.get("accepts"), where)
        values[field.name] = value
    return model(**values)


def _given(field: dataclasses.Field, table: Mapping[str, Any]) -> Any:
    for key in (field.name, field.metadata.get("alias")):
        if key is not None and key in table:
            return table[key]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise KeyError(field.name)


def section(table: Any, where: str, known: Iterable[str] | None = None) -> Mapping[str, Any]:
    """``table`` as a mapping (``None``: an empty one) whose keys are among ``known`` (``None``: any key);
    raises :class:`Invalid` naming ``where``."""
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        raise Invalid(f"{where} must be a mapping")
    if known is not None:
        unknown = unknown_keys(table, known)
        if unknown:
            listed = ", ".join(sorted(known))
            raise Invalid(f"unknown key(s) in {where}: {', '.join(unknown)} (known: {listed})")
    return table


def unknown_keys(table: Iterable[Any], known: Iterable[str]) -> list[str]:
    """The keys of ``table`` that are not ``known``, as text, sorted."""
    return sorted(set(map(str, table)) - set(known))


def read_yaml(path: Path) -> Any:
    """The content of the YAML file ``path``; :class:`Invalid` with the parser's first line when it is not
    YAML."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise Invalid(str(error).splitlines()[0]) from None


# -- values against type annotations -------------------------------------------------------------------


def check_value(
    key: str,
    value: Any,
    hint: Any,
    message: str | None = None,
    accepts: Callable[[Any], bool] | None = None,
    where: str = "",
) -> None:
    """Raise :class:`Invalid` when ``value`` is not of the type ``hint`` (:func:`conforms` says no) or
    ``accepts`` refuses it: ``message`` (``{value!r}`` and ``{where}`` filled in), by default
    ``KEY: VALUE is not TYPE`` with a reminder of how YAML read it (``1e-3`` is text)."""
    if conforms(value, hint) is not False and (accepts is None or accepts(value)):
        return
    if message is None:
        raise Invalid(f"{key}: {value!r} is not {describe(hint)}{yaml_hint(value, hint)}")
    raise Invalid(message.format(value=value, where=where))


def conforms(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` fits the annotation ``hint``: True, False, or None where this check cannot tell.

    ``bool`` is not an ``int``; an ``int`` is a ``float``, NaN is not; a container is checked as a whole,
    not its items; a schedule (``Callable``) is anything callable.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        verdicts = [conforms(value, arg) for arg in typing.get_args(hint)]
        if True in verdicts:
            return True
        return False if all(v is False for v in verdicts) else None
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
    base = origin or hint
    if base is collections.abc.Callable:
        return callable(value)
    if base in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping)
    if base is collections.abc.Sequence:
        return isinstance(value, list | tuple)
    if base is type:
        return isinstance(value, type)
    if isinstance(base, type):
        return isinstance(value, base)
    return None


def describe(hint: Any) -> str:
    """``int``, ``float or a schedule``, ``a mapping or None``: an annotation in words."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe(arg) for arg in typing.get_args(hint)))
    if hint is None or hint is type(None):
        return "None"
    base = origin or hint
    if base is collections.abc.Callable:
        return "a schedule"
    if base in (dict, collections.abc.Mapping):
        return "a mapping"
    if base is collections.abc.Sequence:
        return "a list"
    if base is type:
        return "a class"
    if base is bool:
        return "true or false"
    if base is str:
        return "text"
    name = getattr(base, "__name__", str(base))
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def yaml_hint(value: Any, hint: Any) -> str:
    """A reminder that YAML 1.1 reads ``1e-3`` (no dot) as text, when that is what happened."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    written = int(number) if number.is_integer() and conforms(int(number), hint) else number
    return f" (YAML reads {value} as text: write {written!r})"


def argument_types(function: Callable[..., Any]) -> dict[str, Any]:
    """The type annotation of each annotated argument of ``function``, resolved in the module defining it.

    :func:`inspect.signature` resolves them; where one names what only a type checker imports (under
    ``if TYPE_CHECKING:``), each is resolved alone, the same way, and those that cannot be are left out.
    """
    try:
        parameters = inspect.signature(function, eval_str=True).parameters
    except Exception:  # a name the module does not define at run time: resolve argument by argument
        return _argument_types_one_by_one(function)
    return {
        name: parameter.annotation
        for name, parameter in parameters.items()
        if parameter.annotation is not inspect.Parameter.empty
    }


def _stand_in() -> None:
    """The body of a function defined in another module, which holds one annotation to resolve there."""


def _argument_types_one_by_one(function: Callable[..., Any]) -> dict[str, Any]:
    namespace = getattr(inspect.unwrap(function), "__globals__", {})
    resolved = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.annotation is inspect.Parameter.empty:
            continue
        stand_in = types.FunctionType(_stand_in.__code__, namespace)
        stand_in.__annotations__ = {name: parameter.annotation}
        try:
            resolved[name] = inspect.get_annotations(stand_in, eval_str=True)[name]
        except Exception:  # a name imported only for type checkers: that argument is not checked
            continue
    return resolved
