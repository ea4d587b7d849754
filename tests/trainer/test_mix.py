"""Pretraining on more than one corpus at once (``mix:``): 2-lead records of ``../shared/data``
beside 12-lead LUDB records, whole batches from each."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from physio_live.core import ConfigError
from physio_live.models import load_checkpoint
from physio_live.trainer import (
    BatchPlan,
    Corpus,
    TrainError,
    cache_path,
    pretrain,
    pretrain_config_from_dict,
)
from physio_live.trainer._batches import MixSource, batches, source_of_step
from physio_live.trainer._loop import DistInfo

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("PHYSIO_LIVE_DATASETS", ROOT.parent / "shared" / "datasets"))
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _ludb_mix(share: float = 0.5) -> dict:
    ludb = DATASETS / "ludb" / "data"
    if not ludb.is_dir():
        pytest.skip(f"LUDB not found at {ludb}")
    return {
        "share": share,
        "data": {
            "root": str(ludb),
            "include": ["[1-8].hea"],
            "channels": LEADS,
            "n_channels": 12,
            "wfdb_gain": 1000.0,
            "hop_patches": 2,
            "val_records": [],
            "split": {"train": ["{1..6}"], "val": ["{7..8}"], "test": []},
        },
    }


def test_source_of_step_is_a_pure_function_of_the_step_with_the_asked_shares():
    seed = int(np.random.default_rng().integers(1000))
    picks = [source_of_step(seed, s, [0.2, 0.3]) for s in range(3000)]
    assert picks == [source_of_step(seed, s, [0.2, 0.3]) for s in range(3000)]
    counts = np.bincount(picks, minlength=3) / len(picks)
    assert counts == pytest.approx([0.5, 0.2, 0.3], abs=0.04)
    assert {source_of_step(seed, s, []) for s in range(50)} == {0}


def test_a_mixed_run_takes_whole_batches_from_each_corpus_and_evaluates_both(tiny_config):
    cfg = tiny_config(
        optim={"steps": 12, "batch_size": 4},
        run={"eval_every": 6, "log_every": 6, "ckpt_every": 6},
        mix=[_ludb_mix(0.5)],
    )
    res = pretrain(cfg, progress=False)
    assert res.finished and res.step == 12
    rows = list(csv.DictReader((res.out_dir / "eval.csv").read_text().splitlines()))
    assert [r["step"] for r in rows] == ["6", "12"]
    for r in rows:  # both corpora's validation samples, each against its own baselines
        assert float(r["mix1_n_samples"]) > 0 and float(r["n_samples"]) > 0
        assert float(r["mix1_mse"]) > 0 and float(r["mix1_zeros"]) != float(r["zeros"])
    prov = load_checkpoint(res.encoder).provenance
    assert any("ludb" in d for d in prov.datasets) and len(prov.datasets) == 4

    # the batches the run saw: 12 leads exactly on the steps drawn for LUDB, 2 on the others
    ((share, data, masking, augment),) = cfg.mixed()
    main_c, ludb_c = Corpus(cache_path(cfg.data)), Corpus(cache_path(data))
    tr, _ = main_c.split(cfg.data.val_records, cfg.data.val_fraction, None, cfg.data.split)
    ltr, lva = ludb_c.split([], 0.1, None, data.split)
    plan = BatchPlan(tr, 4, 1, 1, cfg.run.seed)
    lplan = BatchPlan(ltr, 4, 1, 1, cfg.run.seed + 7)
    mix = MixSource(share, ludb_c, lplan, lva, data, masking, augment)
    mixed = {s: x for s, _, x, _ in batches(main_c, plan, cfg, DistInfo(), 0, 40, [mix])}
    seen = {s: x.shape[1] for s, x in mixed.items()}
    want = {s: 12 if source_of_step(cfg.run.seed, s, [share]) else 2 for s in range(40)}
    assert seen == want and set(want.values()) == {2, 12}
    # a step of the main corpus gets the very batch (samples, augmentation) it gets with no mix
    plain = {s: x for s, _, x, _ in batches(main_c, plan, cfg, DistInfo(), 0, 40)}
    assert all(torch.equal(mixed[s], plain[s]) for s in range(40) if want[s] == 2)

    # a mix item's own augment section acts on its batches only (here: every sample's sign)
    flip = dataclasses.replace(augment, flip=1.0)
    assert augment.flip == 0.0 and cfg.augment.flip == 0.0
    mix_f = MixSource(share, ludb_c, lplan, lva, data, masking, flip)
    flipped = {s: x for s, _, x, _ in batches(main_c, plan, cfg, DistInfo(), 0, 40, [mix_f])}
    for s in range(40):
        assert torch.equal(flipped[s], -mixed[s] if want[s] == 12 else mixed[s]), s


@pytest.mark.parametrize(
    ("mix", "text"),
    [
        ([{"share": 0.0}], "mix[0].share: must be in (0, 1)"),
        ([{"share": 0.6}, {"share": 0.5}], "the shares add up to 1.1"),
        (
            [{"share": 0.3, "data": {"n_channels": 1}}],
            "inter-lead masking needs mix[0].data.n_channels >= 2",
        ),
        ([{"share": 0.3, "data": {"rate": 250.0}}], "rate and patch_size must be the recipe's"),
        ([{"share": 0.3, "data": {"nchannels": 1}}], "unknown key"),
        ([{"share": 0.3, "augment": {"scale": [2.0, 1.0]}}], "mix[0].augment.scale: give [low"),
    ],
)
def test_bad_mix_configs_are_one_clear_line(tiny_config, mix, text):
    with pytest.raises(ConfigError) as e:
        pretrain_config_from_dict(tiny_config(raw=True, mix=mix), "tiny")
    assert text in str(e.value) and "\n" not in str(e.value)
    one = [{"share": 0.3, "data": {"n_channels": 1}, "masking": {"inter_prob": 0.0}}]
    one[0]["augment"] = {"scale": [0.5, 2.0]}
    one_cfg = pretrain_config_from_dict(tiny_config(raw=True, mix=one))
    ((share, data, masking, aug),) = one_cfg.mixed()
    assert (share, data.n_channels, masking.inter_prob, data.rate) == (0.3, 1, 0.0, 200.0)
    assert aug.scale == [0.5, 2.0]


def test_a_mix_corpus_without_training_samples_is_named_in_one_line(tiny_config):
    bad = _ludb_mix(0.3)
    bad["data"]["split"] = {"train": ["{300..301}"], "val": ["{7..8}"], "test": []}
    with pytest.raises(TrainError) as e:
        pretrain(tiny_config(mix=[bad]), progress=False)
    msg = str(e.value)
    assert msg.startswith("mix[0] (") and "ludb" in msg and "\n" not in msg, msg
