"""The desktop dashboard: live EEG and ECG beside live emotion estimates (PySide6 + pyqtgraph).

One :class:`~physio_live.app._session.Session` feeds both front ends; the dashboard only *reads* it:
ring buffers for the traces, the R-peak times and heart rate of the session's annotation stage,
estimates handed over from the worker thread through a thread-safe queue, and
``Session.status()`` for the status bar. One QTimer at ~30 Hz drives every redraw. Anything slow or
fallible (opening a config, a replay, closing the previous session) runs on a background thread and
reports back through a queue, so the window never freezes and errors land in the window, not in a
traceback.

This module is the window: its layout, its slots and the frame loop. Its parts live beside it: the
toolbars (``_dashboard_toolbars``), the traces (``_dashboard_traces``), the estimates panel
(``_dashboard_widgets``), the status bar (``_dashboard_status``) and session switching
(``_dashboard_switch``).
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from physio_live.core import Config, Estimate, PhysioLiveError, load_config

from ._annotate import HeartMonitor
from ._dashboard_status import StatusBar
from ._dashboard_switch import SessionSwitcher
from ._dashboard_toolbars import build_channel_menu, build_toolbars, show_speed
from ._dashboard_traces import TracePlot, TraceView
from ._dashboard_widgets import EstimatePanel, configure_pyqtgraph, header_label
from ._format import fmt_bytes, is_warning
from ._replay import replay_session
from ._session import Session

__all__ = ["Dashboard", "run_dashboard"]

FRAME_MS = 33


def _fmt_bytes(n: float) -> str:
    return fmt_bytes(n, " ")


class Dashboard(QtWidgets.QMainWindow):
    """The main window over one opened and started :class:`Session` (or none yet).

    ``owns_session``: close the session when the window closes or another one replaces it.
    Slow work (open a config or a replay) runs in a thread; see :meth:`open_config` and
    :meth:`open_replay`.
    """

    def __init__(
        self,
        session: Session | None = None,
        *,
        owns_session: bool = True,
        parent: QtWidgets.QWidget | None = None,
    ):
        super().__init__(parent)
        configure_pyqtgraph()
        self.session: Session | None = None
        self.cfg: Config | None = None
        self.owns_session = owns_session
        self.paused = False
        self.span = 10.0
        self.frames = 0
        self.frame_times: deque[float] = deque(maxlen=2000)  # seconds spent in refresh()
        self.messages: list[str] = []
        # estimates handed over from the worker thread, tagged with their session
        self._estimates: queue.SimpleQueue[tuple[Session, Estimate]] = queue.SimpleQueue()
        #: opens the next session (config, replay, back to live) in a thread
        self.switcher = SessionSwitcher()
        self._closing = False
        self._t_ref: float | None = None
        self._dirty = True
        self._autoscale_pending = False
        self._n_errors = 0
        self._banner_until = 0.0
        self._last_status = 0.0
        self._replay_path: str | None = None
        self._est_drawn = -1
        self._est_time = 0.0
        self._build_ui()
        self.resize(1600, 1000)
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._on_frame)
        self.timer.start(FRAME_MS)
        if session is not None:
            self._attach(session)

    # ============================================================================ UI
    def _build_ui(self) -> None:
        self.setWindowTitle("physio-live")
        build_toolbars(self)
        central = QtWidgets.QWidget()
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(4)
        self.error_banner = QtWidgets.QLabel()
        self.error_banner.setWordWrap(True)
        self.error_banner.setStyleSheet(
            "QLabel { background: #fdecea; color: #8a1c1c; border: 1px solid #e0a0a0; "
            "padding: 5px; font-weight: bold; }"
        )
        self.error_banner.setVisible(False)
        outer.addWidget(self.error_banner)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.traces = TraceView()
        self.eeg_plot: TracePlot = self.traces.eeg_plot
        self.ecg_plot: TracePlot = self.traces.ecg_plot
        self._rpeaks = self.traces.rpeaks
        split.addWidget(self.traces)

        right = QtWidgets.QWidget()
        rlay = QtWidgets.QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.setSpacing(2)
        rlay.addWidget(header_label("Estimates"))
        self.estimates = EstimatePanel()
        rlay.addWidget(self.estimates, 1)
        rlay.addWidget(header_label("Messages"))
        self.log = QtWidgets.QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setFixedHeight(110)
        rlay.addWidget(self.log)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([1080, 500])
        outer.addWidget(split, 1)
        self.setCentralWidget(central)

        self.status = StatusBar(self.statusBar())
        self.stream_chips = self.status.stream_chips  # the same dicts, kept current by it
        self.stream_states = self.status.stream_states
        self.recording_chip = self.status.recording_chip
        self.latency_chip = self.status.latency_chip

    @property
    def heart(self) -> HeartMonitor | None:
        """The session's heart monitor whose beats and rate the ECG view shows."""
        return self.traces.heart

    # ============================================================================ session
    def _attach(self, session: Session) -> None:
        """Show ``session`` (opened and started): build the plots for its streams."""
        assert session.pipeline is not None and session.model is not None
        self.session = session
        if session.mode != "replay" or self.cfg is None:
            # the config the user chose (never the session's derived one): "Back to live" and
            # the next replay start from it; a replay keeps the live config it came from
            self.cfg = session.base_cfg
        while not self._estimates.empty():  # estimates of a previous session
            self._estimates.get_nowait()
        # what the session's one R-peak detector found (the dashboard runs none of its own)
        heart = session.annotator.heart if session.annotator is not None else None
        self.traces.set_streams(session.pipeline.streams, heart)
        self._on_scale_changed()
        self.set_span(self.span)
        build_channel_menu(self)
        model = session.model
        self.estimates.set_model(
            tuple(model.config.targets),
            model.untrained,
            model.model_id,
            replay_start=session.replay.t_first if session.replay is not None else None,
        )
        for e in list(session.estimates)[-self.estimates.capacity // 2 :]:
            self.estimates.add(e)
        session.on_estimate(lambda est, s=session: self._estimates.put((s, est)))
        self.status.set_session(session)
        mode = "replay" if session.mode == "replay" else "live"
        where = self._replay_path if mode == "replay" else str(self.cfg.path)
        self.setWindowTitle(f"physio-live · {mode} · {where}")
        self.live_button.setEnabled(mode == "replay")
        self._t_ref = None
        self._dirty = True
        self._autoscale_pending = True
        self._n_errors = 0
        self.stream_states.clear()
        self._headers()
        self.message(f"{mode}: {where}; model {model.model_id} on {session.worker.device}")

    def _detach(self) -> None:
        self.session = None
        self.traces.set_streams([], None)
        self.estimates.reset()
        self.status.set_session(None)

    def open_config(self, path: str | Path | Config) -> bool:
        """Load a config file (bad file: message, current session kept) and reopen on it."""
        try:
            cfg = path if isinstance(path, Config) else load_config(str(path))
        except PhysioLiveError as exc:
            self.message(f"config not loaded: {exc}", error=True)
            return False
        except Exception as exc:  # an unreadable file, a YAML error not wrapped upstream
            self.message(f"config not loaded: {type(exc).__name__}: {exc}", error=True)
            return False
        self._replay_path = None
        return self._reopen(lambda: Session(cfg), f"config {cfg.path}")

    def open_replay(self, path: str | Path, speed: float = 1.0) -> bool:
        """Replay a recording through the same pipeline (:func:`replay_session`)."""
        cfg = self.cfg
        if cfg is None:
            try:
                cfg = load_config(None)
            except PhysioLiveError as exc:
                self.message(f"replay needs a config: {exc}", error=True)
                return False
        self._replay_path = str(path)
        show_speed(self.speed_combo, float(speed))
        return self._reopen(
            lambda: replay_session(cfg, Path(path), float(speed)), f"replay {path} at {speed:g}×"
        )

    def _on_speed_changed(self, _index: int) -> None:
        """The speed box: a running paced replay goes on at the new speed from where it is."""
        s, speed = self.session, self.speed_combo.currentData()
        if s is None or s.replay is None or s.speed is None:
            return  # live, unpaced, or nothing open: the speed of the next replay
        try:
            s.set_speed(float(speed))
        except PhysioLiveError as exc:
            self.message(str(exc), error=True)
            return
        self.message(f"replay speed {float(speed):g}×")

    def _reopen(self, factory: Callable[[], Session], what: str) -> bool:
        """Close the current session and open another in a thread; the frame timer attaches it."""
        if self.switcher.busy:
            self.switcher.cancel()  # e.g. waiting for a stream that never comes: give up on it
            self.message(
                "still opening the previous choice (its wait is cancelled); try again in a moment",
                error=True,
            )
            return False
        old = self.session if self.owns_session else None
        self._detach()
        self.owns_session = True
        self.message(f"opening {what} ...")
        self.switcher.switch(factory, what, old)
        return True

    def _drain_opened(self) -> None:
        for item in self.switcher.take():
            if item.session is None:
                self.message(item.message, error=True)
            elif self._closing:
                item.session.close()
            else:
                self._attach(item.session)

    # ============================================================================ controls
    def set_paused(self, paused: bool) -> None:
        """Freeze the view (acquisition, recording and estimates go on)."""
        self.paused = bool(paused)
        if self.pause_button.isChecked() != self.paused:
            self.pause_button.setChecked(self.paused)
        self.pause_button.setText("▶ Resume view" if self.paused else "❚❚ Pause view")
        self._dirty = True
        self._headers()

    def set_span(self, span: float) -> None:
        """Seconds shown, 2-30."""
        self.span = float(min(max(span, 2.0), 30.0))
        if self.span_spin.value() != int(self.span):
            self.span_spin.setValue(int(self.span))
        self.traces.set_span(self.span)
        self._dirty = True

    def _on_scale_changed(self, *_: object) -> None:
        self.traces.set_scales(self.eeg_scale.currentData(), self.ecg_scale.currentData())
        self._dirty = True
        self._headers()

    def set_channel_visible(self, label: str, visible: bool) -> None:
        """Show or hide a channel by label (EEG first, then ECG)."""
        for plot, name in ((self.eeg_plot, "EEG"), (self.ecg_plot, "ECG")):
            if label in plot.labels:
                self.channel_actions[f"{name}:{label}"].setChecked(visible)
                return
        raise KeyError(label)

    def _set_visible(self, plot: TracePlot, i: int, on: bool) -> None:
        plot.set_channel_visible(i, on)
        self._dirty = True

    def _show_all(self, on: bool) -> None:
        for act in self.channel_actions.values():
            act.setChecked(on)

    def _on_record_clicked(self) -> None:
        if self.session is None:
            self.record_button.setChecked(False)
            return
        if self.session.recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self, path: str | Path | None = None) -> Path | None:
        """Start an XDF recording (errors such as an unwritable folder go to the window)."""
        if self.session is None:
            return None
        try:
            out = self.session.start_recording(path)
        except PhysioLiveError as exc:
            self.message(f"recording not started: {exc}", error=True)
            out = None
        except OSError as exc:
            self.message(f"recording not started: {exc}", error=True)
            out = None
        else:
            self.message(f"recording to {out}")
        self._update_status(force=True)
        return out

    def stop_recording(self) -> None:
        if self.session is None:
            return
        try:
            st = self.session.stop_recording()
        except Exception as exc:
            self.message(f"closing the recording failed: {exc}", error=True)
            st = None
        if st is not None:
            self.message(f"recording saved: {st.path} ({_fmt_bytes(st.bytes_written)})")
            if st.error:
                self.message(f"recording: {st.error}", error=True)
        self._update_status(force=True)

    def insert_marker(self, text: str | None = None) -> float | None:
        """A marker now: recorded, in the windows, on the LSL marker outlet."""
        if self.session is None:
            return None
        text = (text if text is not None else "").strip() or "marker"
        try:
            t = self.session.insert_marker(text)
        except Exception as exc:
            self.message(f"marker not inserted: {exc}", error=True)
            return None
        self.message(f"marker '{text}' at {t:.3f}")
        return t

    def _on_marker_clicked(self) -> None:
        self.insert_marker(self.marker_edit.text())
        self.marker_edit.clear()

    def _on_config_clicked(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open config", str(Path.cwd()), "YAML config (*.yaml *.yml);;All files (*)"
        )
        if path:
            self.open_config(path)

    def _on_replay_clicked(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Replay a recording", str(Path.cwd()), "XDF recordings (*.xdf *.xdfz);;All (*)"
        )
        if path:
            self.open_replay(path, self.speed_combo.currentData())

    def _on_live_clicked(self) -> None:
        if self.cfg is not None:
            self.open_config(self.cfg)

    # ============================================================================ frames
    def message(self, text: str, *, error: bool = False) -> None:
        """Log a line in the window; errors also show in the red banner for a while."""
        stamp = time.strftime("%H:%M:%S")
        self.messages.append(text)
        self.log.appendPlainText(f"{stamp}  {'ERROR ' if error else ''}{text}")
        if error:
            self.error_banner.setText(text)
            self.error_banner.setVisible(True)
            self._banner_until = time.monotonic() + 20.0

    def _on_frame(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # a frame must never take the window down
            text = f"display error: {type(exc).__name__}: {exc}"
            if not self.messages or self.messages[-1] != text:
                self.message(text, error=True)

    def refresh(self) -> None:
        """One frame: hand over estimates, redraw traces and estimates, status twice a second."""
        t0 = time.perf_counter()
        self._drain_opened()
        s = self.session
        if s is None or s.pipeline is None:
            return
        while not self._estimates.empty():
            src, est = self._estimates.get_nowait()
            if src is s:
                self.estimates.add(est)
        if not self.paused or self._t_ref is None:
            t_ref = self._newest_time(s)
            if t_ref is not None and t_ref != self._t_ref:
                self._t_ref = t_ref
                self._dirty = True
        if self._autoscale_pending:
            self._autoscale(s)
        if self._dirty and self._t_ref is not None:
            self._draw(s, self._t_ref)
            self._dirty = False
        self._update_status()
        self.frames += 1
        self.frame_times.append(time.perf_counter() - t0)

    def _autoscale(self, s: Session) -> None:
        """Once per session: the smallest offered scale that fits a typical channel in its lane."""
        bufs = s.pipeline.buffers
        for plot, combo in ((self.eeg_plot, self.eeg_scale), (self.ecg_plot, self.ecg_scale)):
            if not plot.curves:
                continue
            rng = plot.typical_range_uv(bufs)
            if rng is None:
                return  # not 2 s of data yet: try again next frame
            values = [combo.itemData(i) for i in range(combo.count())]
            fits = [i for i, v in enumerate(values) if v >= rng * 1.2]
            combo.setCurrentIndex(fits[0] if fits else len(values) - 1)
        self._autoscale_pending = False

    @staticmethod
    def _newest_time(s: Session) -> float | None:
        t = None
        for st in s.pipeline.stats.values():
            if st.info.is_regular and st.last_time is not None:
                t = st.last_time if t is None else max(t, st.last_time)
        return t

    def _draw(self, s: Session, t_ref: float) -> None:
        assert s.pipeline is not None
        marks = self.traces.draw(s.pipeline, t_ref, self.span)
        self.estimates.markers.update(marks)
        # estimates come twice a second and their plot spans a minute: 10 redraws/s are plenty
        now = time.monotonic()
        if self.estimates.count != self._est_drawn or now - self._est_time >= 0.1 or self.paused:
            self._est_drawn, self._est_time = self.estimates.count, now
            self.estimates.refresh(t_ref)

    def _headers(self) -> None:
        self.traces.set_headers(
            paused=self.paused,
            eeg_scale=self.eeg_scale.currentText(),
            ecg_scale=self.ecg_scale.currentText(),
        )

    # ============================================================================ status bar
    def _update_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 0.5:
            return
        self._last_status = now
        if self._banner_until and now > self._banner_until and not self.status.any_lost:
            self.error_banner.setVisible(False)
            self._banner_until = 0.0
        s = self.session
        if s is None or s.worker is None:
            self.status.show_no_session()
            return
        st = s.status()
        self.status.show(s, st, now)
        recording = s.recorder is not None
        if self.record_button.isChecked() != recording:
            self.record_button.setChecked(recording)
        self.record_button.setText("■ Stop recording" if recording else "● Start recording")
        if len(st.errors) < self._n_errors:
            self._n_errors = 0
        for msg in st.errors[self._n_errors :]:
            self.message(msg, error=is_warning(msg))
        self._n_errors = len(st.errors)
        self._headers()

    # ============================================================================ closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """Stop the timer, close the session (footers written), wait for a pending open."""
        self._closing = True
        self.timer.stop()
        self.switcher.close(timeout=30.0)
        if self.session is not None and self.owns_session:
            try:
                self.session.close()
            except Exception as exc:
                print(f"physio-live: closing the session: {exc}", file=sys.stderr)
        self.session = None
        super().closeEvent(event)


def run_dashboard(
    cfg: Config,
    *,
    duration: float | None = None,
    replay: tuple[str | Path, float] | None = None,
) -> int:
    """Open the dashboard on ``cfg`` (or replaying ``(path, speed)``); returns the exit code.

    The session opens in the background while the window is already up, so a bad config or a
    missing stream shows in the window. ``duration`` closes the window after that many seconds
    (smoke runs, screenshots).
    """
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("physio-live")
    win = Dashboard(None)
    win.show()
    if replay is None:
        win.open_config(cfg)
    else:
        win.cfg = cfg
        win.open_replay(replay[0], replay[1])
    if duration is not None:
        QtCore.QTimer.singleShot(int(duration * 1000), win.close)
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: win.close())  # the frame timer lets it run
    try:
        return int(app.exec())
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
