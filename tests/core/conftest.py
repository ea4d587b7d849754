"""Fixtures of the core tests: the quality gate as it was written before it was vectorised (one
channel at a time, scipy's Welch), the reference ``assess_window_quality`` must reproduce
(``test_quality_vectorised.py``). The gap measure, which the vectorisation left as it was, is the
gate's own (``window_gap_s``); the planted-gap tests check it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from scipy import signal

from physio_live.core import QualityReport, QualityThresholds
from physio_live.core._filters import unit_scale_uv
from physio_live.core._signal_quality import window_gap_s


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of the runs of True in a 1-D boolean mask."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def reference_assess_window_quality(
    data: np.ndarray,
    timestamps: np.ndarray,
    rate: float,
    *,
    units: str | Sequence[str] = "uV",
    t_start: float | None = None,
    t_end: float | None = None,
    thresholds: QualityThresholds | None = None,
    labels: Sequence[str] = (),
) -> QualityReport:
    """Judge the raw samples of one window: ``data [n, C]`` in stream units, ``timestamps [n]``.

    Give the stream's *unfiltered* samples at its native ``rate`` covering the window's span
    ``(t_start, t_end]`` (what ``RingBuffer.read_range(t_start, t_end)`` returns); with
    ``t_start``/``t_end`` the missing data at the ends counts as gap too. ``units`` (one string or
    one per channel) converts to microvolts; unknown units are taken as microvolts.
    """
    th = thresholds or QualityThresholds()
    x = np.asarray(data, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    ts = np.asarray(timestamps, dtype=np.float64)
    n, n_ch = x.shape
    if len(ts) != n:
        raise ValueError(f"{n} samples but {len(ts)} timestamps")
    unit_list = [units] * n_ch if isinstance(units, str) else list(units)
    if len(unit_list) != n_ch:
        raise ValueError(f"{len(unit_list)} units for {n_ch} channels")
    scale = np.array([unit_scale_uv(u, 1.0) for u in unit_list], dtype=np.float64)
    x = x * scale

    # the gap measure was not touched by the vectorisation: the gate's own
    gap = window_gap_s(ts, rate, th, t_start, t_end)
    period = 1.0 / rate
    reasons: list[list[str]] = [[] for _ in range(n_ch)]
    nan_frac = np.zeros(n_ch)
    ptp = np.full(n_ch, np.nan)
    line_ratio = np.full(n_ch, np.nan)
    if n == 0:
        return QualityReport(
            tuple(tuple(r) for r in reasons), gap, gap > th.max_gap_s, tuple(labels)
        )

    finite = np.isfinite(x)
    nan_frac = 1.0 - finite.mean(axis=0)
    lines = [f for f in th.line_freqs if f + th.line_halfwidth_hz < rate / 2]
    filled = np.empty_like(x)
    for c in range(n_ch):
        if nan_frac[c] > th.max_nan_fraction:
            reasons[c].append("nan")
        good = finite[:, c]
        if good.sum() < 2:
            filled[:, c] = 0.0
            continue
        col = x[:, c]
        idx = np.arange(n)
        col = np.interp(idx, idx[good], col[good]) if not good.all() else col
        filled[:, c] = col
        hi, lo = col.max(), col.min()
        span = hi - lo
        if span < th.flat_uv:
            reasons[c].append("flat")
            ptp[c] = span
            continue
        # runs of identical consecutive (finite) values
        same = np.zeros(n, bool)
        same[1:] = (np.diff(col) == 0) & good[1:] & good[:-1]
        starts, lens = _runs(same)
        # a run of k equal differences holds k + 1 equal samples, starting one sample earlier
        lens = lens + 1
        starts = starts - 1
        at_rail = (col[starts] == hi) | (col[starts] == lo) if len(starts) else np.zeros(0, bool)
        # run durations from the timestamps (a run may span a timestamp gap)
        dur = ts[starts + lens - 1] - ts[starts] + period
        # short plateaus at the window's max/min are clipping; a long one anywhere is a dead
        # (held) signal
        clip_runs = at_rail & (dur >= th.clip_run_s) & (lens >= 2) & (dur < th.flat_run_s)
        if clip_runs.any() and lens[clip_runs].sum() >= th.clip_min_samples:
            reasons[c].append("clipped")
        if (dur >= th.flat_run_s).any():
            reasons[c].append("flat")
        if th.saturation_uv is not None and np.any(np.abs(x[good, c]) >= th.saturation_uv):
            reasons[c].append("saturated")
    # linear detrend in closed form (scipy's detrend solves a least-squares problem: 10x slower)
    tc = np.arange(n) - (n - 1) / 2.0
    slope = (tc @ filled) / max(float(tc @ tc), 1.0)
    det = filled - filled.mean(axis=0) - tc[:, None] * slope[None, :]
    p2p = det.max(axis=0) - det.min(axis=0)
    for c in range(n_ch):
        if np.isnan(ptp[c]):
            ptp[c] = p2p[c]
        if "flat" in reasons[c] or finite[:, c].sum() < 2:
            continue
        if (th.amplitude_max_uv is not None and p2p[c] > th.amplitude_max_uv) or (
            th.amplitude_min_uv is not None and p2p[c] < th.amplitude_min_uv
        ):
            reasons[c].append("amplitude")
    if lines and n >= int(rate):
        nper = min(n, round(rate))
        freqs, psd = signal.welch(det, fs=rate, nperseg=nper, noverlap=nper // 2, axis=0)
        ref = (freqs >= th.line_ref_band[0]) & (freqs <= th.line_ref_band[1])
        p_ref = psd[ref].sum(axis=0)
        p_line = np.zeros(n_ch)
        for f0 in lines:
            sel = np.abs(freqs - f0) <= th.line_halfwidth_hz
            p_line = np.maximum(p_line, psd[sel].sum(axis=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            line_ratio = np.where(p_ref > 0, p_line / p_ref, np.where(p_line > 0, np.inf, 0.0))
        for c in range(n_ch):
            if line_ratio[c] > th.max_line_ratio and "flat" not in reasons[c]:
                reasons[c].append("line_noise")
    return QualityReport(
        channel_reasons=tuple(tuple(r) for r in reasons),
        gap_s=gap,
        gap_flagged=gap > th.max_gap_s,
        labels=tuple(labels),
        metrics={"nan_fraction": nan_frac, "ptp_uv": ptp, "line_ratio": line_ratio},
    )


@pytest.fixture
def quality_reference() -> Callable[..., QualityReport]:
    return reference_assess_window_quality
