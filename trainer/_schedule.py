"""What pretraining and fine-tuning share: the learning-rate schedule and the device choice.

The learning rate is a pure function of the optimizer step (so a resumed run continues exactly):
linear warmup over ``warmup_steps``, then a half cosine from ``lr`` down to ``min_lr`` at
``steps``. Checkpoints of both are written atomically (temp file + ``os.replace``): training
state by :func:`physio_live.trainer._loop` and exported models by
:func:`physio_live.models.save_checkpoint`.
"""

from __future__ import annotations

import math

import torch

from ._config import TrainError

__all__ = ["pick_train_device", "warmup_cosine_lr"]


def warmup_cosine_lr(
    step: int, *, lr: float, min_lr: float, warmup_steps: int, steps: int
) -> float:
    """Learning rate of optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))


def pick_train_device(pref: str, key: str) -> bool:
    """Whether to train on CUDA for ``pref`` (``auto``, ``cpu`` or ``cuda``); ``cuda`` without a
    visible device is a :class:`TrainError` naming the config ``key``."""
    if pref == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"{key} is cuda but no CUDA device is visible; use {key}=auto")
    return pref == "cuda" or (pref == "auto" and torch.cuda.is_available())
