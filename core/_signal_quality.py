"""Quality of the raw samples of a window, judged before any filter.

:func:`assess_window_quality` judges the *raw* samples (native rate, before any filter, in the
stream's units) of one window's time span, e.g. ``ring_buffer.read_range(t_end - length,
t_end)``: non-finite samples, flat lines, clipping at the rails, line noise (50/60 Hz power
ratio), amplitude out of the physiological range and timestamp gaps, with per-channel reasons.
It complements the aligner's :class:`~physio_live.core.ChannelQuality`, which sees only filtered
and resampled data (its notch hides line noise, its band-pass shrinks artefacts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._filters import unit_scale_uv
from ._spectra import welch_psd

__all__ = [
    "REASONS",
    "QualityReport",
    "QualityThresholds",
    "assess_window_quality",
]


@dataclass
class QualityThresholds:
    """Thresholds of :func:`assess_window_quality` (defaults: scalp EEG in microvolts).

    ``QualityThresholds.ecg()`` gives defaults for ECG. Amplitudes are peak to peak after removing
    a linear trend, in microvolts (input units are converted).
    """

    #: largest share of non-finite samples a channel may have (0: any NaN/inf flags it)
    max_nan_fraction: float = 0.0
    #: peak to peak below this (uV) is a flat channel
    flat_uv: float = 0.5
    #: a run of identical values at least this long (s) is flat (a dead or held signal)
    flat_run_s: float = 1.0
    #: shorter runs of identical values, at least this long (s), at the window's max or min are
    #: clipping (the rail need not be known)
    clip_run_s: float = 0.02
    #: ... and at least this many samples must sit in such runs
    clip_min_samples: int = 3
    #: samples with |value| >= this (uV) count as saturated; None leaves it to the aligner
    saturation_uv: float | None = None
    #: mains frequencies to look at, Hz (those at or above Nyquist are skipped)
    line_freqs: tuple[float, ...] = (50.0, 60.0)
    #: half width of the line-noise band, Hz
    line_halfwidth_hz: float = 1.0
    #: reference band for the line-noise ratio, Hz
    line_ref_band: tuple[float, float] = (1.0, 45.0)
    #: line-band power over reference-band power above this is excessive line noise
    max_line_ratio: float = 0.5
    #: physiological range of the detrended peak to peak, uV (None: no bound)
    amplitude_min_uv: float | None = 2.0
    amplitude_max_uv: float | None = 500.0
    #: consecutive timestamps further apart than this many nominal periods leave a gap
    gap_periods: float = 2.5
    #: total gap time (including missing data at the window's ends) above this is flagged, s
    max_gap_s: float = 0.0

    @classmethod
    def ecg(cls, **overrides: object) -> QualityThresholds:
        """Defaults for surface ECG: 50 uV .. 10 mV peak to peak."""
        kw: dict[str, object] = {"amplitude_min_uv": 50.0, "amplitude_max_uv": 10000.0}
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]


#: reason codes of :class:`QualityReport`
REASONS = ("nan", "flat", "clipped", "saturated", "line_noise", "amplitude")


@dataclass(frozen=True)
class QualityReport:
    """Quality of one window of one stream, from its raw samples.

    ``channel_reasons[c]`` lists the reason codes of channel ``c`` (``nan``, ``flat``,
    ``clipped``, ``saturated``, ``line_noise``, ``amplitude``); ``gap_s`` is the total time
    without samples (timestamp gaps and missing ends). ``metrics`` holds per-channel numbers for
    display: ``nan_fraction``, ``ptp_uv``, ``line_ratio``.
    """

    channel_reasons: tuple[tuple[str, ...], ...]
    gap_s: float
    gap_flagged: bool
    labels: tuple[str, ...] = ()
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def bad_channels(self) -> tuple[int, ...]:
        return tuple(i for i, r in enumerate(self.channel_reasons) if r)

    @property
    def ok(self) -> bool:
        return not self.gap_flagged and not self.bad_channels

    def channels_with(self, reason: str) -> tuple[int, ...]:
        """Channels flagged for ``reason``."""
        return tuple(i for i, r in enumerate(self.channel_reasons) if reason in r)

    def reasons(self) -> list[str]:
        """Human-readable reasons, e.g. ``["gap 0.30 s", "line_noise: F3, F4"]``."""
        out = []
        if self.gap_flagged:
            out.append(f"gap {self.gap_s:.2f} s")
        for code in REASONS:
            chans = self.channels_with(code)
            if chans:
                names = [self.labels[c] if c < len(self.labels) else str(c) for c in chans]
                out.append(f"{code}: {', '.join(names)}")
        return out


def window_gap_s(
    ts: np.ndarray,
    rate: float,
    th: QualityThresholds,
    t_start: float | None = None,
    t_end: float | None = None,
) -> float:
    """Seconds of a window's span without samples: gaps longer than ``th.gap_periods`` sample
    periods between timestamps ``ts``, and missing data at the ends of ``(t_start, t_end]``."""
    n = len(ts)
    period = 1.0 / rate
    max_dt = th.gap_periods * period
    gap = 0.0
    if n >= 2:
        dt = np.diff(ts)
        big = dt > max_dt
        if big.any():  # (almost never: skip the empty selection and sum)
            gap += float(np.sum(dt[big] - period))
    if t_start is not None:
        lead = (ts[0] if n else (t_end if t_end is not None else t_start)) - t_start
        if lead > max_dt:
            gap += lead - period
    if t_end is not None:
        tail = t_end - (ts[-1] if n else (t_start if t_start is not None else t_end))
        if tail > max_dt:
            gap += tail
    return gap


def assess_window_quality(
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
    x = np.asarray(data)
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
    # float64, channels as rows ([C, n]), in one pass: every reduction below runs along
    # contiguous memory
    x = np.multiply(x.T, scale[:, None], out=np.empty((n_ch, n)))

    gap = window_gap_s(ts, rate, th, t_start, t_end)
    period = 1.0 / rate
    if n == 0:
        return QualityReport(tuple(() for _ in range(n_ch)), gap, gap > th.max_gap_s, tuple(labels))

    # All channels at once (rows); each flag below is a boolean per channel.
    finite = np.isfinite(x)
    n_good = finite.sum(axis=1)
    nan_frac = 1.0 - n_good / n
    live = n_good >= 2  # channels with anything to judge
    filled = x
    all_finite = bool(finite.all())
    if not all_finite:
        filled = np.where(finite & live[:, None], x, 0.0)  # < 2 finite samples: zeros
        idx = np.arange(n)
        for c in np.flatnonzero(live & (n_good < n)):  # interpolate across non-finite samples
            good = finite[c]
            filled[c] = np.interp(idx, idx[good], x[c, good])
    hi, lo = filled.max(axis=1), filled.min(axis=1)
    span = hi - lo
    flat_span = live & (span < th.flat_uv)
    judged = live & ~flat_span
    # runs of identical consecutive (finite) values, per channel: from the pairs of equal
    # neighbours (few in a live signal), grouped where they follow each other
    clipped = np.zeros(n_ch, bool)
    flat_run = np.zeros(n_ch, bool)
    same = filled[:, 1:] == filled[:, :-1]
    if not all_finite:
        same &= finite[:, 1:] & finite[:, :-1]
    if not judged.all():
        same &= judged[:, None]
    # by channel, then time; pair i: samples i and i + 1 are equal
    ch_pair, pair = np.divmod(np.flatnonzero(same), max(n - 1, 1))
    if len(pair):
        first = np.ones(len(pair), bool)  # a pair that does not continue the one before
        first[1:] = (ch_pair[1:] != ch_pair[:-1]) | (pair[1:] != pair[:-1] + 1)
        at = np.flatnonzero(first)
        ch_start, starts = ch_pair[at], pair[at]  # a run starts at its first pair's sample
        lens = np.empty(len(at), np.intp)  # k equal pairs in a row: k + 1 samples
        np.subtract(at[1:], at[:-1], out=lens[:-1])
        lens[-1] = len(pair) - at[-1]
        lens += 1
        at_rail = (filled[ch_start, starts] == hi[ch_start]) | (
            filled[ch_start, starts] == lo[ch_start]
        )
        # run durations from the timestamps (a run may span a timestamp gap)
        dur = ts[starts + lens - 1] - ts[starts] + period
        # short plateaus at the window's max/min are clipping; a long one anywhere is a dead
        # (held) signal
        clip = at_rail & (dur >= th.clip_run_s) & (lens >= 2) & (dur < th.flat_run_s)
        clip_runs = np.bincount(ch_start[clip], minlength=n_ch)
        clip_samples = np.bincount(ch_start[clip], weights=lens[clip], minlength=n_ch)
        clipped = (clip_runs > 0) & (clip_samples >= th.clip_min_samples)
        flat_run = np.bincount(ch_start[dur >= th.flat_run_s], minlength=n_ch) > 0
    saturated = np.zeros(n_ch, bool)
    if th.saturation_uv is not None:
        with np.errstate(invalid="ignore"):
            saturated = judged & (finite & (np.abs(x) >= th.saturation_uv)).any(axis=1)
    flat = flat_span | flat_run
    # linear detrend in closed form (scipy's detrend solves a least-squares problem: 10x slower)
    tc = np.arange(n) - (n - 1) / 2.0
    slope = (filled @ tc) / max(float(tc @ tc), 1.0)
    det = filled - (filled.mean(axis=1, keepdims=True) + slope[:, None] * tc)
    p2p = det.max(axis=1) - det.min(axis=1)
    ptp = np.where(flat_span, span, p2p)
    amplitude = np.zeros(n_ch, bool)
    if th.amplitude_max_uv is not None:
        amplitude |= p2p > th.amplitude_max_uv
    if th.amplitude_min_uv is not None:
        amplitude |= p2p < th.amplitude_min_uv
    amplitude &= live & ~flat
    line_noise = np.zeros(n_ch, bool)
    line_ratio = np.full(n_ch, np.nan)  # NaN: not judged (no mains frequency below Nyquist)
    lines = [f for f in th.line_freqs if f + th.line_halfwidth_hz < rate / 2]
    if lines and n >= int(rate):
        freqs, psd = welch_psd(det, rate, min(n, round(rate)), axis=-1)
        ref = (freqs >= th.line_ref_band[0]) & (freqs <= th.line_ref_band[1])
        p_ref = psd[:, ref].sum(axis=1)
        p_line = np.zeros(n_ch)
        for f0 in lines:
            sel = np.abs(freqs - f0) <= th.line_halfwidth_hz
            p_line = np.maximum(p_line, psd[:, sel].sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            line_ratio = np.where(p_ref > 0, p_line / p_ref, np.where(p_line > 0, np.inf, 0.0))
        line_noise = (line_ratio > th.max_line_ratio) & ~flat
    # reason codes per channel, in a fixed order (flat from the span and the run checks exclude
    # each other: a flat-span channel is not judged for runs)
    reasons: list[list[str]] = [[] for _ in range(n_ch)]
    flags = (
        ("nan", nan_frac > th.max_nan_fraction), ("flat", flat_span), ("clipped", clipped),
        ("flat", flat_run), ("saturated", saturated), ("amplitude", amplitude),
        ("line_noise", line_noise),
    )  # fmt: skip
    for code, flag in flags:
        if flag.any():  # most flags are all False: skip their (costlier) index lookup
            for c in np.flatnonzero(flag):
                reasons[c].append(code)
    return QualityReport(
        channel_reasons=tuple(tuple(r) for r in reasons),
        gap_s=gap,
        gap_flagged=gap > th.max_gap_s,
        labels=tuple(labels),
        metrics={"nan_fraction": nan_frac, "ptp_uv": ptp, "line_ratio": line_ratio},
    )
