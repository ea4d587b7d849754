"""EEG readouts: band powers and frontal alpha asymmetry.

:func:`band_powers` (Welch) per channel and :func:`frontal_alpha_asymmetry` over homologous
frontal pairs found by channel label.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._spectra import welch_psd

__all__ = [
    "BANDS",
    "AlphaAsymmetry",
    "band_powers",
    "frontal_alpha_asymmetry",
]


#: EEG bands in Hz. Bins with ``low <= f < high`` belong to a band, except that the last band also
#: takes its upper edge (``30 <= f <= 45``): each edge bin is counted exactly once.
BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}


def band_powers(window_eeg: np.ndarray, rate: float, segment_s: float = 2.0) -> np.ndarray:
    """Absolute band powers ``[C, 5]`` (delta, theta, alpha, beta, gamma) per channel.

    Welch PSD (Hann, ``segment_s`` segments or the whole window when shorter, 50 % overlap,
    mean removed per segment) integrated over each band of :data:`BANDS` (sum of bins times the bin
    width), in squared input units (model units: (100 uV)^2 for CBraMod windows). A channel with a
    NaN gets NaN powers; a band above the Nyquist frequency is NaN.
    """
    x = np.asarray(window_eeg, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"window_eeg must be [channels, samples], got shape {x.shape}")
    n = x.shape[1]
    nper = max(min(n, round(segment_s * rate)), 2)
    freqs, psd = welch_psd(x, rate, nper, axis=-1)  # half-segment overlap
    df = freqs[1] - freqs[0]
    out = np.full((x.shape[0], len(BANDS)), np.nan)
    for j, sel in enumerate(_band_bins(nper, float(rate))):
        if sel is not None:
            out[:, j] = psd[:, sel].sum(axis=1) * df
    bad = ~np.isfinite(x).all(axis=1)
    out[bad] = np.nan
    return out


@functools.lru_cache(maxsize=64)
def _band_bins(nperseg: int, rate: float) -> tuple[np.ndarray | None, ...]:
    """Each band's bins of a ``nperseg``-sample Welch spectrum (a boolean mask, read-only); None
    for a band above the Nyquist frequency. Every window of a stream asks for the same."""
    freqs = np.fft.rfftfreq(nperseg, 1.0 / rate)
    names = list(BANDS)
    out: list[np.ndarray | None] = []
    for j, name in enumerate(names):
        lo, hi = BANDS[name]
        if hi > rate / 2:
            out.append(None)
            continue
        sel = (freqs >= lo) & ((freqs <= hi) if j == len(names) - 1 else (freqs < hi))
        sel.flags.writeable = False
        out.append(sel)
    return tuple(out)


@dataclass(frozen=True)
class AlphaAsymmetry:
    """Frontal alpha asymmetry ``ln(right alpha) - ln(left alpha)`` per pair and their mean.

    ``pairs`` maps ``"F3/F4"`` (left/right, canonical labels) to the pair's value; ``channels`` maps
    the same keys to the (left, right) channel indices used.
    """

    pairs: dict[str, float]
    channels: dict[str, tuple[int, int]]
    mean: float


_ELECTRODE = re.compile(r"^(FP|AF|F)(\d+)$")
_FRONTAL_ORDER = {"FP": 0, "AF": 1, "F": 2}


def _electrode_name(label: str) -> str | None:
    """The frontal 10-20/10-10 electrode name in a label: ``"EEG Fp1-REF"`` -> ``"FP1"``."""
    for tok in re.split(r"[\s\-_:./|,;()]+", label.strip().upper()):
        if _ELECTRODE.match(tok):
            return tok
    return None


def frontal_alpha_asymmetry(
    powers: np.ndarray, labels: Sequence[str], alpha_index: int = 2
) -> AlphaAsymmetry | None:
    """Frontal alpha asymmetry from band powers ``[C, bands]`` and channel labels.

    Pairs are homologous frontal electrodes found in the labels (Fp1/Fp2, AF3/AF4, AF7/AF8, F1/F2,
    F3/F4, F5/F6, F7/F8 ...: odd number left, next even number right), case-insensitive and
    tolerant of prefixes and suffixes (``EEG F3``, ``F3-REF``, ``Fp1-A1``). Positive values mean
    more alpha power on the right (conventionally read as relatively more left-frontal
    activity). Returns ``None`` when no pair is found; pairs with a non-positive or NaN power are
    left out.
    """
    powers = np.asarray(powers, dtype=np.float64)
    if powers.ndim != 2 or powers.shape[0] != len(labels):
        raise ValueError(
            f"powers must be [channels, bands] with one row per label; got {powers.shape} for "
            f"{len(labels)} labels"
        )
    pairs: dict[str, float] = {}
    chans: dict[str, tuple[int, int]] = {}
    for key, il, ir in _frontal_pairs(tuple(labels)):
        a_l, a_r = powers[il, alpha_index], powers[ir, alpha_index]
        if not (a_l > 0 and a_r > 0):  # also False for NaN
            continue
        pairs[key] = float(np.log(a_r) - np.log(a_l))
        chans[key] = (il, ir)
    if not pairs:
        return None
    return AlphaAsymmetry(pairs, chans, float(np.mean(list(pairs.values()))))


@functools.lru_cache(maxsize=64)
def _frontal_pairs(labels: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    """``("F3/F4", left index, right index)`` for each homologous frontal pair in ``labels``,
    front to back, then by number (found once per montage: every window has the same labels)."""
    where: dict[str, int] = {}
    for i, lab in enumerate(labels):
        name = _electrode_name(lab)
        if name is not None and name not in where:
            where[name] = i
    found: list[tuple[tuple[int, int], str, int, int]] = []
    for name, i_left in where.items():
        m = _ELECTRODE.match(name)
        assert m is not None
        prefix, num = m.group(1), int(m.group(2))
        if num % 2 == 0:
            continue
        right = f"{prefix}{num + 1}"
        if right not in where:
            continue
        found.append(((_FRONTAL_ORDER[prefix], num), f"{name}/{right}", i_left, where[right]))
    return tuple((key, il, ir) for _, key, il, ir in sorted(found))
