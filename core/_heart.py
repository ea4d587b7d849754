"""ECG readouts on live signals: streaming R-peak detection, heart rate and HRV.

:class:`StreamingRPeakDetector` finds R peaks chunk by chunk, causally, on one lead (given, or
the best one picked after a short learning period). The detection logic follows Pan & Tompkins
(IEEE TBME 32(3), 1985): band-pass 5-15 Hz, derivative, squaring, 150 ms moving-window
integration, two adaptive thresholds (signal / noise peak estimates; the learned signal level
is capped at the second largest peak, so one ectopic beat cannot set it), a 200 ms refractory
period, T-wave rejection by slope within 360 ms, and search-back at half threshold when no beat
came for 1.66 mean RR intervals. The filters are ``scipy.signal`` (state carried across chunks);
the streaming wrapper, candidate bookkeeping and timing are ours. Each accepted beat is refined
to the extremum of a wider band-passed signal (1-40 Hz) near the QRS and its filter group delay
is subtracted, so peak times sit on the R wave, on the LSL clock of the input timestamps.

:class:`HeartRateTracker` turns peak times into heart rate (median of recent RR intervals, so a
missed or an extra beat barely moves it) and RMSSD over a sliding 30 s of NN intervals (RR
intervals within 20 % of the local median; the two intervals around a missed or extra beat
fall out).
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from ._types import Chunk

__all__ = [
    "HeartRateTracker",
    "HeartReadout",
    "RPeakConfig",
    "StreamingRPeakDetector",
]


@dataclass
class RPeakConfig:
    """Settings of :class:`StreamingRPeakDetector` (defaults follow Pan & Tompkins 1985)."""

    #: band-pass of the detection path, Hz
    band: tuple[float, float] = (5.0, 15.0)
    #: band-pass of the signal the peak time is refined on, Hz (high edge capped at 0.4 fs)
    refine_band: tuple[float, float] = (1.0, 40.0)
    #: moving-window integration length, s
    integration_s: float = 0.150
    #: no second beat within this time of a beat, s
    refractory_s: float = 0.200
    #: a candidate must be the largest of the feature signal within +- this time, s; it is also
    #: how long the detector waits after a candidate before deciding (part of the delay bound)
    lookahead_s: float = 0.200
    #: candidates closer than this to the previous beat must have >= half its slope (T waves)
    twave_s: float = 0.360
    #: search back when no beat came for this many mean RR intervals ...
    searchback_rr: float = 1.66
    #: ... but at the latest after this long, s (bounds the delay of search-back beats)
    searchback_max_s: float = 3.0
    #: no beat for this long even after search-back: learn the thresholds anew, s
    relearn_s: float = 4.0
    #: length of the initial learning period (thresholds, best lead), s
    learn_s: float = 2.0
    #: the refined R peak is looked for this far before/after the integrated-feature peak, s
    refine_before_s: float = 0.25
    refine_after_s: float = 0.05
    #: NaN runs longer than this restart the filters on the next finite sample, s
    gap_reset_s: float = 0.25


class _History:
    """Growing arrays of the last samples (amortised O(1) append, global sample indices)."""

    def __init__(self, keep: int, n_fields: int):
        self.keep = keep
        self.cap = 4 * keep
        self.buf = np.zeros((n_fields, self.cap))
        self.start = 0  # global index of buf[:, 0]
        self.n = 0  # samples held

    @property
    def end(self) -> int:
        """Global index one past the newest sample."""
        return self.start + self.n

    def append(self, block: np.ndarray) -> None:
        m = block.shape[1]
        if self.n + m > self.cap:
            drop = max(self.n - self.keep, 0)
            self.buf[:, : self.n - drop] = self.buf[:, drop : self.n]
            self.start += drop
            self.n -= drop
            if self.n + m > self.cap:  # one very long block: grow
                self.cap = 2 * (self.n + m)
                new = np.zeros((self.buf.shape[0], self.cap))
                new[:, : self.n] = self.buf[:, : self.n]
                self.buf = new
        self.buf[:, self.n : self.n + m] = block
        self.n += m

    def get(self, field_: int, g0: int, g1: int) -> np.ndarray:
        """Field values for global indices ``[g0, g1)`` (clipped to what is held)."""
        a = max(g0 - self.start, 0)
        b = min(g1 - self.start, self.n)
        return self.buf[field_, a:b] if b > a else self.buf[field_, :0]


_Y, _R, _F, _T = 0, 1, 2, 3  # history fields: detection band-pass, refine band-pass, feature, time


class StreamingRPeakDetector:
    """Causal R-peak detection on live ECG, chunk by chunk, at any sampling rate >= 50 Hz.

    Feed ``push(data [n, ch], timestamps [n])`` or ``push_chunk(chunk)``; each call returns the
    R-peak times (same clock as the timestamps) that became certain during it; ``peak_times`` all,
    ``pop_new()`` those not popped yet. ``lead`` picks the lead (index or label); ``None`` picks
    the lead with the most peaked detection signal after ``learn_s`` seconds.

    Delay bound: a beat is reported once the samples up to ``max_delay_s`` after its R peak have
    been pushed (lookahead + integration window + filter delay + refinement margin, about 0.45 s
    with the defaults); a beat found by search-back comes at most ``searchback_delay_s`` after its
    R peak. The very first beats wait for the learning period (``learn_s``).

    NaN/inf samples are replaced by the last finite value of the lead (the filters never see a
    NaN); a run longer than ``gap_reset_s`` restarts the filters at the first finite sample and the
    RR interval across it is not used for the thresholds.
    """

    def __init__(
        self,
        fs: float,
        lead: int | str | None = None,
        labels: Sequence[str] | None = None,
        config: RPeakConfig | None = None,
    ):
        self.cfg = cfg = config or RPeakConfig()
        if fs < 50.0:
            raise ValueError(f"R-peak detection needs a sampling rate >= 50 Hz, got {fs}")
        self.fs = float(fs)
        self.labels = tuple(labels) if labels is not None else None
        if isinstance(lead, str):
            if self.labels is None or lead not in self.labels:
                raise ValueError(f"lead {lead!r} is not among the channel labels {self.labels}")
            lead = self.labels.index(lead)
        self.lead: int | None = lead
        if cfg.band[1] >= 0.45 * fs or cfg.refine_band[0] >= min(cfg.refine_band[1], 0.4 * fs):
            raise ValueError(
                f"band {cfg.band} / refine_band {cfg.refine_band} Hz do not fit a sampling rate "
                f"of {fs} Hz; lower the high edges below 0.45 fs"
            )
        f = _filters(self.fs, tuple(cfg.band), tuple(cfg.refine_band))
        self._sos_y, self._sos_r, self._zi1_y, self._zi1_r, self._gd_y, self._gd_r = f
        self._w = max(round(cfg.integration_s * fs), 1)
        self._look = max(round(cfg.lookahead_s * fs), 1)
        self._refr = round(cfg.refractory_s * fs)
        self._twave = round(cfg.twave_s * fs)
        self._learn_n = max(round(cfg.learn_s * fs), self._w + self._look + 1)
        self._gap_n = max(round(cfg.gap_reset_s * fs), 1)
        self._rb = round(cfg.refine_before_s * fs)
        self._ra = round(cfg.refine_after_s * fs)
        keep = round((max(cfg.searchback_max_s, cfg.relearn_s, cfg.learn_s) + 1.0) * fs) + self._rb
        self._hist = _History(keep, 4)
        self.peak_times: list[float] = []
        self._popped = 0
        self.nan_samples = 0
        self.samples_in = 0
        self._learn_buf: list[tuple[np.ndarray, np.ndarray]] = []
        self._learn_count = 0
        self._reset_filters()
        self._reset_thresholds()
        self._last_finite: float | None = None
        self._nan_run = 0
        self._scan = 0  # next global index to look for candidates at
        self._last_beat: int | None = None  # global feature index of the last beat
        self._last_beat_slope = 0.0
        self._rr: deque[int] = deque(maxlen=8)
        self._noise_cands: list[tuple[int, float]] = []  # since the last beat
        self._break_at: int | None = None  # a gap restarted the filters here
        self._r_guard: int | None = None  # the next refined peak lies at or after this index
        self._ready = False

    # ---------------------------------------------------------------- public

    @property
    def max_delay_s(self) -> float:
        """Upper bound of the time from an R peak to its report (regular detections)."""
        n = self._look + self._w + self._gd_y + self._ra + 1
        return n / self.fs

    @property
    def searchback_delay_s(self) -> float:
        """Upper bound of the time from an R peak to its report when found by search-back."""
        return self.cfg.searchback_max_s + self.max_delay_s

    def push_chunk(self, chunk: Chunk) -> np.ndarray:
        """Feed one :class:`Chunk` of an ECG stream; returns new R-peak times."""
        return self.push(chunk.data, chunk.timestamps)

    def push(self, data: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """Feed ``data [n, ch]`` (or ``[n]``) with ``timestamps [n]``; returns new R-peak times."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 1:
            data = data[:, None]
        ts = np.asarray(timestamps, dtype=np.float64)
        if data.shape[0] != ts.shape[0]:
            raise ValueError(f"{data.shape[0]} samples but {ts.shape[0]} timestamps")
        if len(ts) == 0:
            return np.empty(0)
        self.samples_in += len(ts)
        n_before = len(self.peak_times)
        if not self._ready:
            self._learn_buf.append((data.copy(), ts.copy()))
            self._learn_count += len(ts)
            if self._learn_count < self._learn_n:
                return np.empty(0)
            self._finish_learning()
        else:
            if self.lead is not None and self.lead >= data.shape[1]:
                raise ValueError(f"lead {self.lead} but the data has {data.shape[1]} channels")
            self._ingest(data[:, self.lead], ts)
        self._detect()
        return np.asarray(self.peak_times[n_before:])

    def flush(self) -> np.ndarray:
        """Decide the pending candidates without waiting for more data (end of a recording).

        Returns the R-peak times this adds. Call it once at the end; pushing more afterwards
        works but a beat near the flush point may then be missed.
        """
        n_before = len(self.peak_times)
        if not self._ready and self._learn_buf:
            self._finish_learning()
        if self._ready:
            self._detect(final=True)
        return np.asarray(self.peak_times[n_before:])

    def pop_new(self) -> np.ndarray:
        """R-peak times found since the last ``pop_new`` call."""
        out = np.asarray(self.peak_times[self._popped :])
        self._popped = len(self.peak_times)
        return out

    # ---------------------------------------------------------------- signal path

    def _finish_learning(self) -> None:
        """Pick the lead, run the learning samples through the filters, set the thresholds."""
        allx = np.concatenate([d for d, _ in self._learn_buf])
        allt = np.concatenate([t for _, t in self._learn_buf])
        self._learn_buf = []
        if self.lead is None:
            self.lead = self._best_lead(allx)
        elif self.lead >= allx.shape[1]:
            raise ValueError(f"lead {self.lead} but the data has {allx.shape[1]} channels")
        self._ingest(allx[:, self.lead], allt)
        self._learn_thresholds(self._hist.start, self._hist.end)
        self._ready = True

    def _reset_filters(self) -> None:
        self._zi_y: np.ndarray | None = None
        self._zi_r: np.ndarray | None = None
        self._mwi_tail = np.zeros(self._w - 1)  # the last w - 1 squared slopes (0 before any)
        self._prev_y: float | None = None

    def _reset_thresholds(self) -> None:
        self._spk = 0.0
        self._npk = 0.0

    def _best_lead(self, x: np.ndarray) -> int:
        """Lead whose detection band-pass is most peaked (99th percentile over median of |y|)."""
        if x.shape[1] == 1:  # one lead: nothing to choose (the scoring below would give 0 too)
            return 0
        best, best_score = 0, -1.0
        for ch in range(x.shape[1]):
            col = x[:, ch]
            good = np.isfinite(col)
            if good.sum() < len(col) // 2:
                continue
            col = np.where(good, col, np.nanmedian(col))
            zi = self._zi1_y * col[0]
            y = np.abs(signal.sosfilt(self._sos_y, col, zi=zi)[0])
            score = float(np.percentile(y, 99) / (np.median(y) + 1e-12))
            if score > best_score:
                best, best_score = ch, score
        return best

    def _clean(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hold the last finite value over NaN/inf; return the cleaned lead and restart points."""
        bad = ~np.isfinite(x)
        restarts = np.zeros(len(x), bool)
        if not bad.any():
            if self._nan_run >= self._gap_n:
                restarts[0] = True
            self._nan_run = 0
            self._last_finite = float(x[-1])
            return x, restarts
        self.nan_samples += int(bad.sum())
        x = x.copy()
        run = self._nan_run
        last = self._last_finite
        for i in range(len(x)):  # only chunks that hold a NaN take this loop
            if bad[i]:
                run += 1
                x[i] = last if last is not None else 0.0
            else:
                if run >= self._gap_n:
                    restarts[i] = True
                run = 0
                last = float(x[i])
        self._nan_run = run
        self._last_finite = last
        return x, restarts

    def _ingest(self, x: np.ndarray, ts: np.ndarray) -> None:
        x, restarts = self._clean(np.asarray(x, dtype=np.float64))
        cuts = [0, *np.flatnonzero(restarts).tolist(), len(x)]
        for a, b in itertools.pairwise(cuts):
            if b <= a:
                continue
            if restarts[a]:
                self._reset_filters()
                self._break_at = self._hist.end
            self._filter_block(x[a:b], ts[a:b])

    def _filter_block(self, x: np.ndarray, ts: np.ndarray) -> None:
        if self._zi_y is None:
            self._zi_y = self._zi1_y * x[0]
            self._zi_r = self._zi1_r * x[0]
        y, self._zi_y = signal.sosfilt(self._sos_y, x, zi=self._zi_y)
        r, self._zi_r = signal.sosfilt(self._sos_r, x, zi=self._zi_r)
        prev = y[0] if self._prev_y is None else self._prev_y
        d = np.diff(y, prepend=prev) * self.fs
        self._prev_y = float(y[-1])
        # moving-window integration: the mean of the last w squared slopes (a running sum over
        # the block with the previous block's last w - 1 in front; lfilter with w taps costs 4x)
        z = np.concatenate((self._mwi_tail, d * d))
        c = np.concatenate(([0.0], np.cumsum(z)))
        f = (c[self._w :] - c[: -self._w]) / self._w
        self._mwi_tail = z[len(z) - (self._w - 1) :]
        self._hist.append(np.stack((y, r, f, ts)))

    # ---------------------------------------------------------------- decisions

    def _learn_thresholds(self, g0: int, g1: int) -> None:
        """Signal level: half the largest peak of the feature, but not above the second largest.

        One outsized complex in the learning period (a ventricular ectopic beat, an artefact)
        would otherwise set the signal level, and with it the threshold, above every ordinary
        beat that follows (LUDB record 83: ectopic beats ten times the feature of the normal
        ones). The second largest candidate is the next beat when the period holds two. The
        first beat after learning only updates the level like any other (setting the level to
        it outright let an ectopic first beat do the same harm).
        """
        f = self._hist.get(_F, g0, g1)
        if len(f) == 0:
            return
        spk = 0.5 * float(f.max())
        peaks = self._peaks(f)
        if len(peaks) >= 2:
            spk = min(spk, float(np.partition(f[peaks], -2)[-2]))
        self._spk = spk
        self._npk = 0.5 * float(f.mean())

    def _peaks(self, f: np.ndarray) -> np.ndarray:
        """Indices of the candidate peaks of ``f``: local maxima, largest within +- lookahead."""
        if len(f) < 3:
            return np.empty(0, dtype=np.intp)
        peaks, _ = signal.find_peaks(f)
        if len(peaks) == 0:
            return peaks
        wmax = ndimage.maximum_filter1d(f, size=2 * self._look + 1, mode="nearest")
        return peaks[f[peaks] >= wmax[peaks]]

    @property
    def _thr1(self) -> float:
        return self._npk + 0.25 * (self._spk - self._npk)

    def _rr_mean(self) -> float:
        # the mean of at most 8 integer intervals: exact in float64, as np.mean's (its fixed cost
        # on a deque was a tenth of a window's beat detection)
        return sum(self._rr) / len(self._rr) if self._rr else self.fs

    def _searchback_limit(self) -> int:
        lim = self.cfg.searchback_rr * self._rr_mean()
        return int(min(lim, self.cfg.searchback_max_s * self.fs))

    def _detect(self, final: bool = False) -> None:
        h = self._hist
        # candidates before this index can be decided now
        end = h.end if final else h.end - self._look
        if end <= self._scan:
            self._check_searchback(end)
            return
        g0 = max(self._scan - self._look, h.start)
        f = h.get(_F, g0, h.end)
        peaks = self._peaks(f) + g0
        peaks = peaks[(peaks >= self._scan) & (peaks < end)]
        for p in peaks.tolist():
            self._check_searchback(p)
            self._candidate(p, float(h.buf[_F, p - h.start]))
        self._scan = end
        self._check_searchback(end)

    def _ref_point(self) -> int | None:
        """Index from which 'time without a beat' is counted."""
        ref = self._last_beat
        if self._break_at is not None and (ref is None or self._break_at > ref):
            ref = self._break_at
        return ref

    def _check_searchback(self, now: int) -> None:
        """Search back (half threshold) while no beat came for too long before ``now``."""
        while True:
            ref = self._ref_point()
            if ref is None:
                ref = self._hist.start
            if now - ref <= self._searchback_limit():
                return
            thr2 = 0.5 * self._thr1
            cands = [(v, i) for i, v in self._noise_cands if i > ref and i < now and v > thr2]
            if cands:
                v, i = max(cands)
                self._accept(i, v, searchback=True)
                continue
            if now - ref > self.cfg.relearn_s * self.fs:
                # nothing for a long time: thresholds are stale (amplitude drop, lead change)
                self._learn_thresholds(now - int(self.cfg.learn_s * self.fs), now)
                self._break_at = now
                self._noise_cands = []
            return

    def _candidate(self, i: int, v: float) -> None:
        last = self._last_beat
        if last is not None and i - last < self._refr:
            return
        if v > self._thr1:
            if last is not None and i - last < self._twave:
                if self._slope(i) < 0.5 * self._last_beat_slope:
                    self._noise(i, v)
                    return
            self._accept(i, v, searchback=False)
        else:
            self._noise(i, v)

    def _noise(self, i: int, v: float) -> None:
        self._npk = 0.125 * v + 0.875 * self._npk
        self._noise_cands.append((i, v))

    def _slope(self, i: int) -> float:
        y = self._hist.get(_Y, i - self._w, i + 1)
        return float(np.max(np.abs(np.diff(y)))) if len(y) > 1 else 0.0

    def _accept(self, i: int, v: float, searchback: bool) -> None:
        if searchback:
            self._spk = 0.25 * v + 0.75 * self._spk
        else:
            self._spk = 0.125 * v + 0.875 * self._spk
        last = self._last_beat
        broken = self._break_at is not None and last is not None and self._break_at > last
        if last is not None and not broken:
            rr = i - last
            if 0.25 * self.fs <= rr <= 2.5 * self.fs:
                self._rr.append(rr)
        self._last_beat = i
        self._last_beat_slope = self._slope(i)
        self._noise_cands = [(j, w) for j, w in self._noise_cands if j > i]
        t = self._refine(i)
        if self.peak_times and t <= self.peak_times[-1]:
            return  # refinement landed on the previous beat (should not happen after refractory)
        self.peak_times.append(t)

    def _refine(self, i: int) -> float:
        """R-peak time: extremum of the refine band-pass near the QRS, minus its group delay."""
        h = self._hist
        g0 = max(i - self._rb, h.start)
        if self._r_guard is not None:
            g0 = max(g0, self._r_guard)
        g1 = min(i + self._ra + 1, h.end)
        r = h.get(_R, g0, g1)
        k = g0 + int(np.argmax(np.abs(r)))
        self._r_guard = k + self._refr // 2
        pos = k - self._gd_r
        idx = np.arange(h.start, h.end)
        return float(np.interp(pos, idx, h.buf[_T, : h.n]))


@functools.lru_cache(maxsize=16)
def _filters(
    fs: float, band: tuple[float, float], refine_band: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
    """The detector's two band-passes at ``fs`` (detection, refinement), their unit initial states
    and group delays at 10 Hz, designed once per rate and bands (a detector per window, as the
    models' heart-rate feature runs, would otherwise spend most of its time designing them).
    Every detector of that rate shares these arrays: none may modify them (scipy's sosfilt wants
    them writeable, so they are not flagged read-only)."""
    sos_y = signal.butter(2, band, btype="bandpass", fs=fs, output="sos")
    r_hi = min(refine_band[1], 0.4 * fs)
    sos_r = signal.butter(2, [refine_band[0], r_hi], btype="bandpass", fs=fs, output="sos")
    zi_y, zi_r = signal.sosfilt_zi(sos_y), signal.sosfilt_zi(sos_r)
    gd_y = _group_delay_samples(sos_y, 10.0, fs)
    gd_r = _group_delay_samples(sos_r, 10.0, fs)
    return sos_y, sos_r, zi_y, zi_r, gd_y, gd_r


def _group_delay_samples(sos: np.ndarray, f0: float, fs: float) -> float:
    """Group delay of ``sos`` at ``f0`` Hz, in samples (numerical phase derivative)."""
    df = 0.05
    w = np.array([f0 - df, f0 + df])
    _, h = signal.sosfreqz(sos, worN=w, fs=fs)
    phase = np.unwrap(np.angle(h))
    return float(-(phase[1] - phase[0]) / (2 * np.pi * 2 * df) * fs)


# ============================================================================================
# ECG: heart rate and HRV


@dataclass(frozen=True)
class HeartReadout:
    """Heart rate (bpm), RMSSD (ms) and how many beats/NN pairs they rest on, at time ``t``."""

    t: float
    hr_bpm: float
    rmssd_ms: float
    n_beats: int
    n_nn_pairs: int


class HeartRateTracker:
    """Heart rate and RMSSD from R-peak times over a sliding window.

    Heart rate is 60 / median of the RR intervals in the last ``hr_window_s`` (a missed beat gives
    one double interval, an extra beat two short ones; the median ignores both). RMSSD uses the
    successive differences of NN intervals in the last ``hrv_window_s``: RR intervals between
    ``rr_min_s`` and ``rr_max_s`` and within ``nn_tolerance`` of the window's median RR, taken in
    pairs of adjacent intervals only.
    """

    def __init__(
        self,
        hr_window_s: float = 10.0,
        hrv_window_s: float = 30.0,
        rr_min_s: float = 0.27,
        rr_max_s: float = 2.0,
        nn_tolerance: float = 0.2,
    ):
        self.hr_window_s = hr_window_s
        self.hrv_window_s = hrv_window_s
        self.rr_min_s = rr_min_s
        self.rr_max_s = rr_max_s
        self.nn_tolerance = nn_tolerance
        self._peaks: deque[float] = deque()

    def add(self, peak_times: Sequence[float] | np.ndarray) -> None:
        """Add new R-peak times (ascending; older than the newest held ones are dropped)."""
        for t in np.asarray(peak_times, dtype=np.float64).ravel().tolist():
            if math.isfinite(t) and (not self._peaks or t > self._peaks[-1]):
                self._peaks.append(t)

    def readout(self, now: float | None = None) -> HeartReadout:
        """The readout at ``now`` (default: the newest peak); NaN where too few beats."""
        if now is None:
            now = self._peaks[-1] if self._peaks else math.nan
        keep_from = now - max(self.hr_window_s, self.hrv_window_s)
        while self._peaks and self._peaks[0] < keep_from:
            self._peaks.popleft()
        p = np.asarray(self._peaks)
        p = p[p <= now] if math.isfinite(now) else p
        hr = rmssd = math.nan
        n_pairs = 0
        rr = np.diff(p)
        ok = (rr >= self.rr_min_s) & (rr <= self.rr_max_s)
        rr_hr = rr[ok & (p[1:] >= now - self.hr_window_s)]
        if len(rr_hr) >= 2:
            hr = 60.0 / statistics.median(rr_hr.tolist())  # = np.median, without its overhead
        in_hrv = ok & (p[1:] >= now - self.hrv_window_s)
        if in_hrv.sum() >= 3:
            med = statistics.median(rr[in_hrv].tolist())
            nn = in_hrv & (np.abs(rr - med) <= self.nn_tolerance * med)
            pair = nn[1:] & nn[:-1]
            n_pairs = int(pair.sum())
            if n_pairs >= 2:
                d = np.diff(rr)[pair]
                rmssd = 1000.0 * float(np.sqrt(np.mean(d * d)))
        n_beats = int((p >= now - self.hrv_window_s).sum()) if math.isfinite(now) else 0
        return HeartReadout(float(now), hr, rmssd, n_beats, n_pairs)
