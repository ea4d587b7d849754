"""``physio-live --stream`` end to end on the built-in demo: real LSL outlets inside the app, the
worker, the XDF recording and the outlet; clean exits; one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pyxdf

pytestmark = pytest.mark.slow

# the synthetic demo (BrainFlow board + simulated ECG) on a tiny untrained model
FAST = ["--config", "demo_synthetic", "--set", "model.size=tiny", "--set", "aligner.hop=0.5"]


def _run(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "physio_live.app.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ), cwd=cwd,
    )  # fmt: skip


def _load(path: Path) -> dict[str, dict]:
    """Streams by type; the demo's marker stream under "Markers" (the app's own is empty)."""
    streams, _ = pyxdf.load_xdf(str(path))
    out = {}
    for s in streams:
        if s["info"]["name"][0].endswith("-markers"):  # the app's marker stream
            out["AppMarkers"] = s
        else:
            out[s["info"]["type"][0]] = s
    return out


def test_stream_demo_records_all_four_kinds_and_reports(tmp_path):
    r = _run("--stream", "--duration", "9", "--record-dir", str(tmp_path), "--estimates",
             "--windows", *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "untrained model" in r.stderr.lower()
    status = [ln for ln in out if ln.startswith("[")]
    assert len(status) >= 7
    assert "latency p50=" in status[-1] and "dropped=" in status[-1] and "rec=" in status[-1]
    assert any("physio-live-demo-EEG=2" in ln for ln in status)  # ~250 Hz effective
    windows = [ln for ln in out if ln.startswith("window")]
    estimates = [ln for ln in out if ln.startswith("estimate")]
    assert len(windows) >= 6 and "eeg 14x800" in windows[0] and "ecg 2x800" in windows[0]
    assert len(estimates) >= 6 and "UNTRAINED" in estimates[0]
    assert out[-1].startswith("summary:") and "0 lost" in out[-1]
    (xdf,) = tmp_path.glob("*.xdf")
    streams = _load(xdf)
    assert set(streams) == {"EEG", "ECG", "Markers", "AppMarkers", "Emotion", "Physio"}
    physio = streams["Physio"]
    labels = [c["label"][0] for c in physio["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels[:3] == ["hr_bpm", "rmssd_ms", "faa"]
    hr = physio["time_series"][:, 0]
    assert np.nanmedian(hr) == pytest.approx(70, abs=5)  # the demo's simulated heart
    eeg, ecg = streams["EEG"], streams["ECG"]
    assert eeg["time_series"].shape[1] == 14 and len(eeg["time_stamps"]) > 6 * 250
    assert ecg["time_series"].shape[1] == 2 and len(ecg["time_stamps"]) > 6 * 256
    labels = [c["label"][0] for c in eeg["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels[:3] == ["AF3", "F7", "F3"]
    assert any(m[0].startswith("demo/tick") for m in streams["Markers"]["time_series"])
    emo = streams["Emotion"]
    assert emo["time_series"].shape == (r.stdout.count("estimate t_end="), 3)
    assert np.all((emo["time_series"] > 0) & (emo["time_series"] < 1))
    assert emo["info"]["desc"][0]["untrained"] == ["true"]
    # footers were written on the clean exit
    assert int(eeg["footer"]["info"]["sample_count"][0]) == len(eeg["time_stamps"])


def test_sigterm_closes_cleanly_with_footers(tmp_path):
    p = subprocess.Popen(
        [sys.executable, "-m", "physio_live.app.cli", "--stream", "--record-dir", str(tmp_path),
         *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(8)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "summary:" in out
    (xdf,) = tmp_path.glob("*.xdf")
    streams = _load(xdf)
    assert all("footer" in s for s in streams.values())


def test_kill_9_loses_at_most_a_second(tmp_path):
    import pylsl

    p = subprocess.Popen(
        [sys.executable, "-m", "physio_live.app.cli", "--stream", "--record-dir", str(tmp_path),
         *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    # wait until acquisition is running (first status line)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if line.startswith("["):
            break
    time.sleep(4)
    t_kill = pylsl.local_clock()
    p.kill()
    p.wait(10)
    p.stdout.close()
    (xdf,) = tmp_path.glob("*.xdf")
    streams = _load(xdf)
    for kind in ("EEG", "ECG"):
        ts = streams[kind]["time_stamps"]
        assert len(ts) > 0
        assert ts[-1] >= t_kill - 1.0, f"{kind}: last sample {t_kill - ts[-1]:.2f} s before kill"


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--stream", "--config", "nope.yaml"], "config file not found"),
        (["--stream", "--set", "aligner.hopp=1"], "unknown key; did you mean 'hop'"),
        (["--stream", "--checkpoint", "missing.safetensors"], "missing.safetensors does not exist"),
        (["--stream", "--device", "tpu"], "model.device: 'tpu'"),
        (
            ["--stream", "--config", "brainflow_synthetic", "--set", "sources.0.board=NOPE"],
            "not a BrainFlow board name",
        ),
        (["models", "info", "nothing-here.pth"], "nothing-here.pth"),
    ],
)
def test_user_errors_are_one_line_exit_1(args, pattern):
    r = _run(*args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert pattern in r.stderr
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("physio-live: error")]) == 1


def test_unwritable_record_folder_refuses_to_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = _run("--stream", "--duration", "3", "--record-dir", str(blocker / "sub"), *FAST)
    assert r.returncode == 1
    assert "physio-live: error" in r.stderr and "Traceback" not in r.stderr


def test_no_stream_opens_the_dashboard_offscreen():
    r = _run("--duration", "4", "--no-record", *FAST)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
