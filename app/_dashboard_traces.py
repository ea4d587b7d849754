"""The dashboard's traces: EEG above ECG, each under a header, markers and R peaks drawn over them.

The view reads the pipeline's ring buffers (thread-safe slices) for the raw traces and marker
streams, and the session's :class:`~physio_live.app._annotate.HeartMonitor` for R peaks and heart
rate: it computes nothing of its own.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from physio_live.core import Pipeline, StreamInfo

from ._annotate import HeartMonitor
from ._dashboard_widgets import TracePlot, header_label

__all__ = ["TraceView"]


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
