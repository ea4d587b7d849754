"""The Session both front ends share: runtime recording start/stop and markers."""

from __future__ import annotations

import time

import numpy as np
import pyedflib
import pytest
import pyxdf

from physio_live.app._session import Session
from physio_live.core import ArraySource, StreamInfo, config_from_dict

#: a session over array sources (the config's own source is not opened when sources are given)
ARRAY_SESSION = {
    "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
    "aligner": {"window": 2.0, "hop": 0.5},
    "model": {"size": "tiny", "device": "cpu"},
    "recording": {"enabled": False},
    "outlet": {"enabled": False},
}


@pytest.fixture
def eegmat_sources(data_dir):
    with pyedflib.EdfReader(str(data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf")) as f:
        labels = f.getSignalLabels()
        fs = f.getSampleFrequency(0)
        n = int(20 * fs)
        eeg_idx = [labels.index(f"EEG {c}") for c in ("Fp1", "Fp2", "F3", "F4")]
        eeg = np.stack([f.readSignal(i)[:n] for i in eeg_idx], 1).astype(np.float32)
        ecg = f.readSignal(labels.index("ECG ECG"))[:n, None].astype(np.float32)
    import pylsl

    t0 = pylsl.local_clock()
    e = StreamInfo("eegmat-EEG", "EEG", "eeg", ("Fp1", "Fp2", "F3", "F4"), ("uV",) * 4, fs)
    c = StreamInfo("eegmat-ECG", "ECG", "ecg", ("ECG",), ("mV",), fs)
    return [
        ArraySource(e, eeg, realtime=True, t0=t0, chunk_seconds=0.05),
        ArraySource(c, ecg, realtime=True, t0=t0, chunk_seconds=0.05),
    ]


def test_record_start_stop_and_markers_land_in_file_and_windows(tmp_path, eegmat_sources):
    cfg = config_from_dict(ARRAY_SESSION)
    session = Session(cfg, sources=eegmat_sources)
    windows = []
    session.open()
    session.pipeline.on_window(windows.append)
    session.start()
    try:
        time.sleep(3.0)
        path = session.start_recording(tmp_path / "run.xdf")
        time.sleep(1.0)
        t_mark = session.insert_marker("stimulus 1")
        time.sleep(3.0)
        status = session.stop_recording()
        time.sleep(0.5)
    finally:
        session.close()
    assert status is not None and status.error is None
    streams, _ = pyxdf.load_xdf(str(path))
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg = by_name["eegmat-EEG"]
    assert 3.0 * 500 < len(eeg["time_stamps"]) < 5.5 * 500  # only while recording
    marks = by_name["physio-live-estimates-markers"]
    assert marks["time_series"] == [["stimulus 1"]]
    assert marks["time_stamps"][0] == pytest.approx(t_mark)
    assert len(by_name["physio-live-estimates"]["time_stamps"]) >= 4
    # the marker sits in the windows that cover it
    hits = [w for w in windows if any(m == "stimulus 1" for _, m in w.markers)]
    assert 2 <= len(hits) <= 4
    assert all(w.t_end - 2.0 < t_mark <= w.t_end for w in hits)


def test_an_array_played_to_its_end_is_not_reported_lost(data_dir):
    """Only a live stream that stops unexpectedly is marked lost; an array source that has
    delivered all its samples has ended by design."""
    import pylsl

    with pyedflib.EdfReader(str(data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf")) as f:
        fs = f.getSampleFrequency(0)
        eeg = np.stack([f.readSignal(i)[: int(3 * fs)] for i in range(4)], 1).astype(np.float32)
    info = StreamInfo("short-EEG", "EEG", "eeg", ("Fp1", "Fp2", "F3", "F4"), ("uV",) * 4, fs)
    src = ArraySource(info, eeg, realtime=True, t0=pylsl.local_clock(), chunk_seconds=0.05)
    cfg = config_from_dict(ARRAY_SESSION)
    session = Session(cfg, sources=[src])
    session.open()
    session.start()
    try:
        deadline = time.monotonic() + 15
        while info.key not in session.pipeline.finished and time.monotonic() < deadline:
            time.sleep(0.1)
        assert info.key in session.pipeline.finished
        time.sleep(3.0)  # longer than the 2-s loss threshold
    finally:
        session.close()
    assert not [e for e in session.messages() if "lost" in e]
    assert not session.lost_streams


def test_messages_are_one_append_only_log_whatever_part_reports(eegmat_sources):
    """The dashboard and the CLI remember how many messages they have shown; that count must
    stay valid when the worker reported before the pipeline does (the old status() glued the
    parts' lists together, so a new pipeline message shifted the worker's into the unseen tail
    and the new one was never shown)."""
    rng = np.random.default_rng()
    session = Session(config_from_dict(ARRAY_SESSION), sources=eegmat_sources)
    session.open()
    try:
        seen: list[str] = []
        expected: list[str] = []
        for _ in range(12):
            part = session.worker if rng.random() < 0.5 else session.pipeline
            msg = f"{'worker' if part is session.worker else 'pipeline'} says {rng.integers(1e9)}"
            part.errors.append(msg)
            expected.append(msg)
            if rng.random() < 0.5:
                st = session.status()
                assert st.errors[: len(seen)] == seen, "messages already shown moved"
                seen = st.errors
        st = session.status()
        assert st.errors[: len(seen)] == seen
        said = [m for m in st.errors if " says " in m]
        # every message once; each part's own order kept (parts that reported between two looks
        # are taken part by part, so the order across parts is not the order of reporting)
        assert sorted(said) == sorted(expected)
        for who in ("pipeline", "worker"):
            assert [m for m in said if m.startswith(who)] == [
                m for m in expected if m.startswith(who)
            ]
    finally:
        session.close()


def test_a_session_never_changes_the_config_it_was_given(eegmat_sources):
    """The model fixes the input scaling; the session runs on a derived config and leaves the
    caller's as it was (the dashboard reopens it for "Back to live")."""
    import copy

    cfg = config_from_dict(
        {**ARRAY_SESSION, "aligner": {**ARRAY_SESSION["aligner"], "eeg": {"unit_uv": 7.0}}}
    )
    before = copy.deepcopy(cfg)
    session = Session(cfg, sources=eegmat_sources)
    session.open()
    try:
        spec = session.model.config.eeg
        assert session.cfg.aligner.eeg.unit_uv == pytest.approx(1.0 / spec.scale)
        assert session.pipeline.aligner_cfg is session.cfg.aligner
    finally:
        session.close()
    assert cfg == before and cfg.aligner.eeg.unit_uv == 7.0


def test_a_running_session_keeps_the_collector_off_its_old_objects_and_gives_them_back(data_dir):
    """While a session runs, the objects made before it started are frozen (a full collection
    skips them: it took 60-110 ms with everything loaded, a stall of every thread); close()
    unfreezes them, so a closed session, cycles and all, can be collected."""
    import gc
    import weakref

    from physio_live.core import open_recording

    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(10.0, 6.0)
    from physio_live.app import _session

    assert not _session._GC_FROZEN, "a session of an earlier test was started and never closed"
    assert gc.get_freeze_count() == 0
    session = Session(config_from_dict(ARRAY_SESSION), recording=rec, speed=None)
    session.open()
    session._cycle = session  # a reference cycle: only the collector can free it
    made_before = len(gc.get_objects())
    session.start()
    try:
        assert gc.get_freeze_count() >= made_before
        assert not any(o is session for o in gc.get_objects())  # frozen: not walked
        assert session.finished.wait(60)
    finally:
        session.close()
    assert gc.get_freeze_count() == 0
    assert session.worker.stats.processed > 0
    gone = weakref.ref(session)
    del session
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("bf16", [True, False])
def test_bf16_on_a_cpu_without_native_bfloat16_is_flagged(eegmat_sources, bf16):
    """``model.bf16`` on a CPU that only emulates bfloat16 (slower than float32) says so in the
    session's messages, with the fix; float32, or a CPU with native bfloat16, says nothing."""
    from physio_live.models import cpu_bf16_native

    cfg = config_from_dict({**ARRAY_SESSION, "model": {**ARRAY_SESSION["model"], "bf16": bf16}})
    session = Session(cfg, sources=eegmat_sources)
    session.open()
    try:
        flagged = [m for m in session.messages() if "model.bf16" in m]
    finally:
        session.close()
    assert bool(flagged) == (bf16 and not cpu_bf16_native())
    assert all("model.bf16: false" in m for m in flagged)
