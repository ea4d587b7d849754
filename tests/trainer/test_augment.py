"""Training-batch augmentation and the record-balanced sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physio_live.core import ConfigError
from physio_live.trainer import BatchPlan, Corpus, build_cache
from physio_live.trainer._batches import (
    _augment,
    _next_samples,
    _time_augment,
    record_weights,
)
from physio_live.trainer._config import AugmentConfig


def _x(b: int = 6, c: int = 2, p: int = 4, s: int = 200) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, c, p, s, generator=g)


def test_lead_augmentations_change_each_lead_on_its_own():
    x = _x(b=400)
    g = torch.Generator().manual_seed(0)
    y = _augment(x, AugmentConfig(lead_flip=0.5), g)
    ratio = (y / x).mean(dim=(2, 3))  # the factor each lead got
    assert torch.allclose(ratio.abs(), torch.ones_like(ratio), atol=1e-5)
    flips = ratio < 0
    assert 0.35 < flips.float().mean() < 0.65
    assert (flips[:, 0] != flips[:, 1]).any()  # leads flipped independently

    y = _augment(x, AugmentConfig(lead_scale=[0.5, 2.0]), g)
    f = (y / x).mean(dim=(2, 3))
    assert (f >= 0.5 - 1e-5).all() and (f <= 2.0 + 1e-5).all() and (f[:, 0] != f[:, 1]).any()

    y = _augment(x, AugmentConfig(lead_shuffle=1.0), g)
    swapped = (y[:, 0] == x[:, 1]).flatten(1).all(dim=1)
    kept = (y[:, 0] == x[:, 0]).flatten(1).all(dim=1)
    assert (swapped | kept).all() and 0.3 < swapped.float().mean() < 0.7
    assert torch.equal(_augment(x, AugmentConfig(), g), x)


def test_time_scaling_resamples_from_a_random_start():
    b, c, p, s, hop = 3, 2, 4, 50, 2
    t = torch.arange((p + hop) * s, dtype=torch.float32)
    long = torch.stack([t, -t]).expand(b, c, -1)  # a ramp: easy to check positions
    x = long[..., : p * s].reshape(b, c, p, s)
    nxt = long[..., hop * s :].reshape(b, c, p, s)
    g = torch.Generator().manual_seed(0)
    # no continuation: the factor is capped at 1 and the start is 0 -> unchanged
    y = _time_augment(x, nxt, torch.zeros(b, dtype=torch.bool), hop, [1.5, 1.5], g)
    assert torch.allclose(y, x)
    # continuation: 1.2x faster, a straight ramp of slope 1.2 (lead 1: -1.2) from some start
    y = _time_augment(x, nxt, torch.ones(b, dtype=torch.bool), hop, [1.2, 1.2], g).flatten(2)
    slope = y[..., 1:] - y[..., :-1]
    assert torch.allclose(slope[:, 0], torch.full_like(slope[:, 0], 1.2), atol=1e-3)
    assert torch.allclose(slope[:, 1], torch.full_like(slope[:, 1], -1.2), atol=1e-3)
    assert (y[:, 0, 0] >= 0).all() and (y[:, 0, -1] <= (p + hop) * s - 1 + 1e-3).all()


def test_next_sample_continuation_and_record_balance(tiny_config):
    cfg = tiny_config(data={"hop_patches": 2})  # overlapping samples
    corpus = Corpus(build_cache(cfg.data, progress=False))
    idx = np.arange(len(corpus))
    x = torch.from_numpy(corpus.get(idx))
    _, ok, _ = _next_samples(corpus, idx, x, 2)
    rec = corpus.record_of(idx)
    last_of_record = np.append(rec[1:] != rec[:-1], True)
    assert not ok[torch.from_numpy(last_of_record)].any()  # never across records
    assert ok.float().mean() > 0.5

    train, _ = corpus.split(cfg.data.val_records)
    counts = np.bincount(corpus.record_of(train))
    assert counts[counts > 0].std() > 0  # records of different lengths
    w = record_weights(corpus, train, 1.0)
    share = np.bincount(corpus.record_of(train), weights=w / w.sum())
    assert np.allclose(share[counts > 0], 1 / (counts > 0).sum())
    assert record_weights(corpus, train, 0.0) is None
    half = record_weights(corpus, train, 0.5)
    share = np.bincount(corpus.record_of(train), weights=half / half.sum())
    want = np.sqrt(counts[counts > 0]) / np.sqrt(counts[counts > 0]).sum()
    assert np.allclose(share[counts > 0], want)

    plan = BatchPlan(train, 8, 1, 1, seed=3, weights=w)
    a, b = plan.indices(5, 0, 0), plan.indices(5, 0, 0)
    assert np.array_equal(a, b) and not np.array_equal(a, plan.indices(6, 0, 0))
    assert set(a) <= set(train)


@pytest.mark.parametrize(
    ("override", "text"),
    [
        ({"augment": {"lead_scale": [2.0, 1.0]}}, "augment.lead_scale: give [low, high]"),
        ({"augment": {"time_scale": [0.0, 1.0]}}, "augment.time_scale: give [low, high]"),
        ({"augment": {"lead_flip": 1.5}}, "augment.lead_flip: must be a probability"),
        ({"data": {"balance": 2.0}}, "data.balance: must be in [0, 1]"),
    ],
)
def test_new_keys_are_checked(tiny_config, override, text):
    with pytest.raises(ConfigError) as e:
        tiny_config(**override)
    assert text in str(e.value)


def test_training_runs_with_every_augmentation(tiny_config):
    from physio_live.trainer import pretrain

    cfg = tiny_config(
        data={"hop_patches": 2, "balance": 1.0},
        augment={
            "scale": [0.5, 2.0],
            "flip": 0.5,
            "lead_scale": [0.8, 1.25],
            "lead_flip": 0.1,
            "lead_shuffle": 0.5,
            "time_scale": [0.7, 1.4],
        },
    )
    res = pretrain(cfg, progress=False)
    assert res.finished and math.isfinite(res.eval["mse"])
