"""Typed settings from TOML tables: every key checked against a dataclass, errors name the key.

Each source, destination and the pipeline's ``[options]`` declare their settings as a
dataclass; ``from_table`` builds one from a table and refuses what does not fit (an unknown
key, a wrong type such as ``workers = "8"``, a value out of range) with a ``ConfigError``
that names ``section.key``, so the CLI exits 2 with a message the user can act on.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}


def parse_size(value: int | str) -> int:
    """``2GiB``, ``500 MB``, ``1048576`` -> bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"not a size: {value!r} (try 500MiB or 2GiB)")
    if isinstance(value, int):
        return value
    m = _SIZE.match(value)
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise ConfigError(f"not a size: {value!r} (try 500MiB or 2GiB)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def human_size(n: int) -> str:
    """1536 -> '1.5 KiB'; exact byte counts below 1 KiB."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{size:.4g} {unit}"
        size /= 1024
    return f"{size:.4g} TiB"


def size_field(default: int) -> Any:
    """A field given in bytes or as a size string (``"4GiB"``)."""
    return dataclasses.field(default=default, metadata={"size": True})


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, *, size: bool = False) -> Any:
    """``value`` as ``tp``, or a ConfigError naming ``key``. Only lossless conversions: an
    int is accepted where a float is expected, nothing else is guessed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, size=size)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if size and tp is int:
        try:
            return parse_size(value)
        except ConfigError:
            raise ConfigError(
                f'{key} must be a size in bytes or like "500MiB", not {value!r}'
            ) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, not {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, not {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, not {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of {_type_name(item)}, not {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _k, v_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, not {value!r}")
        return {str(k): _coerce(v, v_tp, f"{key}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        raise ConfigError(
            f"{key} must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}"
        )
    raise ConfigError(f"{key}: unsupported setting type {tp!r}")  # pragma: no cover


def from_table(cls: type[T], table: Mapping[str, Any], section: str) -> T:
    """Build the settings dataclass ``cls`` from a TOML table; errors name ``section.key``."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{section} must be a table, not {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(fields))
    if unknown:
        where = ", ".join(f"{section}.{k}" if section else k for k in unknown)
        raise ConfigError(
            f"unknown setting: {where}",
            hint="known here: " + ", ".join(sorted(fields)),
        )
    values = {}
    for name, value in table.items():
        key = f"{section}.{name}" if section else name
        values[name] = _coerce(
            value, hints[name], key, size=bool(fields[name].metadata.get("size"))
        )
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(section)
    return obj


def to_table(obj: Any) -> dict[str, Any]:
    """A settings dataclass as a plain table (stored in the state DB as JSON)."""
    return dataclasses.asdict(obj)


def require(ok: bool, section: str, key: str, message: str) -> None:
    """Raise a ConfigError naming ``section.key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{section}.{key} {message}" if section else f"{key} {message}")
