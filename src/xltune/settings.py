"""Config dataclasses, generically: fields with help text, building from YAML dicts with clear errors, type checks.

Every config section (``model``, ``train``, a method's own settings, an objective's) is a dataclass whose fields
carry their help text (``setting(default, "help")``) and whose ``__post_init__`` validates. :func:`build` turns a
parsed YAML mapping into one, naming the file and key of any mistake; a field may be a nested section (a
dataclass) or a *polymorphic* one whose class depends on its ``name`` (a method's or an objective's settings):
``SECTIONS`` maps such fields to a builder. This module knows no section in particular (config.py, methods/ and
objectives/ do), so every layer can use it without importing another.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any, Union

from .errors import XLTuneError, unknown_name

# (dataclass, field name) -> builder(value, source, key_prefix) for nested / polymorphic sections
SECTIONS: dict[tuple[type, str], Callable[[Any, str, str], Any]] = {}


def setting(default: Any = dataclasses.MISSING, help: str = "", **kw) -> Any:
    """A dataclass field with help text (shown by `xltune config-keys`); lists and dicts are copied per instance."""
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


def section(cls: type, help: str) -> Any:
    """A nested section field (its default is the section's defaults)."""
    return field(default_factory=cls, metadata={"help": help, "section": cls})


def build(cls: type, data: Any, source: str, prefix: str) -> Any:
    """``cls(**data)`` with every key and value checked; errors name ``source`` and the dotted key."""
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise XLTuneError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise unknown_name("config key", f"{prefix}{key}", [f"{prefix}{k}" for k in fields], source)
        custom = _section_builder(cls, key)
        if custom is not None:
            kwargs[key] = custom(value, source, f"{prefix}{key}")
        elif fields[key].metadata.get("section") is not None:
            kwargs[key] = build(fields[key].metadata["section"], value, source, f"{prefix}{key}.")
        else:
            kwargs[key] = coerce_field(value, hints[key], f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except XLTuneError as e:
        raise XLTuneError(f"{source}: {e}") from None


def _section_builder(cls: type, key: str):
    for klass in cls.__mro__:
        b = SECTIONS.get((klass, key))
        if b is not None:
            return b
    return None


def to_dict(obj: Any) -> Any:
    """``dataclasses.asdict`` that also walks lists of dataclasses (objective lists)."""
    return dataclasses.asdict(obj)


def coerce_field(value: Any, hint: Any, key: str, source: str, lenient: bool = True) -> Any:
    """Check ``value`` against a dataclass field's type hint (``key`` and ``source`` name it in errors); ints are
    accepted for floats, YAML 1.1's ``1e-2`` strings too; 'all' for Shots. A list may also be written ``a,b,c``
    (as ``--grid`` takes it; ``seeds=1,2,3``) or as one value (``train.languages=en``): ``lenient`` allows that."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        attempts = [(a, False) for a in args]  # a value of the right type first (eval.languages: 'all' is a str)
        if lenient:
            lists = [(a, True) for a in args if typing.get_origin(a) is list]
            # 'de,fr' reads as a list where the field takes one, before it can be taken for a plain string
            attempts = lists + attempts if isinstance(value, str) and "," in value else attempts + lists
        for a, loose in attempts:
            try:
                return coerce_field(value, a, key, source, loose)
            except XLTuneError:
                pass
        names = " or ".join(_type_name(a) for a in args)
        raise XLTuneError(f"{source}: {key} must be {names}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise XLTuneError(f"{source}: {key} must be null, got {value!r}")
    if origin is list:
        (inner,) = args
        written = value
        if not isinstance(value, list):
            if not lenient or value is None or isinstance(value, (dict, bool)):
                raise XLTuneError(f"{source}: {key} must be a list, e.g. {key}={_list_example(inner)}, got {value!r}")
            value = _split_list(value)
        try:
            return [coerce_field(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value)]
        except XLTuneError as e:
            if written is value:
                raise
            raise XLTuneError(f"{source}: {key} must be a list of {_type_name(inner, plural=True)}, e.g. "
                              f"{key}={_list_example(inner)} (or {_list_example(inner)[1:-1].replace(' ', '')} on "
                              f"the command line), got {written!r} ({str(e).split(': ', 1)[-1]})") from None
    if origin is dict:
        if not isinstance(value, dict):
            raise XLTuneError(f"{source}: {key} must be a mapping, got {value!r}")
        k_hint, v_hint = args
        return {coerce_field(k, k_hint, f"{key} key", source): coerce_field(v, v_hint, f"{key}[{k}]", source)
                for k, v in value.items()}
    if hint is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-2 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise XLTuneError(f"{source}: {key} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise XLTuneError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise XLTuneError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise XLTuneError(f"{source}: {key} must be a string, got {value!r}")
        return value
    return value


def _split_list(value: Any) -> list:
    """'1,2,3' -> [1, 2, 3] (each item read as YAML, like --grid's values); a single value -> [value]."""
    import yaml

    if not isinstance(value, str):
        return [value]
    out = []
    for item in value.split(","):
        if not item.strip():
            continue
        try:
            out.append(yaml.safe_load(item))
        except yaml.YAMLError:
            out.append(item.strip())
    return out


def _list_example(inner: Any) -> str:
    return {int: "[1, 2, 3]", float: "[0.01, 0.03]"}.get(inner, "[a, b]")


def _type_name(t: Any, plural: bool = False) -> str:
    if plural:
        return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(t, str(t))
    if t is type(None):
        return "null"
    if typing.get_origin(t) is list:
        return f"a list (e.g. {_list_example(typing.get_args(t)[0])})"
    if typing.get_origin(t) is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(t, str(t))


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every field of ``cls`` and its nested sections."""
    import json

    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        sub = f.metadata.get("section")
        if sub is not None:
            rows.extend(describe(sub, key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        if dataclasses.is_dataclass(default) or (isinstance(default, list) and default
                                                  and dataclasses.is_dataclass(default[0])):
            default = to_dict(default) if dataclasses.is_dataclass(default) else [to_dict(d) for d in default]
        rows.append((key, json.dumps(default), f.metadata.get("help", "")))
    return rows


def defaults(cls: type) -> dict:
    """The field values of ``cls()`` as a plain dict."""
    return to_dict(cls())


# -- checks used in __post_init__ --------------------------------------------------------------------------------
def check_choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise unknown_name(f"value for {key}", value, valid)


def check_positive(key: str, value: float) -> None:
    if value <= 0:
        raise XLTuneError(f"{key} must be > 0, got {value}")


def check_unit(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise XLTuneError(f"{key} must be in [0, 1], got {value}")


def check_non_negative(key: str, value: float) -> None:
    if value < 0:
        raise XLTuneError(f"{key} must be >= 0, got {value}")
