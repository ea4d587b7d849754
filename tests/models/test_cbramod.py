"""CBraMod and the ECG encoder: shapes, finite outputs, gradients on every parameter, errors."""

from __future__ import annotations

import math
import os

import pytest
import torch

from physio_live.models import (
    CBraMod,
    CBraModConfig,
    ModelInputError,
    cbramod_base,
    cbramod_ecg,
    num_params,
)

SMALL = {"embed_dim": 40, "depth": 2, "num_heads": 4, "mlp_dim": 80, "out_dim": 40}


def _small(**kw: object) -> CBraMod:
    torch.manual_seed(0)
    return CBraMod(**{**SMALL, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("channels", "patches"), [(1, 1), (2, 5), (19, 4), (12, 3)])
def test_shapes_and_finite(channels: int, patches: int) -> None:
    model = _small().eval()
    x = torch.randn(3, channels, patches, 200)
    with torch.inference_mode():
        feats = model.forward_features(x)
        out = model(x)
        emb = model.forward_embedding(x)
    assert feats.shape == (3, channels, patches, 40)
    assert out.shape == (3, channels, patches, 40)
    assert emb.shape == (3, 40)
    for t in (feats, out, emb):
        assert torch.isfinite(t).all()
    torch.testing.assert_close(emb, feats.mean(dim=(1, 2)))


@pytest.mark.parametrize("fused_attn", [True, False])
def test_gradients_reach_every_parameter(fused_attn: bool) -> None:
    model = _small(fused_attn=fused_attn).train()
    x = torch.randn(2, 3, 4, 200)
    mask = torch.rand(2, 3, 4) < 0.5
    model(x, mask).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert [n for n, _ in model.named_buffers()] == ["patch_embed.mask_token"]


def test_attention_kernels_agree() -> None:
    """SDPA (used on GPU and in training) and the explicit path (CPU inference) match."""
    fused, explicit = _small(fused_attn=True).eval(), _small(fused_attn=False).eval()
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(2, 7, 5, 200)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), explicit(x), atol=1e-5, rtol=1e-5)


def test_mask_replaces_patches_by_the_mask_token() -> None:
    model = _small().eval()
    x = torch.randn(1, 3, 4, 200)
    mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    mask[0, 1, 2] = True
    zeroed = x.clone()
    zeroed[0, 1, 2] = 0.0
    with torch.inference_mode():
        torch.testing.assert_close(model(x, mask), model(zeroed))
        assert not torch.allclose(model(x, mask), model(x))


def test_windows_in_a_batch_are_independent() -> None:
    model = _small().eval()
    x = torch.randn(3, 4, 2, 200)
    with torch.inference_mode():
        batched = model.forward_features(x)
        single = model.forward_features(x[1:2])
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=1e-5)


def test_reset_head_gives_features() -> None:
    model = _small().eval()
    model.reset_head()
    assert model.config.out_dim is None
    x = torch.randn(1, 2, 2, 200)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), model.forward_features(x))


def test_official_size() -> None:
    model = cbramod_base()
    assert model.config == CBraModConfig()
    assert len(model.blocks) == 12
    # 4.92 M parameters (the paper's ~4.9 M); the frozen mask token is a buffer
    assert num_params(model) == 4_923_800


@pytest.mark.parametrize("leads", [1, 2, 12])
def test_ecg_encoder_any_lead_count(leads: int) -> None:
    torch.manual_seed(0)
    ecg = cbramod_ecg(**SMALL).eval()
    assert isinstance(ecg.head, torch.nn.Identity)
    with torch.inference_mode():
        emb = ecg.forward_embedding(torch.randn(2, leads, 3, 200))
    assert emb.shape == (2, 40)
    assert torch.isfinite(emb).all()


def test_ecg_encoder_from_eeg_weights() -> None:
    eeg = _small()
    ecg = cbramod_ecg(init="eeg", eeg_state_dict=eeg.state_dict(), **SMALL)
    for name, value in ecg.state_dict().items():
        assert torch.equal(value, eeg.state_dict()[name]), name
    random_ecg = cbramod_ecg(init="random", **SMALL)
    assert not torch.equal(random_ecg.blocks[0].mlp.fc1.weight, eeg.blocks[0].mlp.fc1.weight)
    with pytest.raises(ValueError, match="eeg_state_dict"):
        cbramod_ecg(init="eeg")


@pytest.mark.parametrize("shape", [(2, 3, 4, 100), (3, 4, 200), (2, 3, 4, 5, 200)])
def test_wrong_input_shape_is_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelInputError, match=r"expects \(batch, channels, patches, 200\)"):
        _small()(torch.randn(*shape))


def test_invalid_architecture() -> None:
    with pytest.raises(ValueError, match="embed_dim"):
        CBraMod(embed_dim=64)
    with pytest.raises(ValueError, match="divisible"):
        CBraMod(embed_dim=40, num_heads=6)


def test_config_dict_round_trip() -> None:
    cfg = CBraModConfig(depth=3, out_dim=None, pos_kernel=(5, 3))
    assert CBraModConfig.from_dict(cfg.to_dict()) == cfg
    model = CBraMod.from_config(cfg)
    assert model.config == cfg


def test_log_spectrum_option() -> None:
    """``spectrum='log'``: the spectral branch sees log |rFFT| over a floor, so scaling a window
    by k shifts its spectral input by log k instead of multiplying it; the option round-trips
    through the config and an unknown one is refused."""
    torch.manual_seed(int.from_bytes(os.urandom(4), "little"))
    model = CBraMod(embed_dim=40, depth=1, num_heads=4, mlp_dim=80, spectrum="log").eval()
    assert CBraModConfig.from_dict(model.config.to_dict()).spectrum == "log"
    assert CBraModConfig.from_dict({"depth": 1}).spectrum == "linear"  # older checkpoints
    x = torch.randn(2, 3, 2, 200)
    _, spec = model.patch_embed._conv_and_spectrum(x, None)
    _, spec3 = model.patch_embed._conv_and_spectrum(3 * x, None)
    ref = torch.fft.rfft(x.double(), dim=-1, norm="forward").abs().clamp_min(1e-4).log()
    torch.testing.assert_close(spec.double(), ref, rtol=1e-5, atol=1e-5)
    above = spec > math.log(1e-4) + 1e-3  # bins on the floor do not scale
    assert above.float().mean() > 0.99
    shift = (spec3 - spec)[above]
    torch.testing.assert_close(shift, torch.full_like(shift, math.log(3)), rtol=0, atol=1e-4)
    with torch.inference_mode():  # the inference path takes the same spectrum
        fast = model.forward_features(x)
        model.fast_inference = False
        slow = model.forward_features(x)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="spectrum"):
        CBraMod(embed_dim=40, depth=1, num_heads=4, mlp_dim=80, spectrum="power")
