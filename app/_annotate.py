"""Window annotation: a stage that sees the raw Chunks as they pass and annotates each Window.

The pipeline hands the stage every raw Chunk as the aligner takes it in
(:meth:`~physio_live.core.Pipeline.on_aligner_input`: the aligner thread live, the replay thread in
a replay), before the windows those samples complete reach the window listeners. The stage keeps
what it needs (the R-peak detector's state, the last seconds of raw samples of each EEG and ECG
stream) and never reads the pipeline's buffers. Its verdict on a window is an :class:`Annotation`
that travels beside the window to the inference worker; the window itself stays as the aligner
cut it.

- Heart: a :class:`~physio_live.core.StreamingRPeakDetector` follows the first ECG stream chunk by
  chunk, a :class:`~physio_live.core.HeartRateTracker` turns its beats into heart rate and RMSSD
  at each window's end (:class:`HeartMonitor`, also what the dashboard shows).
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
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from physio_live.core import (
    BANDS,
    Chunk,
    Config,
    HeartRateTracker,
    QualityThresholds,
    StreamInfo,
    StreamingRPeakDetector,
    Window,
    assess_window_quality,
    band_powers,
    frontal_alpha_asymmetry,
)

__all__ = [
    "READOUT_KEYS",
    "Annotation",
    "HeartMonitor",
    "WindowAnnotator",
    "readout_stream_info",
]

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


@dataclass(frozen=True)
class Annotation:
    """What the annotation stage says about one window (it travels beside the window)."""

    #: why the estimate of this window is withheld ("" = not withheld)
    withhold: str = ""
    #: per-modality reasons the raw-signal check found (issued with the estimate)
    notes: tuple[str, ...] = ()
    #: physiological readouts at the window's end (heart rate, HRV, band powers, asymmetry)
    readouts: dict[str, float] = field(default_factory=dict)


class HeartMonitor:
    """The session's one R-peak detector on one ECG stream, and the heart rate / RMSSD of its beats.

    ``push`` runs on the thread that feeds the annotation stage; the dashboard reads ``peaks``,
    ``hr_bpm``, ``rmssd_ms``, ``lead`` and ``error`` from the GUI thread (peaks as a locked copy).
    """

    def __init__(self, info: StreamInfo):
        self.info = info
        self.detector = StreamingRPeakDetector(info.nominal_srate, labels=info.channel_labels)
        self.tracker = HeartRateTracker()
        self._lock = threading.Lock()
        #: recent R-peak times (LSL clock), for the dashboard
        self.peaks: list[float] = []
        #: the latest heart rate and RMSSD (refreshed twice a second), for the dashboard
        self.hr_bpm = math.nan
        self.rmssd_ms = math.nan
        #: set when R-peak detection stopped on an error (the rest of the session goes on)
        self.error: str | None = None
        self._last_readout = 0.0

    @property
    def lead(self) -> int | None:
        """The ECG lead the detector follows (None until it has picked one)."""
        return self.detector.lead

    def push(self, chunk: Chunk) -> None:
        """Feed one raw Chunk of the ECG stream (an error stops detection, never the caller)."""
        if self.error is not None:
            return
        try:
            with self._lock:
                new = self.detector.push_chunk(chunk)
                if len(new):
                    self.tracker.add(new)
                    self.peaks.extend(float(t) for t in new)
                    if len(self.peaks) > 600:
                        del self.peaks[:-600]
                now = time.monotonic()
                if now - self._last_readout >= 0.5:
                    self._last_readout = now
                    r = self.tracker.readout(float(chunk.timestamps[-1]))
                    self.hr_bpm, self.rmssd_ms = r.hr_bpm, r.rmssd_ms
        except Exception as exc:  # never break the feeding thread; the dashboard says so
            self.error = f"R-peak detection stopped on {chunk.info.name}: {exc}"

    def recent_peaks(self, since: float) -> np.ndarray:
        """R-peak times after ``since`` (LSL clock), a copy."""
        with self._lock:
            return np.array([t for t in self.peaks if t > since], dtype=np.float64)

    def readout(self, t: float) -> tuple[float, float]:
        """Heart rate (bpm) and RMSSD (ms) at time ``t`` (NaN where too few beats)."""
        with self._lock:
            r = self.tracker.readout(now=t)
        return r.hr_bpm, r.rmssd_ms


class _RawHistory:
    """The recent raw samples of one stream, as the Chunks brought them (time-ordered)."""

    def __init__(self, hold_s: float):
        self.hold_s = hold_s
        self._chunks: deque[tuple[np.ndarray, np.ndarray]] = deque()  # (timestamps, data)

    def add(self, chunk: Chunk) -> None:
        if len(chunk) == 0:
            return
        self._chunks.append((chunk.timestamps, chunk.data))
        self.drop_until(float(chunk.timestamps[-1]) - self.hold_s)

    def drop_until(self, t: float) -> None:
        """Forget chunks whose samples are all at or before ``t``."""
        while self._chunks and self._chunks[0][0][-1] <= t:
            self._chunks.popleft()

    def span(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Held samples with ``t0 < t <= t1``: ``(data [n, ch], timestamps [n])``."""
        parts = []
        for ts, data in self._chunks:
            if ts[-1] <= t0 or ts[0] > t1:
                continue
            a, b = np.searchsorted(ts, [t0, t1], side="right")
            if b > a:
                parts.append((ts[a:b], data[a:b]))
        if not parts:
            return np.empty((0, 0), np.float32), np.empty(0)
        return np.concatenate([d for _, d in parts]), np.concatenate([t for t, _ in parts])


class WindowAnnotator:
    """The annotation stage: ``push`` every raw Chunk, then ``annotate`` the windows it completes.

    ``streams`` are the session's streams (EEG and ECG ones are followed, the rest ignored).
    ``push`` and ``annotate`` run on one thread (the one that feeds the aligner).
    """

    def __init__(self, cfg: Config, streams: list[StreamInfo]):
        self.cfg = cfg
        self.streams = {m: [s for s in streams if s.role == m] for m in ("eeg", "ecg")}
        ecg = self.streams["ecg"]
        #: the heart monitor of the first ECG stream (None without one, or below 50 Hz)
        self.heart = HeartMonitor(ecg[0]) if ecg and ecg[0].nominal_srate >= 50 else None
        # raw samples of the window's span for the gate: a window is cut once every stream has
        # covered its end, so a stream may run ahead of it by up to the pipeline's buffer length
        hold = cfg.buffer_seconds + cfg.aligner.window
        self._raw = {s.key: _RawHistory(hold) for m in ("eeg", "ecg") for s in self.streams[m]}
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

    def push(self, chunk: Chunk) -> None:
        """One raw Chunk on its way into the aligner (any stream; markers are ignored)."""
        key = chunk.info.key
        raw = self._raw.get(key)
        if raw is None:
            return
        raw.add(chunk)
        if self.heart is not None and key == self.heart.info.key:
            self.heart.push(chunk)

    def annotate(self, window: Window) -> Annotation:
        """Readouts and the gate's verdict for ``window`` (its raw samples have all been pushed)."""
        readouts = self._readouts(window)
        if self.cfg.aligner.gate.enabled:
            withhold, notes = self._gate(window)
        else:
            withhold, notes = "", []
        t0 = window.t_end - window.n_samples / window.rate
        for raw in self._raw.values():  # later windows start later: this span is done with
            raw.drop_until(t0)
        return Annotation(withhold=withhold, notes=tuple(notes), readouts=readouts)

    def _readouts(self, w: Window) -> dict[str, float]:
        out = dict.fromkeys(READOUT_KEYS, math.nan)
        if self.heart is not None:
            out["hr_bpm"], out["rmssd_ms"] = self.heart.readout(w.t_end)
        if w.eeg is not None:
            unit = self.cfg.aligner.eeg.unit_uv
            powers = band_powers(w.eeg, w.rate) * unit * unit  # model units^2 -> uV^2
            for j, band in enumerate(BANDS):
                col = powers[:, j]
                known = ~np.isnan(col)  # np.nanmean's values, without its overhead
                if known.all():
                    out[f"{band}_uv2"] = float(col.mean())
                elif np.isfinite(col).any():
                    out[f"{band}_uv2"] = float(col[known].mean())
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
                data, ts = self._raw[info.key].span(t0, w.t_end)
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
