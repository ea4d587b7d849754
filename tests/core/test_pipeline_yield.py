"""The acquisition side keeps its Python work off the model's way without changing a window:
the aligner thread steps only when a window is due, and readers wait while the model runs."""

from __future__ import annotations

import threading
import time

import numpy as np

from physio_live.core import ArraySource, Pipeline, Window, config_from_dict, open_recording


def _cfg():
    return config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "aligner": {"window": 4.0, "hop": 0.25},
        }
    )


def test_stepping_only_when_a_window_is_due_is_never_late_and_cuts_the_same_windows(data_dir):
    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(0.0, 12.0)
    every, due = Pipeline(_cfg(), sources=[]), Pipeline(_cfg(), sources=[])
    every.prepare(rec.infos)
    due.prepare(rec.infos)
    got: dict[str, list[Window]] = {"every": [], "due": []}
    every.on_window(got["every"].append)
    due.on_window(got["due"].append)
    steps = chunks = 0
    for chunk in rec.chunks(0.02):  # a live amplifier's small chunks
        chunks += 1
        every.ingest(chunk)
        every.step()
        due.ingest(chunk)
        if due._window_due():
            steps += 1
            due.step()
        assert len(got["due"]) == len(got["every"])  # never a window later than stepping always
    assert len(got["every"]) >= 30
    assert steps < chunks / 4  # most chunks wait for the next due window
    for a, b in zip(got["every"], got["due"], strict=True):
        assert a.t_end == b.t_end
        np.testing.assert_array_equal(a.eeg, b.eeg)
        np.testing.assert_array_equal(a.ecg, b.ecg)
        assert a.quality == b.quality


def test_readers_wait_while_the_model_runs_and_lose_nothing(data_dir):
    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(0.0, 10.0)
    signals = [s for s in rec.streams if s.info.role in ("eeg", "ecg")]
    sources = [ArraySource(s.info, s.data, s.timestamps, chunk_seconds=0.05) for s in signals]
    pipe = Pipeline(_cfg(), sources=sources)
    idle = threading.Event()  # a forward pass is running
    pipe.yield_to(idle, max_wait=30.0)
    windows: list[Window] = []
    pipe.on_window(windows.append)
    pipe.start()
    try:
        time.sleep(0.3)
        assert all(st.samples == 0 for st in pipe.stats.values())  # nothing read meanwhile
        idle.set()
        deadline = time.monotonic() + 20.0
        while len(pipe.finished) < len(signals) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        pipe.stop()
    for s in signals:
        assert pipe.stats[s.info.key].samples == len(s.timestamps)
    ref = Pipeline(_cfg(), sources=[])
    ref.prepare(rec.infos)
    for chunk in rec.chunks(1.0):
        ref.ingest(chunk)
    want = ref.step()
    assert len(want) >= 20 and [w.t_end for w in windows] == [w.t_end for w in want]
    np.testing.assert_array_equal(windows[-1].eeg, want[-1].eeg)
