"""Helpers shared by the option dataclasses: strict construction from mappings, JSON round trips."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from ..optionsbase import OptionsError, from_mapping  # one error type and one strict constructor for every options class

__all__ = ["OptionsError", "from_mapping", "to_dict", "to_json"]


def to_dict(options: Any) -> dict:
    """Plain-JSON dict of an options dataclass (tuples become lists, inf becomes the string "inf")."""
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, float) and math.isinf(value):
            value = "inf" if value > 0 else "-inf"
        out[f.name] = value
    return out


def to_json(options: Any) -> str:
    return json.dumps(to_dict(options), sort_keys=True)


def check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise OptionsError(f"option {name}={value!r} is not one of {tuple(choices)}")


def check_positive(name: str, value: Any, allow_none: bool = False, allow_zero: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise OptionsError(f"option {name} must be a finite number {bound}, got {value!r}")


def check_int(name: str, value: Any, minimum: int = 0, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionsError(f"option {name} must be an integer >= {minimum}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise OptionsError(f"option {name} must be true or false, got {value!r}")


def as_float(value: Any) -> Any:
    """JSON-friendly float parsing: "inf" -> inf; other values unchanged."""
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity"):
        return math.inf
    return value
