"""LSL inlet source (pylsl).

Streams are resolved by name, type, source_id or an XPath predicate with a timeout. The inlet runs
with ``clocksync | monotonize`` post-processing, so timestamps are on this machine's LSL clock;
regular streams are then dejittered per segment of continuous stamps
(:class:`~physio_live.core._clock.SegmentDejitter`: unlike liblsl's dejitter, it does not carry
its fit across the gap when an outlet dies and comes back). Channel labels, units and
types come from the stream's ``desc/channels``. liblsl's own recovery (``recover=True``) reconnects
to an outlet with the same source_id that vanishes and returns; a stream without source_id that is
lost is resolved again by the same query.

``on_missing: wait`` keeps looking for a stream that is not there at start (one line every
``timeout`` seconds) until it appears, ``wait_max`` passes or the stop event is set.
``timestamps: device`` is for devices that stamp samples with their own clock: the inlet then runs
without post-processing and :class:`~physio_live.core._clock.DeviceClock` maps the raw stamps onto
this machine's LSL clock from their arrival times (offset, drift, resets). In the default ``lsl``
mode a stream whose stamps stay far from their arrival time is reported once
(:class:`~physio_live.core._clock.ArrivalCheck`).
"""

from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np

from ._clock import ArrivalCheck, DeviceClock, SegmentDejitter
from ._config import LSLSourceConfig
from ._errors import ChannelMismatchError, SourceError, StoppedWaitingError, StreamNotFoundError
from ._source import Source
from ._types import Chunk, StreamInfo

log = logging.getLogger("physio_live")

__all__ = ["LSLSource", "parse_lsl_info"]

_FORMATS = {1: "float32", 2: "double64", 3: "string", 4: "int32", 5: "int16", 6: "int8", 7: "int64"}


def _pylsl():
    import pylsl

    return pylsl


def parse_lsl_info(xml: str) -> dict:
    """Channel labels, units and types from an LSL stream's full XML description."""
    root = ET.fromstring(xml)
    labels, units, types = [], [], []
    channels = root.find("desc/channels")
    if channels is not None:
        for ch in channels.findall("channel"):
            labels.append((ch.findtext("label") or "").strip())
            units.append((ch.findtext("unit") or ch.findtext("units") or "").strip())
            types.append((ch.findtext("type") or "").strip())
    return {"labels": labels, "units": units, "types": types}


class LSLSource(Source):
    """One LSL stream read through a ``pylsl.StreamInlet``."""

    def __init__(self, cfg: LSLSourceConfig, max_chunk: int = 4096):
        self.cfg = cfg
        self.max_chunk = max_chunk
        self._inlet = None
        self._info: StreamInfo | None = None
        self._buf: np.ndarray | None = None
        self.lost_count = 0
        self.clock: DeviceClock | None = None  # timestamps: device
        self._check: ArrivalCheck | None = None  # timestamps: lsl, regular streams
        self._dejitter: SegmentDejitter | None = None  # timestamps: lsl, regular streams
        self._warnings: list[str] = []

    @property
    def streams(self) -> tuple[StreamInfo, ...]:
        if self._info is None:
            raise SourceError(f"LSL source {self.describe()} is not open; call open() first")
        return (self._info,)

    def describe(self) -> str:
        return f"LSL stream [{self.cfg.describe()}]"

    def _resolve(self, timeout: float):
        pylsl = _pylsl()
        pred = self.cfg.predicate_xpath()
        try:
            found = pylsl.resolve_bypred(pred, 1, timeout)
        except Exception as exc:  # liblsl raises on malformed XPath
            raise SourceError(
                f"LSL query {pred!r} is not a valid XPath predicate ({exc}); fix it in the config"
            ) from None
        return found

    @staticmethod
    def _names(infos) -> str:
        return ", ".join(f"{s.name()} ({s.type()}, {s.channel_count()} ch)" for s in infos)

    def _wait_for(self, stop: threading.Event | None, on_wait: Callable[[str], None] | None):
        """``on_missing: wait``: poll a continuous resolver until the stream shows up."""
        pylsl = _pylsl()
        pred, cfg = self.cfg.predicate_xpath(), self.cfg
        found = self._resolve(0.2)  # a malformed XPath fails here, at once
        if found:
            return found
        note = on_wait or log.warning
        resolver = pylsl.ContinuousResolver(pred=pred)
        everything = None
        t0 = time.monotonic()
        next_note = t0 + cfg.timeout
        try:
            while True:
                found = resolver.results()
                if found:
                    return list(found)
                waited = time.monotonic() - t0
                if stop is not None and stop.is_set():
                    raise StoppedWaitingError(
                        f"stopped while waiting for LSL stream [{pred}] ({waited:.0f} s)"
                    )
                if cfg.wait_max is not None and waited >= cfg.wait_max:
                    visible = self._names(pylsl.resolve_streams(0.5)) or "none"
                    raise StreamNotFoundError(
                        f"no LSL stream matched [{pred}] after waiting {cfg.wait_max:g} s "
                        f"(on_missing: wait; visible: {visible}); start the stream's outlet, fix "
                        "name/type/source_id in the config or raise wait_max"
                    )
                if time.monotonic() >= next_note:
                    everything = everything or pylsl.ContinuousResolver()
                    visible = self._names(everything.results()) or "none"
                    note(
                        f"waiting for LSL stream [{pred}] ({waited:.0f} s so far; visible: "
                        f"{visible}); start its outlet"
                    )
                    next_note += cfg.timeout
                if stop is not None:
                    stop.wait(0.1)
                else:
                    time.sleep(0.1)
        finally:
            del resolver, everything

    def open(self) -> None:
        self.open_waiting()

    def open_waiting(
        self,
        stop: threading.Event | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        pylsl = _pylsl()
        if self.cfg.on_missing == "wait":
            found = self._wait_for(stop, on_wait)
        else:
            found = self._resolve(self.cfg.timeout)
        if not found:
            names = self._names(pylsl.resolve_streams(0.5))
            raise StreamNotFoundError(
                f"no LSL stream matched [{self.cfg.predicate_xpath()}] within {self.cfg.timeout} s "
                f"(visible: {names or 'none'}); start the stream's outlet or fix name/type/"
                "source_id in the config (or set on_missing: wait)"
            )
        self._connect(found)

    def _connect(self, found: list) -> None:
        """Open an inlet on the first of the resolved streams and read its description."""
        pylsl = _pylsl()
        if len(found) > 1:
            # several matches: take the first, deterministically by source id
            found = sorted(found, key=lambda s: (s.source_id(), s.uid()))
        sinfo = found[0]
        irregular = sinfo.nominal_srate() == pylsl.IRREGULAR_RATE
        device = self.cfg.timestamps == "device"
        if device and irregular:
            raise SourceError(
                f"LSL stream {sinfo.name()!r} has an irregular rate; timestamps: device needs a "
                "regular stream, use timestamps: lsl for it"
            )
        # regular streams are dejittered here, per segment (SegmentDejitter): liblsl's dejitter
        # would stamp the samples of a restarted outlet seconds too early for minutes
        flags = pylsl.proc_clocksync | pylsl.proc_monotonize | pylsl.proc_threadsafe
        if device:
            # raw device stamps: liblsl's dejitter and monotonize would smear a clock reset over
            # minutes; DeviceClock dejitters, maps and keeps them monotonic itself
            flags = pylsl.proc_threadsafe
        inlet = pylsl.StreamInlet(
            sinfo,
            max_buflen=max(1, round(self.cfg.max_buffered)),
            recover=True,
            processing_flags=flags,
        )
        full = inlet.info(timeout=max(self.cfg.timeout, 1.0))
        n_ch = full.channel_count()
        if self.cfg.channels is not None and n_ch != self.cfg.channels:
            inlet.close_stream()
            raise ChannelMismatchError(
                f"LSL stream {full.name()!r} has {n_ch} channels but the config expects "
                f"channels: {self.cfg.channels}; pick the right stream or change 'channels'"
            )
        fmt = _FORMATS.get(full.channel_format(), "float32")
        if fmt == "string" and self.cfg.role in ("eeg", "ecg"):
            inlet.close_stream()
            raise SourceError(
                f"LSL stream {full.name()!r} carries strings but role {self.cfg.role!r} needs "
                "numbers; use role: markers or pick a numeric stream"
            )
        if self.cfg.role in ("eeg", "ecg") and irregular:
            inlet.close_stream()
            raise SourceError(
                f"LSL stream {full.name()!r} has an irregular rate (nominal_srate 0) but role "
                f"{self.cfg.role!r} needs a regular sampling rate; pick the amplifier's signal "
                "stream (nominal_srate > 0), or use role: misc"
            )
        meta = parse_lsl_info(full.as_xml())
        labels = list(meta["labels"]) if len(meta["labels"]) == n_ch else []
        if self.cfg.labels is not None:
            if len(self.cfg.labels) != n_ch:
                inlet.close_stream()
                raise ChannelMismatchError(
                    f"LSL stream {full.name()!r} has {n_ch} channels but the config gives "
                    f"{len(self.cfg.labels)} labels; give one label per channel"
                )
            labels = list(self.cfg.labels)
        if not labels or not all(labels):
            labels = [lab or f"ch{i + 1}" for i, lab in enumerate(labels or [""] * n_ch)]
        units = list(meta["units"]) if len(meta["units"]) == n_ch else [""] * n_ch
        units = [u or ("" if fmt == "string" else self.cfg.unit) for u in units]
        types = list(meta["types"]) if len(meta["types"]) == n_ch else []
        self._info = StreamInfo(
            name=full.name(),
            type=full.type(),
            role=self.cfg.role,
            channel_labels=tuple(labels),
            channel_units=tuple(units),
            nominal_srate=float(full.nominal_srate()),
            source_id=full.source_id(),
            channel_format=fmt,
            channel_types=tuple(types),
        )
        self._inlet = inlet
        self._numeric = fmt != "string"
        if device and self.clock is None:  # kept across a reopen: stamps stay monotonic
            self.clock = DeviceClock(self._info.nominal_srate)
        if not device and not irregular and self._check is None:
            self._check = ArrivalCheck()  # kept across a reopen too: one warning per source
        if not device and not irregular and self._dejitter is None:
            self._dejitter = SegmentDejitter(self._info.nominal_srate)
        if self._numeric:
            dtype = {
                "double64": np.float64,
                "int32": np.int32,
                "int16": np.int16,
                "int8": np.int8,
                "int64": np.int64,
            }.get(fmt, np.float32)
            self._buf = np.empty((self.max_chunk, n_ch), dtype=dtype)
        try:
            inlet.open_stream(timeout=max(self.cfg.timeout, 1.0))
        except Exception as exc:
            raise SourceError(f"could not open LSL stream {full.name()!r}: {exc}") from None

    def read(self, timeout: float = 0.1) -> list[Chunk]:
        if self._inlet is None or self._info is None:
            raise SourceError(f"{self.describe()} is not open; call open() first")
        pylsl = _pylsl()
        out: list[Chunk] = []
        deadline_wait = timeout
        while True:
            try:
                if self._numeric:
                    data, ts = self._inlet.pull_chunk(
                        timeout=deadline_wait,
                        max_samples=self.max_chunk,
                        dest_obj=self._buf,
                        min_samples=1,
                        as_numpy=True,
                    )
                else:
                    data, ts = self._inlet.pull_chunk(
                        timeout=deadline_wait, max_samples=self.max_chunk, min_samples=1
                    )
            except pylsl.LostError:
                self.lost_count += 1
                self._reopen()
                return out
            arrival = pylsl.local_clock()
            n = len(ts)
            if n == 0:
                return out
            if self._numeric:
                block = (
                    np.asarray(data, dtype=np.float32).copy()
                    if data.dtype != np.float32
                    else data.copy()
                )
            else:
                block = np.array(data, dtype=object).reshape(n, self._info.n_channels)
            out.extend(self._stamp(block, np.asarray(ts, dtype=np.float64), arrival))
            if n < self.max_chunk:
                return out
            deadline_wait = 0.0  # more may be waiting: drain without blocking

    def _stamp(self, block: np.ndarray, ts: np.ndarray, arrival: float) -> list[Chunk]:
        """Chunks of one pull: device stamps mapped (split where the clock was reset)."""
        assert self._info is not None
        if self.clock is None:
            if self._dejitter is not None:
                ts = self._dejitter(ts)
            if self._check is not None:
                off = self._check(float(ts[-1]), arrival)
                if off is not None:
                    side = "ahead of" if off < 0 else "behind"
                    self._warnings.append(
                        f"its timestamps run {abs(off):.2f} s {side} their arrival time on this "
                        "machine; if the device stamps samples with its own clock, set "
                        "timestamps: device for this source"
                    )
            return [Chunk(self._info, block, ts)]
        mapped = self.clock(ts, arrival)
        resets = self.clock.pop_resets()
        chunks, i0 = [], 0
        for k, r in enumerate(resets):
            if r.index > i0:
                part = slice(i0, r.index)
                chunks.append(Chunk(self._info, block[part], mapped[part], gap_before=k > 0))
            i0 = r.index
            self._warnings.append(
                f"the device clock jumped by {r.jump:+.2f} s (clock reset): its timestamps are "
                "mapped afresh from their arrival times; the gap is flagged and alignment "
                "settles again within a few seconds"
            )
        chunks.append(Chunk(self._info, block[i0:], mapped[i0:], gap_before=bool(resets)))
        return chunks

    def pop_warnings(self) -> list[str]:
        out, self._warnings = self._warnings, []
        return out

    def _reopen(self) -> None:
        """The stream was lost for good (no source_id to recover by): resolve it again."""
        found = self._resolve(0.5)
        if not found:
            time.sleep(0.1)
            return
        info = self._info
        self.close()
        self._connect(found)  # no waiting here: the reader thread tries again on the next read
        if self._info != info:
            raise SourceError(
                f"LSL stream {info.name!r} came back with another layout; restart the session"
            )

    def close(self) -> None:
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:
                pass
            self._inlet = None
