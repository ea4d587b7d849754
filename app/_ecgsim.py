"""A small, physiologically plausible ECG simulator for the built-in demo.

Each beat is a sum of Gaussian waves (P, Q, R, S, T) placed relative to the R peak, in the spirit of
McSharry et al. (2003, "A dynamical model for generating synthetic electrocardiogram signals"):
the RR series carries respiratory sinus arrhythmia (~0.25 Hz) and Mayer waves (~0.1 Hz) plus a
little randomness; the QT interval scales with sqrt(RR) (Bazett); baseline wander, mains hum and
white noise are added. Leads are projections with their own gains. Values are in millivolts.
Generated block by block with state, so it streams indefinitely.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ECGSimulator"]

# (offset from R [s] at RR = 1 s, amplitude [mV], width [s]); T offset scales with sqrt(RR)
_WAVES = (
    ("P", -0.20, 0.15, 0.025),
    ("Q", -0.035, -0.12, 0.010),
    ("R", 0.0, 1.20, 0.011),
    ("S", 0.035, -0.25, 0.012),
    ("T", 0.30, 0.35, 0.050),
)


class ECGSimulator:
    """Streams ``n_leads`` leads of synthetic ECG at ``rate`` Hz (mV)."""

    def __init__(
        self,
        rate: float = 256.0,
        n_leads: int = 2,
        heart_rate: float = 70.0,
        mains: float = 50.0,
        seed: int | None = None,
    ):
        self.rate = float(rate)
        self.n_leads = n_leads
        self.hr = float(heart_rate)
        self.mains = mains
        self.rng = np.random.default_rng(seed)
        self.gains = np.array([1.0, 0.7, 1.2, 0.5, 0.9, 1.1, 0.8, 0.6, 1.3, 0.75, 0.95, 1.05])[
            :n_leads
        ]
        if n_leads > len(self.gains):
            self.gains = np.resize(self.gains, n_leads)
        self.n = 0  # samples produced
        self.beats: list[float] = [0.3]  # R-peak times (s since start)
        self.phase_noise = self.rng.uniform(0, 2 * math.pi, 2)

    def _rr(self, t: float) -> float:
        rsa = 0.04 * math.sin(2 * math.pi * 0.25 * t + self.phase_noise[0])
        mayer = 0.03 * math.sin(2 * math.pi * 0.1 * t + self.phase_noise[1])
        return 60.0 / self.hr * (1.0 + rsa + mayer) + float(self.rng.normal(0, 0.01))

    def beat_times(self, until: float) -> list[float]:
        """R-peak times (s since start) scheduled up to ``until``."""
        while self.beats[-1] < until:
            self.beats.append(self.beats[-1] + self._rr(self.beats[-1]))
        return self.beats

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples, ``[n, n_leads]`` in mV."""
        t = (self.n + np.arange(n)) / self.rate
        self.n += n
        if n == 0:
            return np.zeros((0, self.n_leads), np.float32)
        beats = np.asarray(self.beat_times(t[-1] + 1.0))
        beats = beats[(beats > t[0] - 1.0) & (beats < t[-1] + 1.0)]
        x = np.zeros(n)
        for i, r in enumerate(beats):
            rr = (beats[i + 1] - r) if i + 1 < len(beats) else 60.0 / self.hr
            for name, off, amp, width in _WAVES:
                centre = r + (off * math.sqrt(rr) if name == "T" else off)
                x += amp * np.exp(-0.5 * ((t - centre) / width) ** 2)
        # drop old beats we will never need again
        self.beats = [b for b in self.beats if b > t[-1] - 2.0] or self.beats[-1:]
        wander = 0.05 * np.sin(2 * math.pi * 0.33 * t)
        hum = 0.01 * np.sin(2 * math.pi * self.mains * t) if self.mains else 0.0
        leads = x[:, None] * self.gains[None, :] + (wander + hum)[:, None]
        leads += self.rng.normal(0, 0.01, leads.shape)
        return leads.astype(np.float32)
