"""The readout model: features, the resting-baseline calibration, checkpoints and baselines.

Windows are drawn fresh each run: EEG noise with a random spectrum per channel, ECG from the app's
simulator at a random heart rate; regressions are random too. Expected values are computed here
from the definitions (z-scores, logistic function), not read back from the model.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from physio_live.app._ecgsim import ECGSimulator
from physio_live.models import (
    CheckpointError,
    ModalityConfig,
    ModelInputError,
    Provenance,
    ReadoutModel,
    ReadoutModelConfig,
    band_power_features,
    checkpoint_summary,
    describe_checkpoint,
    format_checkpoint_info,
    heart_rate,
    load_checkpoint,
    readout_features,
    save_checkpoint,
)

CHANNELS = ("Fp1", "Fp2", "C3", "C4", "O1", "O2")
N_FEAT = len(CHANNELS) * 5 + 1


def _windows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``n`` 4-s windows at 200 Hz in model units: EEG [n, 6, 4, 200], ECG [n, 1, 4, 200]."""
    t = np.arange(800) / 200.0
    eeg = rng.standard_normal((n, len(CHANNELS), 800)) * rng.uniform(
        0.05, 0.3, (1, len(CHANNELS), 1)
    )
    eeg += 0.3 * np.sin(2 * np.pi * rng.uniform(8, 12) * t)  # some alpha
    bpm = float(rng.uniform(55, 110))
    sim = ECGSimulator(n_leads=1, rate=200.0, heart_rate=bpm, seed=int(rng.integers(1 << 30)))
    ecg = np.stack([sim.read(800).T for _ in range(n)]) * 10.0  # mV -> units of 100 uV
    return (
        eeg.reshape(n, len(CHANNELS), 4, 200).astype(np.float32),
        ecg.reshape(n, 1, 4, 200).astype(np.float32),
        bpm,
    )


def _model(rng: np.random.Generator, calibrate_s: float = 20.0) -> ReadoutModel:
    spec = dict(n_patches=4, sampling_rate=200.0, patch_size=200, units="uV", scale=0.01)
    cfg = ReadoutModelConfig(
        eeg=ModalityConfig(name="eeg", channels=CHANNELS, **spec),
        ecg=ModalityConfig(name="ecg", channels=("ECG",), **spec),
        targets=("arithmetic",),
        calibrate_s=calibrate_s,
    )
    m = ReadoutModel(cfg, Provenance(trained=True, source="test"))
    for part in ("raw", "cal"):
        m.set_regression(
            part,
            rng.normal(0, 1, N_FEAT),
            rng.uniform(0.5, 2.0, N_FEAT),
            rng.normal(0, 0.1, N_FEAT),
            rng.normal(),
        )
    m.hr_fill.fill_(float(rng.uniform(60, 90)))
    return m


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, logits clipped to +/-30 as the model does."""
    return 1 / (1 + np.exp(-np.clip(z, -30, 30)))


def test_features_are_the_apps_readouts():
    rng = np.random.default_rng()
    eeg, ecg, bpm = _windows(rng, 3)
    x = readout_features(eeg, ecg, 70.0)
    assert x.shape == (3, N_FEAT)
    np.testing.assert_array_equal(x[:, :-1], band_power_features(eeg))
    hr = heart_rate(ecg)
    assert np.isfinite(hr).all() and np.allclose(hr, bpm, rtol=0.1), (hr, bpm)
    np.testing.assert_array_equal(x[:, -1], hr)
    flat = np.zeros_like(ecg)  # no beats: the fill value
    assert (readout_features(eeg, flat, 71.5)[:, -1] == 71.5).all()


def test_calibration_takes_the_first_seconds_then_scores_z_scores():
    rng = np.random.default_rng()
    m = _model(rng, calibrate_s=20.0)
    eeg, ecg, _ = _windows(rng, 16)
    t_end = 100.0 + 4.0 + 2.0 * np.arange(16)  # windows every 2 s, the first ends 4 s in
    x = readout_features(eeg, ecg, float(m.hr_fill))
    # in two calls, as the worker's batches come
    p1 = m.predict(torch.from_numpy(eeg[:5]), torch.from_numpy(ecg[:5]), t_end=t_end[:5])
    assert not m.calibrated and all("calibrating" in n for n in p1.notes)
    p2 = m.predict(torch.from_numpy(eeg[5:]), torch.from_numpy(ecg[5:]), t_end=t_end[5:])
    p = np.r_[p1.probabilities[:, 0].numpy(), p2.probabilities[:, 0].numpy()]
    notes = (*p1.notes, *p2.notes)
    base = t_end - (t_end[0] - 4.0) <= 20.0  # windows ending within 20 s of the first's start
    assert base.sum() == 9 and m.calibrated
    mu_r, sd_r, w_r, b_r = (getattr(m, f"raw_{k}").numpy() for k in ("mu", "sd", "w", "b"))
    mu_c, sd_c, w_c, b_c = (getattr(m, f"cal_{k}").numpy() for k in ("mu", "sd", "w", "b"))
    raw = _sigmoid(((x - mu_r) / sd_r) @ w_r + b_r)
    ref = x[base]
    z = (x - ref.mean(0)) / (ref.std(0) + 1e-9)
    cal = _sigmoid(((z - mu_c) / sd_c) @ w_c + b_c)
    np.testing.assert_allclose(p[base], raw[base], rtol=1e-9)
    np.testing.assert_allclose(p[~base], cal[~base], rtol=1e-9)
    assert all("calibrating" in notes[i] for i in np.flatnonzero(base))
    assert all(notes[i] == "" for i in np.flatnonzero(~base))

    # the baseline saved and loaded into a fresh copy: the later windows score the same
    state = json.loads(json.dumps(m.baseline_state()))
    assert state["windows"] == 9 and len(state["mean"]) == N_FEAT
    other = ReadoutModel(m.config, m.provenance)
    other.load_state_dict(m.state_dict())
    other.load_baseline(state)
    q = other.predict(
        torch.from_numpy(eeg[~base]), torch.from_numpy(ecg[~base]), t_end=t_end[~base]
    )
    np.testing.assert_allclose(q.probabilities[:, 0].numpy(), p[~base], rtol=1e-12)
    m.reset_baseline()
    assert not m.calibrated and m.baseline_state() is None


def test_a_session_that_ends_inside_its_baseline_can_still_keep_it():
    rng = np.random.default_rng()
    m = _model(rng, calibrate_s=60.0)
    eeg, ecg, _ = _windows(rng, 4)
    m.predict(torch.from_numpy(eeg), torch.from_numpy(ecg), t_end=4.0 + 2.0 * np.arange(4))
    assert not m.calibrated and m.baseline_state() is None
    assert m.finish_baseline() and m.baseline_state()["windows"] == 4
    fresh = _model(rng)
    assert not fresh.finish_baseline()  # nothing taken: nothing to keep


def test_without_times_or_calibration_the_raw_regression_scores():
    rng = np.random.default_rng()
    m = _model(rng, calibrate_s=0.0)
    eeg, ecg, _ = _windows(rng, 3)
    x = readout_features(eeg, ecg, float(m.hr_fill))
    mu, sd, w, b = (getattr(m, f"raw_{k}").numpy() for k in ("mu", "sd", "w", "b"))
    got = m.predict(torch.from_numpy(eeg), torch.from_numpy(ecg), t_end=4.0 + np.arange(3))
    np.testing.assert_allclose(got.probabilities[:, 0].numpy(), _sigmoid(((x - mu) / sd) @ w + b))
    assert not m.calibrated


def test_wrong_inputs_are_refused_in_one_line():
    rng = np.random.default_rng()
    m = _model(rng)
    eeg, ecg, _ = _windows(rng, 2)
    with pytest.raises(ModelInputError, match="6 EEG channels, got 5"):
        m.predict(torch.from_numpy(eeg[:, :5]), torch.from_numpy(ecg))
    with pytest.raises(ModelInputError, match="both EEG and ECG"):
        m.predict(torch.from_numpy(eeg), None)
    with pytest.raises(CheckpointError, match="not a physio-live baseline"):
        m.load_baseline({"mean": [0.0]})
    good = {"format": "physio-live-baseline", "features": ["x"], "mean": [0.0], "sd": [1.0]}
    with pytest.raises(CheckpointError, match="other features"):
        m.load_baseline(good)
    m.predict(torch.from_numpy(eeg), torch.from_numpy(ecg), t_end=np.array([4.0, 6.0]))
    m.finish_baseline()
    state = m.baseline_state()
    state["sd"] = [0.0] * N_FEAT
    with pytest.raises(CheckpointError, match="damaged"):
        m.load_baseline(state)


def test_checkpoint_round_trip_and_description(tmp_path):
    rng = np.random.default_rng()
    m = _model(rng)
    path = save_checkpoint(tmp_path / "r.safetensors", m)
    ck = load_checkpoint(path)
    assert ck.kind == "readout_lr" and isinstance(ck.model, ReadoutModel)
    assert ck.model.model_id == m.model_id and ck.config == m.config
    for k, v in m.state_dict().items():
        assert torch.equal(v, ck.model.state_dict()[k]), k
    eeg, ecg, _ = _windows(rng, 3)
    t = 4.0 + 2.0 * np.arange(3)
    a = m.predict(torch.from_numpy(eeg), torch.from_numpy(ecg), t_end=t).probabilities
    b = ck.model.predict(torch.from_numpy(eeg), torch.from_numpy(ecg), t_end=t).probabilities
    assert torch.equal(a, b)
    info = describe_checkpoint(path)
    assert info["kind"] == "readout_lr" and info["targets"] == ["arithmetic"]
    # per regression (raw, cal): mu, sd and w per feature and a bias; then the heart-rate fill
    assert info["parameters"] == 2 * (3 * N_FEAT + 1) + 1
    text = format_checkpoint_info(info)
    assert "readouts: log10 band powers of 6 EEG channels" in text and "encoder depth" not in text
    assert "readout_lr" in checkpoint_summary("r", path)


def test_shipped_readout_model_records_its_test_figures():
    from physio_live.models import checkpoint_test_metrics

    info = describe_checkpoint("eegmat-readouts")
    notes = json.loads(info["provenance"]["notes"])  # type: ignore[index]
    m = checkpoint_test_metrics(notes)
    assert m["hop_s"] == 2.0 and m["window_s"] == 4 and 0.5 < m["auroc"] <= 1.0
    assert notes["cv"]["folds"] == 9
    assert math.isfinite(notes["calibrated_test_metrics"]["auroc"])
    from physio_live.models import resolve_checkpoint

    line = checkpoint_summary("eegmat-readouts", resolve_checkpoint("eegmat-readouts"))
    size = resolve_checkpoint("eegmat-readouts").stat().st_size
    assert f"{size / 1e3:.1f} kB" in line and "auroc" in line  # a small file in kB, not "0.0 MB"


def test_windows_missing_a_modality_get_no_estimate_and_stay_out_of_the_baseline():
    rng = np.random.default_rng()
    m = _model(rng, calibrate_s=10.0)
    eeg, ecg, _ = _windows(rng, 6)
    t = 4.0 + 2.0 * np.arange(6)  # 4 windows of baseline (4..10 s), then 2
    present = torch.tensor([True, False, True, True, True, True])
    eeg_in = eeg.copy()
    eeg_in[1] = 0.0  # what the worker feeds for an absent modality
    got = m.predict(torch.from_numpy(eeg_in), torch.from_numpy(ecg), eeg_present=present, t_end=t)
    p = got.probabilities[:, 0].numpy()
    assert np.isnan(p[1]) and np.isfinite(np.delete(p, 1)).all()
    assert got.eeg_missing.tolist() == [False, True, False, False, False, False]
    x = readout_features(eeg, ecg, float(m.hr_fill))
    state = m.baseline_state()
    assert state["windows"] == 3
    np.testing.assert_allclose(state["mean"], x[[0, 2, 3]].mean(0), rtol=1e-12)


def test_no_usable_baseline_window_is_said_plainly():
    rng = np.random.default_rng()
    m = _model(rng, calibrate_s=4.0)
    eeg, ecg, _ = _windows(rng, 3)
    absent = torch.tensor([False, True, True])  # the only baseline window lacks its EEG
    got = m.predict(
        torch.from_numpy(eeg), torch.from_numpy(ecg), eeg_present=absent, t_end=4.0 + np.arange(3)
    )
    assert not m.calibrated
    assert "calibrating" in got.notes[0] and "no usable window" in got.notes[2]
