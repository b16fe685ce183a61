"""What every options dataclass shares: one error type and a type check of the fields against their annotations.

Values from JSON/TOML configs arrive untyped: ``"epochs": 20.7``, ``true`` or ``"many"`` must fail when the options
are built, naming the option, not deep inside torch seconds later. :func:`check_types` enforces the annotations:
``int`` takes integers (an integral float such as ``20.0`` is converted; ``20.7`` and booleans are refused),
``float`` takes any real number (converted to float; booleans refused), ``bool`` only true/false, ``str`` only
strings, ``tuple`` a list or tuple, and ``Optional[...]`` / ``X | Y`` any of their members.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any

__all__ = ["OptionsError", "check_types"]


class OptionsError(ValueError):
    """Invalid or unknown option (the message names the option and the allowed values)."""


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", tuple: "a list",
          dict: "a table", type(None): "null"}


def _convert(value: Any, kind: Any) -> tuple[bool, Any]:
    """(accepted, converted value) of ``value`` for the annotation ``kind``."""
    origin = typing.get_origin(kind)
    if origin is typing.Union or (hasattr(types, "UnionType") and isinstance(kind, types.UnionType)):
        for member in typing.get_args(kind):
            ok, out = _convert(value, member)
            if ok:
                return True, out
        return False, value
    if origin is not None:
        kind = origin
    if kind is Any:
        return True, value
    if kind is type(None):
        return value is None, value
    if kind is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):
        return False, value
    if kind is int:
        if isinstance(value, numbers.Integral):
            return True, int(value)
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            return True, int(value)
        return False, value
    if kind is float:
        return (True, float(value)) if isinstance(value, numbers.Real) else (False, value)
    if kind is tuple:
        return (True, tuple(value)) if isinstance(value, (list, tuple)) else (False, value)
    if isinstance(kind, type):
        return isinstance(value, kind), value
    return True, value


def _describe(kind: Any) -> str:
    args = typing.get_args(kind)
    if args and (typing.get_origin(kind) is typing.Union
                 or (hasattr(types, "UnionType") and isinstance(kind, types.UnionType))):
        return " or ".join(_describe(a) for a in args)
    kind = typing.get_origin(kind) or kind
    return _NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def check_types(options: Any, skip: tuple = ()) -> None:
    """Check (and normalise: int, float, tuple) every field of a dataclass against its annotation.

    Raises
    ------
    OptionsError
        naming the first field whose value has the wrong type, e.g. ``option epochs must be an integer, got 20.7``.
    """
    hints = typing.get_type_hints(type(options))
    for f in dataclasses.fields(options):
        if f.name in skip or f.name not in hints:
            continue
        value = getattr(options, f.name)
        ok, out = _convert(value, hints[f.name])
        if not ok:
            raise OptionsError(f"option {f.name} must be {_describe(hints[f.name])}, got {value!r}")
        setattr(options, f.name, out)
