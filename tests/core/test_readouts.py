"""Readouts on real recordings: R peaks vs MIT-BIH reference beats, heart rate, NaN gaps, EEG band
powers and alpha asymmetry, and raw-window quality with planted faults.

Chunk sizes, fault channels and fault times are drawn fresh every run; the seed is in every
assertion message so a failure can be replayed.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pyedflib
import pytest
from scipy import signal

from physio_live.core import (
    BANDS,
    HeartRateTracker,
    QualityThresholds,
    RingBuffer,
    StreamingRPeakDetector,
    assess_window_quality,
    band_powers,
    frontal_alpha_asymmetry,
)

# wfdb 4.x calls DataFrame.set_index(inplace=True) (at import and in rdann), which pandas >= 3.1
# deprecates; only that warning is silenced, only around those calls.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
    import wfdb

#: WFDB beat annotation codes (rhythm changes '+', comments, noise etc. are not beats)
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
TOL = 0.150  # s, matching tolerance for R peaks


def _seed() -> int:
    """A fresh seed each run; PHYSIO_LIVE_SEED replays the one a failure printed."""
    fixed = os.environ.get("PHYSIO_LIVE_SEED")
    return int(fixed) if fixed else int(np.random.SeedSequence().entropy % 2**32)


def _stream(det: StreamingRPeakDetector, x, ts, rng, max_chunk: int):
    """Push ``x`` in chunks of random size 1..max_chunk; return (emit time, peak time) pairs."""
    out = []
    i = 0
    while i < len(ts):
        m = int(rng.integers(1, max_chunk + 1))
        new = det.push(x[i : i + m], ts[i : i + m])
        t_now = ts[min(i + m, len(ts)) - 1]
        out += [(t_now, p) for p in new]
        i += m
    return out


def _match(ref: np.ndarray, found: np.ndarray, tol: float = TOL) -> tuple[int, np.ndarray]:
    """One-to-one matching within ``tol``; returns (true positives, timing errors)."""
    used = np.zeros(len(found), bool)
    errs = []
    for r in ref:
        k = np.searchsorted(found, r)
        best = None
        for kk in (k - 1, k):
            if 0 <= kk < len(found) and not used[kk] and abs(found[kk] - r) <= tol:
                if best is None or abs(found[kk] - r) < abs(found[best] - r):
                    best = kk
        if best is not None:
            used[best] = True
            errs.append(found[best] - r)
    return len(errs), np.asarray(errs)


def _offline_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """Simple offline reference: zero-phase band-pass 5-20 Hz + ``find_peaks`` (sample indices)."""
    sos = signal.butter(3, [5.0, 20.0], btype="bandpass", fs=fs, output="sos")
    y = np.abs(signal.sosfiltfilt(sos, np.nan_to_num(ecg)))
    peaks, _ = signal.find_peaks(y, distance=int(0.3 * fs), height=0.4 * np.percentile(y, 99))
    return peaks


# -------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mitdb100(data_dir):
    base = str(data_dir / "wfdb_mitdb_100" / "100")
    rec = wfdb.rdrecord(base)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
        ann = wfdb.rdann(base, "atr")
    beats = np.array(
        [s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS]
    )
    return rec.p_signal.astype(np.float32), float(rec.fs), beats / rec.fs, list(rec.sig_name)


@pytest.fixture(scope="module")
def eegmat(data_dir):
    with pyedflib.EdfReader(str(data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf")) as f:
        labels = f.getSignalLabels()
        fs = float(f.getSampleFrequency(0))
        eeg = np.stack([f.readSignal(i) for i in range(19)], axis=1)  # uV, 19 EEG channels
        ecg = f.readSignal(labels.index("ECG ECG"))  # mV
    return eeg, ecg, fs, labels[:19]


@pytest.fixture(scope="module")
def challenge(data_dir):
    rec = wfdb.rdrecord(str(data_dir / "wfdb_challenge2015_v102s" / "v102s"))
    return rec.p_signal[:, :2], float(rec.fs), list(rec.sig_name[:2])  # ECG II, V (mV)


# -------------------------------------------------------------------------------- ECG


def test_mitdb_100_streaming_sensitivity_and_ppv(mitdb100):
    """Streaming path, random chunk sizes, both leads offered: Se and PPV >= 99.5 % at 150 ms."""
    x, fs, ref, names = mitdb100
    seed = _seed()
    rng = np.random.default_rng(seed)
    t0 = float(rng.uniform(1e3, 1e5))  # an LSL-clock-like offset
    ts = t0 + np.arange(len(x)) / fs
    det = StreamingRPeakDetector(fs, labels=names)  # lead=None: picks the best lead
    emitted = _stream(det, x, ts, rng, max_chunk=int(1.5 * fs))
    det.flush()
    found = np.asarray(det.peak_times) - t0
    # a causal detector cannot report a beat whose QRS is not complete in the data: the last
    # reference beat (R peak 25 ms before the end of the record) is out of reach by design
    ref = ref[ref <= len(x) / fs - det.max_delay_s]
    tp, err = _match(ref, found)
    se, ppv = tp / len(ref), tp / len(found)
    msg = f"seed={seed} Se={se:.4%} PPV={ppv:.4%} ref={len(ref)} found={len(found)}"
    print(msg, f"median timing error {1e3 * np.median(err):.1f} ms")
    assert names[det.lead] == "MLII", msg
    assert se >= 0.995, msg
    assert ppv >= 0.995, msg
    # times sit on the R wave, not on the delayed filter output
    assert abs(np.median(err)) < 0.010, msg
    assert np.percentile(np.abs(err), 99) < 0.030, msg
    assert all(t_emit >= p for t_emit, p in emitted), "a peak was reported before it happened"


@pytest.mark.parametrize("fs_new", [128.0, 256.0, 1000.0])
def test_mitdb_100_other_sampling_rates(mitdb100, fs_new):
    """The same real ECG resampled to other rates (DREAMER's 128/256 Hz, 1 kHz amplifiers)."""
    x, fs, ref, _ = mitdb100
    seed = _seed()
    rng = np.random.default_rng(seed)
    n = int(600 * fs)  # 10 min
    g = math.gcd(int(fs_new), int(fs))
    y = signal.resample_poly(x[:n], int(fs_new) // g, int(fs) // g, axis=0)
    ts = np.arange(len(y)) / fs_new
    det = StreamingRPeakDetector(fs_new)
    _stream(det, y, ts, rng, max_chunk=int(fs_new))
    found = np.asarray(det.peak_times)
    ref = ref[ref < ts[-1] - det.max_delay_s]
    found = found[found < ts[-1] - det.max_delay_s]
    tp, err = _match(ref, found)
    msg = f"seed={seed} fs={fs_new} Se={tp / len(ref):.4%} PPV={tp / len(found):.4%}"
    assert tp / len(ref) >= 0.995 and tp / len(found) >= 0.995, msg
    assert abs(np.median(err)) < 0.010, msg


def test_detector_delay_is_bounded_and_chunking_does_not_matter(mitdb100):
    """Tiny chunks: every beat comes within ``max_delay_s``; another chunking, same peaks."""
    x, fs, _, _ = mitdb100
    seed = _seed()
    rng = np.random.default_rng(seed)
    n = int(180 * fs)
    ts = 500.0 + np.arange(n) / fs
    det = StreamingRPeakDetector(fs, lead=0)
    emitted = _stream(det, x[:n], ts, rng, max_chunk=3)
    delays = np.array([e - p for e, p in emitted if p > ts[0] + det.cfg.learn_s + 0.5])
    assert delays.max() <= det.max_delay_s + 3 / fs, (seed, delays.max(), det.max_delay_s)
    det2 = StreamingRPeakDetector(fs, lead=0)
    _stream(det2, x[:n], ts, rng, max_chunk=int(5 * fs))
    assert np.allclose(det.peak_times, det2.peak_times, rtol=0, atol=1e-9), seed
    print(f"delay median {np.median(delays):.3f} s, max {delays.max():.3f} s")


def test_eegmat_heart_rate_matches_offline_detector(eegmat):
    """Rest recording: heart rate from the streaming path vs find_peaks offline (~76 bpm)."""
    _, ecg, fs, _ = eegmat
    seed = _seed()
    rng = np.random.default_rng(seed)
    ts = 77.0 + np.arange(len(ecg)) / fs
    det = StreamingRPeakDetector(fs, lead="ECG ECG", labels=["ECG ECG"])
    tracker = HeartRateTracker()
    hr_series = []
    i = 0
    while i < len(ecg):
        m = int(rng.integers(1, int(0.5 * fs)))
        det.push(ecg[i : i + m, None], ts[i : i + m])
        tracker.add(det.pop_new())
        i += m
        if i % 5 == 0:
            hr_series.append(tracker.readout(ts[min(i, len(ts)) - 1]).hr_bpm)
    ours = np.asarray(det.peak_times)
    offline = ts[_offline_peaks(ecg, fs)]
    hr_ours = 60.0 / np.mean(np.diff(ours))
    hr_off = 60.0 / np.mean(np.diff(offline))
    tp, _ = _match(offline, ours)
    last = tracker.readout(ts[-1])
    print(
        f"HR ours {hr_ours:.2f} bpm ({len(ours)} beats), offline {hr_off:.2f} bpm "
        f"({len(offline)} beats); tracker median {np.nanmedian(hr_series):.2f} bpm; "
        f"last readout {last.hr_bpm:.1f} bpm, RMSSD {last.rmssd_ms:.1f} ms"
    )
    assert abs(hr_ours - hr_off) < 1.0, (seed, hr_ours, hr_off)
    assert 72.0 < hr_ours < 80.0, (seed, hr_ours)
    assert tp / len(offline) >= 0.99 and tp / len(ours) >= 0.99, (seed, tp, len(ours))
    assert abs(np.nanmedian(hr_series) - hr_off) < 2.0, seed
    assert 5.0 < last.rmssd_ms < 150.0 and last.n_nn_pairs > 20


def test_heart_rate_tracker_robust_to_missed_and_extra_beat(eegmat):
    """Real beat times; dropping one beat or adding a spurious one barely moves HR and RMSSD."""
    _, ecg, fs, _ = eegmat
    peaks = _offline_peaks(ecg, fs) / fs
    peaks = peaks[(peaks > 60) & (peaks < 95)]
    now = float(peaks[-1])

    def readout(p):
        tr = HeartRateTracker()
        tr.add(p)
        return tr.readout(now)

    base = readout(peaks)
    k = len(peaks) - 8
    missed = readout(np.delete(peaks, k))
    extra = readout(np.sort(np.append(peaks, 0.5 * (peaks[k] + peaks[k + 1]) - 0.1)))
    for r in (missed, extra):
        assert abs(r.hr_bpm - base.hr_bpm) < 1.5, (r, base)
        assert abs(r.rmssd_ms - base.rmssd_ms) < 0.25 * base.rmssd_ms, (r, base)
    assert 70 < base.hr_bpm < 82


def test_challenge_nan_gaps_detector_survives_and_quality_flags_them(challenge):
    """Real NaN samples (Challenge 2015 v102s): beats go on across them; the windows holding them
    are flagged 'nan' on exactly the channels that have them."""
    x, fs, names = challenge
    seed = _seed()
    rng = np.random.default_rng(seed)
    ts = 3000.0 + np.arange(len(x)) / fs
    nan_at = {c: ts[np.flatnonzero(np.isnan(x[:, c]))] for c in range(2)}
    assert sum(len(v) for v in nan_at.values()) == 5  # the record's own invalid samples
    for lead in (0, 1):
        det = StreamingRPeakDetector(fs, lead=lead)
        _stream(det, x, ts, rng, max_chunk=int(fs))
        p = np.asarray(det.peak_times)
        assert det.nan_samples == len(nan_at[lead])
        assert np.all(np.isfinite(p)) and len(p) > 400, (seed, lead, len(p))
        for t in nan_at[lead]:  # beats right before and after every NaN
            assert np.any((p > t - 1.0) & (p < t)) and np.any((p > t) & (p < t + 1.0)), (seed, t)
        off = ts[_offline_peaks(x[:, lead], fs)]
        if lead == 1:  # lead V is clean enough for the simple offline detector to be a reference
            hr, hr_off = 60 / np.median(np.diff(p)), 60 / np.median(np.diff(off))
            assert abs(hr - hr_off) < 3.0, (seed, hr, hr_off)
            print(f"v102s lead V: HR ours {hr:.1f} bpm, offline {hr_off:.1f} bpm")

    # quality of 4-s windows every second, read back from a ring buffer like the worker would
    buf = RingBuffer(len(ts), 2)
    buf.write(x.astype(np.float32), ts)
    win, flagged, expected = 4.0, set(), set()
    th = QualityThresholds.ecg()
    for k in range(int(win), int(len(ts) / fs)):
        t1 = ts[0] + k
        data, tw = buf.read_range(t1 - win, t1)
        rep = assess_window_quality(
            data, tw, fs, units="mV", t_start=t1 - win, t_end=t1, thresholds=th, labels=names
        )
        flagged |= {(k, c) for c in rep.channels_with("nan")}
        expected |= {(k, c) for c in range(2) for t in nan_at[c] if t1 - win < t <= t1}
        assert not rep.gap_flagged
    assert flagged == expected


def test_detector_recovers_after_long_nan_burst(eegmat):
    """A planted 3-s NaN burst in real ECG: no beats inside, detection resumes right after."""
    _, ecg, fs, _ = eegmat
    seed = _seed()
    rng = np.random.default_rng(seed)
    x = ecg.copy()
    t_nan = float(rng.uniform(40, 140))
    a, b = int(t_nan * fs), int((t_nan + 3.0) * fs)
    x[a:b] = np.nan
    ts = np.arange(len(x)) / fs
    det = StreamingRPeakDetector(fs, lead=0)
    _stream(det, x[:, None], ts, rng, max_chunk=int(0.3 * fs))
    p = np.asarray(det.peak_times)
    assert not np.any((p > t_nan + 0.2) & (p < t_nan + 3.0)), (seed, p[(p > t_nan) & (p < b / fs)])
    off = ts[_offline_peaks(ecg, fs)]
    keep = (off < t_nan - 0.2) | (off > t_nan + 3.0 + 1.5)  # allow 1.5 s to re-settle
    tp, _ = _match(off[keep], p)
    assert tp >= keep.sum() - 1, (seed, tp, keep.sum())
    assert det.nan_samples == b - a


# -------------------------------------------------------------------------------- EEG


def _eeg_200hz(eeg: np.ndarray, fs: float) -> np.ndarray:
    """Real EEG at the model rate (200 Hz), ``[C, T]``."""
    return signal.resample_poly(eeg, 2, 5, axis=0).T  # 500 -> 200 Hz


def test_band_powers_planted_sine_raises_exactly_its_band(eegmat):
    eeg, _, fs, _ = eegmat
    seed = _seed()
    rng = np.random.default_rng(seed)
    x = _eeg_200hz(eeg, fs)
    rate = 200.0
    a = int(rng.integers(0, x.shape[1] - 800))
    win = x[:, a : a + 800]  # a 4-s window
    base = band_powers(win, rate)
    assert base.shape == (19, 5) and np.all(base > 0)
    t = np.arange(800) / rate
    amp = 40.0  # uV; a sine of amplitude A carries A^2 / 2 of power
    for j, (lo, hi) in enumerate(BANDS.values()):
        ch = int(rng.integers(19))
        f0 = float(rng.uniform(lo + 1.0, hi - 1.0))
        sine = amp * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
        planted, opposed = win.copy(), win.copy()
        planted[ch] += sine
        opposed[ch] -= sine
        p = band_powers(planted, rate)
        # Welch power is quadratic in the signal: averaging x+s and x-s cancels the cross term with
        # the real EEG (large when the EEG itself has alpha at f0), leaving the sine's own power
        rise = (p[ch] + band_powers(opposed, rate)[ch]) / 2 - base[ch]
        msg = f"seed={seed} band={j} f0={f0:.2f} ch={ch} rise={rise} base={base[ch]}"
        assert 0.7 < rise[j] / (amp**2 / 2) < 1.3, msg
        others = np.delete(np.arange(5), j)
        assert np.all(np.abs(rise[others]) < 0.05 * rise[j]), msg
        assert np.allclose(np.delete(p, ch, 0), np.delete(base, ch, 0), rtol=1e-9, atol=0), msg


def test_frontal_alpha_asymmetry_pairs_from_labels_and_sign(eegmat):
    eeg, _, fs, labels = eegmat
    x = _eeg_200hz(eeg, fs)[:, 2000:2800]
    base = frontal_alpha_asymmetry(band_powers(x, 200.0), labels)
    assert base is not None
    assert set(base.pairs) == {"FP1/FP2", "F3/F4", "F7/F8"}
    assert base.channels["F3/F4"] == (labels.index("EEG F3"), labels.index("EEG F4"))
    right = [labels.index(f"EEG {n}") for n in ("Fp2", "F4", "F8")]
    left = [labels.index(f"EEG {n}") for n in ("Fp1", "F3", "F7")]
    for idx, sign in ((right, 1.0), (left, -1.0)):
        y = x.copy()
        y[idx] *= 2.0  # 4x the power on that side
        faa = frontal_alpha_asymmetry(band_powers(y, 200.0), labels)
        assert faa is not None
        for key in base.pairs:
            assert faa.pairs[key] - base.pairs[key] == pytest.approx(sign * math.log(4.0))
        assert np.sign(faa.mean - base.mean) == sign
    # other spellings, and no pair at all
    odd = ["eeg f3-ref", "F4-REF", "AF3", "af4", "Fp1-A1", "O1", "EEG A2-A1", "Cz"]
    p = np.abs(np.random.default_rng(0).normal(size=(8, 5))) + 0.1
    faa = frontal_alpha_asymmetry(p, odd)
    assert faa is not None and set(faa.pairs) == {"AF3/AF4", "F3/F4"}
    assert faa.pairs["F3/F4"] == pytest.approx(np.log(p[1, 2]) - np.log(p[0, 2]))
    assert frontal_alpha_asymmetry(p[:3], ["O1", "O2", "EEG A2-A1"]) is None


# -------------------------------------------------------------------------------- quality


def _windows(buf: RingBuffer, t_first: float, t_last: float, win: float, hop: float):
    t1 = t_first + win
    while t1 <= t_last + 1e-9:
        data, ts = buf.read_range(t1 - win, t1)
        yield t1, data, ts
        t1 += hop


def test_quality_clean_eegmat_passes(eegmat):
    eeg, ecg, fs, labels = eegmat
    ts = 10.0 + np.arange(len(eeg)) / fs
    buf = RingBuffer(len(ts), 20)
    buf.write(np.column_stack([eeg, ecg]).astype(np.float32), ts)
    n = 0
    for t1, data, tw in _windows(buf, ts[0] - 0.5 / fs, ts[-1], 4.0, 2.0):
        rep = assess_window_quality(data[:, :19], tw, fs, t_start=t1 - 4, t_end=t1, labels=labels)
        assert rep.ok, (t1, rep.reasons())
        rep = assess_window_quality(
            data[:, 19:], tw, fs, units="mV", thresholds=QualityThresholds.ecg()
        )
        assert rep.ok, (t1, rep.reasons())
        n += 1
    assert n > 80


def test_quality_planted_faults_flag_exactly_their_channels_and_windows(eegmat):
    """Five faults on five random channels at random times, plus 0.5 s of lost samples: each
    window flags exactly the faulty channels it holds, with the planted reason."""
    eeg, _, fs, labels = eegmat
    seed = _seed()
    rng = np.random.default_rng(seed)
    dur = 70.0
    x = eeg[: int(dur * fs)].copy()
    t_rel = np.arange(len(x)) / fs
    flat_ch, clip_ch, nan_ch, line_ch, amp_ch = (int(c) for c in rng.choice(19, 5, replace=False))
    faults: dict[int, tuple[slice, str]] = {}

    def seg(t0: float, length: float) -> slice:
        a = round(t0 * fs)
        return slice(a, a + round(length * fs))

    s = seg(rng.uniform(5, 55), 8.0)  # flat: the amplifier holds one value for 8 s
    x[s, flat_ch] = x[s.start, flat_ch]
    faults[flat_ch] = (s, "flat")
    s = seg(rng.uniform(5, 62), 0.5)  # electrode pop of 3 mV driving the channel into a 1-mV rail
    x[s, clip_ch] += 3000.0 * signal.windows.hann(s.stop - s.start)
    x[:, clip_ch] = np.clip(x[:, clip_ch], -1000.0, 1000.0)
    faults[clip_ch] = (s, "clipped")
    s = seg(rng.uniform(5, 62), 0.2)  # NaN burst
    x[s, nan_ch] = np.nan
    faults[nan_ch] = (s, "nan")
    s = seg(rng.uniform(5, 50), 12.0)  # mains pick-up on one electrode for 12 s
    x[s, line_ch] += 40.0 * np.sin(2 * np.pi * 50.0 * t_rel[s])
    faults[line_ch] = (s, "line_noise")
    s = seg(rng.uniform(5, 55), 8.0)  # 20x gain fault for 8 s
    x[s, amp_ch] *= 20.0
    faults[amp_ch] = (s, "amplitude")
    gap = seg(rng.uniform(5, 62), 0.5)  # 0.5 s of samples lost on the way (all channels)
    keep = np.ones(len(x), bool)
    keep[gap] = False
    t_off = 1234.5
    buf = RingBuffer(len(x), 19)
    buf.write(x[keep].astype(np.float32), t_off + t_rel[keep])

    def n_in(a: float, b: float, sl: slice) -> int:
        """Samples of ``sl`` with ``a < t <= b`` (window edges sit between samples)."""
        return max(
            0, min(sl.stop - 1, math.floor(b * fs)) - max(sl.start, math.floor(a * fs) + 1) + 1
        )

    win, n_win, checked = 4.0, int(4.0 * fs), 0
    for t1, data, tw in _windows(buf, t_off - 0.5 / fs, t_off + dur - 1 / fs, win, 0.5):
        rep = assess_window_quality(data, tw, fs, t_start=t1 - win, t_end=t1, labels=labels)
        a, b = t1 - win - t_off, t1 - t_off  # window span relative to the recording
        msg = f"seed={seed} window ({a:.3f}, {b:.3f}] {rep.reasons()} faults={faults} gap={gap}"
        g = n_in(a, b, gap)
        if g >= 3:
            assert rep.gap_flagged and rep.gap_s == pytest.approx(g / fs, abs=1.5 / fs), msg
        elif g == 0:
            assert not rep.gap_flagged, msg
        for c in range(19):
            got = rep.channel_reasons[c]
            if c not in faults:
                assert got == (), msg
                continue
            sl, code = faults[c]
            k = n_in(a, b, sl)
            if k == 0:
                assert got == (), msg  # outside its fault a channel is clean
                continue
            if code == "flat":
                # the longest stretch of the fault present in the window: lost samples (the gap)
                # may cut it (seed 184908653: 603 flat samples in the window, 156 of them lost)
                before = slice(sl.start, min(sl.stop, gap.start))
                after = slice(max(sl.start, gap.stop), sl.stop)
                run = max(n_in(a, b, before), n_in(a, b, after))
                must = run >= int(QualityThresholds().flat_run_s * fs) + 2
            elif code in ("line_noise", "amplitude"):
                must = k >= n_win - 1  # the window lies inside the fault
            elif code == "nan":
                must = n_in(a, b, sl) > n_in(
                    a, b, slice(max(sl.start, gap.start), min(sl.stop, gap.stop))
                )
            else:  # clipped: the window holds the whole pop, and no sample of it was lost
                # (seed 3867495110: the gap took 241 of the pop's 250 samples)
                lost = max(0, min(sl.stop, gap.stop) - max(sl.start, gap.start))
                must = k == sl.stop - sl.start and lost == 0
            if must:
                assert code in got, msg
                checked += 1
            allowed = {code, "amplitude"}  # a pop into the rail is also too big
            if code == "flat":
                # a held value cut short by the window's edge (shorter than flat_run_s) that sits
                # at the window's max or min is a plateau at a rail: exactly what clipping looks
                # like (seed 4227523789: 0.8 s of a held value at the start of a window)
                allowed.add("clipped")
            assert set(got) <= allowed, msg
    assert checked >= 20, (seed, checked)
