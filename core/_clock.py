"""Clock helpers: map foreign timestamps onto the LSL clock and smooth (dejitter) them.

BrainFlow stamps samples with Unix time taken on the host as packets arrive, so its stamps jitter
by milliseconds. We map them onto ``pylsl.local_clock()`` with an offset measured on this machine,
then fit ``t = a + b * n`` (``n`` = sample count) by exponentially weighted least squares, the same
idea as liblsl's dejitter post-processing: the regular sample clock is recovered, and slow drift
between the device and the host is followed with a half-life of ``halftime`` seconds.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["Dejitter", "unix_to_lsl_offset"]


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
