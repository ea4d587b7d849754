"""The YAML -> typed dataclass engine behind every config and recipe (app and trainer).

``yaml.safe_load`` only. Every problem is one :class:`ConfigError` line naming the file, the key
and the fix, e.g. ``configs/lab.yaml: aligner.hopp: unknown key; did you mean 'hop'? (allowed:
rate, window, ...)``. Command-line overrides use dotted keys (``aligner.hop=0.25``, values read as
YAML) and go through the same checks. A union of dataclasses told apart by their ``kind`` key is
registered with :func:`register_tagged_union`. The app's own schema is in ``_config.py``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from ._errors import ConfigError

__all__ = [
    "apply_overrides",
    "build_dataclass",
    "read_config_file",
    "register_tagged_union",
    "scientific_numbers",
]

#: unions of dataclasses told apart by their ``kind`` key: members -> (kind -> class, noun)
_TAGGED: dict[frozenset, tuple[dict[str, type], str]] = {}


def register_tagged_union(kinds: dict[str, type], noun: str) -> None:
    """Convert a value typed as the union of ``kinds``' classes by its ``kind`` key (an unknown
    kind is reported as ``'x' is not a <noun> kind``)."""
    _TAGGED[frozenset(kinds.values())] = (dict(kinds), noun)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if origin is list:
        inner = _type_name(typing.get_args(tp)[0]).removeprefix("a ").removeprefix("an ")
        return f"a list of {inner}s"
    if origin is dict:
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for members, (kinds, noun) in _TAGGED.items():
            if set(args) == members:
                return _convert_tagged(value, kinds, noun, where)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError:
                continue  # try the next member of the union
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if value is None:
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got null")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of settings, got {value!r}")
        return build_dataclass(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _convert_tagged(value: Any, kinds: dict[str, type], noun: str, where: str) -> Any:
    if not isinstance(value, dict):
        options = " or ".join(f"'kind: {k}'" for k in kinds)
        raise ConfigError(f"{where}: expected a mapping with {options}")
    kind = value.get("kind")
    if kind not in kinds:
        raise ConfigError(
            f"{where}.kind: {kind!r} is not a {noun} kind; use one of {sorted(kinds)}"
        )
    return build_dataclass(kinds[kind], value, where)


def build_dataclass(cls: type, data: dict, where: str) -> Any:
    """Build dataclass ``cls`` from a raw mapping, converting and checking every value against
    its type hint; ``where`` prefixes every error (``file.yaml:`` or ``file.yaml: data``)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    kwargs = {}
    for key, value in data.items():
        sub = f"{where} {key}" if where.endswith(":") else f"{where}.{key}"  # file: a.b
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{sub}: unknown key; {hint}(allowed: {', '.join(fields)})")
        kwargs[key] = _convert(value, hints[key], sub)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where.rstrip(':')}: missing required key {missing[0]!r}")
    return cls(**kwargs)


def _set_dotted(data: dict, dotted: str, value: Any, where: str) -> None:
    keys = dotted.split(".")
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            try:
                node = node[int(key)]
            except (ValueError, IndexError):
                raise ConfigError(f"{where}: override {dotted!r}: no list item {key!r}") from None
            continue
        node = node.setdefault(key, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"{where}: override {dotted!r}: {'.'.join(keys[: i + 1])} is a value")
    last = keys[-1]
    if isinstance(node, list):
        try:
            node[int(last)] = value
        except (ValueError, IndexError):
            raise ConfigError(f"{where}: override {dotted!r}: no list item {last!r}") from None
    else:
        node[last] = value


def apply_overrides(data: dict, overrides: list[str], where: str = "command line") -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{where}: override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value, where)
    return data


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def scientific_numbers(data: Any) -> Any:
    """YAML 1.1 reads ``5e-4`` (no dot) as a string; read such strings as the numbers they mean."""
    if isinstance(data, dict):
        return {k: scientific_numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [scientific_numbers(v) for v in data]
    if isinstance(data, str) and _SCIENTIFIC.match(data.strip()):
        return float(data)
    return data


def read_config_file(
    path: str | Path, overrides: list[str] | None = None, *, kind: str = "app"
) -> tuple[dict, Path]:
    """The raw mapping of a YAML config file (or a built-in config's name), overrides applied.

    ``kind`` names which built-in configs the error message offers (``app`` or ``train``).
    Every problem is one :class:`ConfigError` line naming the file and the fix.
    """
    from physio_live.configs import builtin_config_path, list_builtin_configs

    p = Path(path)
    if not p.exists() and str(path) in list_builtin_configs("all"):
        p = builtin_config_path(str(path))
    if not p.exists():
        raise ConfigError(
            f"{path}: config file not found; give a path to a YAML file or one of the built-in "
            f"configs: {', '.join(list_builtin_configs(kind))}"
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}:{at}: not valid YAML ({problem}); fix the syntax there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the file must hold a mapping of settings")
    if overrides:
        apply_overrides(data, overrides)
    return data, p
