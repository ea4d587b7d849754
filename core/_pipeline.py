"""The streaming core wired together: sources -> ring buffers -> aligner -> windows.

One reader thread per source pulls Chunks into that stream's ring buffer and hands the raw Chunks to
chunk listeners (recorder); one aligner thread follows every buffer with its own cursor (so it sees
each sample exactly once), hands what it reads to the aligner-input listeners (a stage that
annotates windows) and to the aligner, and then the finished windows to window listeners. A
source that fails keeps being retried; its error is kept in ``errors`` and the other streams go
on.

Per-chunk Python work stays off the model's way: the aligner thread steps when every EEG/ECG
stream has reached the next window's end (or ``STEP_EVERY`` seconds after its last step, so the
annotation stage and gaps stay current), not on every chunk; and given the inference worker's
``idle`` event (:meth:`Pipeline.yield_to`), readers and aligner wait while a forward pass runs
(at most ``max_wait`` each time; the samples wait in the source's own buffer), so the model has
the cores and the GIL to itself. Neither changes a sample or a window: the aligner's output does
not depend on how its input is chunked.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._aligner import Aligner
from ._array_source import ArraySource
from ._brainflow import BrainFlowSource
from ._config import AlignerConfig, BrainFlowSourceConfig, Config, LSLSourceConfig
from ._errors import PhysioLiveError
from ._lsl import LSLSource
from ._ringbuffer import RingBuffer
from ._source import Source
from ._types import Chunk, StreamInfo, Window

__all__ = ["Pipeline", "StreamStats", "make_source"]


def make_source(cfg: LSLSourceConfig | BrainFlowSourceConfig) -> Source:
    """The Source object for one ``sources:`` entry of a config."""
    if isinstance(cfg, LSLSourceConfig):
        return LSLSource(cfg)
    if isinstance(cfg, BrainFlowSourceConfig):
        return BrainFlowSource(cfg)
    raise TypeError(f"unknown source config {cfg!r}")


@dataclass
class StreamStats:
    """Counters of one stream, for status lines and tests."""

    info: StreamInfo
    samples: int = 0
    chunks: int = 0
    lost_in_buffer: int = 0
    first_time: float | None = None
    last_time: float | None = None
    wall_first: float | None = None
    rate_window: list[tuple[float, int]] = field(default_factory=list)

    @property
    def effective_rate(self) -> float:
        """Samples per second over the last few seconds of wall time."""
        if len(self.rate_window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.rate_window[0], self.rate_window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class Pipeline:
    """Runs sources, buffers and the aligner in background threads."""

    #: the aligner thread steps at least this often (s) even when no window is due
    STEP_EVERY = 0.1

    def __init__(self, cfg: Config, sources: list[Source] | None = None):
        self.cfg = cfg
        #: what the aligner is built from: the config's, or what ``prepare`` was given
        self.aligner_cfg: AlignerConfig = cfg.aligner
        self.sources = sources if sources is not None else [make_source(s) for s in cfg.sources]
        self.buffers: dict[str, RingBuffer] = {}
        self.stats: dict[str, StreamStats] = {}
        self.aligner: Aligner | None = None
        self.errors: list[str] = []
        self._chunk_listeners: list[Callable[[Chunk], None]] = []
        self._input_listeners: list[Callable[[Chunk], None]] = []
        self._window_listeners: list[Callable[[Window], None]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._gaps: deque[tuple[str, float, float]] = deque()  # (stream key, t_from, t_to)
        self._cursors: dict[str, int] = {}
        self._infos: dict[str, StreamInfo] = {}
        self.windows_out = 0
        #: keys of streams whose source has ended by design (an array played to its end)
        self.finished: set[str] = set()
        self._idle: threading.Event | None = None
        self._max_wait = 0.1

    # -- wiring ------------------------------------------------------------------------------
    def on_chunk(self, fn: Callable[[Chunk], None]) -> None:
        """Call ``fn`` with every raw Chunk (from the reader threads)."""
        self._chunk_listeners.append(fn)

    def on_aligner_input(self, fn: Callable[[Chunk], None]) -> None:
        """Call ``fn`` with every raw Chunk as the aligner takes it in (the thread that runs
        :meth:`step`; each sample once, in time order per stream), before the windows those
        samples complete reach the window listeners: a stage that annotates windows feeds on
        this and never needs to read the buffers back."""
        self._input_listeners.append(fn)

    def on_window(self, fn: Callable[[Window], None]) -> None:
        """Call ``fn`` with every Window (from the aligner thread)."""
        self._window_listeners.append(fn)

    def yield_to(self, idle: threading.Event, max_wait: float = 0.1) -> None:
        """Reader and aligner threads wait until ``idle`` is set (at most ``max_wait`` s each
        time) before they read or step: the inference worker clears it while a forward pass
        runs, so Python work of the acquisition side never takes the cores or the GIL from it."""
        self._idle = idle
        self._max_wait = max_wait

    def wait_for_model(self) -> None:
        """Wait while a forward pass runs (at most ``max_wait`` of :meth:`yield_to`; no-op before
        it is called or once stopping). The reader and aligner threads call it before they read
        or step; a replay thread that feeds the pipeline itself calls it before each chunk."""
        idle = self._idle
        if idle is not None and not self._stop.is_set():
            idle.wait(self._max_wait)

    @property
    def streams(self) -> list[StreamInfo]:
        return list(self._infos.values())

    def open(
        self,
        stop: threading.Event | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Open every source (raises the first source's error) and build buffers and aligner.

        A source configured with ``on_missing: wait`` waits for its stream or device, passing one
        progress line per attempt to ``on_wait``; setting ``stop`` ends such a wait with
        :class:`StoppedWaitingError`.
        """
        opened: list[Source] = []
        try:
            for src in self.sources:
                src.open_waiting(stop, on_wait)
                opened.append(src)
        except BaseException:
            for src in opened:
                src.close()
            raise
        self.prepare([info for src in self.sources for info in src.streams])

    def prepare(self, streams: list[StreamInfo], aligner: AlignerConfig | None = None) -> None:
        """Build a ring buffer per stream and the aligner (``open`` does this for its sources).

        ``aligner`` replaces the aligner settings from here on (e.g. the model's input scaling,
        known once the model is loaded); the config itself is never changed.
        """
        if aligner is not None:
            self.aligner_cfg = aligner
        for info in streams:
            if info.key in self._infos:
                raise PhysioLiveError(
                    f"two sources give a stream with the same name and source id ({info.key}); "
                    "give them distinct names"
                )
            self._infos[info.key] = info
            rate = info.nominal_srate if info.is_regular else 100.0
            cap = max(int(self.cfg.buffer_seconds * rate), 1024)
            dtype = object if info.channel_format == "string" else np.float32
            self.buffers[info.key] = RingBuffer(cap, info.n_channels, dtype=dtype)
            self.stats[info.key] = StreamStats(info)
            self._cursors[info.key] = 0
        self.aligner = Aligner(self.aligner_cfg, self.streams, self.cfg.buffer_seconds)

    def start(self) -> None:
        """Open (if needed) and start the reader and aligner threads."""
        if self.aligner is None:
            self.open()
        self._stop.clear()
        for src in self.sources:
            t = threading.Thread(
                target=self._read_loop, args=(src,), daemon=True, name=f"read-{src.describe()}"
            )
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._align_loop, daemon=True, name="aligner")
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop threads, drain what is buffered into the aligner, close sources."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads.clear()
        for src in self.sources:
            try:
                src.close()
            except Exception as exc:
                self.errors.append(f"closing {src.describe()}: {exc}")

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- threads -----------------------------------------------------------------------------
    def ingest(self, chunk: Chunk) -> None:
        """Store one Chunk (what reader threads do; also usable without threads)."""
        key = chunk.info.key
        if len(chunk) == 0:
            return
        st = self.stats[key]
        if chunk.gap_before and st.last_time is not None:  # before the write: step() sees it
            self._gaps.append((key, st.last_time, float(chunk.timestamps[0])))
        self.buffers[key].write(chunk.data, chunk.timestamps)
        st.samples += len(chunk)
        st.chunks += 1
        if st.first_time is None:
            st.first_time = float(chunk.timestamps[0])
        st.last_time = float(chunk.timestamps[-1])
        now = time.monotonic()
        st.rate_window.append((now, st.samples))
        while len(st.rate_window) > 2 and now - st.rate_window[0][0] > 5.0:
            st.rate_window.pop(0)
        for fn in self._chunk_listeners:
            self._call(fn, chunk)  # a failing sink costs no sample of the buffers or other sinks
        self._wake.set()

    def _read_loop(self, src: Source) -> None:
        while not self._stop.is_set():
            self.wait_for_model()
            try:
                chunks = src.read(timeout=0.05)
            except PhysioLiveError as exc:
                self._report(f"{src.describe()}: {exc}")
                time.sleep(0.5)
                continue
            except Exception as exc:
                self._report(f"{src.describe()}: unexpected {type(exc).__name__}: {exc}")
                time.sleep(0.5)
                continue
            for chunk in chunks:
                self.ingest(chunk)
            for msg in src.pop_warnings():
                self._report(f"{src.describe()}: {msg}")
            if isinstance(src, ArraySource) and src.exhausted:
                self.finished.update(info.key for info in src.streams)
                return

    def _report(self, msg: str) -> None:
        if not self.errors or self.errors[-1] != msg:
            self.errors.append(msg)

    def step(self) -> list[Window]:
        """Move everything new from the buffers into the aligner; return finished windows."""
        assert self.aligner is not None
        new = []
        for key, buf in self.buffers.items():
            data, ts, nxt, lost = buf.read_from(self._cursors[key])
            self._cursors[key] = nxt
            if lost:
                self.stats[key].lost_in_buffer += lost
            if len(ts):
                new.append(Chunk(self._infos[key], data, ts))
        while self._gaps:  # after the reads: every gap of the samples just read is here
            self.aligner.mark_gap(*self._gaps.popleft())
        for chunk in new:
            for fn in self._input_listeners:
                self._call(fn, chunk)  # a failing stage costs the aligner no sample
            self.aligner.push(chunk)
        windows = self.aligner.pop_windows()
        for w in windows:
            self.windows_out += 1
            for fn in self._window_listeners:
                self._call(fn, w)  # a failing listener costs no window of the others
        return windows

    def _call(self, fn: Callable, item: object) -> None:
        try:
            fn(item)
        except Exception as exc:
            self._report(f"{getattr(fn, '__qualname__', fn)} failed: {type(exc).__name__}: {exc}")

    def _window_due(self) -> bool:
        """Every EEG/ECG stream has raw samples up to the next window's end (or none is placed
        yet): a step now may cut a window."""
        assert self.aligner is not None
        end = self.aligner.next_window_end
        if end is None:
            return True
        for key in self.aligner.grid_keys:
            t = self.stats[key].last_time
            if t is None or t * self.aligner.rate + 1e-9 < end * self.aligner.rate:
                return False
        return True

    def _align_loop(self) -> None:
        last = 0.0
        while True:
            stopping = self._stop.is_set()
            self._wake.wait(0.05)
            self._wake.clear()
            if not stopping:
                if not self._window_due() and time.monotonic() - last < self.STEP_EVERY:
                    continue
                self.wait_for_model()
            last = time.monotonic()
            try:
                self.step()
            except Exception as exc:
                self._report(f"aligner: {type(exc).__name__}: {exc}")
            if stopping:
                return
