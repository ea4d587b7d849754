"""The official CBraMod layout loads with no missing/unexpected keys and computes the same thing.

The reference (conftest.py) mirrors the official module tree name for name; its random state_dict
is written as ``pretrained_weights.pth`` in a Hugging Face cache layout and goes through the real
loading path (hub resolution, ``torch.load(weights_only=True)``, ``checkpoint_filter_fn``).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from physio_live.models import (
    CBraMod,
    CheckpointError,
    cbramod_base,
    checkpoint_filter_fn,
    config_from_official,
    load_official_cbramod,
    locate_official_cbramod,
    read_state_dict,
    to_official_state_dict,
)

SHAPES = [(2, 19, 4), (1, 1, 30), (2, 14, 30), (3, 2, 1)]
OFFICIAL_KEY_COUNT = 211  # 17 (patch embedding) + 12 x 16 (layers) + 2 (proj_out)


def test_official_key_names_and_count(
    official_model: torch.nn.Module, reference: SimpleNamespace
) -> None:
    sd = official_model.state_dict()
    assert len(sd) == OFFICIAL_KEY_COUNT == reference.OFFICIAL_KEY_COUNT
    for key in (
        "patch_embedding.proj_in.0.weight",
        "patch_embedding.mask_encoding",
        "patch_embedding.positional_encoding.0.weight",
        "encoder.layers.0.self_attn_s.in_proj_weight",
        "encoder.layers.11.self_attn_t.out_proj.bias",
        "proj_out.0.weight",
    ):
        assert key in sd
    assert sd["patch_embedding.positional_encoding.0.weight"].shape == (200, 1, 19, 7)
    assert sd["encoder.layers.0.self_attn_s.in_proj_weight"].shape == (300, 100)


def test_reference_attention_matches_torch_multihead_attention(reference: SimpleNamespace) -> None:
    """The reference's explicit attention is what nn.MultiheadAttention (official) computes."""
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(100, 4, batch_first=True).eval()
    ref = reference.RefMultiheadAttention(100, 4)
    ref.load_state_dict(mha.state_dict())
    x = torch.randn(6, 19, 100)
    with torch.inference_mode():
        expected = mha(x, x, x, need_weights=False)[0]
        torch.testing.assert_close(ref(x), expected, atol=1e-6, rtol=1e-5)


@pytest.fixture
def loaded(hub_cache: Path) -> CBraMod:
    path = locate_official_cbramod(cache_dir=hub_cache)
    assert path.name == "pretrained_weights.pth"
    sd = read_state_dict(path)
    assert len(sd) == OFFICIAL_KEY_COUNT
    ours = CBraMod().eval()
    result = ours.load_state_dict(checkpoint_filter_fn(sd, ours), strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    return load_official_cbramod(path)


@pytest.mark.parametrize(("batch", "channels", "patches"), SHAPES)
def test_same_output_as_official(
    loaded: CBraMod, official_model: torch.nn.Module, batch: int, channels: int, patches: int
) -> None:
    x = torch.randn(batch, channels, patches, 200)
    with torch.inference_mode():
        feats, ref_feats = loaded.forward_features(x), official_model.forward_features(x)
        out, ref_out = loaded(x), official_model(x)
    assert feats.shape == (batch, channels, patches, 200)
    assert (feats - ref_feats).abs().max().item() <= 1e-5
    assert (out - ref_out).abs().max().item() <= 1e-5


def test_same_output_with_mask(loaded: CBraMod, official_model: torch.nn.Module) -> None:
    x = torch.randn(2, 5, 6, 200)
    mask = (torch.rand(2, 5, 6) < 0.5).long()  # the official code compares mask == 1
    with torch.inference_mode():
        diff = (loaded(x, mask) - official_model(x, mask)).abs().max().item()
    assert diff <= 1e-5


def test_as_close_to_float64_truth_as_the_reference(
    loaded: CBraMod, official_model: torch.nn.Module
) -> None:
    """Scale-free check: our float32 error is float32 rounding, no larger than the reference's."""
    truth_model = copy.deepcopy(official_model).double()
    x = torch.randn(2, 14, 8, 200)
    with torch.inference_mode():
        truth = truth_model(x.double())
        ours_err = (loaded(x).double() - truth).abs().max().item()
        ref_err = (official_model(x).double() - truth).abs().max().item()
    assert ours_err <= 2 * ref_err + 1e-7


def test_training_mode_without_dropout_matches(official_model: torch.nn.Module) -> None:
    """With dropout off, the SDPA (training) path computes the official forward too."""
    model = cbramod_base(state_dict=official_model.state_dict(), drop_rate=0.0).train()
    x = torch.randn(2, 6, 3, 200)
    with torch.no_grad():
        assert (model(x) - official_model(x)).abs().max().item() <= 1e-5


def test_remap_round_trips_both_ways(official_model: torch.nn.Module) -> None:
    official = official_model.state_dict()
    ours = checkpoint_filter_fn(official)
    assert set(ours) == set(CBraMod().state_dict())
    back = to_official_state_dict(ours)
    assert list(back) == list(official)
    assert all(back[k] is official[k] for k in official)

    model = CBraMod()
    again = checkpoint_filter_fn(to_official_state_dict(model.state_dict()))
    assert list(again) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(again[k], v), k


def test_filter_accepts_dataparallel_prefix_and_our_layout(official_model: torch.nn.Module) -> None:
    official = official_model.state_dict()
    prefixed = {f"module.{k}": v for k, v in official.items()}
    assert checkpoint_filter_fn(prefixed).keys() == checkpoint_filter_fn(official).keys()
    ours = CBraMod().state_dict()
    assert checkpoint_filter_fn(ours).keys() == ours.keys()


def test_headless_model_drops_the_reconstruction_head(official_model: torch.nn.Module) -> None:
    model = cbramod_base(state_dict=official_model.state_dict(), head=False).eval()
    x = torch.randn(1, 3, 2, 200)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), official_model.forward_features(x), atol=1e-5, rtol=0)


def test_config_read_from_official_state_dict(
    official_model: torch.nn.Module, reference: SimpleNamespace
) -> None:
    cfg = config_from_official(official_model.state_dict())
    assert cfg == CBraMod().config
    small = reference.RefCBraMod(d_model=40, dim_feedforward=80, n_layer=3, out_dim=40)
    cfg = config_from_official(small.state_dict())
    assert (cfg.depth, cfg.embed_dim, cfg.mlp_dim, cfg.out_dim) == (3, 40, 80, 40)


def test_other_architecture_names_the_offending_keys(
    tmp_path: Path, reference: SimpleNamespace
) -> None:
    torch.manual_seed(0)
    shallow = reference.RefCBraMod(n_layer=6)
    path = tmp_path / "pretrained_weights.pth"
    torch.save(shallow.state_dict(), path)
    with pytest.raises(CheckpointError, match=re.escape("missing: blocks.10.")) as info:
        load_official_cbramod(path)
    assert "12 layers" in str(info.value)
    wide = reference.RefCBraMod(dim_feedforward=1024, n_layer=12)
    torch.save(wide.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"wrong shape: blocks\.0\.mlp\.fc1\.bias"):
        load_official_cbramod(path)
