"""XDF recording: what the writer puts on disk, pyxdf (the reader of record) reads back exactly."""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
import pyxdf

from physio_live.core import Chunk, StreamInfo
from physio_live.core._recorder import Recorder
from physio_live.core._xdf import BOUNDARY_UUID, RecordingError, XDFWriter

TESTS = Path(__file__).resolve().parents[1]


def _load_exact(path: Path) -> tuple[dict[str, dict], dict]:
    streams, header = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    return {s["info"]["name"][0]: s for s in streams}, header


def _tags(path: Path) -> list[int]:
    """Chunk tags of a file, parsed independently of the writer (length varint, tag)."""
    raw = path.read_bytes()
    assert raw[:4] == b"XDF:"
    pos, tags = 4, []
    widths = {1: "<B", 4: "<I", 8: "<Q"}
    while pos < len(raw):
        width = raw[pos]
        (length,) = struct.unpack_from(widths[width], raw, pos + 1)
        pos += 1 + width
        (tag,) = struct.unpack_from("<H", raw, pos)
        if tag == 5:
            assert raw[pos + 2 : pos + 18] == BOUNDARY_UUID
        tags.append(tag)
        pos += length
    assert pos == len(raw)
    return tags


def _info(name, n, rate, fmt="float32", stype="EEG", role="eeg", unit="microvolts", **kw):
    return StreamInfo(
        name=name,
        type=stype,
        role=role,
        channel_labels=tuple(f"{name}-{i}" for i in range(n)),
        channel_units=(unit,) * n,
        nominal_srate=rate,
        source_id=f"{name}-sid",
        channel_format=fmt,
        **kw,
    )


def _regular(rng, n, rate, n_ch, dtype):
    ts = 5000.0 + rng.uniform(0, 100) + (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / rate
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, (n, n_ch), endpoint=True, dtype=dtype)
    else:
        data = (rng.standard_normal((n, n_ch)) * 100).astype(dtype)
    return data, ts


def _chunks(rng, info, data, ts):
    """Split into Chunks of random size (some of one sample)."""
    out, i = [], 0
    while i < len(ts):
        m = int(rng.choice([1, int(rng.integers(1, 64)), int(rng.integers(64, 400))]))
        out.append(Chunk(info, data[i : i + m], ts[i : i + m]))
        i += m
    return out


@pytest.fixture
def rng():
    return np.random.default_rng()


def test_every_sample_and_timestamp_round_trips(tmp_path, rng):
    """Several streams from several threads; pyxdf reads back every value and stamp exactly."""
    specs = {
        "eeg128": (_info("eeg128", 14, 128.0), np.float32, 1500),
        "ecg256": (_info("ecg256", 2, 256.0, stype="ECG", role="ecg", unit="mV"), np.float32, 2600),
        "eeg500": (_info("eeg500", 32, 500.0), np.float32, 4000),
        "dbl": (_info("dbl", 3, 100.0, fmt="double64", stype="misc", role="misc"), np.float64, 900),
        "i16": (_info("i16", 4, 250.0, fmt="int16", stype="misc", role="misc"), np.int16, 1100),
    }
    expected = {}
    for name, (info, dtype, n) in specs.items():
        expected[name] = (info, *_regular(rng, n, info.nominal_srate, info.n_channels, dtype))
    # irregular float stream (like the estimates): one channel per target
    est = _info("Emotion", 3, 0.0, stype="Emotion", role="misc", unit="probability")
    n_est = 57
    est_ts = np.sort(5000.0 + rng.uniform(0, 30, n_est))
    expected["Emotion"] = (est, rng.uniform(0, 1, (n_est, 3)).astype(np.float32), est_ts)
    # string markers with unicode, XML-special characters, empty strings
    mk = _info("Markers", 1, 0.0, fmt="string", stype="Markers", role="markers", unit="")
    words = ["start", "stimulus/😀", "Ünïcødé ✓", "a&b<c>\"d'", "", "漢字 — end"]
    marks = np.array([[words[int(i)]] for i in rng.integers(0, len(words), 40)], dtype=object)
    expected["Markers"] = (mk, marks, np.sort(5000.0 + rng.uniform(0, 30, 40)))
    empty = _info("empty", 2, 64.0)

    rec = Recorder(
        tmp_path / "session.xdf",
        flush_interval=0.05,
        clock_offset_interval=0.1,
        boundary_interval=0.15,
    )
    path = rec.start()
    rec.add_stream(empty)

    def feed(name):
        info, data, ts = expected[name]
        for c in _chunks(np.random.default_rng(rng.integers(1 << 32)), info, data, ts):
            rec.write(c)
            time.sleep(0.0005)

    threads = [threading.Thread(target=feed, args=(name,)) for name in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.3)  # let a few ClockOffset and Boundary chunks go out
    status = rec.close()
    assert status.error is None and not status.stream_errors and status.dropped_samples == 0
    assert status.bytes_written == path.stat().st_size
    assert status.sample_counts[empty.key] == 0
    for info, data, _ in expected.values():
        assert status.sample_counts[info.key] == len(data)

    streams, header = _load_exact(path)
    assert header["info"]["version"] == ["1.0"]
    assert header["info"]["datetime"][0]
    assert set(streams) == {*expected, "empty"}
    for name, (info, data, ts) in expected.items():
        s = streams[name]
        np.testing.assert_array_equal(s["time_stamps"], ts, err_msg=name)
        if info.channel_format == "string":
            assert s["time_series"] == data.tolist()
        else:
            assert s["time_series"].dtype == data.dtype, name
            np.testing.assert_array_equal(s["time_series"], data, err_msg=name)
        footer = s["footer"]["info"]
        assert float(footer["first_timestamp"][0]) == ts[0]
        assert float(footer["last_timestamp"][0]) == ts[-1]
        assert int(footer["sample_count"][0]) == len(ts)
        offsets = footer["clock_offsets"][0]["offset"]
        assert len(offsets) == len(s["clock_times"]) >= 2
        assert all(float(o["value"][0]) == 0.0 for o in offsets)
        assert np.all(np.asarray(s["clock_values"]) == 0.0)
    e = streams["empty"]
    assert e["time_series"].shape == (0, 2) and len(e["time_stamps"]) == 0
    assert e["footer"]["info"]["sample_count"] == ["0"]

    tags = _tags(path)
    assert tags[0] == 1 and tags.count(2) == len(expected) + 1 == tags.count(6)
    assert tags.count(4) >= 2 * (len(expected) + 1) and tags.count(5) >= 1
    assert tags[-len(expected) - 1 :] == [6] * (len(expected) + 1)  # footers last

    # the default load (clock sync with the recorded offsets + dejitter) works too
    streams_d, _ = pyxdf.load_xdf(str(path))
    by_name = {s["info"]["name"][0]: s for s in streams_d}
    np.testing.assert_array_equal(by_name["Emotion"]["time_stamps"], est_ts)  # irregular: as is
    np.testing.assert_allclose(by_name["eeg500"]["time_stamps"], expected["eeg500"][2], atol=2e-3)


def test_header_xml_carries_the_stream_description(tmp_path):
    info = StreamInfo(
        name="g.USBamp ü",
        type="EEG",
        role="eeg",
        channel_labels=("Fz", "Cz", "ECG+"),
        channel_units=("microvolts", "microvolts", "millivolts"),
        nominal_srate=256.0,
        source_id="amp-123",
        channel_types=("EEG", "EEG", "ECG"),
    )
    with XDFWriter(tmp_path / "h.xdf", clock=lambda: 1234.5) as w:
        sid = w.add_stream(info, desc={"model_id": "cbramod-fused@abc", "manufacturer": "g.tec"})
        w.write_samples(sid, np.zeros((3, 3), np.float32), np.arange(3.0))
        no_types = _info("plain", 2, 0.0, stype="Misc", role="misc")
        w.add_stream(no_types)
    streams, _ = _load_exact(w.path)
    h = streams["g.USBamp ü"]["info"]
    assert (
        h["type"] == ["EEG"] and h["channel_count"] == ["3"] and h["channel_format"] == ["float32"]
    )
    assert float(h["nominal_srate"][0]) == 256.0 and h["source_id"] == ["amp-123"]
    assert float(h["created_at"][0]) == 1234.5 and len(h["uid"][0]) == 36 and h["hostname"][0]
    desc = h["desc"][0]
    chans = desc["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == list(info.channel_labels)
    assert [c["unit"][0] for c in chans] == list(info.channel_units)
    assert [c["type"][0] for c in chans] == ["EEG", "EEG", "ECG"]
    assert desc["model_id"] == ["cbramod-fused@abc"] and desc["manufacturer"] == ["g.tec"]
    plain = streams["plain"]["info"]["desc"][0]["channels"][0]["channel"]
    assert [c["type"][0] for c in plain] == ["Misc", "Misc"]  # the stream type when none given
    assert float(streams["plain"]["info"]["nominal_srate"][0]) == 0.0


def _load_child():
    spec = importlib.util.spec_from_file_location("xdf_writer_child", TESTS / "xdf_writer_child.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_loses_at_most_the_last_second(tmp_path):
    child = _load_child()
    seed = int(np.random.default_rng().integers(1 << 31))
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "xdf_writer_child.py"), str(tmp_path / "k.xdf"), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("READY"), (line, proc.stderr.read() if proc.stderr else "")
        _, path, t0 = line.split()
        time.sleep(3.0)
        t_kill = pylsl.local_clock()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    expected = child.expected(seed, float(t0))
    for load in (_load_exact, lambda p: (pyxdf.load_xdf(str(p))[0], None)):
        streams, _ = load(Path(path))
        assert len(streams) == 2
    streams, _ = _load_exact(Path(path))
    eeg, eeg_ts = expected["EEG"]
    got = streams["EEG"]
    n = len(got["time_stamps"])
    assert "footer" not in got  # the process never closed the file
    np.testing.assert_array_equal(got["time_series"], eeg[:n])  # every present sample exact
    np.testing.assert_array_equal(got["time_stamps"], eeg_ts[:n])
    handed = int(np.searchsorted(eeg_ts, t_kill, side="right"))
    assert handed > 2 * child.EEG_RATE
    assert eeg_ts[n - 1] >= t_kill - 1.0, f"lost {t_kill - eeg_ts[n - 1]:.2f} s"
    marks, mark_ts = expected["Markers"]
    gm = streams["Markers"]
    k = len(gm["time_stamps"])
    assert k >= 8 and gm["time_series"] == marks[:k].tolist()
    np.testing.assert_array_equal(gm["time_stamps"], mark_ts[:k])


def test_never_overwrites_an_existing_file(tmp_path):
    target = tmp_path / "session.xdf"
    target.write_bytes(b"precious")
    (tmp_path / "session_1.xdf").write_bytes(b"also precious")
    paths = []
    for _ in range(2):
        rec = Recorder(target)
        paths.append(rec.start())
        rec.write(Chunk(_info("x", 1, 10.0), np.ones((2, 1), np.float32), np.arange(2.0)))
        rec.close()
    assert paths == [tmp_path / "session_2.xdf", tmp_path / "session_3.xdf"]
    assert target.read_bytes() == b"precious"
    assert (tmp_path / "session_1.xdf").read_bytes() == b"also precious"
    for p in paths:
        assert _load_exact(p)[0]["x"]["footer"]["info"]["sample_count"] == ["2"]


def test_unwritable_folder_refuses_to_start_with_a_clear_message(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    rec = Recorder(blocker / "sub" / "session.xdf")
    with pytest.raises(
        RecordingError, match=r"cannot create the recording folder.*choose a folder"
    ):
        rec.start()
    assert rec.status().error is None and not rec.status().recording
    # write before a successful start: noted, never raised
    rec.write(Chunk(_info("x", 1, 10.0), np.ones((1, 1), np.float32), np.zeros(1)))
    assert rec.status().stream_errors and rec.close().dropped_samples == 1


def test_read_only_folder_refuses_to_start(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if not hasattr(os, "geteuid") or os.geteuid() == 0:  # root writes anywhere: simulate EACCES
        real_open = os.open

        def denied(path, *args, **kwargs):
            if Path(path).parent == ro:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", denied)
    try:
        with pytest.raises(RecordingError, match=r"Permission denied.*must be writable"):
            XDFWriter(ro / "s.xdf").open()
    finally:
        monkeypatch.undo()
        ro.chmod(0o700)
    assert list(ro.iterdir()) == []


def test_folder_removed_mid_recording_is_restored_from_the_open_file(tmp_path, rng):
    """rm -rf of the folder: recreated, the bytes copied back from the open file, nothing lost."""
    folder = tmp_path / "rec"
    errors = []
    rec = Recorder(folder / "s.xdf", flush_interval=0.05, on_error=errors.append)
    rec.start()
    info = _info("eeg", 4, 250.0)
    data, ts = _regular(rng, 3000, 250.0, 4, np.float32)
    chunks = list(_chunks(rng, info, data, ts))
    raised = []

    def acquire():
        try:
            for i, c in enumerate(chunks):
                rec.write(c)
                time.sleep(0.002)
                if i == len(chunks) // 3:
                    time.sleep(0.2)  # some flushes to the file, then it goes
                    shutil.rmtree(folder)
                    time.sleep(0.2)  # the flusher notices and restores
        except BaseException as exc:  # the test fails if anything gets here
            raised.append(exc)

    t = threading.Thread(target=acquire)
    t.start()
    t.join(30.0)
    assert not t.is_alive()
    status = rec.close()
    assert not raised and not errors
    assert status.error is None and status.dropped_samples == 0
    assert len(status.notices) == 1 and "removed while recording" in status.notices[0]
    assert "nothing lost" in status.notices[0]
    assert status.path == folder / "s.xdf" and status.path.stat().st_size == status.bytes_written
    streams, _ = _load_exact(status.path)
    got = streams["eeg"]
    np.testing.assert_array_equal(got["time_series"], data)
    np.testing.assert_array_equal(got["time_stamps"], ts)
    assert int(got["footer"]["info"]["sample_count"][0]) == len(ts)


def test_write_failure_keeps_what_was_written_readable(tmp_path, rng):
    """A full disk mid-session: error kept, writer stops, the file so far loads exactly."""
    w = XDFWriter(tmp_path / "full.xdf", flush_interval=0.05)
    w.open()
    info = _info("eeg", 8, 500.0)
    sid = w.add_stream(info)
    data, ts = _regular(rng, 5000, 500.0, 8, np.float32)
    budget = [w.bytes_written + 60_000]

    def nearly_full_disk(fd, buf):
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(len(buf), budget[0])
        budget[0] -= n
        return os.write(fd, buf[:n])

    w._os_write = nearly_full_disk
    for c in _chunks(rng, info, data, ts):
        w.write_samples(sid, c.data, c.timestamps)
        if len(ts) and c.timestamps[-1] > ts[2000]:
            time.sleep(0.01)
    deadline = time.monotonic() + 2.0
    while w.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    w.close()
    assert w.error is not None and "No space left" in str(w.error)
    assert w.path.stat().st_size == w.bytes_written
    streams, _ = _load_exact(w.path)
    got = streams["eeg"]
    n = len(got["time_stamps"])
    assert 0 < n < len(ts)
    np.testing.assert_array_equal(got["time_series"], data[:n])
    np.testing.assert_array_equal(got["time_stamps"], ts[:n])


def test_recorder_notes_bad_chunks_and_keeps_recording(tmp_path):
    rec = Recorder(tmp_path / "s.xdf")
    rec.start()
    good = _info("eeg", 2, 100.0)
    rec.write(Chunk(good, np.ones((3, 2), np.float32), np.arange(3.0)))
    changed = _info("eeg", 3, 100.0)  # same key, now 3 channels
    rec.write(Chunk(changed, np.ones((2, 3), np.float32), np.arange(2.0)))
    bad_fmt = _info("weird", 1, 10.0, fmt="complex64")
    rec.write(Chunk(bad_fmt, np.ones((1, 1), np.float32), np.zeros(1)))
    rec.write(Chunk(good, np.ones((1, 2), np.float32), np.array([3.0])))
    status = rec.close()
    assert status.error is None and len(status.stream_errors) == 2
    assert "channels or format changed" in status.stream_errors[0]
    assert "cannot be written to XDF" in status.stream_errors[1]
    assert status.sample_counts == {good.key: 4} and status.dropped_samples == 3
    assert rec.close().sample_counts == {good.key: 4}  # closing twice is harmless
    np.testing.assert_array_equal(_load_exact(status.path)[0]["eeg"]["time_stamps"], np.arange(4.0))


def test_real_recording_round_trips(tmp_path, data_dir):
    """EEG (16 ch float32 @ 256 Hz) + string markers of a real LabRecorder file, as Chunks."""
    src = data_dir / "xdf_bci_essentials_switch" / "switch_example.xdf"
    orig, _ = pyxdf.load_xdf(str(src), synchronize_clocks=False, dejitter_timestamps=False)
    rng = np.random.default_rng()
    rec = Recorder(tmp_path / "copy.xdf")
    rec.start()
    kept = {}
    for s in orig:
        h = s["info"]
        n_ch = int(h["channel_count"][0])
        chans = (
            (h["desc"][0] or {}).get("channels", [{}])[0].get("channel", []) if h["desc"] else []
        )
        labels = tuple(c["label"][0] for c in chans) or tuple(f"ch{i}" for i in range(n_ch))
        units = tuple((c.get("unit") or [""])[0] for c in chans) or ("",) * n_ch
        fmt = h["channel_format"][0]
        info = StreamInfo(
            name=h["name"][0],
            type=h["type"][0],
            role="markers" if fmt == "string" else "eeg",
            channel_labels=labels,
            channel_units=units,
            nominal_srate=float(h["nominal_srate"][0]),
            source_id=h["source_id"][0] or "",
            channel_format=fmt,
        )
        data = (
            np.array(s["time_series"], dtype=object)
            if fmt == "string"
            else np.asarray(s["time_series"])
        )
        kept[info.name] = (data, s["time_stamps"])
        for c in _chunks(rng, info, data, s["time_stamps"]):
            rec.write(c)
    status = rec.close()
    assert status.error is None and not status.stream_errors
    streams, _ = _load_exact(status.path)
    assert set(streams) == set(kept) and any(d.dtype == object for d, _ in kept.values())
    for name, (data, ts) in kept.items():
        np.testing.assert_array_equal(streams[name]["time_stamps"], ts)
        if data.dtype == object:
            assert streams[name]["time_series"] == data.tolist()
        else:
            np.testing.assert_array_equal(streams[name]["time_series"], data)
