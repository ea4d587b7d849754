"""The dashboard's traces: EEG above ECG, each under a header, markers and R peaks drawn over them.

The view reads the pipeline's ring buffers (thread-safe slices) for the raw traces and marker
streams, and the session's :class:`~physio_live.app._annotate.HeartMonitor` for R peaks and heart
rate: it computes no readout of its own. Display arrays are preallocated once per stream layout and
reused every frame; pyqtgraph then draws them with peak downsampling and clip-to-view.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from physio_live.core import Pipeline, RingBuffer, StreamInfo, unit_scale_uv

from ._annotate import HeartMonitor
from ._dashboard_widgets import MarkerLines, header_label, style_plot

__all__ = ["CHANNEL_COLOURS", "TracePlot", "TraceView"]

#: colours of the channels (cycled), readable on a white background
CHANNEL_COLOURS = (
    "#1f4e8c",
    "#2a7f3f",
    "#8c2d1f",
    "#6b3d9a",
    "#b8860b",
    "#00707a",
    "#a0306e",
    "#4b4b4b",
)


class TracePlot(pg.PlotWidget):
    """Channels of one or more streams stacked in one plot: offset, labelled, peak-decimated.

    ``scale`` is how many microvolts one channel spacing spans; each channel's mean over the view is
    removed so DC offsets of raw amplifier data do not push traces out of their lane. X is seconds
    relative to ``t_ref`` (0 = the newest sample).

    Speed (64 channels at 1000 Hz in 10 s = 640 k samples a frame): only the span in view is read
    from the ring buffer (clip to view); every channel is peak-decimated at once in NumPy to a
    min/max pair per pixel column (what pyqtgraph's ``peak`` mode does, but for all channels in one
    reduction); channels that share a colour are drawn as one curve whose ``connect`` array breaks
    the line between channels, so a frame costs a handful of ``setData``/``drawPath`` calls instead
    of one per channel. Work arrays are preallocated per layout and reused.
    """

    N_COLOURS = len(CHANNEL_COLOURS)

    def __init__(
        self, title: str, *, max_seconds: float = 30.0, parent: QtWidgets.QWidget | None = None
    ):
        super().__init__(parent=parent)
        self.max_seconds = max_seconds
        self.plot: pg.PlotItem = self.getPlotItem()
        style_plot(self.plot)
        self.plot.setLabel("bottom", "time (s)")
        self.plot.getAxis("left").setWidth(56)
        self.title = title
        self.streams: list[StreamInfo] = []
        self.labels: list[str] = []
        self.visible = np.zeros(0, bool)
        self._slices: list[tuple[str, int, int]] = []  # stream key, first channel, n channels
        self._to_uv = np.zeros(0, np.float32)
        self._gain = np.zeros(0, np.float32)
        self._offset = np.zeros(0, np.float32)
        self.scale_uv = 100.0
        #: one curve per colour; each draws the visible channels of its colour
        self.curves: list[pg.PlotCurveItem] = []
        for colour in CHANNEL_COLOURS:
            curve = pg.PlotCurveItem(pen=pg.mkPen(colour, width=1), skipFiniteCheck=True)
            self.plot.addItem(curve)
            self.curves.append(curve)
        self._groups: list[np.ndarray] = []  # channel indices per colour (visible only)
        self._gx: list[np.ndarray] = []  # per colour: concatenated x of its channels
        self._gy: list[np.ndarray] = []
        self._dec: list[np.ndarray] = []  # per stream: [2 * max_bins, n_ch] decimated y
        self._decx: list[np.ndarray] = []  # per stream: [2 * max_bins] decimated x
        self._max_bins = 2048
        self.markers = MarkerLines(self.plot)
        self.last_x: list[np.ndarray] = []  # per stream: what was drawn, for overlays
        self.last_y: list[np.ndarray] = []

    def set_streams(self, streams: list[StreamInfo]) -> None:
        """Lay out the channels of ``streams`` and preallocate the work arrays."""
        self.streams = list(streams)
        self.labels, self._slices, self._dec, self._decx = [], [], [], []
        to_uv: list[float] = []
        k = 0
        for info in self.streams:
            self._slices.append((info.key, k, info.n_channels))
            self._dec.append(np.zeros((2 * self._max_bins, info.n_channels), np.float32))
            self._decx.append(np.zeros(2 * self._max_bins, np.float64))
            for c, label in enumerate(info.channel_labels):
                unit = info.channel_units[c] if c < len(info.channel_units) else "uV"
                to_uv.append(unit_scale_uv(unit or "uV", 1.0) or 1.0)
                self.labels.append(label)
                k += 1
        self._to_uv = np.asarray(to_uv, np.float32)
        self.visible = np.ones(k, bool)
        per_group = -(-k // self.N_COLOURS)  # channels per colour, rounded up
        size = per_group * (2 * self._max_bins + 1)
        self._gx = [np.zeros(size, np.float64) for _ in range(self.N_COLOURS)]
        self._gy = [np.zeros(size, np.float32) for _ in range(self.N_COLOURS)]
        self.last_x = [x[:0] for x in self._decx]
        self.last_y = [y[:0].T for y in self._dec]
        for curve in self.curves:
            curve.setData([], [])
        self._layout()

    def set_scale(self, scale_uv: float) -> None:
        """Microvolts per channel spacing."""
        self.scale_uv = float(scale_uv)
        self._layout()

    def set_channel_visible(self, index: int, visible: bool) -> None:
        self.visible[index] = visible
        self._layout()

    def channel_colour(self, index: int) -> str:
        return CHANNEL_COLOURS[index % self.N_COLOURS]

    def _layout(self) -> None:
        """Offsets (visible channels packed, first on top), gains, colour groups, axis labels."""
        n = len(self.labels)
        order = np.cumsum(self.visible[::-1])[::-1] - 1  # top channel gets the largest offset
        self._offset = np.where(self.visible, order, -10).astype(np.float32)
        self._gain = (self._to_uv / self.scale_uv).astype(np.float32)
        idx = np.arange(n)
        self._groups = [
            idx[(idx % self.N_COLOURS == g) & self.visible] for g in range(self.N_COLOURS)
        ]
        n_vis = int(self.visible.sum())
        ticks = [(float(self._offset[i]), self.labels[i]) for i in range(n) if self.visible[i]]
        self.plot.getAxis("left").setTicks([ticks, []])
        self.plot.setYRange(-0.8, max(n_vis, 1) - 0.2, padding=0)

    def set_span(self, span: float) -> None:
        self.plot.setXRange(-span, 0.0, padding=0)

    def _decimate(self, s: int, data: np.ndarray, ts: np.ndarray, t_ref: float) -> int:
        """Peak-decimate stream ``s`` into its work arrays; returns the points per channel."""
        n = len(ts)
        bins = int(min(max(self.plot.vb.width(), 200), self._max_bins))
        y, x = self._dec[s], self._decx[s]
        if n <= 2 * bins:  # few samples: draw them all
            y[:n] = data
            np.subtract(ts, t_ref, out=x[:n])
            return n
        k = -(-n // bins)  # samples per bin, rounded up: at most k - 1 oldest samples left out
        bins = n // k
        m = bins * k
        block = data[n - m :].reshape(bins, k, -1)  # [bins, k, channels]
        lo, hi = y[0 : 2 * bins : 2], y[1 : 2 * bins : 2]  # [bins, channels], rows contiguous
        lo[...] = block[:, 0]
        hi[...] = block[:, 0]
        for j in range(1, k):  # k elementwise passes beat a reduction over a short middle axis
            np.minimum(lo, block[:, j], out=lo)
            np.maximum(hi, block[:, j], out=hi)
        t = ts[n - m :]
        np.subtract(t[0::k], t_ref, out=x[0 : 2 * bins : 2])
        np.subtract(t[k - 1 :: k], t_ref, out=x[1 : 2 * bins : 2])
        return 2 * bins

    def refresh(self, buffers: dict[str, RingBuffer], t_ref: float, span: float) -> None:
        """Draw the last ``span`` seconds up to ``t_ref`` (LSL clock) from the ring buffers."""
        xs, ys = [], []  # per channel: views of the decimated x and y
        for s, (key, k0, n_ch) in enumerate(self._slices):
            buf = buffers.get(key)
            data, ts = buf.read_range(t_ref - span, t_ref) if buf is not None else (None, ())
            p = self._decimate(s, data, ts, t_ref) if len(ts) else 0
            x = self._decx[s][:p]
            y = self._dec[s][:p]  # [points, channels]
            if p:
                mean = y.mean(axis=0)
                bad = ~np.isfinite(mean)
                if bad.any():  # NaN/inf: centre on the finite values, draw gaps at baseline
                    cols = y[:, bad]
                    fin = np.isfinite(cols)
                    mean[bad] = np.where(fin, cols, 0).sum(0) / np.maximum(fin.sum(0), 1)
                    cols[~fin] = np.broadcast_to(mean[bad], cols.shape)[~fin]
                    y[:, bad] = cols
                y -= mean
                y *= self._gain[k0 : k0 + n_ch]
                y += self._offset[k0 : k0 + n_ch]
            self.last_x[s], self.last_y[s] = x, y.T
            xs.extend([x] * n_ch)
            ys.extend(y.T)
        for g, chans in enumerate(self._groups):
            chans = [c for c in chans if len(xs[c]) > 1] if len(xs) else []
            if not chans:
                self.curves[g].setData([], [])
                continue
            # channels one after the other, a NaN between them: pyqtgraph's 'finite' path then
            # draws each channel as one polygon and never joins two channels
            total = sum(len(xs[c]) + 1 for c in chans)
            gx, gy = self._gx[g][:total], self._gy[g][:total]
            i = 0
            for c in chans:
                p = len(xs[c])
                gx[i : i + p] = xs[c]
                gy[i : i + p] = ys[c]
                gy[i + p] = np.nan
                gx[i + p] = xs[c][-1]
                i += p + 1
            self.curves[g].setData(gx, gy, connect="finite", skipFiniteCheck=True)

    def channel_points(self, index: int) -> int:
        """How many points channel ``index`` drew in the last frame (0 when hidden)."""
        if not self.visible[index]:
            return 0
        for s, (_, k0, n_ch) in enumerate(self._slices):
            if k0 <= index < k0 + n_ch:
                return int(self.last_x[s].shape[0])
        return 0

    def typical_range_uv(
        self, buffers: dict[str, RingBuffer], seconds: float = 2.0
    ) -> float | None:
        """Median over channels of the 1-99 % range of the last ``seconds`` (None: too little data).

        Used once per session to pick a starting amplitude scale.
        """
        ranges = []
        for key, k0, n_ch in self._slices:
            buf = buffers.get(key)
            if buf is None:
                continue
            data, ts = buf.read_seconds(seconds)
            if len(ts) < 16 or ts[-1] - ts[0] < 0.8 * seconds:
                return None
            lo, hi = np.nanpercentile(data, [1, 99], axis=0)
            ranges.extend(((hi - lo) * self._to_uv[k0 : k0 + n_ch]).tolist())
        finite = [r for r in ranges if math.isfinite(r) and r > 0]
        return float(np.median(finite)) if finite else None


class TraceView(QtWidgets.QSplitter):
    """EEG and ECG trace plots of one session, stacked (GUI thread only)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(QtCore.Qt.Orientation.Vertical, parent)
        self.eeg_header = header_label("EEG")
        self.eeg_plot = TracePlot("EEG")
        self.ecg_header = header_label("ECG")
        self.ecg_plot = TracePlot("ECG")
        #: the R peaks the session's heart monitor found, on the lead it follows
        self.rpeaks = pg.ScatterPlotItem(
            size=10, symbol="t1", pen=pg.mkPen("#b00020"), brush=pg.mkBrush("#b00020")
        )
        self.rpeaks.setZValue(20)
        self.ecg_plot.plot.addItem(self.rpeaks)
        #: the session's heart monitor (None: no ECG stream fit for R-peak detection)
        self.heart: HeartMonitor | None = None
        for header, plot in ((self.eeg_header, self.eeg_plot), (self.ecg_header, self.ecg_plot)):
            box = QtWidgets.QWidget()
            lay = QtWidgets.QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(2)
            lay.addWidget(header)
            lay.addWidget(plot, 1)
            self.addWidget(box)
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 1)
        self.setSizes([700, 250])

    def set_streams(self, streams: list[StreamInfo], heart: HeartMonitor | None) -> None:
        """Show the EEG and ECG ones of ``streams`` (none: empty plots) and ``heart``'s beats."""
        self.eeg_plot.set_streams([s for s in streams if s.role == "eeg"])
        self.ecg_plot.set_streams([s for s in streams if s.role == "ecg"])
        self.heart = heart

    def set_span(self, span: float) -> None:
        """Seconds shown."""
        self.eeg_plot.set_span(span)
        self.ecg_plot.set_span(span)

    def set_scales(self, eeg_uv: float, ecg_uv: float) -> None:
        """Microvolts per channel spacing, EEG and ECG."""
        self.eeg_plot.set_scale(eeg_uv)
        self.ecg_plot.set_scale(ecg_uv)

    def draw(self, pipeline: Pipeline, t_ref: float, span: float) -> list[tuple[float, str]]:
        """Redraw traces, markers and R peaks up to ``t_ref``; returns the markers of the last
        minute ``(seconds relative to t_ref, text)``, oldest first, for the estimates panel."""
        bufs = pipeline.buffers
        self.eeg_plot.refresh(bufs, t_ref, span)
        self.ecg_plot.refresh(bufs, t_ref, span)
        marks: list[tuple[float, str]] = []
        for info in pipeline.streams:
            if info.role == "markers":
                data, ts = bufs[info.key].read_range(t_ref - max(span, 60.0), t_ref + 1.0)
                marks.extend((float(t - t_ref), str(d[0])) for d, t in zip(data, ts, strict=True))
        marks.sort()
        self.eeg_plot.markers.update([m for m in marks if m[0] >= -span])
        self._draw_heart(t_ref, span)
        return marks

    def _draw_heart(self, t_ref: float, span: float) -> None:
        hm = self.heart
        plot = self.ecg_plot
        if hm is None or hm.lead is None or not plot.last_x or len(plot.last_x[0]) < 2:
            self.rpeaks.setData([], [])
            return
        peaks = hm.recent_peaks(t_ref - span - 1.0) - t_ref
        peaks = peaks[(peaks >= -span) & (peaks <= 0)]
        x, y = plot.last_x[0], plot.last_y[0][hm.lead]
        if not plot.visible[hm.lead] or len(peaks) == 0:
            self.rpeaks.setData([], [])
            return
        idx = np.clip(np.searchsorted(x, peaks), 0, len(x) - 1)
        self.rpeaks.setData(peaks, y[idx] + 0.15)

    def set_headers(self, *, paused: bool, eeg_scale: str, ecg_scale: str) -> None:
        """The headers: streams, scale, heart rate (or why there is none), paused or not."""
        note = (
            " &nbsp; <span style='color:#b36b00'>PAUSED (acquisition continues)</span>"
            if paused
            else ""
        )
        eeg = self.eeg_plot.streams
        desc = ", ".join(f"{i.name}: {i.n_channels} ch @ {i.nominal_srate:g} Hz" for i in eeg)
        self.eeg_header.setText(
            f"EEG &nbsp;<span style='font-weight:normal'>{desc or 'no EEG stream'} · raw, "
            f"mean removed · {eeg_scale}</span>{note}"
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
            f"{ecg_scale}{hr}</span>{note}"
        )
