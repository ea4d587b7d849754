"""Faults the app must ride out: bursty delivery, a slow consumer, a full disk, a removed folder.

Everything is real: LSL outlets in another process (``tests/lsl_outlets.py``, channel 0 = sample
index, exact stamps), the tiny fused model (wrapped to sleep where a slow consumer is needed), XDF
files read back with pyxdf, and the headless app as a subprocess.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pyxdf
import yaml

from physio_live.app._session import Session
from physio_live.core import config_from_dict, open_recording

pytestmark = pytest.mark.slow

EEG = {"name": "EEG", "type": "EEG", "n_ch": 4, "srate": 250.0}
ECG = {"name": "ECG", "type": "ECG", "n_ch": 2, "srate": 256.0}


def _cfg(eeg: str, ecg: str, n_eeg: int = EEG["n_ch"], **extra) -> dict:
    cfg = {
        "sources": [
            {"kind": "lsl", "role": "eeg", "name": eeg, "channels": n_eeg, "timeout": 5},
            {"kind": "lsl", "role": "ecg", "name": ecg, "channels": ECG["n_ch"], "timeout": 5},
        ],
        # channel 0 is a ramp (the sample index): no saturation flag, no gate, so the model runs
        "aligner": {
            "window": 2.0,
            "hop": 0.5,
            "quality": {"saturation_uv": None},
            "gate": {"enabled": False},
        },
        "buffer_seconds": 30,
        "model": {"size": "tiny", "device": "cpu", "threads": 1},
        "recording": {"enabled": False},
        "outlet": {"enabled": False},
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


def _streams(outlets) -> tuple[str, str]:
    return tuple(s["name"] for s in outlets.spec["streams"])


def _load(path: Path) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    return {s["info"]["name"][0]: s for s in streams}


def _assert_contiguous(stream: dict, srate: float) -> np.ndarray:
    """Channel 0 counts samples: no sample missing or repeated, stamps one period apart."""
    idx = np.asarray(stream["time_series"])[:, 0]
    ts = np.asarray(stream["time_stamps"])
    assert len(idx) > 0
    gaps = np.flatnonzero(np.diff(idx) != 1)
    assert gaps.size == 0, f"index jumps at {idx[gaps[:5]]} -> {idx[gaps[:5] + 1]}"
    np.testing.assert_allclose(np.diff(ts), 1.0 / srate, atol=2e-3)
    return idx


def _slow(model, seconds: float) -> None:
    """The real model, made a consumer that falls behind: every batch takes ``seconds`` more."""
    predict = model.predict

    def slow_predict(*a, **kw):
        time.sleep(seconds)
        return predict(*a, **kw)

    model.predict = slow_predict


def _assert_accounted(worker) -> dict[str, int]:
    c = worker.counts()
    assert c["submitted"] == c["processed"] + c["dropped"] + c["failed"] + c["pending"], c
    return c


# -- 1. bursty delivery -------------------------------------------------------------------------
def test_bursty_outlets_lose_nothing_in_buffers_recording_or_windows(lsl_outlets, tmp_path):
    """Chunks of 1 sample .. 5 s: every sample reaches buffers and file once, windows keep coming
    on the hop grid, and any window drop is the live policy's, counted."""
    seed = int(np.random.default_rng().integers(1 << 31))
    outlets = lsl_outlets([dict(EEG, burst=5.0), dict(ECG, burst=5.0)], seed=seed)
    eeg, ecg = _streams(outlets)
    session = Session(config_from_dict(_cfg(eeg, ecg)))
    session.open()
    windows, chunks = [], {eeg: [], ecg: []}
    session.pipeline.on_window(windows.append)
    session.pipeline.on_chunk(lambda c: chunks.get(c.info.name, []).append(len(c)))
    path = session.start_recording(tmp_path / "bursts.xdf")
    session.start()
    try:
        time.sleep(16.0)
        _assert_accounted(session.worker)
    finally:
        session.close()
    pipe, worker = session.pipeline, session.worker
    # the outlets did burst (seed in the message to replay the draws)
    longest = {name: max(sizes) for name, sizes in chunks.items()}
    assert longest[eeg] > 1.0 * EEG["srate"] and longest[ecg] > 1.0 * ECG["srate"], (longest, seed)
    assert all(st.lost_in_buffer == 0 for st in pipe.stats.values()), seed
    assert session.recording_status is not None and session.recording_status.error is None
    assert session.recording_status.dropped_samples == 0
    rec = _load(path)
    for name, spec in ((eeg, EEG), (ecg, ECG)):
        idx = _assert_contiguous(rec[name], spec["srate"])
        st = next(s for s in pipe.stats.values() if s.info.name == name)
        assert len(idx) == st.samples  # the file holds exactly what came in
    # windows: every hop of the common span, none skipped, none repeated
    t_end = np.array([w.t_end for w in windows])
    assert len(windows) >= 8, (len(windows), seed)
    np.testing.assert_allclose(np.diff(t_end), 0.5, atol=1e-6)
    assert [w.index for w in windows] == list(range(windows[0].index, windows[-1].index + 1))
    # every window went to the worker and is accounted for; drops only under the live policy
    c = _assert_accounted(worker)
    assert worker.mode == "live" and c["pending"] == 0 and c["failed"] == 0
    assert c["submitted"] == pipe.windows_out == len(windows)
    assert c["max_queued"] <= worker.max_queue
    assert len(rec["physio-live-estimates"]["time_stamps"]) == c["processed"]
    print(f"bursts seed={seed} longest={longest} windows={len(windows)} counts={c}")


# -- 2. slow consumer ---------------------------------------------------------------------------
def test_slow_model_drops_counted_windows_live_and_none_in_replay(lsl_outlets, tmp_path):
    """A model slower than the hop: live drops the oldest windows (every window accounted for,
    queue bounded, nothing lost in the file); a replay of that file with the same slow model
    estimates every window."""
    outlets = lsl_outlets([dict(EEG), dict(ECG)])
    eeg, ecg = _streams(outlets)
    cfg = config_from_dict(_cfg(eeg, ecg, aligner={"hop": 0.25}, model={"queue": 2}))
    session = Session(cfg)
    session.open()
    _slow(session.worker.model, 0.4)
    path = session.start_recording(tmp_path / "slow.xdf")
    session.start()
    try:
        for _ in range(8):
            time.sleep(1.0)
            _assert_accounted(session.worker)  # holds at any moment, not only at the end
    finally:
        session.close()
    pipe, worker = session.pipeline, session.worker
    live = _assert_accounted(worker)
    assert live["pending"] == 0 and live["failed"] == 0
    assert live["submitted"] == pipe.windows_out
    assert live["dropped"] > 0 and live["processed"] < live["submitted"], live
    assert live["max_queued"] <= 2
    assert session.status().dropped == live["dropped"]
    rec = _load(path)
    for name, spec in ((eeg, EEG), (ecg, ECG)):
        _assert_contiguous(rec[name], spec["srate"])
    assert all(st.lost_in_buffer == 0 for st in pipe.stats.values())
    assert len(rec["physio-live-estimates"]["time_stamps"]) == live["processed"]

    replay = Session(cfg, recording=open_recording(path, cfg.replay.roles), speed=None)
    replay.open()
    _slow(replay.worker.model, 0.4)
    replay.start()
    try:
        assert replay.finished.wait(120), "replay did not finish"
    finally:
        replay.close()
    again = _assert_accounted(replay.worker)
    assert replay.worker.mode == "replay"
    assert again["dropped"] == 0 and again["failed"] == 0 and again["pending"] == 0
    assert again["processed"] == again["submitted"] == replay.pipeline.windows_out
    assert again["processed"] >= live["submitted"] - 2  # the file gives the same windows again
    assert len(replay.estimates) == again["processed"]
    print(f"slow consumer: live={live} replay={again}")


def test_worker_accounts_for_failed_batches_and_failing_sinks():
    """A batch whose inference raises is counted ``failed``; a sink that raises costs no window."""
    from physio_live.app._worker import InferenceWorker
    from physio_live.core import ChannelQuality, Quality, Window
    from physio_live.models import (
        CBraModConfig,
        FusedEmotionConfig,
        FusedEmotionModel,
        ModalityConfig,
    )

    enc = CBraModConfig(depth=1, out_dim=None)
    model = FusedEmotionModel(
        FusedEmotionConfig(
            eeg=ModalityConfig(name="eeg", channels=("a", "b", "c"), n_patches=2, encoder=enc),
            ecg=ModalityConfig(name="ecg", channels=("x",), n_patches=2, encoder=enc),
        )
    )
    rng = np.random.default_rng()
    q = Quality({"eeg": ChannelQuality()})

    def window(i: int, n_eeg: int = 3) -> Window:
        eeg = rng.normal(size=(n_eeg, 400)).astype(np.float32)
        ecg = rng.normal(size=(1, 400)).astype(np.float32)
        return Window(t_end=10.0 + i, rate=200.0, eeg=eeg, ecg=ecg, quality=q, index=i)

    got = []
    worker = InferenceWorker(model, device="cpu", mode="replay", max_batch=1, clock=lambda: 0.0)

    def broken_sink(est) -> None:
        raise RuntimeError("sink is broken")

    worker.on_estimate(broken_sink)
    worker.on_estimate(got.append)
    worker.start()
    for i in range(5):
        worker.submit(window(i, n_eeg=5 if i == 2 else 3))  # window 2 does not fit the model
    worker.stop(drain=True)
    c = _assert_accounted(worker)
    assert c == {"submitted": 5, "processed": 4, "dropped": 0, "failed": 1, "pending": 0,
                 "max_queued": c["max_queued"]}  # fmt: skip
    assert [e.window_index for e in got] == [0, 1, 3, 4]  # the healthy sink got every estimate
    assert any("sink is broken" in m for m in worker.errors)
    assert any("inference failed on 1 window" in m for m in worker.errors)


# -- 3. the headless app: full disk, removed folder, SIGTERM ------------------------------------
def _app_config(tmp_path: Path, eeg: str, ecg: str, n_eeg: int = EEG["n_ch"]) -> Path:
    cfg = _cfg(eeg, ecg, n_eeg, recording={"enabled": True, "filename": "run.xdf"})
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _app(config: Path, folder: Path, *args: str, preexec_fn=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "physio_live.app.cli", "--stream", "--config", str(config),
         "--record-dir", str(folder), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        preexec_fn=preexec_fn,
    )  # fmt: skip


def _wait_status(p: subprocess.Popen, lines: list[str], timeout: float = 60.0) -> None:
    """Read stdout until the first status line (acquisition running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("["):
            return
    raise AssertionError(f"the app never ran: {lines} {p.stderr.read() if p.poll() else ''}")


FSIZE = 150_000  # bytes: a few seconds of these streams


def _small_file_limit() -> None:
    """In the app's process: files may not grow past FSIZE; writes then fail with EFBIG."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_app_full_disk_stops_recording_once_and_keeps_running(lsl_outlets, tmp_path):
    outlets = lsl_outlets([dict(EEG, n_ch=8, srate=500.0), dict(ECG)])
    eeg, ecg = _streams(outlets)
    folder = tmp_path / "rec"
    p = _app(_app_config(tmp_path, eeg, ecg, 8), folder, "--duration", "12",
             preexec_fn=_small_file_limit)  # fmt: skip
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "Traceback" not in err
    warnings = [ln for ln in err.splitlines() if "disk full or file size limit reached" in ln]
    assert len(warnings) == 1, err  # said once, not every second
    assert "recording stopped, acquisition and estimates continue" in warnings[0]
    assert "stays readable" in warnings[0] and "free disk space" in warnings[0]
    status = [ln for ln in out.splitlines() if ln.startswith("[")]
    assert len(status) >= 10, out  # ran to the end of its duration
    assert all("est/s=0.0" not in ln for ln in status[-4:]), status  # estimates kept flowing
    summary = out.splitlines()[-1]
    assert summary.startswith("summary:") and " 0 lost" in summary
    (xdf,) = folder.glob("*.xdf")
    assert 0.5 * FSIZE < xdf.stat().st_size <= FSIZE
    rec = _load(xdf)  # whole chunks only: pyxdf reads it without complaint
    idx = _assert_contiguous(rec[eeg], 500.0)
    _assert_contiguous(rec[ecg], ECG["srate"])
    assert len(idx) > 500  # more than a second was kept
    n_est = int(summary.split(" estimates,")[0].rsplit(" ", 1)[1])
    assert n_est > len(rec["physio-live-estimates"]["time_stamps"]) + 5  # went on after the stop
    print(f"full disk: {xdf.stat().st_size} bytes kept, {len(idx)} EEG samples; {warnings[0]}")


def test_app_folder_removed_is_restored_and_sigterm_loses_under_a_second(lsl_outlets, tmp_path):
    """rm -rf of the recording folder mid-run: the app recreates it and restores the file from
    its still-open descriptor, so the file at the same path holds every sample across the
    removal; SIGTERM afterwards closes it with footers, missing at most the last second."""
    import pylsl

    outlets = lsl_outlets([dict(EEG), dict(ECG)])
    eeg, ecg = _streams(outlets)
    folder = tmp_path / "rec"
    p = _app(_app_config(tmp_path, eeg, ecg), folder)
    lines: list[str] = []
    try:
        _wait_status(p, lines)
        time.sleep(2.5)
        (xdf,) = folder.glob("*.xdf")
        shutil.rmtree(folder)
        t_removed = pylsl.local_clock()
        time.sleep(3.0)
        t_term = pylsl.local_clock()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "summary:" in out and " 0 lost" in out
    notes = [ln for ln in err.splitlines() if "removed while recording" in ln]
    assert len(notes) == 1, err
    assert "nothing lost; recording continues" in notes[0] and str(xdf) in notes[0]
    assert "Traceback" not in err and "recording stopped" not in err
    assert xdf.exists() and len(list(folder.glob("*.xdf"))) == 1
    rec = _load(xdf)
    for name, spec in ((eeg, EEG), (ecg, ECG)):
        ts = np.asarray(rec[name]["time_stamps"])
        _assert_contiguous(rec[name], spec["srate"])
        assert ts[0] < t_removed - 2.0 and ts[-1] > t_removed + 2.0  # spans the removal
        assert ts[-1] >= t_term - 1.0, f"{name}: last sample {t_term - ts[-1]:.2f} s before TERM"
        assert int(rec[name]["footer"]["info"]["sample_count"][0]) == len(ts)
    print(f"folder removed: {notes[0]}")
