"""The dashboard, offscreen, over real Sessions: demo outlets, real LSL outlets, real files."""

from __future__ import annotations

import copy
import math
import time
import uuid

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

import pyxdf
from PySide6 import QtCore

from physio_live.app._dashboard import Dashboard, run_dashboard
from physio_live.app._session import Session
from physio_live.core import config_from_dict, load_config

pytestmark = pytest.mark.qt

TINY = ["model.size=tiny", "model.device=cpu", "recording.enabled=false", "outlet.enabled=false"]


@pytest.fixture
def demo_window(qtbot, tmp_path):
    """A Dashboard over a started demo Session (tiny model, no recording at start)."""
    cfg = load_config("demo_synthetic", [*TINY, f"recording.folder={tmp_path}"])
    session = Session(cfg)
    session.open()
    try:
        session.start()
        win = Dashboard(session)
        qtbot.addWidget(win)  # closed at teardown: closeEvent closes the session
        win.show()
        yield win
    finally:
        session.close()


def _n_points(curve) -> int:
    x, _ = curve.getData()
    return 0 if x is None else len(x)


def test_demo_window_draws_estimates_records_and_marks(demo_window, qtbot, tmp_path):
    win = demo_window
    # traces receive data; the ECG gets R peaks and a heart rate; estimates arrive
    assert len(win.eeg_plot.labels) == 14 and win.ecg_plot.labels == ["ECG1", "ECG2"]
    # the EEG and ECG outlets are separate LSL streams whose inlets connect independently: wait
    # for both (asserting the ECG the moment the EEG had data failed on a fresh clone)
    qtbot.waitUntil(
        lambda: (
            all(win.eeg_plot.channel_points(i) > 100 for i in range(14))
            and all(win.ecg_plot.channel_points(i) > 100 for i in range(2))
        ),
        timeout=10_000,
    )
    assert _n_points(win.eeg_plot.curves[0]) > 100  # the drawn curve holds them
    qtbot.waitUntil(lambda: win.estimates.count >= 2, timeout=15_000)
    assert win.estimates.banner.isVisibleTo(win)  # untrained weights: the banner says so
    assert "arousal" in win.estimates.value_labels[1].text()
    assert _n_points(win.estimates.curves[0]) >= 1
    qtbot.waitUntil(
        lambda: len(win.heart.peaks) >= 3 and math.isfinite(win.heart.hr_bpm), timeout=10_000
    )
    assert 50 < win.heart.hr_bpm < 90  # the demo ECG beats at 70 bpm
    # one R-peak detector per ECG stream: the window shows what the session computed
    assert win.heart is win.session.annotator.heart
    assert win._rpeaks.getData()[0] is not None and len(win._rpeaks.getData()[0]) >= 1
    chips = " ".join(c.text() for c in win.stream_chips.values())
    assert "physio-live-demo-EEG" in chips and "ok" in chips

    # span, hide a channel, pause (acquisition goes on, the view stays)
    win.set_span(5)
    qtbot.wait(100)
    x, _ = win.eeg_plot.curves[0].getData()
    assert -5.1 <= x.min() and x.max() <= 0.0
    win.set_channel_visible("F7", False)
    qtbot.wait(100)
    assert win.eeg_plot.channel_points(1) == 0 and win.eeg_plot.channel_points(2) > 100
    assert "F7" not in [t for _, t in win.eeg_plot.plot.getAxis("left")._tickLevels[0]]
    qtbot.mouseClick(win.pause_button, QtCore.Qt.MouseButton.LeftButton)
    assert win.paused
    t_frozen = win._t_ref
    n_before = win.session.pipeline.stats[win.eeg_plot.streams[0].key].samples
    qtbot.wait(400)
    assert win._t_ref == t_frozen
    assert win.session.pipeline.stats[win.eeg_plot.streams[0].key].samples > n_before
    qtbot.mouseClick(win.pause_button, QtCore.Qt.MouseButton.LeftButton)
    assert not win.paused

    # record; a typed marker (button) and a hotkey marker land in the file
    qtbot.mouseClick(win.record_button, QtCore.Qt.MouseButton.LeftButton)
    assert win.session.recorder is not None
    path = win.session.recorder.path
    assert path.parent == tmp_path
    qtbot.wait(600)
    win.marker_edit.setText("stimulus A")
    qtbot.mouseClick(win.marker_button, QtCore.Qt.MouseButton.LeftButton)
    win.activateWindow()
    win.eeg_plot.setFocus()
    qtbot.keyClick(win.eeg_plot, QtCore.Qt.Key.Key_3)
    qtbot.waitUntil(lambda: "marker '3'" in " ".join(win.messages), timeout=3_000)
    qtbot.waitUntil(lambda: "REC" in win.recording_chip.text(), timeout=2_000)
    qtbot.wait(600)
    qtbot.mouseClick(win.record_button, QtCore.Qt.MouseButton.LeftButton)
    assert win.session.recorder is None
    assert any("recording saved" in m for m in win.messages)
    streams, _ = pyxdf.load_xdf(str(path))
    by_name = {s["info"]["name"][0]: s for s in streams}
    assert len(by_name["physio-live-demo-EEG"]["time_stamps"]) > 250
    marks = [m[0] for m in by_name["physio-live-estimates-markers"]["time_series"]]
    assert marks == ["stimulus A", "3"]


def test_lost_stream_shows_in_status_bar_and_comes_back(lsl_outlets, qtbot):
    tag = uuid.uuid4().hex[:8]
    specs = [
        {"name": f"dashEEG-{tag}", "type": "EEG", "n_ch": 4, "srate": 200.0},
        {"name": f"dashECG-{tag}", "type": "ECG", "n_ch": 2, "srate": 200.0},
    ]
    first = lsl_outlets([dict(s) for s in specs], unique=False)
    cfg = config_from_dict(
        {
            "sources": [
                {"kind": "lsl", "role": "eeg", "name": specs[0]["name"], "timeout": 5},
                {"kind": "lsl", "role": "ecg", "name": specs[1]["name"], "timeout": 5},
            ],
            "aligner": {"window": 2.0, "hop": 1.0},
            "model": {"size": "tiny", "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    session = Session(cfg)
    session.open()
    try:
        session.start()
        win = Dashboard(session)
        qtbot.addWidget(win)
        win.show()
        key = next(s.key for s in session.pipeline.streams if s.role == "eeg")
        qtbot.waitUntil(lambda: win.stream_states.get(key) == "ok", timeout=5_000)
        first.stop()
        qtbot.waitUntil(lambda: win.stream_states.get(key) == "lost", timeout=6_000)
        assert "lost" in win.stream_chips[key].text()
        assert win.error_banner.isVisibleTo(win) and "lost" in win.error_banner.text()
        lsl_outlets([dict(s) for s in specs], unique=False)
        qtbot.waitUntil(lambda: win.stream_states.get(key) == "ok", timeout=15_000)
        assert "● ok" in win.stream_chips[key].text()
        assert any("is back" in m for m in win.messages)
        win.close()
    finally:
        session.close()


def test_bad_config_and_missing_replay_are_messages_not_crashes(qtbot, tmp_path):
    win = Dashboard(None)
    qtbot.addWidget(win)
    win.show()
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{kind: lsl, role: eeg}]\nnot_a_key: 1\n")
    assert win.open_config(bad) is False
    assert win.error_banner.isVisibleTo(win)
    assert "config not loaded" in win.error_banner.text()
    assert "config not loaded" in win.log.toPlainText()
    assert win.open_config(tmp_path / "missing.yaml") is False
    assert "missing.yaml" in win.error_banner.text()
    # replay of a file that is not there ends as a message in the window
    n = len(win.messages)
    win.open_replay(tmp_path / "nothing.xdf", 2.0)
    qtbot.waitUntil(lambda: any("no such file" in m for m in win.messages[n:]), timeout=10_000)
    qtbot.waitUntil(lambda: not win.switcher.busy, timeout=10_000)
    assert win.error_banner.isVisibleTo(win)


def test_run_dashboard_opens_the_demo_and_closes_after_duration(qtbot):
    cfg = load_config("demo_synthetic", TINY)
    t0 = time.monotonic()
    assert run_dashboard(cfg, duration=5.0) == 0
    assert time.monotonic() - t0 < 20.0


def test_estimate_panel_greys_gated_and_withheld_estimates(qtbot):
    from physio_live.app._dashboard_widgets import GREY, EstimatePanel
    from physio_live.core import ChannelQuality, Estimate, Quality

    panel = EstimatePanel()
    qtbot.addWidget(panel)
    targets = ("valence", "arousal", "dominance")
    panel.set_model(targets, untrained=False, model_id="m")
    assert not panel.banner.isVisibleTo(panel)
    good = Quality({"eeg": ChannelQuality()})
    flat = Quality({"eeg": ChannelQuality(flat_channels=(3,))})

    def est(t, probs, quality, withheld=False):
        return Estimate(t, t + 0.05, targets, probs, quality, "m", False, withheld=withheld)

    panel.add(est(1.0, (0.2, 0.7, 0.5), good))
    panel.refresh(1.0)
    assert "0.20" in panel.value_labels[0].text() and GREY not in panel.value_labels[0].styleSheet()
    assert panel.quality_label.text().startswith("quality: ok")
    panel.add(est(1.5, (0.3, 0.6, 0.5), flat))
    panel.refresh(1.5)
    assert (
        GREY in panel.value_labels[0].styleSheet() and "flat ch [3]" in panel.quality_label.text()
    )
    assert len(panel.gated.data) == 3  # the gated point of each target, drawn grey
    nan = float("nan")
    panel.add(est(2.0, (nan, nan, nan), flat, withheld=True))
    panel.refresh(2.0)
    assert panel.quality_label.text().startswith("withheld")
    assert panel.value_labels[1].text().endswith("-")
    x, _ = panel.trail_curve.getData()
    assert len(x) == 2  # withheld estimates leave the trail


def test_replay_of_a_real_recording_in_the_window(qtbot, data_dir, tmp_path):
    # the live config records; the replay must not, and must not switch the live config's
    # recording off ("Back to live" reopens that config)
    cfg = load_config(
        "demo_synthetic", [*TINY[:2], "recording.enabled=true", f"recording.folder={tmp_path}"]
    )
    before = copy.deepcopy(cfg)
    win = Dashboard(None)
    qtbot.addWidget(win)
    win.show()
    win.cfg = cfg
    assert win.open_replay(data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf", 8.0)
    qtbot.waitUntil(
        lambda: win.session is not None and win.session.replay is not None, timeout=20_000
    )
    qtbot.waitUntil(lambda: win.eeg_plot.channel_points(0) > 500, timeout=20_000)
    assert len(win.eeg_plot.labels) == 19 and win.ecg_plot.labels == ["ECG"]
    qtbot.waitUntil(lambda: win.estimates.count >= 2, timeout=30_000)
    # a replay shows where in the recording it is, not emission time minus recorded time
    win._update_status(force=True)
    assert win.latency_chip.text().startswith("replay ") and "8×" in win.latency_chip.text()
    qtbot.waitUntil(
        lambda: "into the recording" in win.estimates.quality_label.text(), timeout=10_000
    )
    assert "latency" not in win.estimates.quality_label.text()
    assert win.session.recorder is None and not list(tmp_path.iterdir())  # replay: no file
    assert not win.session.cfg.recording.enabled
    assert win.cfg == before and win.cfg.recording.enabled  # the live config is as loaded
    win.close()


def _window_waiting_for(qtbot, eeg_name: str, ecg_name: str | None = None) -> Dashboard:
    """A Dashboard opening a config whose EEG source waits (``on_missing: wait``) for
    ``eeg_name``; returned once its first "waiting for" line is in the window's log."""
    sources = [{"kind": "lsl", "role": "eeg", "name": eeg_name, "timeout": 1, "on_missing": "wait"}]
    if ecg_name:
        sources.append({"kind": "lsl", "role": "ecg", "name": ecg_name, "timeout": 5})
    cfg = config_from_dict(
        {
            "sources": sources,
            "aligner": {"window": 2.0, "hop": 1.0},
            "model": {"size": "tiny", "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    win = Dashboard()
    qtbot.addWidget(win)
    win.show()
    assert win.open_config(cfg)
    qtbot.waitUntil(
        lambda: any("waiting for LSL stream" in m for m in win.messages), timeout=10_000
    )
    return win


def test_waiting_for_a_missing_stream_shows_progress_and_ends_when_it_appears(lsl_outlets, qtbot):
    tag = uuid.uuid4().hex[:8]
    specs = [
        {"name": f"waitEEG-{tag}", "type": "EEG", "n_ch": 4, "srate": 200.0},
        {"name": f"waitECG-{tag}", "type": "ECG", "n_ch": 2, "srate": 200.0},
    ]
    win = _window_waiting_for(qtbot, specs[0]["name"], specs[1]["name"])
    assert win.session is None  # nothing attached while it waits
    lsl_outlets([dict(s) for s in specs], unique=False)
    qtbot.waitUntil(lambda: win.session is not None and win.session.running, timeout=20_000)
    key = next(s.key for s in win.session.pipeline.streams if s.role == "eeg")
    qtbot.waitUntil(lambda: win.stream_states.get(key) == "ok", timeout=10_000)
    win.close()


def test_closing_the_window_ends_a_wait_that_never_ends(qtbot):
    win = _window_waiting_for(qtbot, f"never-{uuid.uuid4().hex[:8]}")
    win.close()  # sets the stop event and joins the opener (30 s at most)
    assert not win.switcher.busy, "the wait went on after the window closed"


@pytest.mark.slow
def test_a_readout_models_baseline_is_news_in_the_log_not_an_error(qtbot):
    """The readout model says it is calibrating on the quality line, then logs the baseline as
    information (no red banner)."""
    import os
    from pathlib import Path

    root = Path(
        os.environ.get("PHYSIO_LIVE_DATASETS", Path(__file__).parents[3] / "shared" / "datasets")
    )
    path = root / "eegmat" / "Subject33_1.edf"
    if not path.is_file():
        pytest.skip(f"{path} not found; set PHYSIO_LIVE_DATASETS")
    win = Dashboard(None)
    qtbot.addWidget(win)
    win.show()
    win.cfg = load_config("demo", ["model.checkpoint=eegmat-readouts", *TINY[1:]])
    assert win.open_replay(path, 8.0)
    qtbot.waitUntil(
        lambda: "calibrating: resting baseline" in win.estimates.quality_label.text(),
        timeout=30_000,
    )
    taken = "resting baseline taken"
    qtbot.waitUntil(lambda: any(taken in m for m in win.messages), timeout=30_000)
    (line,) = [ln for ln in win.log.toPlainText().splitlines() if taken in ln]
    assert "ERROR" not in line and not win.error_banner.isVisibleTo(win)
    qtbot.waitUntil(lambda: "calibrating" not in win.estimates.quality_label.text(), timeout=10_000)
    win.close()


def test_speed_box_shows_the_replay_speed_and_changes_a_running_replay(qtbot, data_dir):
    cfg = load_config("demo_synthetic", TINY)
    win = Dashboard(None)
    qtbot.addWidget(win)
    win.show()
    win.cfg = cfg
    offered = [win.speed_combo.itemData(i) for i in range(win.speed_combo.count())]
    # a speed the box does not offer (e.g. `--speed 3`) is added in order and shown
    assert win.open_replay(data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf", 3.0)
    assert win.speed_combo.currentData() == 3.0 and win.speed_combo.currentText() == "3×"
    items = [win.speed_combo.itemData(i) for i in range(win.speed_combo.count())]
    assert items == sorted([*offered, 3.0])
    qtbot.waitUntil(
        lambda: win.session is not None and win.session.replay is not None, timeout=20_000
    )
    session = win.session
    assert session.speed == 3.0
    qtbot.waitUntil(lambda: session._pace is not None, timeout=10_000)  # the replay is running
    win.speed_combo.setCurrentIndex(items.index(8.0))  # what picking 8x in the box does
    assert session.speed == 8.0 and session._pace is not None and session._pace[2] == 8.0
    assert "replay speed 8×" in win.log.toPlainText()
    win._update_status(force=True)
    assert "8×" in win.latency_chip.text()
    assert win.session is session  # the same replay goes on; nothing was reopened
    win.close()
