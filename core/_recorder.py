"""The recording sink: every Chunk it is given becomes samples of an XDF stream.

Wire it to the pipeline with ``pipeline.on_chunk(recorder.write)``: raw Chunks of every source
are recorded exactly as received (before filtering), timestamps included. Streams that do not come
from a source (the estimates, the app's markers) go through the same ``write(chunk)`` with their
own StreamInfo. A stream is registered the first time its ``info.key`` is seen; ``add_stream``
registers one up front (so a stream that never delivers a sample still appears in the file).

``write`` is called from acquisition threads and never raises: problems are kept in ``status()``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._types import Chunk, StreamInfo
from ._xdf import RecordingError, XDFWriter

__all__ = ["Recorder", "RecorderStatus"]

logger = logging.getLogger(__name__)
# reported through status()/on_error: no stderr copy from logging's last-resort handler
logger.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class RecorderStatus:
    """A snapshot of the recording, for status lines and the final summary."""

    path: Path
    bytes_written: int
    error: str | None
    recording: bool
    sample_counts: dict[str, int] = field(default_factory=dict)
    dropped_samples: int = 0
    stream_errors: tuple[str, ...] = ()
    #: problems that were repaired without loss (e.g. the folder removed and the file restored)
    notices: tuple[str, ...] = ()


class Recorder:
    """Records Chunks of any number of streams into one XDF file (see :class:`XDFWriter`).

    Typical wiring (close it after the pipeline has stopped, so the footers count every sample)::

        rec = Recorder("~/recordings/session.xdf")   # RecordingError from start() if unwritable
        rec.start()
        pipeline.open()
        rec.add_streams(pipeline.streams)
        pipeline.on_chunk(rec.write)
        est = StreamInfo("Emotion", "Emotion", "misc", ("valence", "arousal", "dominance"),
                         ("probability",) * 3, 0.0, "physio-live-estimates")
        rec.write(Chunk(est, probs[None, :].astype(np.float32), np.array([t_end])))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.5,
        clock_offset_interval: float = 5.0,
        boundary_interval: float = 10.0,
        on_error: Callable[[RecordingError], None] | None = None,
    ):
        self.writer = XDFWriter(
            path,
            flush_interval=flush_interval,
            clock_offset_interval=clock_offset_interval,
            boundary_interval=boundary_interval,
            on_error=on_error,
        )
        self._ids: dict[str, int] = {}
        self._infos: dict[str, StreamInfo] = {}
        self._lock = threading.Lock()
        self._stream_errors: list[str] = []
        self._dropped = 0

    @property
    def path(self) -> Path:
        """The file being written (with its suffix, once started)."""
        return self.writer.path

    def start(self) -> Path:
        """Create the file; raises :class:`RecordingError` if the folder is not writable."""
        return self.writer.open()

    def add_stream(self, info: StreamInfo, desc: Mapping[str, str] | None = None) -> None:
        """Register a stream before its first Chunk (no-op if already known).

        Raises ValueError for a stream XDF cannot hold (unknown format, no channels).
        """
        self._register(info, desc)

    def add_streams(self, infos: Iterable[StreamInfo]) -> None:
        """Register several streams (e.g. ``pipeline.streams`` after ``pipeline.open()``)."""
        for info in infos:
            self._register(info, None)

    def write(self, chunk: Chunk) -> None:
        """Record one Chunk with its timestamps as received. Never raises (see ``status()``)."""
        key = chunk.info.key
        try:
            sid = self._ids.get(key)
            if sid is None:
                sid = self._register(chunk.info, None)
            known = self._infos[key]
            if known.n_channels != chunk.info.n_channels or (
                known.channel_format != chunk.info.channel_format
            ):
                raise ValueError(
                    f"its channels or format changed mid-session ({known.n_channels} "
                    f"{known.channel_format} -> {chunk.info.n_channels} "
                    f"{chunk.info.channel_format}); start a new recording"
                )
            self.writer.write_samples(sid, chunk.data, chunk.timestamps)
        except Exception as exc:
            self._note(f"stream {key!r} not recorded: {exc}", len(chunk))

    __call__ = write

    def close(self) -> RecorderStatus:
        """Write footers and close the file; returns the final status. Safe to call twice."""
        self.writer.close()
        return self.status()

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> RecorderStatus:
        """Path, bytes on disk, the fatal error if any, samples per stream key."""
        counts = self.writer.sample_counts
        with self._lock:
            per_key = {key: counts.get(sid, 0) for key, sid in self._ids.items()}
            errors = tuple(self._stream_errors)
            dropped = self._dropped
        err = self.writer.error
        return RecorderStatus(
            path=self.writer.path,
            bytes_written=self.writer.bytes_written,
            error=None if err is None else str(err),
            recording=self.writer.is_open,
            sample_counts=per_key,
            dropped_samples=dropped + self.writer.dropped_samples,
            stream_errors=errors,
            notices=tuple(self.writer.notices),
        )

    # -- internals ---------------------------------------------------------------------------
    def _register(self, info: StreamInfo, desc: Mapping[str, str] | None) -> int:
        with self._lock:
            sid = self._ids.get(info.key)
            if sid is None:
                sid = self.writer.add_stream(info, desc=desc)
                self._infos[info.key] = info
                self._ids[info.key] = sid
            return sid

    def _note(self, msg: str, n_samples: int) -> None:
        with self._lock:
            self._dropped += n_samples
            if msg in self._stream_errors:
                return
            self._stream_errors.append(msg)
        logger.error("recorder: %s", msg)
