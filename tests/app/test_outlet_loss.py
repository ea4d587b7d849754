"""A live source's outlet dies (kill -9) and comes back with the same source_id.

Real outlets in separate processes (EEG and ECG each in its own, so only the EEG dies), the real
Session recording to XDF. Checks the reliability issue's promises: the inlet recovers within 2 s
of the outlet's return, the gap is marked in the windows (gap fraction) and in the recording (the
missing stretch, plus "lost" and "back" markers on the app's marker stream), nothing the outlet
sent while connected is lost, and the session keeps running and estimating throughout.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid

import numpy as np
import pylsl
import pyxdf

from physio_live.app._session import STREAM_LOST_AFTER_S, Session
from physio_live.core import config_from_dict


def _wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_outlet_killed_and_back_recovers_within_2s_and_marks_the_gap(lsl_outlets, tmp_path):
    tag = uuid.uuid4().hex[:8]
    eeg_spec = {"name": f"lossEEG-{tag}", "type": "EEG", "n_ch": 8, "srate": 256.0}
    eeg_spec["source_id"] = f"{eeg_spec['name']}-sid"
    ecg_spec = {"name": f"lossECG-{tag}", "type": "ECG", "n_ch": 2, "srate": 500.0}
    eeg_proc = lsl_outlets([dict(eeg_spec)], unique=False, push_interval=0.01)
    lsl_outlets([dict(ecg_spec)], unique=False, push_interval=0.01)
    cfg = config_from_dict(
        {
            "sources": [
                {"kind": "lsl", "role": "eeg", "name": eeg_spec["name"], "channels": 8},
                {"kind": "lsl", "role": "ecg", "name": ecg_spec["name"], "channels": 2},
            ],
            # sample counters and sines, not physiology: no quality gate
            "aligner": {"window": 2.0, "hop": 0.5, "gate": {"enabled": False}},
            "model": {"size": "tiny", "device": "cpu", "threads": 1},
            "recording": {"folder": str(tmp_path)},
            "outlet": {"enabled": False},
        }
    )
    # (arrival on the LSL clock, oldest and newest EEG stamp of the chunk)
    arrivals: list[tuple[float, float, float]] = []
    lock = threading.Lock()
    windows = []

    def on_chunk(chunk) -> None:
        if chunk.info.name == eeg_spec["name"]:
            with lock:
                t = chunk.timestamps
                arrivals.append((pylsl.local_clock(), float(t[0]), float(t[-1])))

    session = Session(cfg)
    session.open()
    session.pipeline.on_chunk(on_chunk)
    session.pipeline.on_window(windows.append)
    session.start()
    try:
        assert _wait_for(lambda: len(session.estimates) >= 3, 30), "no estimates before the fault"
        eeg_proc.proc.send_signal(signal.SIGKILL)  # the amplifier's software crashes
        eeg_proc.proc.wait(5)
        t_dead = pylsl.local_clock()
        # stay away longer than the loss threshold, so the loss is seen and marked
        time.sleep(STREAM_LOST_AFTER_S + 1.5)
        assert any("lost" in e and eeg_spec["name"] in e for e in session.messages())
        n_est_gap = len(session.estimates)
        back = lsl_outlets([dict(eeg_spec)], unique=False, push_interval=0.01)
        t_back = pylsl.local_clock()  # the new outlet exists (its READY line was read)

        def recovered() -> bool:
            with lock:
                return any(stamp >= back.t0 for _, _, stamp in arrivals)

        assert _wait_for(recovered, 10.0), "the inlet never recovered"
        with lock:
            first_back = min(a for a, _, stamp in arrivals if stamp >= back.t0)
            # what the outlet sent before the inlet had reconnected never reaches us (LSL sends
            # to connected inlets only): the gap ends at the first sample received
            resumed = min(s0 for _, s0, stamp in arrivals if stamp >= back.t0)
        recovery = first_back - t_back
        assert recovery < 2.0, f"recovered {recovery:.2f} s after the outlet came back"
        clean_from = resumed + 0.05  # windows starting here hold no gap

        def clean_windows() -> bool:
            return sum(w.t_end - cfg.aligner.window > clean_from for w in windows) >= 2

        assert _wait_for(clean_windows, 30), "no windows after the outlet came back"
        assert _wait_for(lambda: len(session.estimates) >= n_est_gap + 4, 30)
        assert session.running
    finally:
        session.close()

    # -- the gap in the windows: every window spanning it says so; later windows are clean
    gap_lo, gap_hi = t_dead, resumed
    spanning = [w for w in windows if w.t_end - cfg.aligner.window < gap_hi and w.t_end > gap_lo]
    assert spanning, "no window was cut over the gap"
    flagged = [w for w in spanning if w.quality.per_modality["eeg"].gap_fraction > 0]
    # windows that end inside the gap may still be waiting when the session closes; the ones
    # cut must carry the flag
    assert len(flagged) == len(spanning), [w.quality.summary() for w in spanning]
    after = [w for w in windows if w.t_end - cfg.aligner.window > clean_from]
    assert after and all(w.quality.per_modality["eeg"].gap_fraction == 0 for w in after)

    # -- the gap in the recording: samples before and after, nothing lost while connected,
    # and the loss / return markers inside the gap
    files = list(tmp_path.glob("*.xdf"))
    assert len(files) == 1
    streams, _ = pyxdf.load_xdf(str(files[0]), dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg = by_name[eeg_spec["name"]]
    idx = np.asarray(eeg["time_series"])[:, 0]
    ts = np.asarray(eeg["time_stamps"])
    restart = np.flatnonzero(np.diff(idx) < 0)  # the new outlet counts from 0 again
    assert len(restart) == 1
    k = int(restart[0])
    assert np.all(np.diff(idx[: k + 1]) == 1), "samples lost before the outlet died"
    assert np.all(np.diff(idx[k + 1 :]) == 1), "samples lost after the outlet came back"
    assert ts[k + 1] - ts[k] > STREAM_LOST_AFTER_S, "the recording does not show the gap"
    ecg = by_name[ecg_spec["name"]]
    assert np.all(np.diff(np.asarray(ecg["time_series"])[:, 0]) == 1), "ECG lost samples"
    marker_stream = next(s for s in streams if s["info"]["type"][0] == "Markers")
    marks = [
        (float(t), str(v[0]))
        for t, v in zip(marker_stream["time_stamps"], marker_stream["time_series"], strict=True)
    ]
    lost_marks = [t for t, v in marks if "lost" in v and eeg_spec["name"] in v]
    back_marks = [t for t, v in marks if "is back" in v and eeg_spec["name"] in v]
    assert len(lost_marks) == 1 and len(back_marks) == 1, marks
    assert ts[k] < lost_marks[0] < ts[k + 1] + 0.5
    assert lost_marks[0] < back_marks[0] < ts[k + 1] + 2.0
