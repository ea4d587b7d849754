"""The dashboard's controls: the Session toolbar (record, marker, config, replay, back to live),
the View toolbar (pause, span, scales, channels), the File menu and the marker keys 1-9.

Built on the window the way Qt Designer's ``setupUi`` does: each control becomes an attribute of the
window and is connected to the window's slot for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtGui, QtWidgets

if TYPE_CHECKING:
    from ._dashboard import Dashboard

__all__ = [
    "ECG_SCALES_MV",
    "EEG_SCALES_UV",
    "REPLAY_SPEEDS",
    "build_channel_menu",
    "build_toolbars",
    "show_speed",
]

#: EEG amplitude scales offered, microvolts per channel spacing
EEG_SCALES_UV = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: ECG amplitude scales offered, millivolts per lead spacing
ECG_SCALES_MV = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
REPLAY_SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0)


def build_toolbars(win: Dashboard) -> None:
    """The Session and View toolbars, the File menu and the marker keys 1-9 of ``win``: its
    controls are created as its attributes and connected to its slots (Qt's ``setupUi``)."""
    tb = win.addToolBar("Session")
    tb.setMovable(False)
    win.record_button = QtWidgets.QPushButton("● Start recording")
    win.record_button.setCheckable(True)
    win.record_button.clicked.connect(win._on_record_clicked)
    tb.addWidget(win.record_button)
    tb.addSeparator()
    tb.addWidget(QtWidgets.QLabel(" Marker "))
    win.marker_edit = QtWidgets.QLineEdit()
    win.marker_edit.setPlaceholderText("marker text (Enter), or keys 1-9")
    win.marker_edit.setFixedWidth(230)
    win.marker_edit.returnPressed.connect(win._on_marker_clicked)
    tb.addWidget(win.marker_edit)
    win.marker_button = QtWidgets.QPushButton("Insert marker")
    win.marker_button.clicked.connect(win._on_marker_clicked)
    tb.addWidget(win.marker_button)
    tb.addSeparator()
    win.config_button = QtWidgets.QPushButton("Open config…")
    win.config_button.clicked.connect(win._on_config_clicked)
    tb.addWidget(win.config_button)
    tb.addSeparator()
    win.replay_button = QtWidgets.QPushButton("Replay file…")
    win.replay_button.clicked.connect(win._on_replay_clicked)
    tb.addWidget(win.replay_button)
    tb.addWidget(QtWidgets.QLabel(" speed "))
    win.speed_combo = QtWidgets.QComboBox()
    for s in REPLAY_SPEEDS:
        win.speed_combo.addItem(f"{s:g}×", s)
    win.speed_combo.setCurrentIndex(REPLAY_SPEEDS.index(1.0))
    win.speed_combo.setToolTip(
        "Replay speed: changes a running replay from where it is, and is the speed of the next "
        "file opened with 'Replay file…'"
    )
    win.speed_combo.currentIndexChanged.connect(win._on_speed_changed)
    tb.addWidget(win.speed_combo)
    win.live_button = QtWidgets.QPushButton("Back to live")
    win.live_button.clicked.connect(win._on_live_clicked)
    win.live_button.setEnabled(False)
    tb.addWidget(win.live_button)

    win.addToolBarBreak()
    vb = win.addToolBar("View")
    vb.setMovable(False)
    win.pause_button = QtWidgets.QPushButton("❚❚ Pause view")
    win.pause_button.setCheckable(True)
    win.pause_button.toggled.connect(win.set_paused)
    vb.addWidget(win.pause_button)
    vb.addSeparator()
    vb.addWidget(QtWidgets.QLabel(" Span "))
    win.span_spin = QtWidgets.QSpinBox()
    win.span_spin.setRange(2, 30)
    win.span_spin.setValue(int(win.span))
    win.span_spin.setSuffix(" s")
    win.span_spin.valueChanged.connect(win.set_span)
    vb.addWidget(win.span_spin)
    vb.addWidget(QtWidgets.QLabel("  EEG scale "))
    win.eeg_scale = QtWidgets.QComboBox()
    for v in EEG_SCALES_UV:
        win.eeg_scale.addItem(f"{v:g} µV/div", float(v))
    win.eeg_scale.setCurrentIndex(EEG_SCALES_UV.index(100))
    win.eeg_scale.currentIndexChanged.connect(win._on_scale_changed)
    vb.addWidget(win.eeg_scale)
    vb.addWidget(QtWidgets.QLabel("  ECG scale "))
    win.ecg_scale = QtWidgets.QComboBox()
    for v in ECG_SCALES_MV:
        win.ecg_scale.addItem(f"{v:g} mV/div", v * 1000.0)
    win.ecg_scale.setCurrentIndex(ECG_SCALES_MV.index(2.0))
    win.ecg_scale.currentIndexChanged.connect(win._on_scale_changed)
    vb.addWidget(win.ecg_scale)
    vb.addSeparator()
    win.channels_button = QtWidgets.QToolButton()
    win.channels_button.setText("Channels ▾")
    win.channels_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
    win.channels_menu = QtWidgets.QMenu(win)
    win.channels_button.setMenu(win.channels_menu)
    vb.addWidget(win.channels_button)

    win._shortcuts = []
    for k in range(1, 10):
        sc = QtGui.QShortcut(QtGui.QKeySequence(str(k)), win)
        sc.activated.connect(lambda k=k: win.insert_marker(str(k)))
        win._shortcuts.append(sc)

    menu = win.menuBar().addMenu("&File")
    menu.addAction("Open config…", win._on_config_clicked)
    menu.addAction("Replay a recording…", win._on_replay_clicked)
    menu.addSeparator()
    menu.addAction("Quit", QtGui.QKeySequence.StandardKey.Quit, win.close)


def show_speed(combo: QtWidgets.QComboBox, speed: float) -> None:
    """Select ``speed`` in the replay-speed box (added in order if it is not offered), without
    emitting its change signal."""
    at = next((i for i in range(combo.count()) if combo.itemData(i) == speed), None)
    if at is None:
        at = next((i for i in range(combo.count()) if combo.itemData(i) > speed), combo.count())
        combo.insertItem(at, f"{speed:g}×", speed)
    was = combo.blockSignals(True)
    combo.setCurrentIndex(at)
    combo.blockSignals(was)


def build_channel_menu(win: Dashboard) -> None:
    """The Channels menu of ``win``: one checkable entry per channel of its traces."""
    win.channels_menu.clear()
    win.channel_actions = {}
    for plot, name in ((win.eeg_plot, "EEG"), (win.ecg_plot, "ECG")):
        if not plot.labels:
            continue
        win.channels_menu.addSection(name)
        for i, label in enumerate(plot.labels):
            act = win.channels_menu.addAction(label)
            act.setCheckable(True)
            act.setChecked(bool(plot.visible[i]))
            act.toggled.connect(lambda on, p=plot, i=i: win._set_visible(p, i, on))
            win.channel_actions[f"{name}:{label}"] = act
    win.channels_menu.addSeparator()
    win.channels_menu.addAction("Show all", lambda: win._show_all(True))
