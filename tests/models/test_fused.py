"""Fused EEG + ECG emotion model: outputs, gradients, missing modalities, flags, input errors."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch

from physio_live.models import (
    UNTRAINED_WARNING,
    CBraModConfig,
    FusedEmotionConfig,
    FusedEmotionModel,
    ModalityConfig,
    ModelInputError,
    Provenance,
    cbramod_base,
    cbramod_ecg,
)

SMALL_ENC = CBraModConfig(embed_dim=40, depth=2, num_heads=4, mlp_dim=80, out_dim=None)


def small_config(pooling: str = "mean", ecg_leads: int = 2, **kw: object) -> FusedEmotionConfig:
    eeg = ModalityConfig(
        name="eeg", channels=("Fz", "Cz", "Pz", "Oz"), n_patches=3, encoder=SMALL_ENC
    )
    ecg_names = tuple(f"ECG{i + 1}" for i in range(ecg_leads))
    ecg = ModalityConfig(name="ecg", channels=ecg_names, n_patches=3, encoder=SMALL_ENC)
    return FusedEmotionConfig(eeg=eeg, ecg=ecg, pooling=pooling, hidden_dims=(32, 16), **kw)  # type: ignore[arg-type]


def _inputs(batch: int = 3, ecg_leads: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, 4, 3, 200), torch.randn(batch, ecg_leads, 3, 200)


@pytest.mark.parametrize("pooling", ["mean", "channels", "flatten"])
@pytest.mark.parametrize("ecg_leads", [1, 2, 12])
def test_logits_finite(pooling: str, ecg_leads: int) -> None:
    torch.manual_seed(0)
    model = FusedEmotionModel(small_config(pooling, ecg_leads)).eval()
    eeg, ecg = _inputs(ecg_leads=ecg_leads)
    with torch.inference_mode():
        logits = model(eeg, ecg)
    assert logits.shape == (3, 3)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("pooling", ["mean", "channels", "flatten"])
def test_gradients_reach_every_parameter(pooling: str) -> None:
    torch.manual_seed(0)
    model = FusedEmotionModel(small_config(pooling)).train()
    eeg, ecg = _inputs(batch=4)
    eeg_present = torch.tensor([True, True, False, True])
    ecg_present = torch.tensor([True, False, True, True])
    logits = model(eeg, ecg, eeg_present=eeg_present, ecg_present=ecg_present)
    target = torch.tensor([[1.0, 0.0, 1.0]]).expand(4, 3)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_default_config_is_dreamer_style() -> None:
    cfg = FusedEmotionConfig()
    assert cfg.targets == ("valence", "arousal", "dominance")
    assert len(cfg.eeg.channels) == 14 and len(cfg.ecg.channels) == 2
    assert cfg.eeg.encoder.depth == 12 and cfg.eeg.encoder.out_dim is None
    assert cfg.eeg.window_seconds == 4.0


def test_missing_modality_uses_the_learned_embedding_and_is_flagged() -> None:
    torch.manual_seed(0)
    model = FusedEmotionModel(small_config()).eval()
    eeg, ecg = _inputs()
    eeg_with_nan = eeg.clone()
    eeg_with_nan[1] = float("nan")  # an absent window may hold anything
    present = torch.tensor([True, False, True])
    pred = model.predict(eeg_with_nan, ecg, eeg_present=present)
    assert pred.eeg_missing.tolist() == [False, True, False]
    assert pred.ecg_missing.tolist() == [False, False, False]
    assert torch.isfinite(pred.probabilities).all()
    # an absent window gives what eeg=None gives; present windows are unaffected
    no_eeg = model.predict(None, ecg)
    assert no_eeg.eeg_missing.all()
    torch.testing.assert_close(pred.probabilities[1], no_eeg.probabilities[1])
    full = model.predict(eeg, ecg)
    torch.testing.assert_close(pred.probabilities[[0, 2]], full.probabilities[[0, 2]])
    no_ecg = model.predict(eeg, None)
    assert no_ecg.ecg_missing.all() and not no_ecg.eeg_missing.any()
    with pytest.raises(ModelInputError, match="neither EEG nor ECG"):
        model(None, None)


def test_untrained_model_says_so() -> None:
    model = FusedEmotionModel(small_config()).eval()
    pred = model.predict(*_inputs())
    assert pred.untrained and pred.warning == UNTRAINED_WARNING
    assert pred.targets == ("valence", "arousal", "dominance")
    assert ((pred.probabilities > 0) & (pred.probabilities < 1)).all()
    assert pred.model_id.startswith("cbramod-fusion-") and pred.model_id == model.model_id
    trained = FusedEmotionModel(small_config(), provenance=Provenance(trained=True)).eval()
    pred = trained.predict(*_inputs())
    assert not pred.untrained and pred.warning is None


def test_bf16_autocast_on_cpu_is_close_to_float32() -> None:
    model = FusedEmotionModel(small_config()).eval()
    eeg, ecg = _inputs()
    p16 = model.predict(eeg, ecg, bf16=True).probabilities
    p32 = model.predict(eeg, ecg).probabilities
    assert p16.dtype == torch.float32 and torch.isfinite(p16).all()
    torch.testing.assert_close(p16, p32, atol=3e-2, rtol=0)
    assert not torch.equal(p16, p32)  # it did run in bfloat16


@pytest.mark.parametrize(
    ("eeg_shape", "message"),
    [((3, 5, 3, 200), "eeg input has shape"), ((3, 4, 3, 100), "eeg input has shape")],
)
def test_wrong_channel_count_is_a_clear_error(eeg_shape: tuple[int, ...], message: str) -> None:
    model = FusedEmotionModel(small_config()).eval()
    with pytest.raises(ModelInputError, match=message) as info:
        model(torch.randn(*eeg_shape), torch.randn(3, 2, 3, 200))
    assert "Fz, Cz, Pz, Oz" in str(info.value)


def test_flatten_fixes_the_window_length() -> None:
    model = FusedEmotionModel(small_config("flatten")).eval()
    with pytest.raises(ModelInputError, match="3-s window"):
        model(torch.randn(2, 4, 5, 200), torch.randn(2, 2, 5, 200))
    mean_model = FusedEmotionModel(small_config("mean")).eval()
    with torch.inference_mode():
        assert mean_model(torch.randn(2, 4, 5, 200), torch.randn(2, 2, 5, 200)).shape == (2, 3)


def test_channels_pooling_keeps_each_channel_and_any_window_length() -> None:
    """``channels`` pools over patches only: each channel's mean feature reaches the head in
    channel order, so swapping two channels changes the output (it would not under ``mean``)."""
    torch.manual_seed(int.from_bytes(os.urandom(4), "little"))
    model = FusedEmotionModel(small_config("channels")).eval()
    assert model.head[0].in_features == 4 * 40 + 2 * 40
    eeg, ecg = torch.randn(2, 4, 5, 200), torch.randn(2, 2, 5, 200)
    with torch.inference_mode():
        emb, _, _ = model.forward_embeddings(eeg, ecg)
        feats = model.eeg_encoder.forward_features(eeg)
        torch.testing.assert_close(emb[:, :160], feats.mean(dim=2).flatten(1))
        swapped = model.forward_embeddings(eeg[:, [1, 0, 2, 3]], ecg)[0]
    assert not torch.allclose(emb[:, :160], swapped[:, :160])


def test_batch_mismatch_is_a_clear_error() -> None:
    model = FusedEmotionModel(small_config())
    with pytest.raises(ModelInputError, match="EEG batch 3 != ECG batch 2"):
        model(torch.randn(3, 4, 3, 200), torch.randn(2, 2, 3, 200))


def test_from_pretrained_encoders() -> None:
    """The seed's recipe: EEG encoder from CBraMod weights, ECG encoder initialised from them."""
    torch.manual_seed(0)
    arch = {"embed_dim": 40, "depth": 2, "num_heads": 4, "mlp_dim": 80, "out_dim": 40}
    eeg_weights = cbramod_base(**arch).state_dict()  # stands in for the official weights
    model = FusedEmotionModel(
        small_config(),
        eeg_encoder=cbramod_base(state_dict=eeg_weights, head=False, **arch),
        ecg_encoder=cbramod_ecg(init="eeg", eeg_state_dict=eeg_weights, **arch),
    )
    assert model.config.eeg.encoder.out_dim is None
    w = model.eeg_encoder.blocks[1].mlp.fc2.weight
    assert torch.equal(w, model.ecg_encoder.blocks[1].mlp.fc2.weight)
    assert w.data_ptr() != model.ecg_encoder.blocks[1].mlp.fc2.weight.data_ptr()


def test_invalid_config() -> None:
    with pytest.raises(ValueError, match="pooling"):
        small_config("max")
    with pytest.raises(ValueError, match="target"):
        small_config(targets=())


def _additivity_gap(model: FusedEmotionModel) -> float:
    """|f(e1,c1) - f(e1,c2) - f(e2,c1) + f(e2,c2)|: zero when the logit is EEG term + ECG term."""
    (e1, c1), (e2, c2) = _inputs(batch=5), _inputs(batch=5)
    with torch.inference_mode():
        f = {(i, j): model(e, c) for i, e in enumerate((e1, e2)) for j, c in enumerate((c1, c2))}
    return float((f[0, 0] - f[0, 1] - f[1, 0] + f[1, 1]).abs().max())


@pytest.mark.parametrize("pooling", ["mean", "channels"])
def test_late_fusion_adds_one_logit_per_modality(pooling: str) -> None:
    """fusion="late": the logit is an EEG term plus an ECG term (fresh random inputs); the
    concat head mixes them. A missing modality adds the same constant for every window."""
    from physio_live.models import LateFusionHead

    late = FusedEmotionModel(small_config(pooling, fusion="late")).eval()
    assert isinstance(late.head, LateFusionHead)
    with torch.no_grad():  # a non-trivial head (fresh init can be near-linear)
        for p in late.head.parameters():
            p.normal_(0, 0.5)
    assert _additivity_gap(late) < 1e-4
    concat = FusedEmotionModel(small_config(pooling)).eval()
    with torch.no_grad():
        for p in concat.head.parameters():
            p.normal_(0, 0.5)
    assert _additivity_gap(concat) > 1e-3
    eeg, ecg = _inputs(batch=4)
    with torch.inference_mode():
        without = late(eeg, None)
        both = late(eeg, ecg)
        emb, _, _ = late.forward_embeddings(eeg, None)
        eeg_term = late.head.eeg(emb[:, : late.head.eeg_dim])
    const = without - eeg_term
    assert torch.allclose(const, const[:1].expand_as(const), atol=1e-5)
    assert not torch.allclose(both, without)


def test_late_fusion_round_trips_through_a_checkpoint(tmp_path) -> None:
    from physio_live.models import load_checkpoint, save_checkpoint

    model = FusedEmotionModel(small_config("channels", fusion="late")).eval()
    path = tmp_path / "late.safetensors"
    save_checkpoint(path, model)
    back = load_checkpoint(path).model
    assert back.config.fusion == "late" and back.config == model.config
    eeg, ecg = _inputs()
    with torch.inference_mode():
        assert torch.equal(back(eeg, ecg), model(eeg, ecg))
    # a config written before the option existed loads as concat
    d = model.config.to_dict()
    del d["fusion"]
    assert FusedEmotionConfig.from_dict(d).fusion == "concat"
    with pytest.raises(ValueError, match="fusion"):
        small_config(fusion="early")


def _paced_ecg(bpms: list[float], n_patches: int = 4) -> torch.Tensor:
    """One-lead ECG windows (model units) with a sharp QRS-like spike at each beat of ``bpm``,
    random phase and noise (fresh each call)."""
    import numpy as np

    rng = np.random.default_rng()
    n = n_patches * 200
    out = 0.05 * rng.standard_normal((len(bpms), 1, n))
    for i, bpm in enumerate(bpms):
        for t in np.arange(rng.uniform(0.05, 0.4), n / 200 - 0.05, 60.0 / bpm):
            k = int(t * 200)
            out[i, 0, k : k + 4] += [3.0, 10.0, 3.0, -2.0]
    return torch.from_numpy(out.astype(np.float32)).view(len(bpms), 1, n_patches, 200)


def test_heart_rate_feature_is_measured_from_the_ecg_input() -> None:
    """ecg_features=("heart_rate",): the model measures the rate of its own ECG input (the app's
    detector) and appends it to the ECG embedding; passing the same values precomputed (the
    trainer's cache) gives the same logits; a window without ECG takes the missing embedding."""
    import numpy as np

    from physio_live.models import ecg_feature_values, encode_ecg_features

    cfg = small_config("channels", ecg_leads=1, ecg_features=("heart_rate",))
    cfg = replace(cfg, eeg=replace(cfg.eeg, n_patches=4), ecg=replace(cfg.ecg, n_patches=4))
    model = FusedEmotionModel(cfg).eval()
    bpms = list(np.random.default_rng().uniform(55, 130, 4))
    ecg = _paced_ecg(bpms)
    raw = ecg_feature_values(ecg, ("heart_rate",))
    np.testing.assert_allclose(raw[:, 0].numpy(), bpms, rtol=0.03)
    eeg = torch.randn(4, 4, 4, 200)
    with torch.inference_mode():
        emb, _, _ = model.forward_embeddings(eeg, ecg)
        assert torch.allclose(emb[:, -1], encode_ecg_features(raw)[:, 0])
        assert torch.equal(model(eeg, ecg), model(eeg, ecg, ecg_extra=raw))
        other = model(eeg, _paced_ecg([b + 40 for b in bpms]))
        assert not torch.allclose(other, model(eeg, ecg))
        gone = model(eeg, ecg, ecg_present=torch.tensor([True, False, True, True]))
        assert torch.allclose(gone[1], model(eeg[1:2], None)[0], atol=1e-5)
    assert float(encode_ecg_features(torch.tensor([[float("nan")]]))) == 0.0
    with pytest.raises(ValueError, match="ecg_features"):
        small_config(ecg_features=("qt_interval",))


def test_band_power_features_are_measured_from_the_eeg_input(tmp_path) -> None:
    """eeg_features=("band_powers",): the model measures the log10 band powers of each channel of
    its own EEG input (the classical row's features), standardizes them with the training
    windows' statistics it keeps in its weights (saved and loaded with them), and appends them
    to the EEG embedding; passing the values precomputed gives the same logits; a channel ten
    times larger moves its five features by log10(100) = 2 before standardizing, and its
    ``relative_band_powers`` (log10 shares of the channel's power) not at all."""
    import numpy as np

    from physio_live.models import eeg_feature_values, load_checkpoint, save_checkpoint
    from physio_live.models._readout import band_power_features

    rng = np.random.default_rng()
    cfg = small_config("channels", ecg_leads=1, eeg_features=("band_powers",))
    model = FusedEmotionModel(cfg).eval()
    eeg = torch.from_numpy(rng.standard_normal((5, 4, 3, 200)).astype(np.float32))
    ecg = torch.randn(5, 1, 3, 200)
    raw = eeg_feature_values(eeg, ("band_powers",))
    assert raw.shape == (5, 4 * 5)
    np.testing.assert_allclose(raw.numpy(), band_power_features(eeg.numpy()), rtol=1e-6)
    train = torch.from_numpy(rng.normal(-2.0, 0.5, (50, 20)).astype(np.float32))
    model.set_eeg_feature_stats(train)
    np.testing.assert_allclose(model.eeg_feature_center.numpy(), train.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(model.eeg_feature_scale.numpy(), train.std(0).numpy(), rtol=1e-4)
    louder = eeg.clone()
    louder[:, 2] *= 10.0
    moved = eeg_feature_values(louder, ("band_powers",)) - raw
    np.testing.assert_allclose(moved[:, 10:15].numpy(), 2.0, atol=1e-4)
    assert moved[:, :10].abs().max() == 0 and moved[:, 15:].abs().max() == 0
    # relative band powers: each band's share, blind to the channel's gain
    rel = eeg_feature_values(eeg, ("relative_band_powers",))
    per = raw.double().view(5, 4, 5)
    want_rel = per - torch.log10((10.0**per).sum(2, keepdim=True))
    torch.testing.assert_close(rel.double().view(5, 4, 5), want_rel, rtol=0, atol=1e-5)
    assert (rel <= 1e-6).all()
    moved_rel = eeg_feature_values(louder, ("relative_band_powers",)) - rel
    assert moved_rel.abs().max() < 1e-4
    e_dim = model.eeg_missing.numel()
    with torch.inference_mode():
        emb, _, _ = model.forward_embeddings(eeg, ecg)
        want = ((raw - model.eeg_feature_center) / model.eeg_feature_scale).clamp(-5, 5)
        torch.testing.assert_close(emb[:, e_dim - 20 : e_dim], want)
        logits = model(eeg, ecg)
        assert torch.equal(logits, model(eeg, ecg, eeg_extra=raw))
        assert not torch.allclose(model(louder, ecg), logits)
        gone = model(eeg, ecg, eeg_present=torch.tensor([True, False, True, True, True]))
        assert torch.allclose(gone[1], model(None, ecg[1:2])[0], atol=1e-5)
    back = load_checkpoint(save_checkpoint(tmp_path / "bp.safetensors", model)).model
    assert back.config.eeg_features == ("band_powers",)
    with torch.inference_mode():
        torch.testing.assert_close(back.eval()(eeg, ecg), logits)
    with pytest.raises(ValueError, match="eeg_features"):
        small_config("channels", eeg_features=("alpha_ratio",))


@pytest.mark.parametrize("fusion", ["concat", "late"])
def test_feature_skip_adds_a_linear_term_on_the_measured_features(tmp_path, fusion: str) -> None:
    """feature_skip=True: the logits are the head's plus a linear term on the measured features
    alone, found where the model appends them (EEG band powers, then the heart rate); with the
    head's last layer at zero the model is that linear term exactly, a regression on the
    features as the model sees them. It survives a checkpoint, and needs features."""
    import numpy as np

    from physio_live.models import (
        FeatureSkipHead,
        ecg_feature_values,
        eeg_feature_values,
        encode_ecg_features,
        load_checkpoint,
        save_checkpoint,
    )

    rng = np.random.default_rng()
    cfg = small_config(
        "channels", ecg_leads=1, eeg_features=("band_powers",), ecg_features=("heart_rate",),
        feature_skip=True, fusion=fusion,
    )  # fmt: skip
    model = FusedEmotionModel(cfg).eval()
    assert isinstance(model.head, FeatureSkipHead)
    model.set_eeg_feature_stats(torch.from_numpy(rng.normal(-2.0, 0.5, (40, 20))).float())
    eeg = torch.from_numpy(rng.standard_normal((6, 4, 3, 200)).astype(np.float32))
    t = torch.arange(600) / 200.0
    beat = torch.exp(-(((t * rng.uniform(1.0, 1.6)) % 1.0 - 0.5) ** 2) / 2e-4)
    ecg = (beat + 0.05 * torch.randn(6, 600)).view(6, 1, 3, 200)
    raw_eeg = eeg_feature_values(eeg, cfg.eeg_features)
    z_eeg = ((raw_eeg - model.eeg_feature_center) / model.eeg_feature_scale).clamp(-5, 5)
    z_ecg = encode_ecg_features(ecg_feature_values(ecg, cfg.ecg_features))
    feats = torch.cat((z_eeg, z_ecg), 1)
    cols = model.feature_columns("eeg", "ecg")
    assert len(cols) == 21 and model.feature_columns("ecg") == cols[-1:]
    with torch.inference_mode():
        emb, _, _ = model.forward_embeddings(eeg, ecg)
        torch.testing.assert_close(emb[:, cols], feats)
        w = torch.from_numpy(rng.standard_normal((3, 21))).float()  # three targets
        model.head.skip.weight.copy_(w)
        model.head.skip.bias.fill_(0.3)
        full = model(eeg, ecg)
        torch.testing.assert_close(full, model.head.head(emb) + feats @ w.T + 0.3)
        inner = model.head.head
        for last in [inner.eeg[-1], inner.ecg[-1]] if fusion == "late" else [inner[-1]]:
            last.weight.zero_()
            last.bias.zero_()
        torch.testing.assert_close(model(eeg, ecg), feats @ w.T + 0.3)
        back = load_checkpoint(save_checkpoint(tmp_path / "skip.safetensors", model)).model
        assert back.config.feature_skip and isinstance(back.head, FeatureSkipHead)
        torch.testing.assert_close(back.eval()(eeg, ecg), model(eeg, ecg))
    with pytest.raises(ValueError, match="feature_skip"):
        small_config("channels", feature_skip=True)
