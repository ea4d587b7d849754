"""Tiny pretraining configs on the real records in ``../shared/data``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from physio_live.trainer import PretrainConfig, pretrain_config_from_dict

TINY: dict[str, Any] = {
    "modality": "ecg",
    "data": {
        "kind": "wfdb",
        "root": "",
        "n_channels": 2,
        "sample_patches": 4,
        "hop_patches": 4,
        "include": ["wfdb_ptbdb_s0010_re/*", "wfdb_challenge2015_v102s/*", "wfdb_mimicdb_041s*/*"],
        "val_records": ["wfdb_mimicdb_041s*"],
    },
    "masking": {"kind": "dual", "ratio": 0.5, "inter_prob": 0.5},
    "model": {"embed_dim": 40, "depth": 1, "num_heads": 2, "mlp_dim": 40, "drop_rate": 0.1},
    "optim": {"lr": 1e-3, "warmup_steps": 2, "steps": 8, "batch_size": 8},
    "run": {"log_every": 2, "eval_every": 4, "ckpt_every": 4, "eval_batches": 2, "prefetch": 1},
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One preprocessing cache for the whole session (the cache is keyed by its parameters)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tiny_config(data_dir: Path, tmp_path: Path, shared_cache: Path):
    """``tiny_config(**sections)`` -> a validated tiny :class:`PretrainConfig` in ``tmp_path``."""

    def make(raw: bool = False, **over: Any) -> PretrainConfig | dict[str, Any]:
        d = merge(TINY, {"data": {"root": str(data_dir), "cache_dir": str(shared_cache)}})
        d = merge(d, {"run": {"out_dir": str(tmp_path / "run")}})
        d = merge(d, over)
        return d if raw else pretrain_config_from_dict(d, "tiny")

    return make
