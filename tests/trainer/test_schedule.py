"""Pretraining and fine-tuning share one learning-rate schedule and one device choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physio_live.trainer import OptimConfig, TrainError, lr_at
from physio_live.trainer._finetune import _device, _lr
from physio_live.trainer._finetune_config import FinetuneTrainConfig
from physio_live.trainer._schedule import pick_train_device


def test_pretraining_and_finetuning_follow_the_same_schedule():
    rng = np.random.default_rng()
    for _ in range(5):
        steps = int(rng.integers(20, 400))
        warm = int(rng.integers(0, steps // 2))
        lr = float(10 ** rng.uniform(-5, -2))
        min_lr = lr * float(rng.uniform(0, 0.5))
        o = OptimConfig(lr=lr, min_lr=min_lr, warmup_steps=warm, steps=steps)
        t = FinetuneTrainConfig(lr=lr, min_lr=min_lr, warmup_steps=warm, steps=steps)
        for s in rng.integers(0, steps + 10, 30):
            assert _lr(int(s), t) == lr_at(int(s), o)
        assert _lr(steps, t) == pytest.approx(min_lr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_one_clear_error_in_both():
    with pytest.raises(TrainError, match=r"train\.device is cuda .* use train\.device=auto"):
        _device("cuda")
    with pytest.raises(TrainError, match=r"run\.device is cuda"):
        pick_train_device("cuda", "run.device")
    assert _device("auto").type == "cpu" and not pick_train_device("cpu", "run.device")
