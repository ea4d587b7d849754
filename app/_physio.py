"""Physiological readouts and the quality gate, computed beside the pipeline (never on the GUI).

- Heart: a :class:`~physio_live.core.StreamingRPeakDetector` follows the first ECG stream chunk by
  chunk (a chunk listener), a :class:`~physio_live.core.HeartRateTracker` turns its beats into
  heart rate and RMSSD at each window's end.
- EEG: band powers of each window (Welch, delta..gamma, mean over channels, uV^2) and frontal
  alpha asymmetry from the channel labels.
- Gate: a window's channels are bad when the aligner flagged them (NaN, flat, saturated) or the
  raw-signal check does (clipping, line noise, amplitude out of range; judged on the raw samples
  of the window's span, before the notch). Too many bad channels, or too much of the window in
  timestamp gaps, withholds the estimate; otherwise the reasons travel with it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace

import numpy as np

from physio_live.core import (
    BANDS,
    Chunk,
    Config,
    HeartRateTracker,
    Pipeline,
    QualityThresholds,
    StreamInfo,
    StreamingRPeakDetector,
    Window,
    assess_window_quality,
    band_powers,
    frontal_alpha_asymmetry,
)

__all__ = ["READOUT_KEYS", "PhysioMonitor", "readout_stream_info"]

READOUT_KEYS: tuple[str, ...] = (
    "hr_bpm",
    "rmssd_ms",
    "faa",
    *(f"{band}_uv2" for band in BANDS),
)
_UNITS = {"hr_bpm": "bpm", "rmssd_ms": "ms", "faa": "ln(uV^2)"}


def readout_stream_info(name: str, source_id: str) -> StreamInfo:
    """The readouts stream (one sample per window, irregular rate)."""
    return StreamInfo(
        name=name,
        type="Physio",
        role="misc",
        channel_labels=READOUT_KEYS,
        channel_units=tuple(_UNITS.get(k, "uV^2") for k in READOUT_KEYS),
        nominal_srate=0.0,
        source_id=source_id,
    )


class PhysioMonitor:
    """Feeds on raw Chunks (``on_chunk``) and annotates Windows (``process``)."""

    def __init__(self, cfg: Config, pipeline: Pipeline):
        self.cfg = cfg
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self.streams = {m: [s for s in pipeline.streams if s.role == m] for m in ("eeg", "ecg")}
        ecg = self.streams["ecg"]
        self.ecg_key = ecg[0].key if ecg else None
        self.detector = (
            StreamingRPeakDetector(ecg[0].nominal_srate, labels=ecg[0].channel_labels)
            if ecg and ecg[0].nominal_srate >= 50
            else None
        )
        self.heart = HeartRateTracker()
        self.peaks: list[float] = []  # recent R-peak times (LSL clock), for the dashboard
        #: the latest heart rate and RMSSD (refreshed twice a second), for the dashboard
        self.hr_bpm = math.nan
        self.rmssd_ms = math.nan
        #: set when R-peak detection stopped on an error (the rest of the session goes on)
        self.error: str | None = None
        self._last_readout = 0.0
        gate = cfg.aligner.gate
        self.limits = {
            mod: QualityThresholds(
                amplitude_min_uv=getattr(gate, mod).amplitude_min_uv,
                amplitude_max_uv=getattr(gate, mod).amplitude_max_uv,
                max_line_ratio=getattr(gate, mod).max_line_ratio,
                flat_uv=cfg.aligner.quality.flat_uv,
                gap_periods=cfg.aligner.quality.gap_periods,
            )
            for mod in ("eeg", "ecg")
        }

    # -- heart (reader or replay thread) --------------------------------------------------
    @property
    def lead(self) -> int | None:
        """The ECG lead the detector follows (None until it has picked one)."""
        return self.detector.lead if self.detector is not None else None

    def on_chunk(self, chunk: Chunk) -> None:
        """Chunk listener (reader or replay thread): the session's one R-peak detector."""
        if self.detector is None or chunk.info.key != self.ecg_key or self.error is not None:
            return
        try:
            with self._lock:
                new = self.detector.push_chunk(chunk)
                if len(new):
                    self.heart.add(new)
                    self.peaks.extend(float(t) for t in new)
                    if len(self.peaks) > 600:
                        del self.peaks[:-600]
                now = time.monotonic()
                if now - self._last_readout >= 0.5:
                    self._last_readout = now
                    r = self.heart.readout(float(chunk.timestamps[-1]))
                    self.hr_bpm, self.rmssd_ms = r.hr_bpm, r.rmssd_ms
        except Exception as exc:  # never break the reader thread; the dashboard says so
            self.error = f"R-peak detection stopped on {chunk.info.name}: {exc}"

    def recent_peaks(self, since: float) -> np.ndarray:
        """R-peak times after ``since`` (LSL clock), a copy."""
        with self._lock:
            return np.array([t for t in self.peaks if t > since], dtype=np.float64)

    # -- per window (aligner or replay thread) --------------------------------------------
    def process(self, window: Window) -> Window:
        readouts = self._readouts(window)
        withhold, notes = self._gate(window) if self.cfg.aligner.gate.enabled else ("", [])
        return replace(window, readouts=readouts, withhold=withhold, notes=tuple(notes))

    def _readouts(self, w: Window) -> dict[str, float]:
        out = dict.fromkeys(READOUT_KEYS, math.nan)
        if self.detector is not None:
            with self._lock:
                hr = self.heart.readout(now=w.t_end)
            out["hr_bpm"], out["rmssd_ms"] = hr.hr_bpm, hr.rmssd_ms
        if w.eeg is not None:
            unit = self.cfg.aligner.eeg.unit_uv
            powers = band_powers(w.eeg, w.rate) * unit * unit  # model units^2 -> uV^2
            for j, band in enumerate(BANDS):
                col = powers[:, j]
                out[f"{band}_uv2"] = float(np.nanmean(col)) if np.isfinite(col).any() else math.nan
            faa = frontal_alpha_asymmetry(powers, w.eeg_labels)
            if faa is not None:
                out["faa"] = float(faa.mean)
        return out

    def _gate(self, w: Window) -> tuple[str, list[str]]:
        gate = self.cfg.aligner.gate
        withhold: list[str] = []
        notes: list[str] = []
        for mod in ("eeg", "ecg"):
            arr = getattr(w, mod)
            if arr is None:
                continue
            n_ch = arr.shape[0]
            q = w.quality.per_modality.get(mod)
            bad: dict[int, set[str]] = {}
            if q is not None:
                for flag in ("nan", "flat", "saturated"):
                    for c in getattr(q, f"{flag}_channels"):
                        bad.setdefault(c, set()).add(flag)
            labels = getattr(w, f"{mod}_labels")
            offset = 0
            t0 = w.t_end - w.n_samples / w.rate
            for info in self.streams[mod]:
                data, ts = self.pipeline.buffers[info.key].read_range(t0, w.t_end)
                if len(ts) >= 4:
                    rep = assess_window_quality(
                        data, ts, info.nominal_srate, units=info.channel_units, t_start=t0,
                        t_end=w.t_end, thresholds=self.limits[mod], labels=info.channel_labels,
                    )  # fmt: skip
                    for c, reasons in enumerate(rep.channel_reasons):
                        if reasons:
                            bad.setdefault(offset + c, set()).update(reasons)
                offset += info.n_channels
            if bad:
                desc = ", ".join(
                    f"{labels[c] if c < len(labels) else c}: {'/'.join(sorted(r))}"
                    for c, r in sorted(bad.items())
                )
                line = f"{mod} {len(bad)}/{n_ch} bad ({desc})"
                (withhold if len(bad) / n_ch > gate.max_bad_fraction else notes).append(line)
            if q is not None and q.gap_fraction > 0:
                line = f"{mod} {q.gap_fraction:.0%} of the window in gaps"
                (withhold if q.gap_fraction > gate.max_gap_fraction else notes).append(line)
        return "; ".join(withhold), notes
