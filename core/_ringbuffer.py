"""Preallocated per-stream ring buffer: a write index, one lock, readers slice by time or count.

Writers append chunks; the buffer never reallocates. Every sample gets a sequence number (the count
of samples written before it), so a reader that keeps its own cursor (``read_from``) sees every
sample exactly once and learns how many it missed when it fell more than a buffer behind.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["RingBuffer"]


class RingBuffer:
    """Fixed-capacity buffer of ``[capacity, n_channels]`` samples and their timestamps."""

    def __init__(self, capacity: int, n_channels: int, dtype: np.dtype | type = np.float32):
        if capacity <= 0 or n_channels <= 0:
            raise ValueError("capacity and n_channels must be positive")
        self.capacity = int(capacity)
        self.n_channels = int(n_channels)
        self._data = np.zeros((self.capacity, self.n_channels), dtype=dtype)
        self._ts = np.zeros(self.capacity, dtype=np.float64)
        self._written = 0  # total samples ever written; write position = _written % capacity
        self._lock = threading.Lock()

    @property
    def written(self) -> int:
        """Total samples written so far (the next sample's sequence number)."""
        return self._written

    def __len__(self) -> int:
        return min(self._written, self.capacity)

    def write(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append ``data [n, n_channels]`` with ``timestamps [n]``."""
        n = len(timestamps)
        if n == 0:
            return
        if data.shape != (n, self.n_channels):
            raise ValueError(
                f"expected data of shape ({n}, {self.n_channels}), got {tuple(data.shape)}"
            )
        if n > self.capacity:  # only the newest samples fit
            skip = n - self.capacity
            data, timestamps = data[skip:], timestamps[skip:]
        else:
            skip = 0
        with self._lock:
            start = (self._written + skip) % self.capacity
            m = len(timestamps)
            first = min(m, self.capacity - start)
            self._data[start : start + first] = data[:first]
            self._ts[start : start + first] = timestamps[:first]
            if first < m:
                self._data[: m - first] = data[first:]
                self._ts[: m - first] = timestamps[first:]
            self._written += n

    def _copy_out(self, seq0: int, seq1: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy samples with sequence numbers [seq0, seq1) (caller holds the lock)."""
        n = seq1 - seq0
        start = seq0 % self.capacity
        first = min(n, self.capacity - start)
        if first == n:
            return self._data[start : start + n].copy(), self._ts[start : start + n].copy()
        data = np.concatenate((self._data[start:], self._data[: n - first]))
        ts = np.concatenate((self._ts[start:], self._ts[: n - first]))
        return data, ts

    def read_from(
        self, seq: int, max_samples: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Samples from sequence number ``seq`` on.

        Returns ``(data, timestamps, next_seq, lost)``; ``lost`` counts samples that were
        overwritten before this reader got to them (the read then starts at the oldest held one).
        """
        with self._lock:
            oldest = max(0, self._written - self.capacity)
            lost = max(0, oldest - seq)
            seq = max(seq, oldest)
            end = self._written
            if max_samples is not None:
                end = min(end, seq + max_samples)
            if end <= seq:
                return (
                    np.empty((0, self.n_channels), self._data.dtype),
                    np.empty(0, np.float64),
                    seq,
                    lost,
                )
            data, ts = self._copy_out(seq, end)
        return data, ts, end, lost

    def read_last(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``n`` samples (fewer when fewer are held), oldest first."""
        with self._lock:
            end = self._written
            seq0 = max(end - min(n, self.capacity), 0)
            return self._copy_out(seq0, end)

    def read_seconds(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples of the last ``seconds`` before the newest timestamp."""
        with self._lock:
            end = self._written
            if end == 0:
                return self._copy_out(0, 0)
            t_last = self._ts[(end - 1) % self.capacity]
        return self.read_range(t_last - seconds, np.inf)

    def read_range(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Held samples with ``t0 < t <= t1``; timestamps are assumed non-decreasing."""
        with self._lock:
            end = self._written
            seq0 = max(0, end - self.capacity)
            n = end - seq0
            if n == 0:
                return self._copy_out(0, 0)
            # binary search over the logical (unwrapped) order
            start = seq0 % self.capacity

            def ts_at(i: int) -> float:
                return self._ts[(start + i) % self.capacity]

            lo, hi = 0, n
            while lo < hi:  # first index with t > t0
                mid = (lo + hi) // 2
                if ts_at(mid) <= t0:
                    lo = mid + 1
                else:
                    hi = mid
            a = lo
            lo, hi = a, n
            while lo < hi:  # first index with t > t1
                mid = (lo + hi) // 2
                if ts_at(mid) <= t1:
                    lo = mid + 1
                else:
                    hi = mid
            return self._copy_out(seq0 + a, seq0 + lo)
