"""Config files: JSON and TOML in, JSON out (atomically)."""
from __future__ import annotations

import json
import os
import pathlib
import sys
from collections.abc import Mapping
from typing import Any


from ..atomic import InputError, atomic_write
from ._common import _name
from .results import _json_default
from .sources import _require_file, _suffix


# ----------------------------------------------------------------------------------------------------------------------
# Configuration files
# ----------------------------------------------------------------------------------------------------------------------

def save_config_json(path: str | os.PathLike[str], config: Mapping[str, Any],
                     overwrite: bool = False) -> pathlib.Path:
    """Write ``config`` as indented JSON, atomically.

    Numpy scalars and arrays are stored as numbers and lists, paths as strings.
    """
    try:
        text = json.dumps(dict(config), indent=2, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise InputError(f"{_name(path)}: the config cannot be stored as JSON ({exc}). Keep config values to "
                         f"numbers, strings, lists and dicts.") from exc
    with atomic_write(path, overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    return pathlib.Path(path)


def load_config(path: str | os.PathLike[str]) -> dict:
    """Read a configuration file (``.json``, or ``.toml`` on Python >= 3.11) into a dict.

    Raises
    ------
    InputError
        Missing file, unknown suffix, a syntax error (with its position), a top level that is not a table/object, or
        TOML on Python < 3.11.
    """
    file = _name(path)
    suffix = _suffix(file)
    if suffix not in (".json", ".toml"):
        raise InputError(f"{file}: unknown config type '{suffix}'. Give a .json or .toml file.")
    _require_file(file, "config")
    if suffix == ".json":
        try:
            with open(file, encoding="utf-8") as handle:
                config = json.load(handle)
        except json.JSONDecodeError as exc:
            raise InputError(f"{file}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}. Fix the "
                             f"file.") from exc
    else:
        if sys.version_info < (3, 11):  # pragma: no cover - depends on the interpreter
            raise InputError(f"{file}: TOML needs Python >= 3.11 (tomllib); use a .json config instead.")
        import tomllib

        try:
            with open(file, "rb") as handle:
                config = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{file}: invalid TOML: {exc}. Fix the file.") from exc
    if not isinstance(config, dict):
        raise InputError(f"{file}: the top level must be a JSON object / TOML table of options, got "
                         f"{type(config).__name__}.")
    return config
