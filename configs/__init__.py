"""Shipped YAML configurations (package data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["builtin_config_path", "list_builtin_configs"]


def builtin_config_path(name: str) -> Path:
    """Path of a shipped config, by file name with or without ``.yaml``."""
    fname = name if name.endswith(".yaml") else f"{name}.yaml"
    return Path(str(resources.files(__name__).joinpath(fname)))


def list_builtin_configs() -> list[str]:
    """Names (without extension) of all shipped configs."""
    return sorted(
        p.name[: -len(".yaml")]
        for p in resources.files(__name__).iterdir()
        if p.name.endswith(".yaml")
    )
