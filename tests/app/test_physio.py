"""Readouts and the quality gate inside a real Session replaying the eegmat recording."""

from __future__ import annotations

import numpy as np
import pytest

from physio_live.app._session import Session
from physio_live.core import RecordedStream, config_from_dict, open_recording


def _cfg(**gate) -> object:
    return config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "aligner": {"window": 4.0, "hop": 1.0, "gate": gate},
            "model": {"size": "tiny", "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )


def _run(cfg, rec) -> list:
    session = Session(cfg, recording=rec, speed=None)
    session.open()
    got = []
    session.on_estimate(got.append)
    session.start()
    assert session.finished.wait(120)
    session.close()
    return got


def test_faulty_stretch_is_withheld_and_the_rest_issued_with_readouts(data_dir):
    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(0.0, 60.0)
    rng = np.random.default_rng()
    eeg = next(s for s in rec.streams if s.info.role == "eeg")
    fs = eeg.info.nominal_srate
    data = eeg.data.copy()
    t_fault = float(rng.uniform(25, 35))
    chans = rng.choice(data.shape[1], 8, replace=False)  # 8 of 19 channels: above 25 %
    a, b = int(t_fault * fs), int((t_fault + 2.0) * fs)
    data[a:b, chans] = np.nan
    rec.streams = [
        RecordedStream(s.info, data, s.timestamps) if s is eeg else s for s in rec.streams
    ]
    ests = _run(_cfg(), rec)
    assert len(ests) > 40
    for e in ests:
        start = e.t_end - 4.0
        overlaps = start < t_fault + 2.0 and e.t_end > t_fault
        if overlaps and e.t_end - t_fault > 0.05 and t_fault + 2.0 - start > 0.05:
            assert e.withheld, e.t_end
            assert "eeg 8/19 bad" in e.reason and "nan" in e.reason
            assert np.isnan(e.probabilities).all()
        elif not overlaps:
            assert not e.withheld, (e.t_end, e.reason)
            assert np.isfinite(e.probabilities).all()
    # heart rate from the real ECG, near the ~76 bpm an offline detector gives
    hr = [e.readouts["hr_bpm"] for e in ests if e.t_end > 20]
    assert np.nanmedian(hr) == pytest.approx(76, abs=4)
    assert all(np.isfinite(e.readouts["alpha_uv2"]) for e in ests if not e.withheld)
    assert all(np.isfinite(e.readouts["faa"]) for e in ests if not e.withheld)  # F3/F4 ...


def test_gate_off_issues_everything(data_dir):
    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(0.0, 20.0)
    eeg = next(s for s in rec.streams if s.info.role == "eeg")
    data = eeg.data.copy()
    data[:, :10] = 0.0  # 10 of 19 channels flat
    rec.streams = [
        RecordedStream(s.info, data, s.timestamps) if s is eeg else s for s in rec.streams
    ]
    ests = _run(_cfg(enabled=False), rec)
    assert ests and not any(e.withheld for e in ests)
    ests = _run(_cfg(), rec)
    assert ests and all(e.withheld and "flat" in e.reason for e in ests)
