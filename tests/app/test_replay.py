"""``physio-live --replay``: every input kind, determinism against a live session, alignment of
events across native rates in the exported windows, and clear errors for bad input."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pyxdf

from physio_live.core import ConfigError, StreamInfo, config_from_dict, open_recording
from physio_live.core._xdf import XDFWriter

pytestmark = pytest.mark.slow
TINY = ["--config", "demo_synthetic", "--set", "model.size=tiny"]  # untrained, any montage


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "physio_live.app.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_replay_of_a_live_session_gives_exactly_the_live_estimates(tmp_path):
    live = _cli("--stream", "--duration", "10", "--record-dir", str(tmp_path), *TINY)
    assert live.returncode == 0, live.stderr
    (xdf,) = tmp_path.glob("*.xdf")
    r = _cli("--stream", "--replay", str(xdf), "--speed", "max", "--out", str(tmp_path), *TINY)
    assert r.returncode == 0, r.stderr
    rows = _rows(tmp_path / f"{xdf.stem}.estimates.csv")
    streams, _ = pyxdf.load_xdf(str(xdf))
    (emo,) = [s for s in streams if s["info"]["type"][0] == "Emotion"]
    live_t = np.asarray(emo["time_stamps"])
    live_p = np.asarray(emo["time_series"], np.float32)
    assert len(live_t) >= 8
    by_t = {float(row["t_end"]): row for row in rows}
    for t, p in zip(live_t, live_p, strict=True):
        row = by_t[float(t)]  # the same window end, to the bit
        got = np.array([float(row[k]) for k in ("valence", "arousal", "dominance")], np.float32)
        np.testing.assert_array_equal(got, p)
    assert rows[0]["model_id"] == emo["info"]["desc"][0]["model_id"][0]


def _planted_recording(path: Path, rng) -> list[float]:
    """EEG 4 ch @ 256 Hz and ECG 2 ch @ 500 Hz with impulses at common times (channel 1)."""
    t0 = float(rng.uniform(100, 200))
    events = list(t0 + 3.0 + np.cumsum(rng.uniform(1.1, 1.9, 8)))
    w = XDFWriter(path, clock=lambda: t0)
    w.open()
    for name, rate, n_ch, unit in (("EEG", 256.0, 4, "uV"), ("ECG", 500.0, 2, "mV")):
        info = StreamInfo(
            f"planted-{name}", name, name.lower(), tuple(f"{name}{i}" for i in range(n_ch)),
            (unit,) * n_ch, rate, f"planted-{name}",
        )  # fmt: skip
        sid = w.add_stream(info)
        n = int(20 * rate)
        ts = t0 + np.arange(n) / rate
        x = rng.normal(0, 5.0 if unit == "uV" else 0.005, (n, n_ch)).astype(np.float32)
        amp = 2000.0 if unit == "uV" else 2.0
        for te in events:
            x[round((te - t0) * rate), 1] = amp
        for a in range(0, n, 97):
            w.write_samples(sid, x[a : a + 97], ts[a : a + 97])
    w.close()
    return events


def test_events_at_different_native_rates_land_on_the_same_window_sample(tmp_path):
    rng = np.random.default_rng()
    xdf = tmp_path / "planted.xdf"
    events = _planted_recording(xdf, rng)
    out = tmp_path / "windows.npz"
    r = _cli("--stream", "--replay", str(xdf), "--speed", "max", "--export-windows", str(out),
             "--out", str(tmp_path), "--set", "aligner.eeg.bandpass=[0.5,40]",
             "--set", "aligner.ecg.bandpass=[0.5,40]", *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    z = np.load(out)  # no pickle needed
    assert z["eeg"].shape[1:] == (4, 800) and z["ecg"].shape[1:] == (2, 800)
    assert list(z["eeg_channels"]) == ["EEG0", "EEG1", "EEG2", "EEG3"]
    assert float(z["rate"]) == 200.0 and "bandpass" in str(z["preprocessing"])
    checked = 0
    for i, t_end in enumerate(z["t_end"]):
        times = t_end - np.arange(800)[::-1] / 200.0
        for te in events:
            if not times[0] + 0.5 < te < times[-1] - 0.5:
                continue
            sl = slice(*np.searchsorted(times, [te - 0.2, te + 0.2]))
            pe = sl.start + int(np.argmax(np.abs(z["eeg"][i, 1, sl])))
            pc = sl.start + int(np.argmax(np.abs(z["ecg"][i, 1, sl])))
            assert abs(pe - pc) <= 1, (te, pe, pc)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("rel", "extra", "expect"),
    [
        ("xdf_bci_essentials_switch/switch_example.xdf", ["--duration", "20"], "ecg_missing"),
        ("eeg_ecg_eegmat/Subject00_1.edf", ["--duration", "20"], "both"),
        ("wfdb_mitdb_100/100.hea", ["--duration", "20"], "eeg_missing"),
        ("wfdb_mimicdb_041s_multiseg/041s.hea", [], "eeg_missing"),
        ("wfdb_challenge2015_v102s/v102s.hea", ["--duration", "20"], "eeg_missing"),
    ],
)
def test_inputs_replay_headless(data_dir, tmp_path, rel, extra, expect):
    r = _cli("--stream", "--replay", str(data_dir / rel), "--speed", "max", "--out",
             str(tmp_path), *extra, *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (csv_path,) = tmp_path.glob("*.estimates.csv")
    rows = _rows(csv_path)
    assert len(rows) >= 10
    if expect == "both":
        assert all(row["eeg_missing"] == "0" and row["ecg_missing"] == "0" for row in rows)
    else:
        assert all(row[expect] == "1" for row in rows)
    assert "summary: replayed" in r.stdout


def test_switch_markers_are_exported(data_dir, tmp_path):
    out = tmp_path / "w.npz"
    src = str(data_dir / "xdf_bci_essentials_switch/switch_example.xdf")
    r = _cli("--stream", "--replay", src, "--speed", "max", "--export-windows", str(out),
             "--out", str(tmp_path), *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    assert "ecg" not in z and z["eeg"].shape[1] == 16
    assert len(z["marker_value"]) > 0
    rec = open_recording(data_dir / "xdf_bci_essentials_switch/switch_example.xdf")
    mk = next(s for s in rec.streams if s.info.name == "UnityMarkerStream")
    marker_times = set(np.round(mk.timestamps, 6))
    assert any(round(float(t), 6) in marker_times for t in z["marker_time"])
    # each exported marker lies inside the window it is attached to
    ends = z["t_end"][z["marker_window"]]
    assert np.all((z["marker_time"] <= ends) & (z["marker_time"] > ends - 4.0))


def test_truncated_xdf_replays_what_can_be_read(data_dir, tmp_path):
    src = data_dir / "xdf_bci_essentials_switch/switch_example.xdf"
    cut = tmp_path / "cut.xdf"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    r = _cli("--stream", "--replay", str(cut), "--speed", "max", "--out", str(tmp_path),
             "--duration", "15", *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "damaged" in r.stderr and "replaying what could be read" in r.stderr
    assert len(_rows(tmp_path / "cut.estimates.csv")) >= 10


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda d, t: t / "none.xdf", "no such file"),
        (lambda d, t: _write(t / "garbage.xdf", b"hello world" * 50), "not an XDF file"),
        (lambda d, t: _write(t / "notes.txt", b"just text"), "unsupported format '.txt'"),
        (lambda d, t: d / "xdf_example_files/empty_streams.xdf", "no EEG or ECG stream found"),
        (lambda d, t: _write(t / "bad.edf", b"0" * 300), "unreadable EDF/BDF"),
        (lambda d, t: _copy_hea_only(d, t), "unreadable WFDB record"),
    ],
)
def test_bad_inputs_give_one_line(data_dir, tmp_path, make, pattern):
    path = make(data_dir, tmp_path)
    r = _cli("--stream", "--replay", str(path), "--speed", "max", "--out", str(tmp_path), *TINY)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert pattern in r.stderr and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("physio-live: error")]) == 1


def test_bad_speed_and_roles_are_config_errors(data_dir, tmp_path):
    edf = str(data_dir / "eeg_ecg_eegmat/Subject00_1.edf")
    r = _cli("--stream", "--replay", edf, "--speed", "fast")
    assert r.returncode == 1 and "--speed 'fast'" in r.stderr
    r = _cli("--stream", "--replay", edf, "--set", "replay.roles={'ECG ECG': heart}")
    assert r.returncode == 1 and "each role must be one of" in r.stderr


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _copy_hea_only(data_dir: Path, tmp: Path) -> Path:
    shutil.copy(data_dir / "wfdb_mitdb_100/100.hea", tmp / "100.hea")
    return tmp / "100.hea"  # the .dat is missing


def _paced_session(data_dir, seconds: float, speed: float | None):
    from physio_live.app._session import Session

    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(10.0, seconds)
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "model": {"size": "tiny", "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
            "aligner": {"window": 2.0},
        }
    )
    return rec, Session(cfg, recording=rec, speed=speed)


def _open_and_watch(session) -> list[tuple[float, float]]:
    """Open ``session``; the list it returns fills with ``(wall time, last recorded timestamp)``
    of every chunk fed to its pipeline."""
    session.open()
    fed: list[tuple[float, float]] = []
    session.pipeline.on_chunk(lambda c: fed.append((time.monotonic(), float(c.timestamps[-1]))))
    return fed


def test_speed_paces_by_deadline(data_dir):
    """At --speed 2, no chunk is fed before its deadline (recorded time / 2 after the start)."""
    rec, session = _paced_session(data_dir, 4.0, 2.0)
    fed = _open_and_watch(session)
    wall0 = time.monotonic()
    session.start()
    assert session.finished.wait(60)
    session.close()
    t_rec0 = rec.t_first
    lateness = [w - (wall0 + (t - t_rec0) / 2.0) for w, t in fed]
    assert min(lateness) > -0.01  # never early
    assert len(fed) > 50


def test_set_speed_repaces_a_running_replay_from_where_it_is(data_dir):
    """A replay at 1x switched to 8x after ~1 s: no chunk before its deadline on either
    schedule, the rest of the 6 s recording follows at 8x (not all at once), and the replay
    ends long before 6 s."""
    rec, session = _paced_session(data_dir, 6.0, 1.0)
    fed = _open_and_watch(session)
    t0 = time.monotonic()
    session.start()
    time.sleep(1.0)
    switch = time.monotonic()
    session.set_speed(8.0)
    wall_a, t_a, speed = session._pace
    assert speed == 8.0 and session.speed == 8.0
    assert abs(t_a - (rec.t_first + (wall_a - t0))) < 0.3  # re-anchored where 1x had got to
    assert session.finished.wait(30)
    took = time.monotonic() - t0
    session.close()
    before = [(w, t) for w, t in fed if w < switch]
    after = [(w, t) for w, t in fed if w >= switch]
    assert len(before) > 5 and len(after) > 20
    old_sched = min(w - (t0 + (t - rec.t_first)) for w, t in before)
    new_sched = [w - (wall_a + (t - t_a) / 8.0) for w, t in after]
    assert old_sched > -0.01 and min(new_sched) > -0.01  # never early
    # paced, not dumped: the last chunk came ~(6 - 1) / 8 s after the switch, on time
    assert after[-1][0] - switch > 0.35 and new_sched[-1] < 0.3
    assert took < 3.5, took  # at 1x throughout it would take 6 s


def test_set_speed_refuses_what_it_cannot_change(data_dir):
    from physio_live.app._session import Session

    _, unpaced = _paced_session(data_dir, 3.0, None)
    with pytest.raises(ConfigError, match="--speed max"):
        unpaced.set_speed(2.0)
    live = Session(unpaced.cfg)
    with pytest.raises(ConfigError, match="live session"):
        live.set_speed(2.0)
    _, paced = _paced_session(data_dir, 3.0, 2.0)
    for bad in (0, -1.0, float("nan"), float("inf"), "fast"):
        with pytest.raises(ConfigError, match="positive factor"):
            paced.set_speed(bad)
    assert paced.speed == 2.0
    paced.set_speed(4.0)  # not started yet: the replay will start at 4x
    assert paced.speed == 4.0 and paced._pace is None
