"""Quality flags on real EEG with planted faults, and the aligner's windowing rules."""

from __future__ import annotations

import numpy as np
import pyedflib
import pytest

from physio_live.core import Aligner, AlignerConfig, Chunk, StreamInfo


@pytest.fixture(scope="module")
def eeg(data_dir):
    with pyedflib.EdfReader(str(data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf")) as f:
        x = np.stack([f.readSignal(i) for i in range(8)], axis=1).astype(np.float32)
        fs = f.getSampleFrequency(0)
    info = StreamInfo("E", "EEG", "eeg", tuple(f"c{i}" for i in range(8)), ("uV",) * 8, fs)
    return info, x[: int(30 * fs)]


def _run(info, x, ts, cfg=None, chunk=137):
    al = Aligner(cfg or AlignerConfig(), [info])
    out = []
    for a in range(0, len(x), chunk):
        al.push(Chunk(info, x[a : a + chunk], ts[a : a + chunk]))
        out += al.pop_windows()
    return al, out


def test_clean_real_eeg_passes(eeg):
    info, x = eeg
    ts = 50.0 + np.arange(len(x)) / info.nominal_srate
    _, wins = _run(info, x, ts)
    assert len(wins) > 40
    assert all(w.quality.ok for w in wins), [w.quality.summary() for w in wins if not w.quality.ok]
    assert all(np.isfinite(w.eeg).all() for w in wins)


def test_planted_faults_flag_exactly_their_channels_and_times(eeg):
    info, x = eeg
    fs = info.nominal_srate
    rng = np.random.default_rng()
    x = x.copy()
    nan_ch, flat_ch, sat_ch = (int(c) for c in rng.choice(8, 3, replace=False))
    t_nan = float(rng.uniform(12, 14))
    x[int(t_nan * fs) : int((t_nan + 0.3) * fs), nan_ch] = np.nan  # NaN burst
    x[int(10 * fs) :, flat_ch] = 3.0  # flat from 10 s on
    t_sat = float(rng.uniform(20, 22))
    x[int(t_sat * fs) : int((t_sat + 0.2) * fs), sat_ch] = 8000.0  # clipped at the rail
    t0 = 100.0
    ts = t0 + np.arange(len(x)) / fs
    _, wins = _run(info, x, ts)
    flat_seen = False
    for w in wins:
        q = w.quality.per_modality["eeg"]
        start, end = w.t_end - 4.0 - t0, w.t_end - t0
        assert np.isfinite(w.eeg).all()  # NaN never reaches the model input
        for ch, t_a, t_b, got in (
            (nan_ch, t_nan, t_nan + 0.3, q.nan_channels),
            (sat_ch, t_sat, t_sat + 0.2, q.saturated_channels),
        ):
            # a grid sample within one raw period of the fault's edge may take either flag
            edge = 2.0 / fs
            if start < t_b - edge and end > t_a + edge:
                assert got == (ch,), (start, q)
            elif start > t_b + edge or end < t_a - edge:
                assert got == (), (start, q)
            else:
                assert set(got) <= {ch}
        if start > 14.0:  # filters have settled on the constant
            assert flat_ch in q.flat_channels
            flat_seen = True
        assert set(q.flat_channels) <= {flat_ch}
    assert flat_seen


def test_gap_in_timestamps_is_flagged(eeg):
    info, x = eeg
    fs = info.nominal_srate
    ts = 10.0 + np.arange(len(x)) / fs
    cut = slice(int(15 * fs), int(16 * fs))  # one second never arrives
    keep = np.ones(len(x), bool)
    keep[cut] = False
    _, wins = _run(info, x[keep], ts[keep])
    for w in wins:
        start, end = w.t_end - 4.0 - 10.0, w.t_end - 10.0
        g = w.quality.per_modality["eeg"].gap_fraction
        if start < 16.0 and end >= 15.0 - 1e-9:  # the sample at 15.000 s is missing too
            assert g > 0
        else:
            assert g == 0


def test_windows_wait_for_every_stream_and_end_on_the_hop_grid():
    cfg = AlignerConfig(window=2.0, hop=0.25)
    a = StreamInfo("A", "EEG", "eeg", ("x",), ("uV",), 256.0)
    b = StreamInfo("B", "ECG", "ecg", ("y",), ("mV",), 500.0)
    al = Aligner(cfg, [a, b])
    rng = np.random.default_rng()
    t0 = float(rng.uniform(1000, 2000))
    al.push(Chunk(a, rng.normal(size=(256 * 5, 1)).astype(np.float32), t0 + np.arange(1280) / 256))
    assert al.pop_windows() == []  # ECG has not arrived yet
    al.push(Chunk(b, rng.normal(size=(500 * 3, 1)).astype(np.float32), t0 + np.arange(1500) / 500))
    wins = al.pop_windows()
    assert wins, "windows once both cover"
    for w in wins:
        assert w.t_end <= t0 + 1499 / 500 + 1e-9
        assert w.times[0] >= t0 - 1e-9
        assert abs(w.t_end * 4 - round(w.t_end * 4)) < 1e-6  # multiples of the hop
        assert w.eeg.shape == (1, 400) and w.ecg.shape == (1, 400)


def test_markers_inside_windows():
    cfg = AlignerConfig(window=1.0, hop=0.5)
    a = StreamInfo("A", "EEG", "eeg", ("x",), ("uV",), 200.0)
    m = StreamInfo("M", "Markers", "markers", ("m",), ("",), 0.0, channel_format="string")
    al = Aligner(cfg, [a, m])
    al.push(Chunk(m, np.array([["go"], ["stop"]], dtype=object), np.array([10.3, 11.7])))
    al.push(Chunk(a, np.zeros((600, 1), np.float32) + 1, 10.0 + np.arange(600) / 200))
    wins = {round(w.t_end, 3): w.markers for w in al.pop_windows()}
    assert wins[11.0] == ((10.3, "go"),)
    assert wins[12.0] == ((11.7, "stop"),)
    assert wins[11.5] == ()
