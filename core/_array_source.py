"""In-memory source: plays arrays back as Chunks with their own timestamps.

Used to push a recording (e.g. an EDF file split into EEG and ECG streams) through the very same
buffers and aligner as live data, either as fast as possible or paced in real time.
"""

from __future__ import annotations

import time

import numpy as np

from ._errors import SourceError
from ._source import Source
from ._types import Chunk, StreamInfo

__all__ = ["ArraySource"]


class ArraySource(Source):
    """Yields ``data [n, ch]`` of one stream in chunks of ``chunk_seconds``.

    ``timestamps`` defaults to ``t0 + i / nominal_srate``; ``realtime=True`` releases each chunk
    when the LSL clock passes its last timestamp (with ``t0`` = the time of ``open``).
    """

    def __init__(
        self,
        info: StreamInfo,
        data: np.ndarray,
        timestamps: np.ndarray | None = None,
        chunk_seconds: float = 0.1,
        realtime: bool = False,
        t0: float | None = None,
    ):
        if data.ndim != 2 or data.shape[1] != info.n_channels:
            raise SourceError(
                f"array for stream {info.name!r} must be [samples, {info.n_channels}], "
                f"got {data.shape}"
            )
        self._info = info
        self.data = data
        self._ts = timestamps
        self.chunk = max(1, round(chunk_seconds * info.nominal_srate)) if info.is_regular else 1
        self.realtime = realtime
        self.t0 = t0
        self.pos = 0
        self._opened = False

    @property
    def streams(self) -> tuple[StreamInfo, ...]:
        return (self._info,)

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)

    def open(self) -> None:
        if self._ts is None:
            if self.t0 is None:
                import pylsl

                self.t0 = pylsl.local_clock()
            self._ts = self.t0 + np.arange(len(self.data)) / self._info.nominal_srate
        self._opened = True

    def read(self, timeout: float = 0.1) -> list[Chunk]:
        if not self._opened or self._ts is None:
            raise SourceError("ArraySource is not open; call open() first")
        if self.exhausted:
            time.sleep(min(timeout, 0.01))
            return []
        end = min(self.pos + self.chunk, len(self.data))
        if self.realtime:
            import pylsl

            wait = self._ts[end - 1] - pylsl.local_clock()
            if wait > timeout:
                time.sleep(timeout)
                return []
            if wait > 0:
                time.sleep(wait)
        chunk = Chunk(
            self._info, np.asarray(self.data[self.pos : end], np.float32), self._ts[self.pos : end]
        )
        self.pos = end
        return [chunk]

    def close(self) -> None:
        self._opened = False
