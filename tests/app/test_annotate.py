"""The annotation stage inside a real Session: its R-peak detector's failure reaches the user
through the session's one message log, and the session goes on."""

from __future__ import annotations

import math

import pytest

from physio_live.app._session import Session
from physio_live.core import config_from_dict, open_recording


class _BrokenDetector:
    """Stands in for the R-peak detector after the first second of ECG (too few beats for a heart
    rate; any chunking): a detector bug, not bad data."""

    def __init__(self, real):
        self.real = real
        self.lead = None
        self.t_first = None

    def push_chunk(self, chunk):
        if self.t_first is None:
            self.t_first = float(chunk.timestamps[0])
        if chunk.timestamps[-1] - self.t_first >= 1.0:
            raise RuntimeError("detector bug")
        return self.real.push_chunk(chunk)


@pytest.mark.slow  # a 12-s replay through a real session: ~5 s on 2 cores
def test_heart_monitor_error_reaches_the_session_log_and_estimates_go_on(data_dir):
    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(0.0, 12.0)
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "aligner": {"window": 4.0, "hop": 1.0},
            "model": {"size": "tiny", "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    session = Session(cfg, recording=rec, speed=None)
    session.open()
    heart = session.annotator.heart
    assert heart is not None
    heart.detector = _BrokenDetector(heart.detector)
    got = []
    session.on_estimate(got.append)
    session.start()
    try:
        assert session.finished.wait(120)
        messages = session.messages()
    finally:
        session.close()
    stopped = [m for m in messages if "R-peak detection stopped" in m]
    assert len(stopped) == 1 and "detector bug" in stopped[0], messages
    assert heart.error == stopped[0]
    assert len(got) >= 8  # the windows were still estimated
    assert all(math.isnan(e.readouts["hr_bpm"]) for e in got)  # no beats after the failure
