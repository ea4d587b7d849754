"""The desktop dashboard: live EEG and ECG beside live emotion estimates (PySide6 + pyqtgraph).

One :class:`~physio_live.app._session.Session` feeds both front ends; the dashboard only *reads* it:
ring buffers for the traces, the R-peak times and heart rate of the session's annotation stage,
estimates handed over from the worker thread through a thread-safe queue, and
``Session.status()`` for the status bar. One QTimer at ~30 Hz drives every redraw. Anything slow or
fallible (opening a config, a replay, closing the previous session) runs on a background thread and
reports back through a queue, so the window never freezes and errors land in the window, not in a
traceback.
"""

from __future__ import annotations

import math
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from physio_live.core import Config, PhysioLiveError, load_config

from ._annotate import HeartMonitor
from ._dashboard_widgets import (
    EstimatePanel,
    TracePlot,
    configure_pyqtgraph,
    status_chip,
)
from ._format import fmt_bytes, fmt_clock, fmt_ms
from ._replay import replay_session
from ._session import Session

__all__ = ["Dashboard", "run_dashboard"]

#: EEG amplitude scales offered, microvolts per channel spacing
EEG_SCALES_UV = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: ECG amplitude scales offered, millivolts per lead spacing
ECG_SCALES_MV = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
REPLAY_SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0)
FRAME_MS = 33


def _fmt_bytes(n: float) -> str:
    return fmt_bytes(n, " ")


def _ms(x: float) -> str:
    return fmt_ms(x, " ")


def _ensure_running(session: Session, stop=None, on_wait=None) -> Session:
    """Open and start ``session`` unless that already happened (replay may hand over either).

    A source with ``on_missing: wait`` reports each attempt to ``on_wait`` and gives up when
    ``stop`` is set (the window closes, or another choice is made)."""
    if session.pipeline is None:
        session.open(stop, on_wait=on_wait)
    if not session.running:
        try:
            session.start()
        except BaseException:
            session.close()
            raise
    return session


class Dashboard(QtWidgets.QMainWindow):
    """The main window over one opened and started :class:`Session` (or none yet).

    ``owns_session``: close the session when the window closes or another one replaces it.
    Slow work (open a config or a replay) runs in a thread; see :meth:`open_config` and
    :meth:`open_replay`.
    """

    def __init__(self, session: Session | None = None, *, owns_session: bool = True, parent=None):
        super().__init__(parent)
        configure_pyqtgraph()
        self.session: Session | None = None
        self.cfg: Config | None = None
        self.owns_session = owns_session
        self.paused = False
        self.span = 10.0
        self.frames = 0
        self.frame_times: deque[float] = deque(maxlen=2000)  # seconds spent in refresh()
        self.heart: HeartMonitor | None = None
        self.stream_states: dict[str, str] = {}
        self.messages: list[str] = []
        self._estimates: queue.SimpleQueue = queue.SimpleQueue()
        self._opened: queue.SimpleQueue = queue.SimpleQueue()
        self._opener: threading.Thread | None = None
        self._open_stop = threading.Event()  # ends a pending open's wait for a missing source
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
        self._build_toolbars()
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
        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.eeg_header = self._header("EEG")
        self.eeg_plot = TracePlot("EEG")
        self.ecg_header = self._header("ECG")
        self.ecg_plot = TracePlot("ECG")
        self._rpeaks = pg.ScatterPlotItem(
            size=10, symbol="t1", pen=pg.mkPen("#b00020"), brush=pg.mkBrush("#b00020")
        )
        self._rpeaks.setZValue(20)
        self.ecg_plot.plot.addItem(self._rpeaks)
        for header, plot in ((self.eeg_header, self.eeg_plot), (self.ecg_header, self.ecg_plot)):
            box = QtWidgets.QWidget()
            lay = QtWidgets.QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(2)
            lay.addWidget(header)
            lay.addWidget(plot, 1)
            left.addWidget(box)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 1)
        left.setSizes([700, 250])
        split.addWidget(left)

        right = QtWidgets.QWidget()
        rlay = QtWidgets.QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.setSpacing(2)
        rlay.addWidget(self._header("Estimates"))
        self.estimates = EstimatePanel()
        rlay.addWidget(self.estimates, 1)
        rlay.addWidget(self._header("Messages"))
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

        sb = self.statusBar()
        self.stream_box = QtWidgets.QWidget()
        self.stream_layout = QtWidgets.QHBoxLayout(self.stream_box)
        self.stream_layout.setContentsMargins(0, 0, 0, 0)
        self.stream_layout.setSpacing(0)
        self.stream_chips: dict[str, QtWidgets.QLabel] = {}
        sb.addWidget(self.stream_box, 1)
        self.pipeline_chip = status_chip()
        self.latency_chip = status_chip()
        self.dropped_chip = status_chip()
        self.recording_chip = status_chip()
        for chip in (self.pipeline_chip, self.latency_chip, self.dropped_chip):
            sb.addPermanentWidget(chip)
        sb.addPermanentWidget(self.recording_chip)

    @staticmethod
    def _header(text: str) -> QtWidgets.QLabel:
        lab = QtWidgets.QLabel(text)
        lab.setStyleSheet("QLabel { font-weight: bold; padding: 2px 4px; }")
        lab.setTextFormat(QtCore.Qt.TextFormat.RichText)
        return lab

    def _build_toolbars(self) -> None:
        tb = self.addToolBar("Session")
        tb.setMovable(False)
        self.record_button = QtWidgets.QPushButton("● Start recording")
        self.record_button.setCheckable(True)
        self.record_button.clicked.connect(self._on_record_clicked)
        tb.addWidget(self.record_button)
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" Marker "))
        self.marker_edit = QtWidgets.QLineEdit()
        self.marker_edit.setPlaceholderText("marker text (Enter), or keys 1-9")
        self.marker_edit.setFixedWidth(230)
        self.marker_edit.returnPressed.connect(self._on_marker_clicked)
        tb.addWidget(self.marker_edit)
        self.marker_button = QtWidgets.QPushButton("Insert marker")
        self.marker_button.clicked.connect(self._on_marker_clicked)
        tb.addWidget(self.marker_button)
        tb.addSeparator()
        self.config_button = QtWidgets.QPushButton("Open config…")
        self.config_button.clicked.connect(self._on_config_clicked)
        tb.addWidget(self.config_button)
        tb.addSeparator()
        self.replay_button = QtWidgets.QPushButton("Replay file…")
        self.replay_button.clicked.connect(self._on_replay_clicked)
        tb.addWidget(self.replay_button)
        tb.addWidget(QtWidgets.QLabel(" speed "))
        self.speed_combo = QtWidgets.QComboBox()
        for s in REPLAY_SPEEDS:
            self.speed_combo.addItem(f"{s:g}×", s)
        self.speed_combo.setCurrentIndex(REPLAY_SPEEDS.index(1.0))
        tb.addWidget(self.speed_combo)
        self.live_button = QtWidgets.QPushButton("Back to live")
        self.live_button.clicked.connect(self._on_live_clicked)
        self.live_button.setEnabled(False)
        tb.addWidget(self.live_button)

        self.addToolBarBreak()
        vb = self.addToolBar("View")
        vb.setMovable(False)
        self.pause_button = QtWidgets.QPushButton("❚❚ Pause view")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.set_paused)
        vb.addWidget(self.pause_button)
        vb.addSeparator()
        vb.addWidget(QtWidgets.QLabel(" Span "))
        self.span_spin = QtWidgets.QSpinBox()
        self.span_spin.setRange(2, 30)
        self.span_spin.setValue(int(self.span))
        self.span_spin.setSuffix(" s")
        self.span_spin.valueChanged.connect(self.set_span)
        vb.addWidget(self.span_spin)
        vb.addWidget(QtWidgets.QLabel("  EEG scale "))
        self.eeg_scale = QtWidgets.QComboBox()
        for v in EEG_SCALES_UV:
            self.eeg_scale.addItem(f"{v:g} µV/div", float(v))
        self.eeg_scale.setCurrentIndex(EEG_SCALES_UV.index(100))
        self.eeg_scale.currentIndexChanged.connect(self._on_scale_changed)
        vb.addWidget(self.eeg_scale)
        vb.addWidget(QtWidgets.QLabel("  ECG scale "))
        self.ecg_scale = QtWidgets.QComboBox()
        for v in ECG_SCALES_MV:
            self.ecg_scale.addItem(f"{v:g} mV/div", v * 1000.0)
        self.ecg_scale.setCurrentIndex(ECG_SCALES_MV.index(2.0))
        self.ecg_scale.currentIndexChanged.connect(self._on_scale_changed)
        vb.addWidget(self.ecg_scale)
        vb.addSeparator()
        self.channels_button = QtWidgets.QToolButton()
        self.channels_button.setText("Channels ▾")
        self.channels_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.channels_menu = QtWidgets.QMenu(self)
        self.channels_button.setMenu(self.channels_menu)
        vb.addWidget(self.channels_button)

        self._shortcuts = []
        for k in range(1, 10):
            sc = QtGui.QShortcut(QtGui.QKeySequence(str(k)), self)
            sc.activated.connect(lambda k=k: self.insert_marker(str(k)))
            self._shortcuts.append(sc)

        menu = self.menuBar().addMenu("&File")
        menu.addAction("Open config…", self._on_config_clicked)
        menu.addAction("Replay a recording…", self._on_replay_clicked)
        menu.addSeparator()
        menu.addAction("Quit", QtGui.QKeySequence.StandardKey.Quit, self.close)

    def _build_channel_menu(self) -> None:
        self.channels_menu.clear()
        self.channel_actions: dict[str, QtGui.QAction] = {}
        for plot, name in ((self.eeg_plot, "EEG"), (self.ecg_plot, "ECG")):
            if not plot.labels:
                continue
            self.channels_menu.addSection(name)
            for i, label in enumerate(plot.labels):
                act = self.channels_menu.addAction(label)
                act.setCheckable(True)
                act.setChecked(bool(plot.visible[i]))
                act.toggled.connect(lambda on, p=plot, i=i: self._set_visible(p, i, on))
                self.channel_actions[f"{name}:{label}"] = act
        self.channels_menu.addSeparator()
        self.channels_menu.addAction("Show all", lambda: self._show_all(True))

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
        streams = session.pipeline.streams
        eeg = [s for s in streams if s.role == "eeg"]
        ecg = [s for s in streams if s.role == "ecg"]
        self.eeg_plot.set_streams(eeg)
        self.ecg_plot.set_streams(ecg)
        self._on_scale_changed()
        self.set_span(self.span)
        self._build_channel_menu()
        # what the session's one R-peak detector found (the dashboard runs none of its own)
        self.heart = session.annotator.heart if session.annotator is not None else None
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
        self._build_stream_chips()
        mode = "replay" if session.mode == "replay" else "live"
        where = self._replay_path if mode == "replay" else str(self.cfg.path)
        self.setWindowTitle(f"physio-live · {mode} · {where}")
        self.live_button.setEnabled(mode == "replay")
        self._t_ref = None
        self._dirty = True
        self._autoscale_pending = True
        self._n_errors = 0
        self.stream_states = {}
        self._headers()
        self.message(f"{mode}: {where}; model {model.model_id} on {session.worker.device}")

    def _detach(self) -> None:
        self.session = None
        self.heart = None
        self.eeg_plot.set_streams([])
        self.ecg_plot.set_streams([])
        self.estimates.reset()
        self._build_stream_chips()

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
        return self._reopen(
            lambda: replay_session(cfg, Path(path), float(speed)), f"replay {path} at {speed:g}×"
        )

    def _reopen(self, factory: Callable[[], Session], what: str) -> bool:
        """Close the current session and open another in a thread; the frame timer attaches it."""
        if self._opener is not None and self._opener.is_alive():
            self._open_stop.set()  # e.g. waiting for a stream that never comes: give up on it
            self.message(
                "still opening the previous choice (its wait is cancelled); try again in a moment",
                error=True,
            )
            return False
        self._open_stop = stop = threading.Event()
        old = self.session if self.owns_session else None
        self._detach()
        self.owns_session = True
        self.message(f"opening {what} ...")

        def work() -> None:
            if old is not None:
                try:
                    old.close()
                except Exception as exc:
                    self._opened.put(("msg", f"closing the previous session: {exc}"))
            try:
                session = _ensure_running(
                    factory(), stop, on_wait=lambda msg: self._opened.put(("msg", msg))
                )
                self._opened.put(("ok", session, what))
            except PhysioLiveError as exc:
                self._opened.put(("error", f"{what} failed: {exc}"))
            except Exception as exc:
                self._opened.put(("error", f"{what} failed: {type(exc).__name__}: {exc}"))

        self._opener = threading.Thread(target=work, name="dashboard-open", daemon=True)
        self._opener.start()
        return True

    def _drain_opened(self) -> None:
        while not self._opened.empty():
            item = self._opened.get_nowait()
            if item[0] == "ok":
                if self._closing:
                    item[1].close()
                else:
                    self._attach(item[1])
            else:
                self.message(item[1], error=True)

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
        self.eeg_plot.set_span(self.span)
        self.ecg_plot.set_span(self.span)
        self._dirty = True

    def _on_scale_changed(self, *_: object) -> None:
        self.eeg_plot.set_scale(self.eeg_scale.currentData())
        self.ecg_plot.set_scale(self.ecg_scale.currentData())
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
        bufs = s.pipeline.buffers
        self.eeg_plot.refresh(bufs, t_ref, self.span)
        self.ecg_plot.refresh(bufs, t_ref, self.span)
        marks: list[tuple[float, str]] = []
        for info in s.pipeline.streams:
            if info.role == "markers":
                data, ts = bufs[info.key].read_range(t_ref - max(self.span, 60.0), t_ref + 1.0)
                marks.extend((float(t - t_ref), str(d[0])) for d, t in zip(data, ts, strict=True))
        marks.sort()
        self.eeg_plot.markers.update([m for m in marks if m[0] >= -self.span])
        self.estimates.markers.update(marks)
        self._draw_heart(t_ref)
        # estimates come twice a second and their plot spans a minute: 10 redraws/s are plenty
        now = time.monotonic()
        if self.estimates.count != self._est_drawn or now - self._est_time >= 0.1 or self.paused:
            self._est_drawn, self._est_time = self.estimates.count, now
            self.estimates.refresh(t_ref)

    def _draw_heart(self, t_ref: float) -> None:
        hm = self.heart
        plot = self.ecg_plot
        if hm is None or hm.lead is None or not plot.last_x or len(plot.last_x[0]) < 2:
            self._rpeaks.setData([], [])
            return
        peaks = hm.recent_peaks(t_ref - self.span - 1.0) - t_ref
        peaks = peaks[(peaks >= -self.span) & (peaks <= 0)]
        x, y = plot.last_x[0], plot.last_y[0][hm.lead]
        if not plot.visible[hm.lead] or len(peaks) == 0:
            self._rpeaks.setData([], [])
            return
        idx = np.clip(np.searchsorted(x, peaks), 0, len(x) - 1)
        self._rpeaks.setData(peaks, y[idx] + 0.15)

    def _headers(self) -> None:
        paused = (
            " &nbsp; <span style='color:#b36b00'>PAUSED (acquisition continues)</span>"
            if self.paused
            else ""
        )
        eeg = [i for i in self.eeg_plot.streams]
        desc = ", ".join(f"{i.name}: {i.n_channels} ch @ {i.nominal_srate:g} Hz" for i in eeg)
        self.eeg_header.setText(
            f"EEG &nbsp;<span style='font-weight:normal'>{desc or 'no EEG stream'} · raw, "
            f"mean removed · {self.eeg_scale.currentText()}</span>{paused}"
        )
        hm = self.heart
        hr = ""
        if hm is not None:
            if hm.error:
                hr = f" · <span style='color:#b00020'>{hm.error}</span>"
            elif math.isfinite(hm.hr_bpm):
                rm = f" · RMSSD {hm.rmssd_ms:.0f} ms" if math.isfinite(hm.rmssd_ms) else ""
                hr = f" · <span style='color:#b00020'>♥ {hm.hr_bpm:.0f} bpm</span>{rm}"
            else:
                hr = " · heart rate: learning ..."
        ecg = self.ecg_plot.streams
        desc = ", ".join(f"{i.name}: {i.n_channels} lead(s) @ {i.nominal_srate:g} Hz" for i in ecg)
        self.ecg_header.setText(
            f"ECG &nbsp;<span style='font-weight:normal'>{desc or 'no ECG stream'} · "
            f"{self.ecg_scale.currentText()}{hr}</span>{paused}"
        )

    # ============================================================================ status bar
    def _build_stream_chips(self) -> None:
        for chip in self.stream_chips.values():
            self.stream_layout.removeWidget(chip)
            chip.deleteLater()
        self.stream_chips = {}
        if self.session is None:
            return
        own = f"{self.session.cfg.outlet.name}-markers"
        for info in self.session.pipeline.streams:
            if info.name == own:
                continue
            chip = status_chip(info.name)
            self.stream_layout.addWidget(chip)
            self.stream_chips[info.key] = chip
        self.stream_layout.addStretch(1)

    def _update_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 0.5:
            return
        self._last_status = now
        if (
            self._banner_until
            and now > self._banner_until
            and "lost" not in self.stream_states.values()
        ):
            self.error_banner.setVisible(False)
            self._banner_until = 0.0
        s = self.session
        if s is None or s.worker is None:
            self.pipeline_chip.setText("<i>no session</i>")
            return
        st = s.status()
        for key, chip in self.stream_chips.items():
            stats = s.pipeline.stats[key]
            info = stats.info
            if not info.is_regular:
                chip.setText(f"<b>{info.name}</b> {stats.samples} markers")
                continue
            try:
                last_wall = stats.rate_window[-1][0]
            except IndexError:
                last_wall = None
            if last_wall is None:
                state, colour, rate = "waiting", "#b36b00", 0.0
            elif key in st.lost:  # judged by the session, which also says so in a message
                state, colour, rate = f"lost ({now - st.lost[key]:.0f} s)", "#b00020", 0.0
            elif key in s.pipeline.finished:
                state, colour, rate = "ended", "#808080", 0.0
            else:
                state, colour, rate = "ok", "#2a7f3f", stats.effective_rate
            prev = self.stream_states.get(key)
            short = state.split(" ")[0]
            if prev != short:  # the session logs the loss and the return (and records them)
                self.stream_states[key] = short
            chip.setText(
                f"<b>{info.name}</b> {rate:.0f}/{info.nominal_srate:g} Hz "
                f"<span style='color:{colour}'>● {state}</span>"
            )
            chip.setMinimumWidth(chip.sizeHint().width())  # never clip the state
        self.pipeline_chip.setText(f"{st.elapsed:.0f} s · {st.estimates_per_s:.1f} est/s")
        if s.replay is not None:  # recorded time vs now is not a latency: show the position
            done = s.estimates[-1].t_end - s.replay.t_first if s.estimates else 0.0
            speed = "max" if s.speed is None else f"{s.speed:g}×"
            self.latency_chip.setText(
                f"replay {fmt_clock(done)} / {fmt_clock(s.replay.t_last - s.replay.t_first)}"
                f" · {speed}"
            )
        else:
            self.latency_chip.setText(
                f"latency p50 {_ms(st.latency_p50)} · p99 {_ms(st.latency_p99)}"
            )
        colour = "#b00020" if st.dropped else "#202020"
        self.dropped_chip.setText(f"<span style='color:{colour}'>dropped {st.dropped}</span>")
        if st.recording:
            self.recording_chip.setText(
                f"<span style='color:#b00020'><b>● REC</b></span> {Path(st.recording).name} "
                f"({_fmt_bytes(st.recording_bytes)})"
            )
            self.recording_chip.setToolTip(st.recording)
        else:
            self.recording_chip.setText("<span style='color:#808080'>not recording</span>")
        recording = s.recorder is not None
        if self.record_button.isChecked() != recording:
            self.record_button.setChecked(recording)
        self.record_button.setText("■ Stop recording" if recording else "● Start recording")
        if len(st.errors) < self._n_errors:
            self._n_errors = 0
        for msg in st.errors[self._n_errors :]:
            self.message(msg, error=" is back after " not in msg)
        self._n_errors = len(st.errors)
        self._headers()

    # ============================================================================ closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """Stop the timer, close the session (footers written), wait for a pending open."""
        self._closing = True
        self.timer.stop()
        self._open_stop.set()
        if self._opener is not None:
            self._opener.join(timeout=30.0)
        while not self._opened.empty():
            item = self._opened.get_nowait()
            if item[0] == "ok":
                item[1].close()
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
