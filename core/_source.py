"""The one small contract every source fulfils: ``open``, ``read`` -> Chunks, ``close``."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from ._types import Chunk, StreamInfo

__all__ = ["Source"]


class Source(ABC):
    """A producer of Chunks for one or more streams (a board can give EEG and ECG at once).

    ``open`` connects (and may block up to the source's timeout); ``read`` returns the Chunks
    that arrived since the last call (possibly none), waiting at most ``timeout`` seconds;
    ``close`` releases the device. Sources are context managers.
    """

    @property
    @abstractmethod
    def streams(self) -> tuple[StreamInfo, ...]:
        """The streams this source yields (valid after ``open``)."""

    @property
    def info(self) -> StreamInfo:
        """The stream of a single-stream source."""
        if len(self.streams) != 1:
            raise AttributeError("this source yields several streams; use .streams")
        return self.streams[0]

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float = 0.1) -> list[Chunk]: ...

    @abstractmethod
    def close(self) -> None: ...

    def open_waiting(
        self,
        stop: threading.Event | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """``open``, for a source whose config may wait for a missing stream or device
        (``on_missing: wait``): ``stop`` ends the wait (:class:`StoppedWaitingError`),
        ``on_wait`` gets one progress line per attempt. Sources that never wait just open."""
        self.open()

    def pop_warnings(self) -> list[str]:
        """Warnings found while reading (once each), for the pipeline's error list."""
        return []

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
