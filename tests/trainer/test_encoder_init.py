"""Fine-tuning recipes name their encoders by shipped name or by path."""

from __future__ import annotations

import pytest
import torch

from physio_live.models import load_checkpoint, resolve_checkpoint, shipped_checkpoints
from physio_live.trainer import TrainError
from physio_live.trainer._finetune import _load_encoder
from physio_live.trainer._finetune_config import EncoderInit


def test_encoder_init_takes_a_shipped_name_or_its_path():
    if "ecg-ludb" not in shipped_checkpoints():
        pytest.fail("the shipped ECG encoder ecg-ludb is missing from models/weights")
    by_name, parents = _load_encoder(EncoderInit(init="ecg-ludb"), "ecg")
    by_path, _ = _load_encoder(EncoderInit(init=str(resolve_checkpoint("ecg-ludb"))), "ecg")
    shipped = load_checkpoint(resolve_checkpoint("ecg-ludb")).model.state_dict()
    got = by_name.state_dict()
    assert "ecg-ludb" in parents[0]
    common = [k for k in got if k in shipped]
    assert len(common) > 10
    for k in common:
        assert torch.equal(got[k], shipped[k]), k
        assert torch.equal(by_path.state_dict()[k], got[k]), k


def test_unknown_encoder_name_lists_the_shipped_ones():
    with pytest.raises(TrainError, match=r"model\.eeg\.init: .*shipped: .*ecg-ludb"):
        _load_encoder(EncoderInit(init="no-such-encoder"), "eeg")


def test_pretraining_starts_from_a_shipped_encoder_by_name():
    """``physio-train pretrain --set model.init=ecg-ludb`` continues the shipped encoder, head
    included (its reconstruction is as good as the file's on the same input)."""
    from physio_live.trainer import build_model, load_pretrain_config

    cfg = load_pretrain_config("pretrain_ecg_ludb", ["model.init=ecg-ludb"])
    model, parents = build_model(cfg)
    shipped = load_checkpoint(resolve_checkpoint("ecg-ludb")).model
    assert parents and "ecg-ludb" in parents[0]
    x = torch.randn(3, 12, 4, 200)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), shipped.eval()(x), atol=1e-5)
    bad = load_pretrain_config("pretrain_ecg_ludb", ["model.init=no-such-encoder"])
    with pytest.raises(TrainError, match=r"model\.init: .*shipped: .*ecg-ludb"):
        build_model(bad)
