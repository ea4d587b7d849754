"""The app with the shipped readout model: a session calibrates on its first 60 s, says so in its
estimates, and leaves the baseline beside its recording for the next session of that person."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from physio_live.app._session import Session
from physio_live.core import ConfigError, load_config, open_recording
from physio_live.models import CheckpointError, ReadoutModel

TESTS = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("PHYSIO_LIVE_DATASETS", TESTS.parents[1] / "shared" / "datasets"))
SETS = ["aligner.hop=2", "model.checkpoint=eegmat-readouts", "model.device=cpu",
        "outlet.enabled=false"]  # fmt: skip


def _run(path: Path, sets: list[str]) -> tuple[Session, list]:
    session = Session(load_config("demo", sets), recording=open_recording(path), speed=None)
    got: list = []
    lock = threading.Lock()

    def on_estimate(e):
        with lock:
            got.append(e)

    session.on_estimate(on_estimate)
    session.open()
    try:
        session.start()
        assert session.finished.wait(120), f"replay of {path.name} did not finish"
    finally:
        session.close()
    return session, sorted(got, key=lambda e: e.t_end)


@pytest.mark.slow
def test_session_calibrates_and_keeps_the_baseline_beside_its_recording(tmp_path):
    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    sets = [*SETS, "recording.enabled=true", f"recording.folder={tmp_path}"]
    session, est = _run(root / "Subject33_1.edf", sets)
    assert isinstance(session.model, ReadoutModel)
    t0 = est[0].t_end - 4.0
    early = [e for e in est if e.t_end - t0 <= 60.0 + 1e-6]
    late = [e for e in est if e.t_end - t0 > 60.0 + 1e-6]
    assert len(early) == 29 and len(late) > 40
    assert all("calibrating: resting baseline" in e.reason for e in early)
    assert not any("calibrating" in e.reason for e in late)
    # the baseline, beside the recording, is the one the session used
    path = session.baseline_path
    assert path is not None and path.parent == tmp_path and path.name.endswith(".baseline.json")
    state = json.loads(path.read_text())
    assert state["windows"] == 29 and state["model_id"] == session.model.model_id
    assert state == session.model.baseline_state()
    assert any("resting baseline taken (29 windows" in m for m in session.messages())

    # a second session of the same person, from that baseline: calibrated from its first window
    second, est2 = _run(root / "Subject33_2.edf", [*SETS, f"model.baseline={path}"])
    assert est2 and not any("calibrating" in e.reason for e in est2)
    assert any("resting baseline loaded" in m for m in second.messages())


def test_wrong_baselines_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"model.baseline: .* does not exist"):
        load_config("demo", [*SETS, f"model.baseline={tmp_path / 'none.json'}"])
    bad = tmp_path / "bad.baseline.json"
    bad.write_text("{not json")
    from physio_live.app._session import build_model

    eeg = ("Fp1",) * 19
    with pytest.raises(ConfigError, match="cannot read"):
        build_model(load_config("demo", [*SETS, f"model.baseline={bad}"]), eeg, ("ECG",))
    bad.write_text(json.dumps({"format": "physio-live-baseline", "features": [], "mean": []}))
    with pytest.raises(CheckpointError, match="other features"):
        build_model(load_config("demo", [*SETS, f"model.baseline={bad}"]), eeg, ("ECG",))
    fused = [*SETS[:-3], "model.checkpoint=eegmat-fused", f"model.baseline={bad}"]
    with pytest.raises(ConfigError, match="takes no baseline"):
        build_model(load_config("demo", fused), eeg, ("ECG",))


@pytest.mark.slow
def test_cli_replay_writes_the_calibration_in_the_estimates_csv(tmp_path):
    import csv
    import subprocess
    import sys

    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    r = subprocess.run(
        [sys.executable, "-m", "physio_live.app.cli", "--stream", "--replay",
         str(root / "Subject35_1.edf"), "--checkpoint", "eegmat-readouts", "--speed", "max",
         "--set", "aligner.hop=2", "--out", str(tmp_path), "--estimates"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "Subject35_1.estimates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 80 and rows[0]["model_id"].startswith("readout-lr-")
    calibrating = ["calibrating: resting baseline" in row["reason"] for row in rows]
    assert calibrating == [True] * 29 + [False] * (len(rows) - 29)
    assert "notes: calibrating: resting baseline" in r.stdout
    # the baseline is news, not a warning
    assert "physio-live: info: resting baseline taken (29 windows" in r.stderr
    assert "warning: info:" not in r.stderr


@pytest.mark.slow
def test_live_calibration_replays_to_the_bit(tmp_path):
    """A live demo session with a readout model (a 6-s baseline, so that a short run holds both
    phases), recorded, then replayed: the replay calibrates on the same windows and gives
    exactly the live estimates (the recording's estimates stream)."""
    import csv
    import subprocess
    import sys
    from dataclasses import replace

    import numpy as np
    import pyxdf

    from physio_live.models import load_checkpoint, save_checkpoint

    shipped = load_checkpoint("eegmat-readouts").model
    quick = ReadoutModel(replace(shipped.config, calibrate_s=6.0), shipped.provenance)
    quick.load_state_dict(shipped.state_dict())
    ckpt = save_checkpoint(tmp_path / "quick.safetensors", quick)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "physio_live.app.cli", "--stream", "--checkpoint", str(ckpt),
             *args],
            capture_output=True, text=True, timeout=300, env=dict(os.environ),
        )  # fmt: skip

    live = cli("--duration", "14", "--record-dir", str(tmp_path / "rec"))
    assert live.returncode == 0, live.stderr
    assert "info: resting baseline taken" in live.stderr
    (xdf,) = (tmp_path / "rec").glob("*.xdf")
    baseline = xdf.with_suffix(".baseline.json")
    assert baseline.is_file() and json.loads(baseline.read_text())["windows"] >= 3
    r = cli("--replay", str(xdf), "--speed", "max", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / f"{xdf.stem}.estimates.csv", newline="") as f:
        by_t = {float(row["t_end"]): row for row in csv.DictReader(f)}
    streams, _ = pyxdf.load_xdf(str(xdf))
    (est,) = [s for s in streams if s["info"]["type"][0] == "Emotion"]
    live_t, live_p = np.asarray(est["time_stamps"]), np.asarray(est["time_series"], np.float32)
    assert len(live_t) >= 12
    notes = []
    for t, p in zip(live_t, live_p, strict=True):
        row = by_t[float(t)]  # the same window end, to the bit
        assert np.float32(row["arithmetic"]) == p[0]
        notes.append("calibrating" in row["reason"])
    assert notes[0] and not notes[-1]  # both phases were live
