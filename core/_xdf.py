"""An incremental XDF writer, written from the XDF 1.0 specification (LabRecorder conventions).

An XDF file is the magic ``XDF:`` followed by chunks. Each chunk is a variable-length integer
(one byte saying 1, 4 or 8, then the little-endian number of that many bytes) giving the length of
what follows, a 2-byte tag, and the content. Tags: 1 FileHeader (XML), 2 StreamHeader (stream id +
XML), 3 Samples (stream id, a varlen sample count, then per sample a timestamp byte -- 8 followed by
a float64, or 0 for "deduced" -- and the values), 4 ClockOffset (stream id, collection time, offset
value, both float64), 5 Boundary (a fixed 16-byte UUID that lets readers resynchronise in a damaged
file), 6 StreamFooter (stream id + XML). Numbers are little-endian; string values are a varlen byte
count followed by UTF-8 bytes.

Choices made here, and why:

* **Every sample carries its own timestamp** (never "deduced"), so timestamps are read back exactly
  as received, whatever the jitter.
* **Clock offsets are 0.0.** Every timestamp we record is already on this machine's LSL clock
  (``pylsl.local_clock()``): LSL inlets apply their clock-sync post-processing and BrainFlow
  stamps are mapped onto the LSL clock before they become Chunks. So the offset between a stream's
  clock and the recorder's clock is zero by construction. We still write a ClockOffset chunk of
  0.0 measured at ``pylsl.local_clock()`` when a stream is added, every few seconds and at close,
  as LabRecorder does, so readers that expect offsets (pyxdf with ``synchronize_clocks=True``)
  work and leave the timestamps unchanged.
* **Crash safety.** Encoded chunks go to an in-memory buffer; a flusher thread writes complete
  chunks with ``os.write`` and ``os.fsync`` every ``flush_interval`` seconds (default 0.5 s), so
  after ``kill -9`` (or a power cut) the file holds everything but at most the last flush
  interval, and it is readable because only whole chunks are handed to the kernel (short of a
  kill landing inside the ``write`` system call itself, after which readers skip the cut chunk).
  Acquisition threads only encode and append under a lock; they never wait for the disk.
* **Failures never reach the acquisition threads.** A failed write (disk full, file size limit)
  is stored in :attr:`XDFWriter.error` (and passed to ``on_error``); the writer stops and the file
  is cut back to its last whole chunk, so it stays readable with everything written before.
  Starting, on the other hand, raises :class:`RecordingError` with the fix in its text, because
  that is where the user can still act.
* **A removed file or folder loses nothing.** The file is opened read-write and stays open, so
  after ``rm -rf`` of its folder its bytes are still reachable through the descriptor. The flusher
  notices (link count 0 after its fsync), recreates the folder, copies those bytes into a new file
  at the same path (the next free ``_1`` name if another file took it) and goes on writing there;
  the event is kept in :attr:`XDFWriter.notices`.
* **Never overwrite.** The file is created with ``O_EXCL``; if the name exists, ``_1``, ``_2`` ...
  are appended before the extension.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._errors import PhysioLiveError
from ._types import StreamInfo

__all__ = ["FORMATS", "RecordingError", "XDFWriter"]

logger = logging.getLogger(__name__)
# reported through status()/on_error: no stderr copy from logging's last-resort handler
logger.addHandler(logging.NullHandler())

#: XDF channel formats and the little-endian NumPy dtype of their values (``None``: strings).
FORMATS: dict[str, str | None] = {
    "float32": "<f4",
    "double64": "<f8",
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "string": None,
}
_FORMAT_ALIASES = {"float64": "double64", "double": "double64", "float": "float32"}

TAG_FILE_HEADER = 1
TAG_STREAM_HEADER = 2
TAG_SAMPLES = 3
TAG_CLOCK_OFFSET = 4
TAG_BOUNDARY = 5
TAG_STREAM_FOOTER = 6

#: The Boundary chunk's content, fixed by the specification.
BOUNDARY_UUID = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")

#: Wake the flusher early once this much is waiting in memory.
_EARLY_FLUSH_BYTES = 8 << 20

#: errno values that mean "no more room": disk full, quota, file size limit (RLIMIT_FSIZE).
_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _pread(fd: int, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset`` without moving the write position (os.pread where it exists)."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    here = os.lseek(fd, 0, os.SEEK_CUR)  # pragma: no cover - Windows keeps removed files anyway
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, n)
    finally:
        os.lseek(fd, here, os.SEEK_SET)


class RecordingError(PhysioLiveError):
    """The recording file could not be created or written; the text says how to fix it."""


def _candidates(p: Path) -> Iterator[Path]:
    yield p
    i = 1
    while True:
        yield p.with_name(f"{p.stem}_{i}{p.suffix}")
        i += 1


# -- encoding --------------------------------------------------------------------------------
def _varlen(n: int) -> bytes:
    """XDF variable-length integer: a byte giving the width (1, 4 or 8), then the number."""
    if n < 0:
        raise ValueError(f"negative length {n}")
    if n < 1 << 8:
        return struct.pack("<BB", 1, n)
    if n < 1 << 32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    """One chunk: length (of tag + content), tag, content."""
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _xml_bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="unicode").encode("utf-8")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _fmt_float(x: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(x))


def normalize_format(fmt: str) -> str:
    """The XDF name of a channel format (``float64`` -> ``double64``); ValueError if unknown."""
    f = _FORMAT_ALIASES.get(fmt, fmt)
    if f not in FORMATS:
        raise ValueError(
            f"channel format {fmt!r} cannot be written to XDF; use one of {sorted(FORMATS)}"
        )
    return f


@dataclass
class _Stream:
    """What the writer keeps per stream: for the footer and the counters."""

    stream_id: int
    info: StreamInfo
    fmt: str
    record_dtype: np.dtype | None
    sample_count: int = 0
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)


class XDFWriter:
    """Writes streams of samples to one XDF file, incrementally and thread-safely.

    Typical use::

        w = XDFWriter("session.xdf")
        w.open()                       # RecordingError if the folder is not writable
        sid = w.add_stream(info)       # StreamHeader (+ a ClockOffset)
        w.write_samples(sid, data, timestamps)   # from any thread, never raises on disk errors
        w.close()                      # StreamFooters, final flush

    ``path`` is the file actually written (a suffix is added when the name was taken).
    ``clock`` gives the time of ClockOffset measurements (default ``pylsl.local_clock``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.5,
        clock_offset_interval: float = 5.0,
        boundary_interval: float = 10.0,
        fsync: bool = True,
        on_error: Callable[[RecordingError], None] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        if flush_interval <= 0 or flush_interval > 1.0:
            raise ValueError("flush_interval must be in (0, 1] seconds")
        self.requested_path = Path(path).expanduser()
        self.path: Path = self.requested_path
        self.flush_interval = float(flush_interval)
        self.clock_offset_interval = float(clock_offset_interval)
        self.boundary_interval = float(boundary_interval)
        self.fsync = fsync
        self.on_error = on_error
        self._clock = clock
        self.error: RecordingError | None = None
        self.notices: list[str] = []  # things that went wrong and were repaired (file restored)
        self.bytes_written = 0
        self._good_size = 0  # file size after the last complete flush (whole chunks only)
        self.dropped_samples = 0
        self._streams: dict[int, _Stream] = {}
        self._pending = bytearray()
        self._pending_samples = 0  # samples inside _pending (lost if the writer fails)
        self._inflight_samples = 0  # samples of the buffer being written right now
        self._fd: int | None = None
        self._opened = False
        self._closed = False
        # _lock guards the pending buffer and all counters (held briefly by acquisition threads);
        # _io_lock serialises file writes, so fsync never stalls an acquisition thread.
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_offset = 0.0
        self._last_boundary = 0.0

    # -- life cycle --------------------------------------------------------------------------
    def open(self) -> Path:
        """Create the file (never overwriting), write the FileHeader, start the flusher thread.

        Raises :class:`RecordingError` when the folder cannot be created or written.
        """
        if self._opened:
            raise RuntimeError("XDFWriter.open() called twice")
        folder = self.requested_path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(
                f"cannot create the recording folder {str(folder)!r} ({exc.strerror or exc}); "
                "choose a folder you can write to (e.g. --record-dir ~/recordings)"
            ) from exc
        fd, path = None, self.requested_path
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        for candidate in _candidates(self.requested_path):
            try:
                fd = os.open(candidate, flags, 0o644)
            except FileExistsError:
                continue
            except OSError as exc:
                raise RecordingError(
                    f"cannot create {str(candidate)!r} ({exc.strerror or exc}); the recording "
                    "folder must be writable: fix its permissions or record to another folder"
                ) from exc
            path = candidate
            break
        assert fd is not None
        self._fd, self.path = fd, path
        header = ET.Element("info")
        _sub(header, "version", "1.0")
        _sub(header, "writer", "physio-live")
        _sub(
            header,
            "datetime",
            datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        try:
            self._write_all(fd, b"XDF:" + _chunk(TAG_FILE_HEADER, _xml_bytes(header)))
            if self.fsync:
                os.fsync(fd)
            self._good_size = self.bytes_written
        except OSError as exc:
            os.close(fd)
            self._fd = None
            raise RecordingError(
                f"cannot write {str(path)!r} ({exc.strerror or exc}); free disk space or record "
                "to another folder"
            ) from exc
        now = time.monotonic()
        self._last_offset = self._last_boundary = now
        self._opened = True
        self._thread = threading.Thread(target=self._flush_loop, name="xdf-flush", daemon=True)
        self._thread.start()
        logger.info("recording to %s", path)
        return path

    def __enter__(self) -> XDFWriter:
        if not self._opened:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """True between ``open`` and ``close`` while no write has failed."""
        return self._opened and not self._closed and self.error is None

    # -- streams -----------------------------------------------------------------------------
    def add_stream(
        self,
        info: StreamInfo,
        *,
        desc: Mapping[str, str] | None = None,
        created_at: float | None = None,
    ) -> int:
        """Register a stream: writes its StreamHeader and a first ClockOffset; returns its id.

        ``desc`` adds ``<key>text</key>`` elements to the header's ``desc`` (e.g. a model id).
        """
        fmt = normalize_format(info.channel_format)
        if info.n_channels < 1:
            raise ValueError(f"stream {info.name!r} has no channels; XDF needs at least one")
        record_dtype = None
        if FORMATS[fmt] is not None:
            record_dtype = np.dtype(
                [("flag", "u1"), ("ts", "<f8"), ("values", FORMATS[fmt], (info.n_channels,))]
            )
        now = self._now()
        xml = self._header_xml(info, fmt, now if created_at is None else created_at, desc)
        with self._lock:
            if not self._opened or self._closed:
                raise RuntimeError("XDFWriter is not open")
            sid = len(self._streams) + 1
            st = _Stream(sid, info, fmt, record_dtype)
            self._streams[sid] = st
            if self.error is not None:
                return sid
            self._pending += _chunk(TAG_STREAM_HEADER, struct.pack("<I", sid) + xml)
            self._append_offset(st, now)
        return sid

    @property
    def streams(self) -> dict[int, StreamInfo]:
        """Stream id -> StreamInfo of every registered stream."""
        with self._lock:
            return {sid: st.info for sid, st in self._streams.items()}

    @property
    def sample_counts(self) -> dict[int, int]:
        """Stream id -> samples accepted so far."""
        with self._lock:
            return {sid: st.sample_count for sid, st in self._streams.items()}

    def write_samples(self, stream_id: int, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append samples ``data [n, channels]`` with ``timestamps [n]`` (seconds) to a stream.

        Values are cast to the stream's channel format; strings are written as UTF-8. Disk errors
        are never raised here (see :attr:`error`); a wrong shape or unknown id raises ValueError.
        """
        st = self._streams.get(stream_id)
        if st is None:
            raise ValueError(f"unknown XDF stream id {stream_id}")
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        n = ts.shape[0]
        if st.record_dtype is not None:
            values = np.asarray(data)
        else:
            values = np.asarray(data, dtype=object)
        if values.ndim == 1 and st.info.n_channels == 1:
            values = values.reshape(-1, 1)
        if values.shape != (n, st.info.n_channels):
            raise ValueError(
                f"stream {st.info.name!r}: data of shape {values.shape} does not match "
                f"{n} timestamps x {st.info.n_channels} channels"
            )
        if n == 0:
            return
        if self.error is not None or self._closed:
            with self._lock:
                self.dropped_samples += n
            return
        payload = self._encode(st, values, ts)
        with self._lock:
            if self.error is not None or self._closed:
                self.dropped_samples += n
                return
            self._pending += payload
            self._pending_samples += n
            if st.first_timestamp is None:
                st.first_timestamp = float(ts[0])
            st.last_timestamp = float(ts[-1])
            st.sample_count += n
            big = len(self._pending) >= _EARLY_FLUSH_BYTES
        if big:
            self._wake.set()

    # -- flushing ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what is waiting in memory to the file and fsync it (any thread)."""
        with self._io_lock:
            with self._lock:
                fd = self._fd
                if fd is None or self.error is not None:
                    return
                buf, self._pending = self._pending, bytearray()
                self._inflight_samples, self._pending_samples = self._pending_samples, 0
            try:
                if buf:
                    self._write_all(fd, buf)
                if self.fsync:
                    os.fsync(fd)
                self._good_size = self.bytes_written
                if os.fstat(fd).st_nlink == 0:
                    self._restore(fd)
            except OSError as exc:
                self._cut_back(fd, buf)
                self._fail(exc)
            finally:
                self._inflight_samples = 0

    def close(self) -> None:
        """Write every stream's footer, flush, and close the file. Never raises on disk errors."""
        if not self._opened or self._closed:
            self._closed = True
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        with self._lock:
            self._closed = True
            if self.error is None:
                now = self._now()
                for st in self._streams.values():
                    self._append_offset(st, now)
                for st in self._streams.values():
                    self._pending += _chunk(
                        TAG_STREAM_FOOTER, struct.pack("<I", st.stream_id) + self._footer_xml(st)
                    )
        self.flush()
        with self._io_lock:
            if self._fd is not None:
                try:
                    os.close(self._fd)
                except OSError as exc:  # pragma: no cover - close rarely fails after fsync
                    self._fail(exc)
                self._fd = None
        logger.info("recording closed: %s (%d bytes)", self.path, self.bytes_written)

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._periodic_chunks()
                self.flush()
            except Exception as exc:  # keep the flusher alive; record the surprise
                self._fail(exc)

    def _periodic_chunks(self) -> None:
        mono = time.monotonic()
        with self._lock:
            if self.error is not None or self._closed:
                return
            if mono - self._last_offset >= self.clock_offset_interval:
                self._last_offset = mono
                now = self._now()
                for st in self._streams.values():
                    self._append_offset(st, now)
            if mono - self._last_boundary >= self.boundary_interval:
                self._last_boundary = mono
                self._pending += _chunk(TAG_BOUNDARY, BOUNDARY_UUID)

    # -- internals ---------------------------------------------------------------------------
    def _now(self) -> float:
        if self._clock is None:
            import pylsl

            self._clock = pylsl.local_clock
        return float(self._clock())

    def _append_offset(self, st: _Stream, now: float) -> None:
        """Queue a ClockOffset chunk of 0.0 at ``now`` (caller holds ``_lock``)."""
        st.clock_offsets.append((now, 0.0))
        self._pending += _chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", st.stream_id, now, 0.0))

    def _write_all(self, fd: int, buf: bytes | bytearray) -> None:
        view = memoryview(buf)
        while view:
            n = self._os_write(fd, view)
            self.bytes_written += n
            view = view[n:]

    _os_write = staticmethod(os.write)  # indirection so tests can simulate a full disk

    def _cut_back(self, fd: int, buf: bytes | bytearray) -> None:
        """After a failed write of ``buf`` (whole chunks): cut the file after the last chunk
        that made it whole, so it ends on a complete chunk."""
        done = self.bytes_written - self._good_size  # bytes of buf that reached the file
        end = 0
        while end < done:
            width = buf[end]
            n = 1 + width + int.from_bytes(buf[end + 1 : end + 1 + width], "little")
            if end + n > done:
                break
            end += n
        if end == done:
            return
        try:
            os.ftruncate(fd, self._good_size + end)
            self.bytes_written = self._good_size + end
        except OSError:  # readers skip a cut last chunk anyway
            pass

    def _restore(self, fd: int) -> None:
        """The open file lost its name (its folder was removed): recreate the folder, copy the
        file's bytes from the open descriptor into a new file there, and write on into that one.
        Raises OSError when that is impossible (caller records the failure)."""
        old_path = self.path
        size = os.fstat(fd).st_size
        try:
            old_path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            for candidate in _candidates(old_path):
                try:
                    new = os.open(candidate, flags, 0o644)
                except FileExistsError:
                    continue
                break
        except OSError as exc:
            raise FileNotFoundError(
                errno.ENOENT,
                "the file was deleted while recording (its folder removed?) and could not be "
                f"recreated: {exc.strerror or exc}",
            ) from exc
        try:
            pos = 0
            while pos < size:
                block = _pread(fd, min(4 << 20, size - pos), pos)
                if not block:
                    raise OSError(errno.EIO, f"read {pos} of {size} bytes from the open file")
                view = memoryview(block)
                while view:
                    view = view[os.write(new, view) :]
                pos += len(block)
            if self.fsync:
                os.fsync(new)
        except OSError:
            os.close(new)
            os.unlink(candidate)
            raise
        with self._lock:
            self._fd, self.path = new, candidate
        os.close(fd)
        where = (
            f"restored {str(candidate)!r}"
            if candidate == old_path
            else f"restored it as {str(candidate)!r} ({old_path.name} was taken)"
        )
        msg = (
            f"the recording folder {str(old_path.parent)!r} (or the file in it) was removed "
            "while recording; "
            f"recreated it and {where} from the still-open file ({size / 1e6:.2f} MB), nothing "
            "lost; recording continues"
        )
        self.notices.append(msg)
        logger.warning("%s", msg)

    def _fail(self, exc: BaseException) -> None:
        """Record the first write failure, stop writing, keep what is on disk."""
        reason = getattr(exc, "strerror", None) or str(exc)
        if getattr(exc, "errno", None) in _FULL:
            err = RecordingError(
                f"disk full or file size limit reached at {self.bytes_written / 1e6:.2f} MB "
                f"({reason}); recording stopped, acquisition and estimates continue; "
                f"{str(self.path)!r} keeps what was written before and stays readable; free "
                "disk space (or raise the file size limit) or record to another folder"
            )
        else:
            if isinstance(exc, FileNotFoundError):
                fix = "keep the recording folder in place while recording"
            else:
                fix = "free disk space or record to another folder"
            err = RecordingError(
                f"writing {str(self.path)!r} failed ({reason}); recording stopped, the file "
                f"keeps what was written before; {fix}"
            )
        err.__cause__ = exc
        with self._lock:
            if self.error is not None:
                return
            self.error = err
            # the buffer being written and the one waiting are lost (a cut chunk is skipped)
            self.dropped_samples += self._pending_samples + self._inflight_samples
            self._pending = bytearray()
            self._pending_samples = self._inflight_samples = 0
            fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        logger.error("%s", err)
        if self.on_error is not None:
            try:
                self.on_error(err)
            except Exception:
                logger.exception("on_error callback of the XDF writer failed")

    @staticmethod
    def _encode(st: _Stream, values: np.ndarray, ts: np.ndarray) -> bytes:
        """A Samples chunk holding these samples, each with its own timestamp."""
        n = ts.shape[0]
        head = struct.pack("<I", st.stream_id) + _varlen(n)
        if st.record_dtype is not None:
            rec = np.empty(n, dtype=st.record_dtype)
            rec["flag"] = 8
            rec["ts"] = ts
            rec["values"] = values
            return _chunk(TAG_SAMPLES, head + rec.tobytes())
        parts = [head]
        for k in range(n):
            parts.append(b"\x08" + struct.pack("<d", ts[k]))
            for v in values[k]:
                raw = v if isinstance(v, bytes) else str(v).encode("utf-8")
                parts.append(_varlen(len(raw)))
                parts.append(raw)
        return _chunk(TAG_SAMPLES, b"".join(parts))

    @staticmethod
    def _header_xml(
        info: StreamInfo, fmt: str, created_at: float, desc: Mapping[str, str] | None
    ) -> bytes:
        root = ET.Element("info")
        _sub(root, "name", info.name)
        _sub(root, "type", info.type)
        _sub(root, "channel_count", str(info.n_channels))
        _sub(root, "nominal_srate", _fmt_float(info.nominal_srate))
        _sub(root, "channel_format", fmt)
        _sub(root, "source_id", info.source_id)
        _sub(root, "created_at", _fmt_float(created_at))
        _sub(root, "uid", str(uuid.uuid4()))
        _sub(root, "hostname", socket.gethostname())
        d = _sub(root, "desc")
        channels = _sub(d, "channels")
        types = info.channel_types
        if len(types) != info.n_channels:
            types = (info.type,) * info.n_channels
        for label, unit, ctype in zip(info.channel_labels, info.channel_units, types, strict=True):
            ch = _sub(channels, "channel")
            _sub(ch, "label", label)
            _sub(ch, "unit", unit)
            _sub(ch, "type", ctype)
        for key, text in (desc or {}).items():
            _sub(d, key, str(text))
        return _xml_bytes(root)

    @staticmethod
    def _footer_xml(st: _Stream) -> bytes:
        root = ET.Element("info")
        first = st.first_timestamp if st.first_timestamp is not None else 0.0
        last = st.last_timestamp if st.last_timestamp is not None else 0.0
        _sub(root, "first_timestamp", _fmt_float(first))
        _sub(root, "last_timestamp", _fmt_float(last))
        _sub(root, "sample_count", str(st.sample_count))
        offsets = _sub(root, "clock_offsets")
        for t, v in st.clock_offsets:
            off = _sub(offsets, "offset")
            _sub(off, "time", _fmt_float(t))
            _sub(off, "value", _fmt_float(v))
        return _xml_bytes(root)
