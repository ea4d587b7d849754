"""Inference worker: one thread owns the model and the device, windows in, estimates out.

Windows arrive through a bounded queue, each with its annotation (readouts, and whether the
quality gate withholds it). The worker takes everything waiting (up to ``max_batch``), stacks it
into one batch, runs the fused model under ``torch.inference_mode`` and emits one
:class:`~physio_live.core.Estimate` per window. In ``live`` mode a full queue drops its oldest
window (counted in ``dropped``) so acquisition never blocks; in ``replay`` mode ``submit`` waits
for room and nothing is dropped. On CUDA the batch is staged in pinned host memory and copied with
``non_blocking=True``; bf16 autocast is optional. ``idle`` is clear while a forward pass runs: the
live pipeline's readers and aligner wait on it (:meth:`~physio_live.core.Pipeline.yield_to`), so
the model has the cores and the GIL to itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from physio_live.core import Estimate, Window
from physio_live.models import FusedEmotionModel

from ._annotate import Annotation

__all__ = ["InferenceWorker", "WorkerStats", "in_own_thread", "pick_device"]

T = TypeVar("T")


def in_own_thread(fn: Callable[[], T]) -> T:
    """``fn()`` run on a thread of its own that ends with it; its result, or its exception
    raised here.

    For torch work outside the inference thread, such as building and loading the model. On
    Linux, PyTorch's OpenMP (libgomp) keeps a team of worker threads for every thread that has
    run a parallel op, for as long as that thread lives, and once a process holds more of them
    than it has CPUs, every team stops spin-waiting between parallel regions: each of the
    forward pass's hundreds of ops then waits for a sleeping thread to wake. A checkpoint loaded
    on the main thread (its parallel copies) made every forward pass of the inference thread
    about a third slower for the rest of the process (2 CPUs, 2 threads: batch 16 of the
    CBraMod-size model 62 -> 85-107 ms). Work done here leaves no team behind.
    """
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # raised again on the caller's thread
            out["error"] = exc

    t = threading.Thread(target=run, name="physio-live-setup")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]  # type: ignore[return-value]


def pick_device(spec: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device (checked)."""
    from physio_live.core import ConfigError

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ConfigError(
            f"model.device: {spec!r} is not a torch device; use auto, cpu or cuda"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "model.device: cuda was asked for but no CUDA device is available; use auto or cpu"
        )
    return dev


@dataclass
class WorkerStats:
    """Counters for status lines; latencies of the last few hundred estimates.

    Every submitted window is accounted for exactly once: ``submitted == processed + dropped +
    failed + pending`` (``pending``: queued or in the batch being run, see
    :meth:`InferenceWorker.counts`). ``processed`` includes the ``withheld`` windows (they get an
    estimate of NaNs); ``failed`` windows were in a batch whose inference raised (see ``errors``).
    ``max_queued`` is the longest the queue has been. ``handoff``: for recent windows, the time
    from the window's end to its arrival in the queue (seconds, the worker's clock): what
    acquisition adds before the model starts (samples past the window's end, aligner, gate).
    """

    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    withheld: int = 0
    batches: int = 0
    max_queued: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=600))
    compute: deque[float] = field(default_factory=lambda: deque(maxlen=600))
    handoff: deque[float] = field(default_factory=lambda: deque(maxlen=600))

    def latency_percentiles(self) -> tuple[float, float]:
        """(p50, p99) of recent latencies in seconds (NaN when none)."""
        if not self.latencies:
            return float("nan"), float("nan")
        arr = np.fromiter(self.latencies, float)
        return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


class InferenceWorker:
    """Runs a ``FusedEmotionModel`` (anything with its ``predict`` contract) on Windows."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device = "auto",
        mode: str = "live",
        max_queue: int = 8,
        max_batch: int = 16,
        bf16: bool = False,
        full_batches: bool = False,
        clock: Callable[[], float] | None = None,
        cuda_graphs: bool = False,
    ):
        if mode not in ("live", "replay"):
            raise ValueError("mode must be 'live' or 'replay'")
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.model = model.to(self.device).eval()
        self.mode = mode
        self.max_queue = max(1, int(max_queue))
        self.max_batch = max(1, int(max_batch))
        self.bf16 = bf16
        if clock is None:
            import pylsl

            clock = pylsl.local_clock
        self.clock = clock
        self.stats = WorkerStats()
        self.errors: list[str] = []
        self._queue: deque[tuple[Window, Annotation]] = deque()
        self._cond = threading.Condition()
        self._listeners: list[Callable[[Estimate], None]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._draining = 0  # callers in wait_idle/stop: run what is queued, batch full or not
        #: replay at full speed: the worker waits for a full batch (``max_batch`` windows, or as
        #: many as the queue holds) or a drain before it runs, instead of taking what has arrived
        self.full_batches = full_batches
        self._busy = False
        self._inflight = 0  # windows popped from the queue and not yet emitted or failed
        self._pinned: dict[str, torch.Tensor] = {}
        #: set except while a forward pass runs (acquisition threads yield to the model)
        self.idle = threading.Event()
        self.idle.set()
        #: the forward pass as captured CUDA graphs (CUDA and a fused model only; see
        #: :mod:`._cuda_graphs`); None: eager
        self.graphs = None
        if cuda_graphs and self.device.type == "cuda" and isinstance(model, FusedEmotionModel):
            from ._cuda_graphs import CudaGraphForward

            self.graphs = CudaGraphForward(model, bf16=bf16)

    def on_estimate(self, fn: Callable[[Estimate], None]) -> None:
        """Call ``fn`` with every Estimate (from the worker thread)."""
        self._listeners.append(fn)

    # -- producer side ---------------------------------------------------------------------
    def submit(self, window: Window, annotation: Annotation | None = None) -> None:
        """Queue a window with its annotation (live: drop the oldest when full; replay: wait for
        room). Without an annotation the window is estimated, with no readouts."""
        item = (window, annotation if annotation is not None else Annotation())
        handoff = self.clock() - window.t_end
        with self._cond:
            if self.mode == "replay":
                while len(self._queue) >= self.max_queue and not self._stopping:
                    self._cond.wait(0.1)
            elif len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(item)
            self.stats.handoff.append(handoff)
            self.stats.submitted += 1
            self.stats.max_queued = max(self.stats.max_queued, len(self._queue))
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Windows submitted but not yet estimated, dropped or failed (queued or running)."""
        with self._cond:
            return len(self._queue) + self._inflight

    def counts(self) -> dict[str, int]:
        """A consistent snapshot: submitted == processed + dropped + failed + pending."""
        with self._cond:
            st = self.stats
            return {
                "submitted": st.submitted,
                "processed": st.processed,
                "dropped": st.dropped,
                "failed": st.failed,
                "pending": len(self._queue) + self._inflight,
                "max_queued": st.max_queued,
            }

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._thread.start()

    def stop(self, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop the thread; with ``drain`` the windows already queued are processed first."""
        if drain:
            self.wait_idle(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until the queue is empty and no batch is running."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._draining += 1
            self._cond.notify_all()
            try:
                while (self._queue or self._busy) and time.monotonic() < deadline:
                    self._cond.wait(0.05)
                return not self._queue and not self._busy
            finally:
                self._draining -= 1

    # -- the worker thread -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(0.1)
                if self._stopping and not self._queue:
                    return
                # a full batch: max_batch windows, or as many as the queue holds (the producer
                # waits for room beyond max_queue)
                full = min(self.max_batch, self.max_queue)
                while (
                    self.full_batches
                    and len(self._queue) < full
                    and not (self._stopping or self._draining)
                ):
                    self._cond.wait(0.1)
                n = min(len(self._queue), self.max_batch)
                batch = [self._queue.popleft() for _ in range(n)]
                self._busy = True
                self._inflight = n
                self._cond.notify_all()
            try:
                self._run(batch)
            except Exception as exc:
                msg = f"inference failed on {len(batch)} window(s): {type(exc).__name__}: {exc}"
                if not self.errors or self.errors[-1] != msg:
                    self.errors.append(msg)
            finally:
                with self._cond:
                    self.stats.failed += self._inflight  # windows of the batch never emitted
                    self._inflight = 0
                    self._busy = False
                    self._cond.notify_all()

    def _stack(self, arrays: list[np.ndarray], name: str, patch: int) -> torch.Tensor:
        """[B, C, T] windows -> [B, C, T // patch, patch] on the device (pinned staging on CUDA)."""
        x = np.stack(arrays)
        b, c, t = x.shape
        if t % patch:
            from physio_live.core import ConfigError

            raise ConfigError(
                f"{name} windows have {t} samples, not a whole number of {patch}-sample patches; "
                "set aligner.window to whole seconds"
            )
        host = torch.from_numpy(x).view(b, c, t // patch, patch)
        if self.device.type != "cuda":
            return host
        buf = self._pinned.get(name)
        if buf is None or buf.shape[1:] != host.shape[1:] or buf.shape[0] < b:
            buf = torch.empty((self.max_batch, *host.shape[1:]), pin_memory=True)
            self._pinned[name] = buf
        buf[:b].copy_(host)
        return buf[:b].to(self.device, non_blocking=True)

    def _predict(
        self, batch: list[Window]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
        """Probabilities [B, targets], missing flags and the model's notes of the windows (one
        forward pass)."""
        cfg = getattr(self.model, "config", None)
        patch = cfg.eeg.patch_size if cfg is not None else 200
        inputs: dict[str, torch.Tensor | None] = {}
        for mod in ("eeg", "ecg"):
            arrays = [getattr(w, mod) for w in batch]
            present = [a is not None for a in arrays]
            inputs[mod] = inputs[f"{mod}_present"] = None
            if any(present):
                ref = next(a for a in arrays if a is not None)
                filled = [a if a is not None else np.zeros_like(ref) for a in arrays]
                inputs[mod] = self._stack(filled, mod, patch)
                if not all(present):  # absent windows take the model's missing-modality path
                    inputs[f"{mod}_present"] = torch.tensor(present)
        whole = inputs["eeg_present"] is None and inputs["ecg_present"] is None
        if self.graphs is not None and whole:
            try:
                probs = self.graphs(inputs["eeg"], inputs["ecg"]).cpu().numpy()
            except RuntimeError as exc:  # a capture the device refuses: eager from now on
                self.graphs = None
                self.errors.append(f"CUDA graphs off (eager from now on): {exc}")
            else:
                n = len(batch)
                return (
                    probs,
                    np.full(n, inputs["eeg"] is None),
                    np.full(n, inputs["ecg"] is None),
                    ("",) * n,
                )
        pred = self.model.predict(
            inputs["eeg"], inputs["ecg"], eeg_present=inputs["eeg_present"],
            ecg_present=inputs["ecg_present"], bf16=self.bf16,
            t_end=np.array([w.t_end for w in batch]),  # a readout model's baseline runs on them
        )  # fmt: skip
        return (
            pred.probabilities.float().cpu().numpy(),
            pred.eeg_missing.cpu().numpy(),
            pred.ecg_missing.cpu().numpy(),
            pred.notes or ("",) * len(batch),
        )

    def _run(self, batch: list[tuple[Window, Annotation]]) -> None:
        """Estimates for a batch, in order; withheld windows skip the model (NaN, with reason)."""
        t0 = time.perf_counter()
        run = [w for w, a in batch if not a.withhold]
        if run:
            self.idle.clear()
            try:
                probs, e_miss, c_miss, notes = self._predict(run)
            finally:
                self.idle.set()
        targets = tuple(self.model.config.targets)
        nan = tuple(float("nan") for _ in targets)
        t_emit = self.clock()
        self.stats.batches += 1
        self.stats.compute.append(time.perf_counter() - t0)
        k = 0
        for w, a in batch:
            if a.withhold:
                est = Estimate(
                    t_end=w.t_end, t_emit=t_emit, targets=targets, probabilities=nan,
                    quality=w.quality, model_id=self.model.model_id,
                    untrained=self.model.untrained, window_index=w.index,
                    eeg_missing=w.eeg is None, ecg_missing=w.ecg is None, withheld=True,
                    reason=a.withhold, readouts=a.readouts,
                )  # fmt: skip
                self.stats.withheld += 1
            else:
                est = Estimate(
                    t_end=w.t_end, t_emit=t_emit, targets=targets,
                    probabilities=tuple(float(p) for p in probs[k]), quality=w.quality,
                    model_id=self.model.model_id, untrained=self.model.untrained,
                    window_index=w.index, eeg_missing=bool(e_miss[k]),
                    ecg_missing=bool(c_miss[k]), readouts=a.readouts,
                    reason="; ".join(n for n in (*a.notes, notes[k]) if n),
                )  # fmt: skip
                k += 1
            with self._cond:
                self.stats.processed += 1
                self._inflight -= 1
            self.stats.latencies.append(est.latency)
            for fn in self._listeners:
                try:
                    fn(est)
                except Exception as exc:  # a sink's failure costs neither windows nor sinks
                    msg = f"estimate sink {getattr(fn, '__qualname__', fn)} failed: {exc!r}"
                    if msg not in self.errors:
                        self.errors.append(msg)
