"""What every options dataclass shares: one error type, strict construction from mappings (unknown keys are errors,
keys of older versions name what replaced them), JSON round trips and a type check of the fields against their
annotations.

Values from JSON/TOML configs arrive untyped: ``"epochs": 20.7``, ``true`` or ``"many"`` must fail when the options
are built, naming the option, not deep inside torch seconds later. :func:`check_types` enforces the annotations:
``int`` takes integers (an integral float such as ``20.0`` is converted; ``20.7`` and booleans are refused),
``float`` takes any real number (converted to float; booleans refused), ``bool`` only true/false, ``str`` only
strings, ``tuple`` a list or tuple, and ``Optional[...]`` / ``X | Y`` any of their members.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from typing import Any, ClassVar, Mapping, TypeVar

__all__ = ["OptionsError", "Options", "check_types", "from_mapping"]

T = TypeVar("T")


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


def check_types(options: Any, skip: tuple = (), prefix: str = "") -> None:
    """Check (and normalise: int, float, tuple) every field of a dataclass against its annotation; ``prefix`` goes
    before the field's name in messages (e.g. ``"estimate."`` for an option group).

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
            raise OptionsError(f"option {prefix}{f.name} must be {_describe(hints[f.name])}, got {value!r}")
        setattr(options, f.name, out)


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None = None, /, *, label: str | None = None,
                 moved: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build the dataclass ``cls`` from a mapping plus keyword overrides.

    Raises
    ------
    OptionsError
        for a key in ``moved`` (an option of an older version -> what replaced it, e.g. ``"is now method"``), with
        that text; for any other unknown key, listing the valid ones. ``label`` names the options in the message
        (default: the class name).
    """
    data = dict(mapping or {})
    data.update(overrides)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    label = label or cls.__name__
    for key in data:
        if key not in names and moved and key in moved:
            raise OptionsError(f"{label} option {key!r} {moved[key]}")
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        raise OptionsError(f"unknown {label} option(s) {unknown}; valid options are {names}")
    return cls(**data)


def as_options(cls: type[T], options: Any) -> T:
    """``options`` as an instance of ``cls``: None gives the defaults, an instance is returned as it is, a mapping goes
    through ``cls.from_dict``."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    return cls.from_dict(options)


class Options:
    """Mixin of the options dataclasses: ``from_dict`` / ``from_json`` (strict, :func:`from_mapping`) and
    ``to_dict`` / ``to_json`` (nested option groups become nested tables). Subclasses may set ``LABEL`` (the name in
    messages) and ``MOVED`` (old key -> what replaced it)."""

    LABEL: ClassVar[str | None] = None
    MOVED: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def from_dict(cls: type[T], mapping: Mapping[str, Any] | None = None, /, **overrides: Any) -> T:
        """From a dict (e.g. parsed JSON/TOML) plus overrides; unknown or moved keys raise :class:`OptionsError`."""
        return from_mapping(cls, mapping, label=cls.LABEL, moved=cls.MOVED, **overrides)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        """Plain dict of every field (option groups as nested dicts)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
