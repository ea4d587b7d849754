"""Clock trouble: devices that stamp samples with their own clock (offset, drift, jitter, resets).

The outlets in ``tests/lsl_outlets.py`` push every sample at its true time but may stamp it with a
simulated device clock; the planted common events stay at the true time in every stream, so where
they land in the windows shows how well the streams are aligned.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from physio_live.core import Pipeline, config_from_dict
from physio_live.core._clock import DeviceClock

RATE = 200.0
SETTLE = 4.0  # seconds of data before the device clock fit is trusted


# -- the mapping itself, on simulated arrivals (fast, long spans) ---------------------------------


def simulate(clock: DeviceClock, seconds: float, stamp, *, drop=None, seed=0):
    """Feed ``clock`` with chunks as an inlet pulls them: every ~50 ms, a few ms late, now and
    then 60 ms late. ``stamp(T)`` gives the device stamps of true times ``T``; ``drop(T)`` marks
    samples that never arrive. Returns (true times, mapped times, resets) of what arrived."""
    rng = np.random.default_rng(seed)
    sr, t0 = clock.srate, 5000.0
    sent, true_all, out_all, resets = 0, [], [], []
    for k in range(int(seconds / 0.05)):
        pull = t0 + (k + 1) * 0.05 + rng.exponential(0.002) + (0.06 if k % 37 == 5 else 0.0)
        due = max(int((pull - t0) * sr) + 1, sent)  # pushed up to one sample ahead
        true = t0 + np.arange(sent, due) / sr
        sent = due
        if drop is not None:
            true = true[~drop(true - t0)]
        if len(true) == 0:
            continue
        out_all.append(clock(stamp(true - t0, rng) + t0, pull))
        true_all.append(true)
        resets += clock.pop_resets()
    return np.concatenate(true_all) - t0, np.concatenate(out_all) - t0, resets


def drifting(offset=0.5, ppm=100.0, jitter=0.0015, jumps=()):
    def stamp(rel, rng):
        s = rel + offset + ppm * 1e-6 * rel + rng.normal(0, jitter, len(rel))
        for at, by in jumps:
            s = s + np.where(rel >= at, by, 0.0)
        return s

    return stamp


def test_device_clock_maps_offset_drift_and_jitter_onto_arrival_time():
    # 10 minutes at 100 ppm: the device clock drifts 60 ms away, on top of a 0.5 s offset
    true, out, resets = simulate(DeviceClock(500.0), 600.0, drifting())
    assert resets == []
    assert (np.diff(out) >= 0).all()
    err = out - true
    settled = true > SETTLE
    # well inside one 200 Hz sample (5 ms), from the settling time to the end
    assert np.abs(err[settled]).max() < 2.0e-3, np.abs(err[settled]).max()
    assert abs(np.median(err[true > 300])) < 1.0e-3
    # without the fit the error would be the offset plus the accumulated drift
    assert np.abs(err[:50]).max() < 0.05


def test_device_clock_restarts_on_a_reset_but_not_on_missing_samples():
    clock = DeviceClock(500.0)
    stamp = drifting(jumps=[(20.0, -100.0), (50.0, 30.0)])  # backwards, then forwards
    lost = lambda rel: (rel >= 35.0) & (rel < 36.0)  # noqa: E731 - one second never arrives
    true, out, resets = simulate(clock, 80.0, stamp, drop=lost)
    assert [round(r.jump) for r in resets] == [-100, 30]  # the lost second is no reset
    assert clock.n_resets == 2
    assert (np.diff(out) >= 0).all(), "timestamps went backwards"
    for r in resets:  # each reset leaves a short gap where the old mapping ends
        assert 0 <= r.t_to - r.t_from < 0.1
    err = np.abs(out - true)
    for start, end in ((SETTLE, 20.0), (20.0 + SETTLE, 50.0), (50.0 + SETTLE, 80.0)):
        part = (true > start) & (true < end)
        assert err[part].max() < 2.0e-3, (start, err[part].max())
    # right after the lost second the old mapping goes on, no settling needed
    after = (true > 36.0) & (true < 37.0)
    assert err[after].max() < 2.0e-3


# -- real outlets in another process -> LSL inlets -> pipeline -> windows ------------------------


def _cfg(eeg: str, ecg: str, ecg_timestamps: str) -> dict:
    return {
        "sources": [
            {"kind": "lsl", "role": "eeg", "name": eeg, "channels": 16, "timeout": 5},
            {
                "kind": "lsl",
                "role": "ecg",
                "name": ecg,
                "channels": 2,
                "timeout": 5,
                "timestamps": ecg_timestamps,
            },
        ],
        "aligner": {
            "window": 2.0,
            "hop": 0.25,
            # same band for both modalities so both see the same filter delay
            "eeg": {"bandpass": [0.5, 40.0], "notch": None},
            "ecg": {"bandpass": [0.5, 40.0], "notch": None, "unit_uv": 100.0},
            "quality": {"saturation_uv": None},
        },
        "buffer_seconds": 30,
    }


def _streams(**ecg_clock) -> list[dict]:
    return [
        {"name": "EEG", "type": "EEG", "n_ch": 16, "srate": 256.0},
        {"name": "ECG", "type": "ECG", "n_ch": 2, "srate": 500.0, **ecg_clock},
    ]


def event_lags(windows, events, since: float, ecg_shift: float = 0.0) -> list[tuple]:
    """(event time, ECG minus EEG impulse position in 200 Hz samples, EEG error s) for each
    planted event well inside a window that starts after ``since``; the ECG impulse is looked
    for ``ecg_shift`` seconds after the event."""
    out = []
    for w in windows:
        times = w.times
        if times[0] < since:
            continue
        for te in events:
            if not (times[0] + 0.4 < te < times[-1] - 0.4 and times[0] < te + ecg_shift - 0.2):
                continue
            if te + ecg_shift + 0.2 > times[-1]:
                continue
            se = slice(*np.searchsorted(times, [te - 0.2, te + 0.2]))
            sc = slice(*np.searchsorted(times, [te + ecg_shift - 0.2, te + ecg_shift + 0.2]))
            pe = se.start + int(np.argmax(np.abs(w.eeg[1, se])))
            pc = sc.start + int(np.argmax(np.abs(w.ecg[1, sc])))
            out.append((te, pc - pe, times[pe] - te))
    return out


def _run(cfgs: list[dict], seconds: float) -> list[tuple[Pipeline, list, list]]:
    """Pipelines on ``cfgs`` at once for ``seconds``: (pipeline, windows, ECG chunks) each."""
    runs = []
    for raw in cfgs:
        pipe = Pipeline(config_from_dict(raw))
        windows: list = []
        ecg: list = []
        pipe.on_window(windows.append)
        pipe.on_chunk(lambda c, ecg=ecg: ecg.append(c) if c.info.role == "ecg" else None)
        runs.append((pipe, windows, ecg))
    for pipe, _, _ in runs:
        pipe.start()
    try:
        time.sleep(seconds)
    finally:
        for pipe, _, _ in runs:
            pipe.stop()
    return runs


def stamp_errors(chunks, t0: float, srate: float) -> tuple[np.ndarray, np.ndarray]:
    """(true time since t0, mapped stamp minus true time) per sample: channel 0 is the index."""
    idx = np.concatenate([c.data[:, 0] for c in chunks]).astype(np.float64)
    ts = np.concatenate([c.timestamps for c in chunks])
    assert (np.diff(ts) >= 0).all(), "timestamps went backwards"
    return idx / srate, ts - (t0 + idx / srate)


@pytest.mark.slow
def test_device_timestamps_align_an_offset_drifting_jittery_clock(lsl_outlets):
    outlets = lsl_outlets(
        _streams(clock_offset=0.5, drift_ppm=100.0, jitter_ms=1.5),
        event_period=1.3,
        event_offset=1.0,
        duration=15.0,
        seed=3,
    )
    eeg, ecg = (s["name"] for s in outlets.spec["streams"])
    # the same outlets read twice at once: ECG stamps mapped from arrival, and trusted as LSL time
    (device, dev_windows, dev_ecg), (lsl, lsl_windows, _) = _run(
        [_cfg(eeg, ecg, "device"), _cfg(eeg, ecg, "lsl")], 11.0
    )
    # the mapped ECG stamps sit on the samples' true times, well within one 200 Hz sample
    rel, err = stamp_errors(dev_ecg, outlets.t0, 500.0)
    assert rel[-1] > 9.0
    assert np.abs(err[rel > SETTLE]).max() < 1 / RATE, np.abs(err[rel > SETTLE]).max()
    events = outlets.event_times(outlets.t0 + 12.0)
    since = outlets.t0 + SETTLE
    lags = event_lags(dev_windows, events, since)
    assert len(lags) >= 8
    diffs = np.array([d for _, d, _ in lags])
    assert np.abs(diffs).max() <= 1, lags
    assert max(abs(e) for _, _, e in lags) < 0.03  # and at the event's true time
    assert device.errors == []
    # trusted as LSL time the ECG is 0.5 s (100 samples) late, and the user is told why
    wrong = np.array([d for _, d, _ in event_lags(lsl_windows, events, since, ecg_shift=0.5)])
    assert len(wrong) >= 4 and (np.abs(wrong - 100) <= 2).all(), wrong
    warnings = [e for e in lsl.errors if "timestamps: device" in e]
    assert len(warnings) == 1 and f"name='{ecg}'" in warnings[0], lsl.errors
    assert "timestamps run 0.50 s ahead of their arrival time" in warnings[0]
    assert len(lsl.errors) == 1


@pytest.mark.slow
def test_a_device_clock_reset_is_a_flagged_gap_and_alignment_recovers(lsl_outlets):
    reset_at = 4.0
    outlets = lsl_outlets(
        _streams(
            clock_offset=0.5, drift_ppm=100.0, jitter_ms=1.5, reset_at=reset_at, reset_jump=-100.0
        ),
        event_period=1.3,
        event_offset=1.0,
        duration=14.0,
        seed=4,
    )
    eeg, ecg = (s["name"] for s in outlets.spec["streams"])
    ((pipe, windows, chunks),) = _run([_cfg(eeg, ecg, "device")], 12.0)
    t_reset = outlets.t0 + reset_at
    # stamps stay monotonic through the jump and return onto the true times
    rel, err = stamp_errors(chunks, outlets.t0, 500.0)
    after = rel > reset_at + SETTLE
    assert after.sum() > 1000 and np.abs(err[after]).max() < 1 / RATE
    assert sum(c.gap_before for c in chunks) == 1
    # no exception anywhere; the reset is reported once, as a warning naming the jump
    assert len(pipe.errors) == 1, pipe.errors
    assert f"name='{ecg}'" in pipe.errors[0]
    assert "device clock jumped by -100.00 s (clock reset)" in pipe.errors[0]
    # windows keep coming, hop after hop, through the reset
    ends = np.array([w.t_end for w in windows])
    np.testing.assert_allclose(np.diff(ends), 0.25, atol=1e-9)
    assert ends[-1] > t_reset + 6.0
    # the gap is flagged in the ECG quality of the windows around the reset, and only there
    gaps = {w.t_end: w.quality.per_modality["ecg"].gap_fraction for w in windows}
    around = [g for t, g in gaps.items() if t - 2.0 < t_reset < t]
    assert around and all(g > 0 for g in around), around
    assert all(g == 0 for t, g in gaps.items() if t - 2.0 > t_reset + 0.1)
    assert all(w.quality.per_modality["eeg"].gap_fraction == 0 for w in windows)
    # once the fit has settled again, the events line up as before
    lags = event_lags(windows, outlets.event_times(outlets.t0 + 13.0), t_reset + SETTLE)
    assert len(lags) >= 4
    assert max(abs(d) for _, d, _ in lags) <= 1, lags


def test_segment_dejitter_smooths_jitter_and_restarts_at_a_gap():
    """liblsl's dejitter would carry its fit across an outlet restart; ours starts afresh."""
    from physio_live.core._clock import SegmentDejitter

    rng = np.random.default_rng()
    srate = 256.0
    t0 = float(rng.uniform(100, 1000))
    gap = float(rng.uniform(2, 8))
    true = np.concatenate([t0 + np.arange(2560) / srate, t0 + gap + 10 + np.arange(2560) / srate])
    noisy = true + rng.normal(0, 0.002, len(true))
    dj = SegmentDejitter(srate)
    out = np.concatenate([dj(noisy[i : i + 7]) for i in range(0, len(noisy), 7)])
    assert dj.breaks == 1
    assert np.all(np.diff(out) >= 0)
    # after a few seconds of each segment the fit beats the 2-ms jitter clearly
    for seg in (slice(1280, 2560), slice(2560 + 1280, 5120)):
        assert np.max(np.abs(out[seg] - true[seg])) < 1.5e-3
    # the first samples after the restart sit at their own time, not a period after the old ones
    assert abs(out[2560] - true[2560]) < 0.01


def test_segment_dejitter_keeps_one_fit_through_wireless_packet_jitter():
    from physio_live.core._clock import SegmentDejitter

    rng = np.random.default_rng()
    srate = 256.0
    true = float(rng.uniform(100, 1000)) + np.arange(256 * 60) / srate
    # packets of 12 samples arriving up to 120 ms late, stamped on arrival (one stamp per packet
    # spread back over its samples): steps of tens of ms that are jitter, not breaks
    late = np.repeat(rng.uniform(0, 0.12, len(true) // 12 + 1), 12)[: len(true)]
    dj = SegmentDejitter(srate)
    out = np.concatenate([dj(true[i : i + 12] + late[i : i + 12]) for i in range(0, len(true), 12)])
    assert dj.breaks == 0
    tail = slice(256 * 30, None)  # once the fit has seen 30 s, it removes most of the jitter
    resid = out[tail] - true[tail]
    assert np.std(resid) < 0.006 and np.std(late[tail]) > 0.03
