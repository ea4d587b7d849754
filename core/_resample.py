"""Resampling onto the global model-rate grid: the one function the live aligner and the
pretraining corpora share, so a model is trained on exactly the samples the app feeds it.

Samples ``y[i]`` taken at times ``t[i]`` (seconds, non-decreasing) are interpolated linearly at
the grid instants ``k / rate`` (``k`` integer) that ``t`` spans. The grid is global (it does not
depend on where a stream starts), so streams of any rate, offset or drift land on the same
instants. Linear interpolation needs no look-ahead, so it works chunk by chunk: the caller keeps
the last sample of the previous chunk and passes it first (see :class:`~physio_live.core.Aligner`).
The band-pass before it is the anti-aliasing filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GridSamples", "resample_to_grid"]


@dataclass(frozen=True)
class GridSamples:
    """Grid samples and where they came from.

    ``k`` grid indices (instants ``k / rate``), ``values [len(k), C]``, and for each grid sample
    the source samples either side (``i0``, ``i1``) and the weight of ``i1`` (``w``): the
    aligner uses them to carry quality flags and to find gaps (``t[i1] - t[i0]``).
    """

    k: np.ndarray
    values: np.ndarray
    i0: np.ndarray
    i1: np.ndarray
    w: np.ndarray


def resample_to_grid(
    t: np.ndarray, y: np.ndarray, rate: float, k_first: int | None = None
) -> GridSamples:
    """Interpolate ``y [n, C]`` sampled at ``t [n]`` linearly onto the grid ``k / rate``.

    Grid indices run from ``k_first`` (default: the first grid instant at or after ``t[0]``) to
    the last instant at or before ``t[-1]``; instants before ``t[0]`` take ``y[0]``. Values are
    float64. A corpus resamples a whole record with ``t = arange(n) / fs`` (``k_first`` 0); the
    aligner resamples each chunk with the previous chunk's last sample prepended.
    """
    t = np.asarray(t, np.float64)
    y = np.asarray(y, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if len(t) != len(y):
        raise ValueError(f"t has {len(t)} samples but y has {len(y)}")
    empty = np.zeros(0, np.int64)
    if len(t) == 0:
        return GridSamples(empty, np.zeros((0, y.shape[1])), empty, empty, np.zeros(0))
    if k_first is None:
        k_first = math.ceil(t[0] * rate - 1e-9)
    k_last = math.floor(t[-1] * rate + 1e-9)
    if k_last < k_first:
        return GridSamples(empty, np.zeros((0, y.shape[1])), empty, empty, np.zeros(0))
    ks = np.arange(k_first, k_last + 1, dtype=np.int64)
    tg = ks / rate
    if len(t) == 1:
        i0 = i1 = np.zeros(len(ks), np.int64)
        w = np.zeros(len(ks))
    else:
        i1 = np.clip(np.searchsorted(t, tg, side="left"), 1, len(t) - 1)
        i0 = i1 - 1
        dt = t[i1] - t[i0]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(dt > 0, (tg - t[i0]) / dt, 1.0)
        w = np.clip(w, 0.0, 1.0)
    values = y[i0] * (1.0 - w)[:, None] + y[i1] * w[:, None]
    return GridSamples(ks, values, i0, i1, w)
