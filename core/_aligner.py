"""Aligner: every stream onto one model-rate timeline, then fixed windows at a fixed hop.

Per signal stream, each incoming chunk is

1. converted to microvolts (channel units from the stream info),
2. checked: non-finite samples are replaced by the channel's last finite value (so the filter
   state stays finite) and remembered, as are samples at or beyond the saturation level,
3. filtered causally at its native rate (band-pass + notch, state carried across chunks),
4. resampled by linear interpolation at the timestamps of a global grid ``k / rate`` (``k``
   integer) of the LSL clock, so streams of any rate, offset or drift land on the same samples
   (:func:`~physio_live.core.resample_to_grid`, the function the pretraining corpora use too).

Windows end on grid samples that are multiples of the hop, so they fall at the same times whatever
the start; a window is cut once every EEG/ECG stream has grid samples up to its end. Each window
carries quality flags per modality (gap, NaN/inf, flat, saturated channels) and the markers inside.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ._config import AlignerConfig
from ._filters import StreamingFilter, design_sos, unit_scale_uv
from ._resample import resample_to_grid
from ._types import ChannelQuality, Chunk, Quality, StreamInfo, Window

__all__ = ["Aligner"]

_NAN = np.uint8(1)
_SAT = np.uint8(2)
MODALITIES = ("eeg", "ecg")


class _GridStream:
    """One signal stream's path from raw chunks to grid samples (state of steps 1-4 above)."""

    def __init__(self, info: StreamInfo, cfg: AlignerConfig, capacity: int):
        self.info = info
        self.rate = cfg.rate
        mod = cfg.eeg if info.role == "eeg" else cfg.ecg
        self.unit_uv = mod.unit_uv
        self.scale = np.array([unit_scale_uv(u, 1.0) for u in info.channel_units], dtype=np.float64)
        self.saturation_uv = cfg.quality.saturation_uv
        self.max_dt = (
            cfg.quality.gap_periods / info.nominal_srate if info.nominal_srate > 0 else math.inf
        )
        self.filter = StreamingFilter(
            design_sos(info.nominal_srate, mod.bandpass, mod.notch, mod.order, mod.notch_q),
            info.n_channels,
        )
        n_ch = info.n_channels
        self.capacity = capacity
        self.vals = np.zeros((capacity, n_ch), np.float32)  # microvolts, filtered
        self.flags = np.zeros((capacity, n_ch), np.uint8)
        self.gap = np.zeros(capacity, bool)
        self.k_first: int | None = None  # first grid index held since the last reset
        self.k_next: int | None = None  # next grid index to produce
        self.prev_t: float | None = None
        self.prev_y = np.zeros(n_ch)
        self.prev_f = np.zeros(n_ch, np.uint8)
        self.last_finite = np.zeros(n_ch)  # before any finite sample, NaNs become 0
        self.samples_in = 0
        self.pending_gaps: list[tuple[int, int]] = []  # grid index ranges still to be flagged

    def _clean(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Replace non-finite samples by the last finite value per channel; return flags."""
        flags = np.zeros(x.shape, np.uint8)
        bad = ~np.isfinite(x)
        if bad.any():
            flags[bad] |= _NAN
            for ch in np.flatnonzero(bad.any(axis=0)):
                col = x[:, ch]
                good = ~bad[:, ch]
                idx = np.where(good, np.arange(len(col)), -1)
                np.maximum.accumulate(idx, out=idx)
                fill = self.last_finite[ch]
                col[:] = np.where(idx >= 0, col[np.maximum(idx, 0)], fill)
        self.last_finite = x[-1].copy()  # finite: NaNs were filled above
        if self.saturation_uv is not None:
            flags[np.abs(x) >= self.saturation_uv] |= _SAT
        return x, flags

    def push(self, data: np.ndarray, ts: np.ndarray) -> None:
        if len(ts) == 0:
            return
        ts = np.asarray(ts, np.float64)
        if self.prev_t is not None and ts[0] < self.prev_t - 1.0:
            self._reset()  # clock went back by more than a second: start the timeline anew
        if self.prev_t is not None:
            ts = np.maximum.accumulate(np.maximum(ts, self.prev_t))
        else:
            ts = np.maximum.accumulate(ts)
        x = np.asarray(data, np.float64) * self.scale
        x, flags = self._clean(x)
        y = self.filter(x)
        self.samples_in += len(ts)
        if self.prev_t is None:
            t_all, y_all, f_all = ts, y, flags
            k0 = math.ceil(ts[0] * self.rate - 1e-9)
            self.k_next = k0
            self.k_first = k0
        else:
            t_all = np.concatenate(([self.prev_t], ts))
            y_all = np.concatenate((self.prev_y[None], y))
            f_all = np.concatenate((self.prev_f[None], flags))
        self.prev_t, self.prev_y, self.prev_f = float(ts[-1]), y[-1].copy(), flags[-1].copy()
        assert self.k_next is not None
        g = resample_to_grid(t_all, y_all, self.rate, self.k_next)
        if len(g.k) == 0:
            return
        dt = t_all[g.i1] - t_all[g.i0]
        self._store(g.k, g.values, f_all[g.i0] | f_all[g.i1], dt > self.max_dt)
        k_last = g.k[-1]
        self.k_next = int(k_last) + 1

    def _store(self, ks: np.ndarray, vals: np.ndarray, flags: np.ndarray, gap: np.ndarray) -> None:
        if len(ks) > self.capacity:
            ks, vals, flags, gap = (
                ks[-self.capacity :],
                vals[-self.capacity :],
                flags[-self.capacity :],
                gap[-self.capacity :],
            )
        if self.pending_gaps:
            gap = gap.copy()
            for g0, g1 in self.pending_gaps:
                gap |= (ks >= g0) & (ks <= g1)
            self.pending_gaps = [g for g in self.pending_gaps if g[1] > ks[-1]]
        pos = ks % self.capacity
        self.vals[pos] = vals
        self.flags[pos] = flags
        self.gap[pos] = gap

    def mark_gap(self, t_from: float, t_to: float) -> None:
        """Flag the grid samples around ``t_from .. t_to`` (LSL time) as a gap."""
        g0 = math.floor(t_from * self.rate)
        g1 = max(math.ceil(t_to * self.rate), g0 + 1)
        if self.k_next is not None and self.k_first is not None and g0 < self.k_next:
            lo = max(g0, self.k_first, self.k_next - self.capacity)
            hi = min(g1, self.k_next - 1)
            if lo <= hi:  # already on the grid (not yet cut into windows, in all likelihood)
                self.gap[np.arange(lo, hi + 1) % self.capacity] = True
        if self.k_next is None or g1 >= self.k_next:
            self.pending_gaps.append((g0, g1))

    def _reset(self) -> None:
        self.filter.reset()
        self.prev_t = None
        self.k_first = None
        self.k_next = None

    def covers(self, k0: int, k1: int) -> bool:
        """Holds grid samples k0..k1 inclusive (and they have not been overwritten)."""
        if self.k_next is None or self.k_first is None:
            return False
        oldest = max(self.k_first, self.k_next - self.capacity)
        return k0 >= oldest and k1 < self.k_next

    def take(self, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid samples k0..k1 inclusive: views where they do not wrap around the ring (the
        caller copies them), copies where they do."""
        a = k0 % self.capacity
        b = a + (k1 - k0 + 1)
        if b <= self.capacity:
            return self.vals[a:b], self.flags[a:b], self.gap[a:b]
        pos = np.arange(k0, k1 + 1) % self.capacity
        return self.vals[pos], self.flags[pos], self.gap[pos]


def _channels_with(flags: np.ndarray, any_flag: bool, bit: int) -> tuple[int, ...]:
    """Channels of ``flags [T, C]`` with ``bit`` set in any sample (``any_flag``: whether any
    sample of any channel has a flag at all; usually none has)."""
    if not any_flag:
        return ()
    return tuple(int(c) for c in np.flatnonzero((flags & bit).any(axis=0)))


@dataclass
class AlignerStats:
    windows: int = 0
    skipped_windows: int = 0  # windows whose samples were overwritten before all streams arrived


class Aligner:
    """Turns Chunks of EEG, ECG and marker streams into aligned :class:`Window` objects.

    ``push`` Chunks in any interleaving (each stream's own chunks in order), then ``pop_windows``.
    Not thread-safe: one thread feeds it (see :class:`~physio_live.core.Pipeline`).
    """

    def __init__(self, cfg: AlignerConfig, streams: list[StreamInfo], buffer_seconds: float = 60.0):
        self.cfg = cfg
        self.rate = cfg.rate
        self.n_win = cfg.window_samples
        self.n_hop = cfg.hop_samples
        capacity = max(int(buffer_seconds * cfg.rate), 2 * self.n_win)
        self._grid: dict[str, _GridStream] = {}
        self._by_mod: dict[str, list[_GridStream]] = {m: [] for m in MODALITIES}
        self._markers: dict[str, deque[tuple[float, str]]] = {}
        self._marker_keep = buffer_seconds
        for info in streams:
            if info.role in MODALITIES:
                if info.nominal_srate <= 0:
                    raise ValueError(
                        f"stream {info.name!r} ({info.role}) has no nominal sampling rate; "
                        "EEG/ECG streams must be regular"
                    )
                g = _GridStream(info, cfg, capacity)
                self._grid[info.key] = g
                self._by_mod[info.role].append(g)
            elif info.role == "markers":
                self._markers[info.key] = deque()
        if not self._grid:
            raise ValueError("the aligner needs at least one EEG or ECG stream")
        self._next_end: int | None = None
        self.stats = AlignerStats()
        self.labels = {
            m: tuple(lab for g in self._by_mod[m] for lab in g.info.channel_labels)
            for m in MODALITIES
        }

    @property
    def streams(self) -> list[StreamInfo]:
        return [g.info for g in self._grid.values()]

    @property
    def grid_keys(self) -> tuple[str, ...]:
        """Keys of the EEG/ECG streams (the ones every window needs)."""
        return tuple(self._grid)

    @property
    def next_window_end(self) -> float | None:
        """End time (LSL clock) of the next window to cut; None until the first is placed."""
        return None if self._next_end is None else self._next_end / self.rate

    def mark_gap(self, key: str, t_from: float, t_to: float) -> None:
        """Flag stream ``key``'s grid samples between ``t_from`` and ``t_to`` as a gap (a source
        found its timeline broken there, e.g. a device clock reset); unknown keys are ignored."""
        if key in self._grid:
            self._grid[key].mark_gap(t_from, t_to)

    def push(self, chunk: Chunk) -> None:
        """Feed one chunk of any known stream (unknown streams are ignored)."""
        key = chunk.info.key
        if key in self._grid:
            self._grid[key].push(chunk.data, chunk.timestamps)
        elif key in self._markers:
            q = self._markers[key]
            for t, v in zip(chunk.timestamps, chunk.data[:, 0], strict=True):
                q.append((float(t), str(v)))
            if q:
                while q and q[0][0] < q[-1][0] - self._marker_keep:
                    q.popleft()

    def pop_windows(self) -> list[Window]:
        """All windows that every EEG/ECG stream now covers, oldest first."""
        grids = list(self._grid.values())
        if any(g.k_next is None for g in grids):
            return []
        k_avail = min(g.k_next for g in grids) - 1  # type: ignore[type-var]
        if self._next_end is None:
            k_start = max(g.k_first for g in grids)  # type: ignore[type-var]
            first_end = k_start + self.n_win - 1
            self._next_end = -(-first_end // self.n_hop) * self.n_hop
        out = []
        while self._next_end <= k_avail:
            k1 = self._next_end
            k0 = k1 - self.n_win + 1
            self._next_end += self.n_hop
            if not all(g.covers(k0, k1) for g in grids):
                self.stats.skipped_windows += 1
                continue
            out.append(self._cut(k0, k1))
        return out

    def _cut(self, k0: int, k1: int) -> Window:
        t_end = k1 / self.rate
        arrays: dict[str, np.ndarray | None] = {}
        quality = {}
        qcfg = self.cfg.quality
        for mod in MODALITIES:
            gs = self._by_mod[mod]
            if not gs:
                arrays[mod] = None
                continue
            parts = [g.take(k0, k1) for g in gs]
            vals = np.concatenate([p[0] for p in parts], axis=1)  # [T, C] microvolts
            flags = np.concatenate([p[1] for p in parts], axis=1)
            gap = np.logical_or.reduce([p[2] for p in parts])
            unit = gs[0].unit_uv
            arrays[mod] = np.ascontiguousarray((vals / unit).T, dtype=np.float32)
            ptp = vals.max(axis=0) - vals.min(axis=0)
            any_flag = bool(flags.any())
            quality[mod] = ChannelQuality(
                gap_fraction=float(gap.mean()),
                nan_channels=_channels_with(flags, any_flag, _NAN),
                flat_channels=tuple(int(c) for c in np.flatnonzero(ptp < qcfg.flat_uv)),
                saturated_channels=_channels_with(flags, any_flag, _SAT),
            )
        t_start = t_end - self.n_win / self.rate
        markers = tuple(
            sorted((t, v) for q in self._markers.values() for t, v in q if t_start < t <= t_end)
        )
        win = Window(
            t_end=t_end,
            rate=self.rate,
            eeg=arrays["eeg"],
            ecg=arrays["ecg"],
            quality=Quality(quality),
            index=self.stats.windows,
            eeg_labels=self.labels["eeg"],
            ecg_labels=self.labels["ecg"],
            markers=markers,
        )
        self.stats.windows += 1
        return win
