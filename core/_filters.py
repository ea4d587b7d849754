"""Causal filters that keep their state across chunks, and unit handling.

The band-pass (Butterworth, second-order sections) and the optional notch run at the stream's native
rate with ``scipy.signal.sosfilt`` and carried ``zi``, so filtering a recording chunk by chunk gives
exactly what filtering it in one piece gives. The band-pass high edge sits below the model Nyquist
frequency, so it is also the anti-aliasing filter before resampling.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ["StreamingFilter", "design_sos", "unit_scale_uv"]

_UNIT_TO_UV = {
    "uv": 1.0,
    "µv": 1.0,
    "μv": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "mv": 1e3,
    "millivolt": 1e3,
    "millivolts": 1e3,
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
    "nv": 1e-3,
    "nanovolt": 1e-3,
    "nanovolts": 1e-3,
}


def unit_scale_uv(unit: str, default: float | None = 1.0) -> float | None:
    """Factor that turns a value in ``unit`` into microvolts (``default`` when unknown)."""
    return _UNIT_TO_UV.get(unit.strip().lower(), default)


def design_sos(
    fs: float,
    bandpass: tuple[float, float] | list[float] | None,
    notch: float | None,
    order: int = 4,
    notch_q: float = 30.0,
) -> np.ndarray:
    """Second-order sections of band-pass (+ notch) at sampling rate ``fs``.

    A band-pass whose high edge reaches the native Nyquist frequency becomes a high-pass; a notch at
    or above the native Nyquist frequency is left out (there is nothing to remove).
    """
    nyq = fs / 2.0
    sections = []
    if bandpass is not None:
        low, high = float(bandpass[0]), float(bandpass[1])
        if high >= nyq * 0.999:
            if low > 0:
                sections.append(signal.butter(order, low, btype="highpass", fs=fs, output="sos"))
        elif low > 0:
            sections.append(
                signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
            )
        else:
            sections.append(signal.butter(order, high, btype="lowpass", fs=fs, output="sos"))
    if notch is not None and notch < nyq * 0.999:
        b, a = signal.iirnotch(notch, notch_q, fs=fs)
        sections.append(signal.tf2sos(b, a))
    if not sections:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    return np.concatenate(sections, axis=0)


class StreamingFilter:
    """``sosfilt`` over consecutive chunks ``[n, channels]`` with the state carried between them.

    The state starts at the steady state for the first sample (``sosfilt_zi`` times that sample),
    which avoids the step response a zero state would give on signals with a DC offset.
    """

    def __init__(self, sos: np.ndarray, n_channels: int):
        self.sos = np.asarray(sos, dtype=np.float64)
        self.n_channels = n_channels
        self._zi_unit = signal.sosfilt_zi(self.sos)  # [sections, 2]
        self._zi: np.ndarray | None = None

    def reset(self) -> None:
        self._zi = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter ``x [n, channels]`` (float64) and return the filtered block."""
        if x.shape[0] == 0:
            return x
        if self._zi is None:
            self._zi = self._zi_unit[:, :, None] * x[0][None, None, :]
        y, self._zi = signal.sosfilt(self.sos, x, axis=0, zi=self._zi)
        return y
