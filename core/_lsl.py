"""LSL inlet source (pylsl).

Streams are resolved by name, type, source_id or an XPath predicate with a timeout. The inlet runs
with ``clocksync | dejitter | monotonize`` post-processing (``clocksync | monotonize`` for irregular
streams such as markers), so timestamps are on this machine's LSL clock. Channel labels, units and
types come from the stream's ``desc/channels``. liblsl's own recovery (``recover=True``) reconnects
to an outlet with the same source_id that vanishes and returns; a stream without source_id that is
lost is resolved again by the same query.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import numpy as np

from ._config import LSLSourceConfig
from ._errors import ChannelMismatchError, SourceError, StreamNotFoundError
from ._source import Source
from ._types import Chunk, StreamInfo

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

    def open(self) -> None:
        pylsl = _pylsl()
        found = self._resolve(self.cfg.timeout)
        if not found:
            visible = pylsl.resolve_streams(0.5)
            names = ", ".join(f"{s.name()} ({s.type()}, {s.channel_count()} ch)" for s in visible)
            raise StreamNotFoundError(
                f"no LSL stream matched [{self.cfg.predicate_xpath()}] within {self.cfg.timeout} s "
                f"(visible: {names or 'none'}); start the stream's outlet or fix name/type/"
                "source_id in the config"
            )
        if len(found) > 1:
            # several matches: take the first, deterministically by source id
            found = sorted(found, key=lambda s: (s.source_id(), s.uid()))
        sinfo = found[0]
        irregular = sinfo.nominal_srate() == pylsl.IRREGULAR_RATE
        flags = pylsl.proc_clocksync | pylsl.proc_monotonize | pylsl.proc_threadsafe
        if not irregular:
            flags |= pylsl.proc_dejitter
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
                f"{self.cfg.role!r} needs a regular sampling rate"
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
            out.append(Chunk(self._info, block, np.asarray(ts, dtype=np.float64)))
            if n < self.max_chunk:
                return out
            deadline_wait = 0.0  # more may be waiting: drain without blocking

    def _reopen(self) -> None:
        """The stream was lost for good (no source_id to recover by): resolve it again."""
        found = self._resolve(0.5)
        if not found:
            time.sleep(0.1)
            return
        info = self._info
        self.close()
        self.open()
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
