"""Dashboard building blocks: the estimates panel, marker lines, plot styling and headers.

The estimates panel only *reads* the estimates that the window hands over from the worker thread
(the traces are ``_dashboard_traces``).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from physio_live.core import Estimate

from ._format import fmt_clock

__all__ = [
    "EstimatePanel",
    "MarkerLines",
    "configure_pyqtgraph",
    "header_label",
    "style_plot",
]

#: colours of the estimate targets (valence, arousal, dominance, ...)
TARGET_COLOURS = ("#d1495b", "#00798c", "#edae49", "#30638e", "#6a4c93")
GREY = "#9a9a9a"


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options: light theme, no antialiasing (speed), no OpenGL (offscreen)."""
    pg.setConfigOptions(antialias=False, background="w", foreground="#202020", useOpenGL=False)


def style_plot(plot: pg.PlotItem) -> None:
    """Fixed ranges, no mouse interaction, no context menu: the controls drive the view."""
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.disableAutoRange()
    plot.showGrid(x=True, y=False, alpha=0.25)
    for name in ("left", "bottom"):
        ax = plot.getAxis(name)
        ax.setTextPen("#202020")
        ax.setPen("#808080")
        # axes change only with the span, scale or channel set: repaint them from a pixmap
        ax.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)


class MarkerLines:
    """A fixed pool of vertical lines with labels for the markers inside the view."""

    def __init__(self, plot: pg.PlotItem, size: int = 12, show_labels: bool = True):
        self.lines: list[pg.InfiniteLine] = []
        for _ in range(size):
            line = pg.InfiniteLine(
                angle=90,
                movable=False,
                pen=pg.mkPen("#c0392b", width=1, style=QtCore.Qt.PenStyle.DashLine),
                label="" if show_labels else None,
                labelOpts={
                    "position": 0.97,
                    "color": "#c0392b",
                    "fill": pg.mkBrush(255, 255, 255, 220),
                    "anchors": [(0, 0), (0, 0)],
                }
                if show_labels
                else None,
            )
            line.setVisible(False)
            line.setZValue(10)
            plot.addItem(line, ignoreBounds=True)
            self.lines.append(line)
        self._shown: list[tuple[float, str]] = []

    def update(self, markers: list[tuple[float, str]]) -> None:
        """Show ``(x, text)`` pairs (the newest ones when there are more than lines)."""
        markers = markers[-len(self.lines) :]
        if markers == self._shown:
            return
        self._shown = markers
        for i, line in enumerate(self.lines):
            if i < len(markers):
                x, text = markers[i]
                line.setValue(x)
                label = getattr(line, "label", None)
                if label is not None and label.format != text:
                    label.setFormat(text)
                line.setVisible(True)
            else:
                line.setVisible(False)


class EstimatePanel(QtWidgets.QWidget):
    """The model's targets over time (P(mental arithmetic), or valence / arousal / dominance ...),
    quality, and for models with valence and arousal targets the valence-arousal plane with a trail.

    Estimates are appended from the GUI thread (the window drains them from the worker's queue);
    they live in preallocated arrays that are compacted when full, so views stay chronological.
    """

    def __init__(
        self,
        *,
        capacity: int = 2048,
        history_s: float = 60.0,
        trail: int = 12,
        parent: QtWidgets.QWidget | None = None,
    ):
        super().__init__(parent)
        self.capacity = capacity
        self.history_s = history_s
        self.trail = trail
        self.targets: tuple[str, ...] = ()
        self.replay_start: float | None = None  # set for a replay: show positions, not latency
        self._t = np.zeros(capacity, np.float64)
        self._p = np.zeros((0, capacity), np.float64)
        self._ok = np.zeros(capacity, bool)
        self._xbuf = np.zeros(capacity, np.float64)
        self.n = 0
        self.count = 0  # estimates received since the last reset
        self.latest: Estimate | None = None
        self._shown: Estimate | None = None

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.banner = QtWidgets.QLabel(
            "UNTRAINED MODEL: random weights; the estimates mean nothing. "
            "Load a fine-tuned checkpoint (model.checkpoint) for real estimates."
        )
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel { background: #b00020; color: white; font-weight: bold; padding: 6px; "
            "border-radius: 3px; }"
        )
        self.banner.setVisible(False)
        layout.addWidget(self.banner)

        self.values_row = QtWidgets.QHBoxLayout()
        self.value_labels: list[QtWidgets.QLabel] = []
        layout.addLayout(self.values_row)
        self.quality_label = QtWidgets.QLabel("waiting for the first estimate ...")
        self.quality_label.setWordWrap(True)
        layout.addWidget(self.quality_label)

        self.time_plot = pg.PlotWidget()
        tp = self.time_plot.getPlotItem()
        style_plot(tp)
        tp.showGrid(x=True, y=True, alpha=0.25)
        tp.setYRange(0.0, 1.0, padding=0.02)
        tp.setXRange(-history_s, 0.0, padding=0)
        tp.setLabel("left", "P(high)")
        tp.setLabel("bottom", "time (s)")
        tp.getAxis("left").setWidth(44)
        self.legend = tp.addLegend(
            offset=(4, 4), labelTextColor="#202020", brush=(255, 255, 255, 200)
        )
        self.curves: list[pg.PlotDataItem] = []
        self.gated = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(GREY))
        tp.addItem(self.gated)
        self.markers = MarkerLines(tp, size=8, show_labels=False)
        layout.addWidget(self.time_plot, 3)

        self.plane = pg.PlotWidget()
        pp = self.plane.getPlotItem()
        style_plot(pp)
        pp.showGrid(x=False, y=False)
        pp.setXRange(0.0, 1.0, padding=0.03)
        pp.setYRange(0.0, 1.0, padding=0.03)
        pp.getAxis("left").setWidth(44)
        for v in (0.5,):
            pp.addItem(pg.InfiniteLine(v, angle=90, pen=pg.mkPen("#b0b0b0")))
            pp.addItem(pg.InfiniteLine(v, angle=0, pen=pg.mkPen("#b0b0b0")))
        for text, x, y, anchor in (
            ("high arousal\nnegative", 0.02, 0.98, (0, 0)),
            ("high arousal\npositive", 0.98, 0.98, (1, 0)),
            ("low arousal\nnegative", 0.02, 0.02, (0, 1)),
            ("low arousal\npositive", 0.98, 0.02, (1, 1)),
        ):
            item = pg.TextItem(text, color="#c0c0c0", anchor=anchor)
            item.setZValue(-10)
            item.setPos(x, y)
            pp.addItem(item)
        self.trail_curve = pg.PlotDataItem(
            pen=pg.mkPen("#30638e", width=1.5),
            symbol="o",
            symbolSize=5,
            symbolBrush=pg.mkBrush("#30638e80"),
            symbolPen=None,
        )
        pp.addItem(self.trail_curve)
        self.current = pg.ScatterPlotItem(size=16, pen=pg.mkPen("k", width=1.5))
        pp.addItem(self.current)
        self._plane_axes: tuple[int, int] | None = None
        self.plane.setVisible(False)
        layout.addWidget(self.plane, 3)

    # -- set-up --------------------------------------------------------------------------------
    def set_model(
        self,
        targets: tuple[str, ...],
        untrained: bool,
        model_id: str,
        replay_start: float | None = None,
    ) -> None:
        """Build labels and curves for the model's targets; show the banner for random weights.

        ``replay_start`` (the recording's first timestamp) marks a replay: an estimate then shows
        where in the recording its window ends, not a latency (emission wall time minus recorded
        time means nothing there)."""
        self.targets = tuple(targets)
        self.replay_start = replay_start
        self.banner.setVisible(bool(untrained))
        self.banner.setToolTip(f"model {model_id}")
        while self.values_row.count():
            w = self.values_row.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.value_labels = []
        for i, name in enumerate(self.targets):
            lab = QtWidgets.QLabel(f"{name}\n-")
            lab.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            lab.setMinimumWidth(90)
            self.values_row.addWidget(lab)
            self.value_labels.append(lab)
            self._style_value(i, None, gated=True)
        tp = self.time_plot.getPlotItem()
        for c in self.curves:
            tp.removeItem(c)
            self.legend.removeItem(c)
        self.curves = []
        for i, name in enumerate(self.targets):
            curve = pg.PlotDataItem(
                pen=pg.mkPen(TARGET_COLOURS[i % len(TARGET_COLOURS)], width=2),
                connect="finite",
                name=name,
            )
            tp.addItem(curve)
            self.curves.append(curve)
        self._p = np.zeros((len(self.targets), self.capacity), np.float64)
        lower = [t.lower() for t in self.targets]
        # the valence-arousal plane only for a model that has both (an eegmat model has one
        # target, P(mental arithmetic): its panel is the time course alone)
        if "valence" in lower and "arousal" in lower:
            vi, ai = lower.index("valence"), lower.index("arousal")
            self._plane_axes = (vi, ai)
            pp = self.plane.getPlotItem()
            pp.setLabel("bottom", self.targets[vi])
            pp.setLabel("left", self.targets[ai])
        else:
            self._plane_axes = None
        self.plane.setVisible(self._plane_axes is not None)
        affect = {"valence", "arousal", "dominance", "liking"}
        what = "P(high)" if set(lower) <= affect else "P(" + " / ".join(self.targets) + ")"
        self.time_plot.getPlotItem().setLabel("left", what if self.targets else "P")
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.count = 0
        self.latest = None
        self._shown = None
        self.trail_curve.setData([], [])
        self.current.setData([], [])
        self.gated.setData([], [])
        for c in self.curves:
            c.setData([], [])
        self.quality_label.setText("waiting for the first estimate ...")

    def _style_value(self, i: int, value: float | None, gated: bool) -> None:
        colour = GREY if gated else TARGET_COLOURS[i % len(TARGET_COLOURS)]
        text = "-" if value is None or not math.isfinite(value) else f"{value:.2f}"
        self.value_labels[i].setText(f"{self.targets[i]}\n{text}")
        self.value_labels[i].setStyleSheet(
            f"QLabel {{ color: {colour}; font-size: 15pt; font-weight: bold; "
            f"font-style: {'italic' if gated else 'normal'}; }}"
        )

    # -- data ------------------------------------------------------------------------------------
    def add(self, est: Estimate) -> None:
        """Store one estimate (GUI thread)."""
        if len(est.probabilities) != self._p.shape[0]:
            return
        if self.n == self.capacity:  # compact: keep the newest half
            half = self.capacity // 2
            self._t[:half] = self._t[self.n - half : self.n]
            self._p[:, :half] = self._p[:, self.n - half : self.n]
            self._ok[:half] = self._ok[self.n - half : self.n]
            self.n = half
        i = self.n
        self._t[i] = est.t_end
        self._p[:, i] = np.nan if est.withheld else est.probabilities
        self._ok[i] = (not est.withheld) and est.quality.ok
        self.n += 1
        self.count += 1
        self.latest = est

    def refresh(self, t_ref: float) -> None:
        """Redraw the curves (x relative to ``t_ref``), the plane and the current values."""
        n = self.n
        if n == 0:
            return
        t = self._t[:n]
        start = int(np.searchsorted(t, t_ref - self.history_s - 1.0))
        x = self._xbuf[start:n]
        np.subtract(t[start:], t_ref, out=x)
        p = self._p[:, start:n]
        ok = self._ok[start:n]
        any_finite = bool(np.isfinite(p).any())  # all withheld: draw nothing (no NaN bounds)
        for i, c in enumerate(self.curves):
            if any_finite:
                c.setData(x, p[i])
            else:
                c.setData([], [])
        bad = ~ok
        if bad.any():  # gated but not withheld (withheld ones are NaN: nothing to draw)
            xs = np.repeat(x[bad], len(self.curves))
            ys = p[:, bad].T.ravel()
            fin = np.isfinite(ys)
            self.gated.setData(xs[fin], ys[fin])
        else:
            self.gated.setData([], [])
        if self._plane_axes is not None:
            vi, ai = self._plane_axes
            k0 = max(n - self.trail, 0)
            tx, ty = self._p[vi, k0:n], self._p[ai, k0:n]
            fin = np.isfinite(tx) & np.isfinite(ty)  # withheld estimates leave the trail
            self.trail_curve.setData(tx[fin], ty[fin])
        est = self.latest
        if est is None or est is self._shown:
            return
        self._shown = est
        gated = est.withheld or not est.quality.ok
        if est.withheld or self._plane_axes is None:
            self.current.setData([], [])
        else:
            vi, ai = self._plane_axes
            brush = pg.mkBrush(GREY if gated else "#d1495b")
            self.current.setData([self._p[vi, n - 1]], [self._p[ai, n - 1]], brush=brush)
        for i in range(len(self.targets)):
            v = None if est.withheld else est.probabilities[i]
            self._style_value(i, v, gated)
        q = est.quality.summary()
        if est.withheld:
            self.quality_label.setText(f"withheld: {est.reason or q}")
            self.quality_label.setStyleSheet("QLabel { color: #b00020; }")
        elif not est.quality.ok:
            self.quality_label.setText(f"quality: {q} (estimate shown grey)")
            self.quality_label.setStyleSheet("QLabel { color: #b36b00; }")
        else:
            if self.replay_start is None:
                when = f"latency {est.latency * 1000:.0f} ms"
            else:
                when = f"{fmt_clock(est.t_end - self.replay_start)} into the recording"
            note = f" · {est.reason}" if est.reason else ""
            self.quality_label.setText(f"quality: ok · {when} · window {est.window_index}{note}")
            self.quality_label.setStyleSheet("QLabel { color: #2a7f3f; }")


def header_label(text: str) -> QtWidgets.QLabel:
    """A bold header line above a plot or panel (rich text)."""
    lab = QtWidgets.QLabel(text)
    lab.setStyleSheet("QLabel { font-weight: bold; padding: 2px 4px; }")
    lab.setTextFormat(QtCore.Qt.TextFormat.RichText)
    return lab
