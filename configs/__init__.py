"""Shipped YAML configurations (package data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["builtin_config_path", "list_builtin_configs"]


def builtin_config_path(name: str) -> Path:
    """Path of a shipped config, by file name with or without ``.yaml``."""
    fname = name if name.endswith(".yaml") else f"{name}.yaml"
    return Path(str(resources.files(__name__).joinpath(fname)))


#: prefixes of the trainer's recipes (``physio-train``); the rest are app configs
TRAIN_PREFIXES = ("pretrain_", "finetune_")


def list_builtin_configs(kind: str = "app") -> list[str]:
    """Names (without extension) of the shipped configs: ``app`` ones, ``train`` ones or ``all``."""
    names = sorted(
        p.name[: -len(".yaml")]
        for p in resources.files(__name__).iterdir()
        if p.name.endswith(".yaml")
    )
    if kind == "all":
        return names
    is_train = [n.startswith(TRAIN_PREFIXES) for n in names]
    return [n for n, t in zip(names, is_train, strict=True) if t == (kind == "train")]
