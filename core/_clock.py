"""Clock helpers: map foreign timestamps onto the LSL clock and smooth (dejitter) them.

BrainFlow stamps samples with Unix time taken on the host as packets arrive, so its stamps jitter
by milliseconds. We map them onto ``pylsl.local_clock()`` with an offset measured on this machine,
then fit ``t = a + b * n`` (``n`` = sample count) by exponentially weighted least squares, the same
idea as liblsl's dejitter post-processing: the regular sample clock is recovered, and slow drift
between the device and the host is followed with a half-life of ``halftime`` seconds.

An LSL stream whose device stamps samples with its own clock (``timestamps: device``) is mapped by
:class:`DeviceClock` from arrival times instead; :class:`ArrivalCheck` notices a stream in the
default ``lsl`` mode whose stamps sit persistently far from their arrival time.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque

import numpy as np

__all__ = [
    "ArrivalCheck",
    "ClockReset",
    "Dejitter",
    "DeviceClock",
    "SegmentDejitter",
    "unix_to_lsl_offset",
]


def unix_to_lsl_offset(n: int = 5) -> float:
    """``time.time() - pylsl.local_clock()``, the tightest of ``n`` paired readings."""
    import pylsl

    best = None
    for _ in range(n):
        a = pylsl.local_clock()
        u = time.time()
        b = pylsl.local_clock()
        if best is None or b - a < best[0]:
            best = (b - a, u - (a + b) / 2)
    assert best is not None
    return best[1]


class Dejitter:
    """Exponentially weighted linear fit of timestamps against sample count."""

    def __init__(self, srate: float, halftime: float = 90.0):
        self.srate = float(srate)
        self.lam = 0.5 ** (1.0 / max(halftime * srate, 1.0))
        self.n = 0
        self.t0: float | None = None
        # weighted sums over (x = n, y = t - t0); a small prior pins the slope to 1/srate
        prior = max(srate, 1.0)
        self._w = prior
        self._sx = 0.0
        self._sy = 0.0
        self._sxx = prior * 1.0
        self._sxy = prior * 1.0 / self.srate
        self._prior_x = 1.0

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Smoothed timestamps for the next ``len(t)`` consecutive samples."""
        m = len(t)
        if m == 0:
            return np.asarray(t, np.float64)
        if self.t0 is None:
            self.t0 = float(t[0])
        x = self.n + np.arange(m, dtype=np.float64)
        y = np.asarray(t, np.float64) - self.t0
        decay = self.lam**m
        wts = self.lam ** (m - 1 - np.arange(m, dtype=np.float64))
        self._w = self._w * decay + wts.sum()
        self._sx = self._sx * decay + (wts * x).sum()
        self._sy = self._sy * decay + (wts * y).sum()
        self._sxx = self._sxx * decay + (wts * x * x).sum()
        self._sxy = self._sxy * decay + (wts * x * y).sum()
        mx, my = self._sx / self._w, self._sy / self._w
        var = self._sxx / self._w - mx * mx
        cov = self._sxy / self._w - mx * my
        slope = cov / var if var > 1e-12 else 1.0 / self.srate
        self.n += m
        return self.t0 + my + slope * (x - mx)


def _breaks(
    s: np.ndarray, last: float | None, period: float, break_s: float
) -> tuple[np.ndarray, list[int]]:
    """Steps between consecutive stamps (the first from ``last``, the previous chunk's final
    stamp) and the indices where a step differs from one ``period`` by more than ``break_s``; a
    stream's very first stamp is never a break."""
    prev = s[0] - period if last is None else last
    steps = np.diff(s, prepend=prev)
    cuts = [int(b) for b in np.flatnonzero(np.abs(steps - period) > break_s)]
    return steps, cuts


class SegmentDejitter:
    """:class:`Dejitter` per segment of continuous stamps, for streams already on the LSL clock.

    liblsl's own dejitter fits the stamps against the sample count, so when an outlet dies and a
    new one comes back (or a device skips seconds), it keeps counting through the gap and stamps
    the new samples up to the whole gap too early, correcting itself only over minutes. Here a
    step between consecutive stamps that differs from one sample period by more than ``break_s``
    (default the larger of 1 s and 10 periods) starts a new fit, as pyxdf splits a stream into
    segments at breaks (there at max(1 s, 500 samples)) before it dejitters each. The threshold
    stays well above the packet jitter of wireless amplifiers (tens of ms), so their stamps keep
    being smoothed over the long fit; an outlet that dies and returns leaves a gap of more than a
    second (liblsl alone needs about that long to reconnect). Output stamps never decrease.
    """

    def __init__(self, srate: float, halftime: float = 90.0, break_s: float | None = None):
        self.srate = float(srate)
        self.period = 1.0 / self.srate
        self.halftime = halftime
        self.break_s = max(1.0, 10 * self.period) if break_s is None else break_s
        self._fit: Dejitter | None = None
        self._last_raw: float | None = None
        self._last_out = -math.inf
        #: segments started after the first (gaps and restarts seen)
        self.breaks = 0

    def __call__(self, stamps: np.ndarray) -> np.ndarray:
        s = np.asarray(stamps, np.float64)
        m = len(s)
        if m == 0:
            return s.copy()
        _, cuts = _breaks(s, self._last_raw, self.period, self.break_s)
        bounds = sorted({0, *cuts, m})
        out = np.empty(m)
        for i0, i1 in itertools.pairwise(bounds):
            if self._fit is None or i0 in cuts:
                if self._fit is not None:
                    self.breaks += 1
                self._fit = Dejitter(self.srate, self.halftime)
            seg = np.maximum.accumulate(np.maximum(self._fit(s[i0:i1]), self._last_out))
            out[i0:i1] = seg
            self._last_out = float(seg[-1])
        self._last_raw = float(s[-1])
        return out


class ClockReset:
    """A jump of a device's stamps that :class:`DeviceClock` treated as a clock reset."""

    def __init__(self, jump: float, index: int, t_from: float, t_to: float):
        #: how far the stamps jumped beyond one sample period, seconds (negative: backwards)
        self.jump = jump
        #: position in its chunk of the first sample after the reset
        self.index = index
        #: LSL time of the last sample before and the first sample after the reset (the gap)
        self.t_from = t_from
        self.t_to = t_to

    def __repr__(self) -> str:
        return f"ClockReset(jump={self.jump:+.3f} s, gap {self.t_from:.3f}..{self.t_to:.3f})"


class DeviceClock:
    """Maps a regular stream's own device stamps onto this machine's LSL clock, causally.

    Per segment of continuous stamps, the stamps are first dejittered against the sample count
    (:class:`Dejitter`). Each chunk then gives one measurement ``d = arrival - stamp`` of its
    newest sample (``arrival`` = ``pylsl.local_clock()`` when it was pulled). Transport only adds
    delay, so the clock offset is the *lower envelope* of ``d``: the minimum per ``block`` seconds,
    and a straight line (offset + drift) fitted through the last ``span`` minima, with blocks whose
    minimum sits far above the line (every chunk late) left out. Until ``min_points`` minima exist
    the running minimum is used. Output stamps never decrease.

    A step between consecutive stamps that differs from one sample period by more than
    ``break_s`` starts a new dejitter segment (as pyxdf splits streams into segments at breaks).
    A forward step that the arrival times confirm is a real gap in the data keeps the offset fit;
    any backward step, or a forward step with no matching gap in arrival time, is a clock reset:
    the fit restarts at once and the reset is reported (:meth:`pop_resets`) so the gap it leaves
    can be flagged.
    """

    def __init__(
        self,
        srate: float,
        *,
        halftime: float = 90.0,
        block: float = 1.0,
        span: int = 30,
        min_points: int = 4,
        break_s: float | None = None,
    ):
        self.srate = float(srate)
        self.period = 1.0 / self.srate
        self.halftime = halftime
        self.block = block
        self.min_points = min_points
        self.break_s = max(0.05, 10 * self.period) if break_s is None else break_s
        self._points: deque[tuple[float, float]] = deque(maxlen=span)
        self._dejitter: Dejitter | None = None
        self._last_raw: float | None = None
        self._last_out = -math.inf
        self._blk: list[float] | None = None  # [block start x, x at min, min d]
        self._run_min: float | None = None
        self._coef: tuple[float, float, float] | None = None  # x_ref, offset, drift
        self._resets: list[ClockReset] = []
        self.n_resets = 0

    @property
    def settled(self) -> bool:
        """The offset comes from a line through ``min_points`` block minima or more."""
        return self._coef is not None

    @property
    def drift_ppm(self) -> float:
        """Fitted drift of the device clock against this machine's, parts per million."""
        return 0.0 if self._coef is None else -self._coef[2] * 1e6

    def offset(self, x: np.ndarray | float) -> np.ndarray | float:
        """Seconds to add to a dejittered device stamp ``x`` to get LSL time."""
        if self._coef is not None:
            x_ref, a, b = self._coef
            return a + b * (np.asarray(x, np.float64) - x_ref)
        if self._run_min is None:
            raise RuntimeError("DeviceClock has seen no chunk yet")
        return self._run_min + 0.0 * np.asarray(x, np.float64)

    def pop_resets(self) -> list[ClockReset]:
        out, self._resets = self._resets, []
        return out

    def __call__(self, stamps: np.ndarray, arrival: float) -> np.ndarray:
        """LSL times of the next ``len(stamps)`` consecutive samples, pulled at ``arrival``."""
        s = np.asarray(stamps, np.float64)
        m = len(s)
        if m == 0:
            return s.copy()
        steps, breaks = _breaks(s, self._last_raw, self.period, self.break_s)
        bounds = [0, *(b for b in breaks if b > 0), m]
        out = np.empty(m)
        for i0, i1 in itertools.pairwise(bounds):
            arr = arrival - (m - i1) * self.period  # latest arrival of the segment's last sample
            reset = None
            if self._last_raw is not None and abs(steps[i0] - self.period) > self.break_s:
                jump = float(s[i0] - self._last_raw - self.period)
                if self._on_break(jump, arr - float(s[i1 - 1]), float(s[i1 - 1])):
                    reset = ClockReset(jump, i0, self._last_out, self._last_out)
            if self._dejitter is None:
                self._dejitter = Dejitter(self.srate, self.halftime)
            sd = self._dejitter(s[i0:i1])
            self._observe(float(sd[-1]), arr - float(sd[-1]))
            seg = np.maximum.accumulate(np.maximum(sd + self.offset(sd), self._last_out))
            if reset is not None:
                reset.t_to = float(seg[0])
                self._resets.append(reset)
            out[i0:i1] = seg
            self._last_out = float(seg[-1])
            self._last_raw = float(s[i1 - 1])
        return out

    def _on_break(self, jump: float, d_new: float, x_new: float) -> bool:
        """A step of ``jump`` s beyond one period (``d_new`` = arrival - stamp after it): start a
        new segment; True when it is a clock reset (the offset fit starts again too)."""
        self._dejitter = None
        if jump > 0 and self._run_min is not None:
            # the old offset would put the new samples at or before their arrival: samples are
            # missing but the clock is fine, so the offset fit stays
            if d_new >= float(self.offset(x_new)) - self.break_s:
                return False
        self._points.clear()
        self._blk = None
        self._run_min = None
        self._coef = None
        self.n_resets += 1
        return True

    def _observe(self, x: float, d: float) -> None:
        if self._run_min is None or d < self._run_min:
            self._run_min = d
        blk = self._blk
        if blk is None:
            self._blk = [x, x, d]
            return
        if x - blk[0] >= self.block:
            self._points.append((blk[1], blk[2]))
            self._fit()
            self._blk = [x, x, d]
        elif d < blk[2]:
            blk[1], blk[2] = x, d

    def _fit(self) -> None:
        if len(self._points) < self.min_points:
            return
        pts = np.asarray(self._points)
        x_ref = float(pts[-1, 0])
        x, y = pts[:, 0] - x_ref, pts[:, 1]
        keep = np.ones(len(x), bool)
        for _ in range(2):
            b, a = np.polyfit(x[keep], y[keep], 1)
            r = y - (a + b * x)
            mad = float(np.median(np.abs(r[keep] - np.median(r[keep]))))
            new = r <= np.median(r[keep]) + max(3 * 1.4826 * mad, 5e-4)
            if new.sum() < 3 or (new == keep).all():
                break
            keep = new
        b = float(np.clip(b, -2e-3, 2e-3))  # no crystal drifts by more than 2000 ppm
        self._coef = (x_ref, float(a), b)


class ArrivalCheck:
    """Notices stamps that sit persistently far from their arrival time (``timestamps: lsl``).

    Per ``block`` seconds of arrival time, the minimum of ``arrival - stamp`` (the lower envelope:
    the delay of the freshest sample) is kept; when the last ``blocks`` minima are all beyond
    ``limit`` seconds on the same side, :meth:`__call__` returns that offset, once.
    """

    def __init__(self, limit: float = 0.2, block: float = 1.0, blocks: int = 3):
        self.limit = limit
        self.block = block
        self._mins: deque[float] = deque(maxlen=blocks)
        self._start: float | None = None
        self._min = math.inf
        self.fired = False

    def __call__(self, last_stamp: float, arrival: float) -> float | None:
        if self.fired:
            return None
        d = arrival - last_stamp
        if self._start is None:
            self._start = arrival
        if arrival - self._start >= self.block:
            self._mins.append(self._min)
            self._start, self._min = arrival, math.inf
            mins = np.asarray(self._mins)
            if len(mins) == self._mins.maxlen and (
                (mins > self.limit).all() or (mins < -self.limit).all()
            ):
                self.fired = True
                return float(np.median(mins))
        self._min = min(self._min, d)
        return None
