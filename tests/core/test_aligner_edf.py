"""The real eegmat EEG+ECG recording, split into two streams, through buffers + aligner."""

from __future__ import annotations

import numpy as np
import pyedflib
import pytest
from scipy import signal

from physio_live.core import (
    Chunk,
    Config,
    Pipeline,
    StreamInfo,
    config_from_dict,
    design_sos,
)


@pytest.fixture(scope="module")
def eegmat(data_dir):
    path = data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf"
    with pyedflib.EdfReader(str(path)) as f:
        labels = f.getSignalLabels()
        eeg_idx = [
            i for i, lab in enumerate(labels) if lab.startswith("EEG") and "A2-A1" not in lab
        ]
        ecg_idx = [labels.index("ECG ECG")]
        fs = f.getSampleFrequency(0)
        eeg = np.stack([f.readSignal(i) for i in eeg_idx], axis=1)
        ecg = np.stack([f.readSignal(i) for i in ecg_idx], axis=1)
        units_eeg = tuple(f.getPhysicalDimension(i) for i in eeg_idx)
        units_ecg = tuple(f.getPhysicalDimension(i) for i in ecg_idx)
        eeg_labels = tuple(labels[i].removeprefix("EEG ") for i in eeg_idx)
    assert eeg.shape[1] == 19
    eeg_info = StreamInfo("eegmat-EEG", "EEG", "eeg", eeg_labels, units_eeg, fs)
    ecg_info = StreamInfo("eegmat-ECG", "ECG", "ecg", ("ECG",), units_ecg, fs)
    return eeg_info, eeg.astype(np.float32), ecg_info, ecg.astype(np.float32)


def _config() -> Config:
    # sources are given directly to the Pipeline; the config still needs a (unused) entry
    return config_from_dict(
        {"sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}], "buffer_seconds": 30}
    )


def _reference(x_uv: np.ndarray, fs: float, mod, times: np.ndarray, t0: float) -> np.ndarray:
    """Offline: the same causal filters over the whole signal, then resampling at ``times``."""
    sos = design_sos(fs, mod.bandpass, mod.notch, mod.order, mod.notch_q)
    zi = signal.sosfilt_zi(sos)[:, :, None] * x_uv[0][None, None, :]
    y, _ = signal.sosfilt(sos, x_uv, axis=0, zi=zi)
    t = t0 + np.arange(len(x_uv)) / fs
    return np.stack([np.interp(times, t, y[:, c]) for c in range(y.shape[1])]) / mod.unit_uv


def test_windows_match_offline_scipy_reference(eegmat):
    eeg_info, eeg, ecg_info, ecg = eegmat
    n = int(40 * eeg_info.nominal_srate)  # 40 s of the recording
    eeg, ecg = eeg[:n], ecg[:n]
    cfg = _config()

    pipe = Pipeline(cfg, sources=[])
    pipe.prepare([eeg_info, ecg_info])
    t0 = 1234.567891  # an arbitrary LSL time, not on the 200 Hz grid
    fs = eeg_info.nominal_srate
    ts = t0 + np.arange(n) / fs
    rng = np.random.default_rng()
    windows = []
    pos = {"eeg": 0, "ecg": 0}
    # random chunk sizes, streams interleaved independently
    while pos["eeg"] < n or pos["ecg"] < n:
        for key, info, arr in (("eeg", eeg_info, eeg), ("ecg", ecg_info, ecg)):
            if pos[key] >= n:
                continue
            m = int(rng.integers(1, 700))
            a, b = pos[key], min(n, pos[key] + m)
            pipe.ingest(Chunk(info, arr[a:b], ts[a:b]))
            pos[key] = b
        windows += pipe.step()
    assert len(windows) > 60
    ref_eeg_uv = eeg.astype(np.float64)  # microvolts already
    ref_ecg_uv = ecg.astype(np.float64) * 1000.0  # mV -> uV
    for w in [*windows[:: max(1, len(windows) // 15)], windows[-1]]:
        assert w.eeg.shape == (19, 800) and w.ecg.shape == (1, 800)
        assert w.quality.ok, w.quality.summary()
        for got, x, mod in (
            (w.eeg, ref_eeg_uv, cfg.aligner.eeg),
            (w.ecg, ref_ecg_uv, cfg.aligner.ecg),
        ):
            ref = _reference(x, fs, mod, w.times, t0)
            rel = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
            assert rel < 1e-4, rel
    assert windows[0].eeg_labels[:3] == ("Fp1", "Fp2", "F3")
