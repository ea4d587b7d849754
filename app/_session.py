"""One session: sources -> pipeline -> inference worker -> sinks, for both front ends.

The headless logger (``physio-live --stream``) and the dashboard build the same :class:`Session`
from the same config. Opening order matters: the demo outlets first (their inlets must find them),
then the model (its config says how to scale the windows), the pipeline (streams, channel counts),
the recorder (refuses an unwritable folder before anything runs), the estimate outlet, and last the
threads.
"""

from __future__ import annotations

import gc
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from physio_live.core import (
    INFO,
    AlignerConfig,
    Chunk,
    Config,
    ConfigError,
    Estimate,
    Pipeline,
    Recorder,
    RecorderStatus,
    Recording,
    Source,
    StreamInfo,
    Window,
    unit_scale_uv,
)

from ._annotate import READOUT_KEYS, WindowAnnotator, readout_stream_info
from ._demo import DemoOutlets, bind_demo_sources
from ._outlet import EstimateOutlet, estimate_stream_info, make_outlet
from ._worker import InferenceWorker, in_own_thread, pick_device

if TYPE_CHECKING:
    import pylsl

    from physio_live.models import FusedEmotionModel, ReadoutModel

__all__ = ["STREAM_LOST_AFTER_S", "Session", "build_model"]

#: a live regular stream with no chunk for this long is marked lost, seconds
STREAM_LOST_AFTER_S = 2.0

#: running sessions that hold the garbage collector's older objects frozen (Session.start)
_GC_FROZEN: set[int] = set()
_GC_LOCK = threading.Lock()

#: a replay at full speed feeds chunks of at least this many seconds of signal (per-chunk Python
#: work is most of the acquisition side's cost; the aligner's windows do not depend on chunking).
#: 1 s -> 4 s: 3.39 -> 2.74 ms per eegmat window at hop 1 s; 16 s gained little more (2.66)
MAX_SPEED_CHUNK_S = 4.0

#: old and new 10-20 names of the same positions
_LABEL_ALIASES = {"t3": "t7", "t4": "t8", "t5": "p7", "t6": "p8"}
#: labels that name no position: a stream without channel names
_GENERIC_LABEL = re.compile(r"^(ch|chan|channel|eeg|ecg|ekg|exg|e|index)?[ _-]?\d*$")


def _norm_label(label: str) -> str:
    low = label.strip().lower()
    for prefix in ("eeg ", "ecg ", "ekg "):
        low = low.removeprefix(prefix)
    for suffix in ("-ref", "-le", "-ar", "-avg", "-a1", "-a2", "-m1", "-m2"):
        low = low.removesuffix(suffix)
    return _LABEL_ALIASES.get(low, low)


def build_model(
    cfg: Config, eeg_labels: tuple[str, ...], ecg_labels: tuple[str, ...]
) -> FusedEmotionModel:
    """The fused model from ``model.checkpoint``, or untrained weights shaped for the streams."""
    from physio_live.models import (
        CBraModConfig,
        CheckpointError,
        FusedEmotionConfig,
        FusedEmotionModel,
        ModalityConfig,
        cpu_linears,
        load_checkpoint,
    )

    cpu_linears()  # a wrong $PHYSIO_LIVE_CPU_LINEARS fails here, not in the worker

    if cfg.model.checkpoint:
        ckpt = load_checkpoint(Path(cfg.model.checkpoint).expanduser())
        if ckpt.kind == "readout_lr":
            if cfg.model.baseline:
                _load_baseline(ckpt.model, Path(cfg.model.baseline).expanduser())  # type: ignore[arg-type]
            return ckpt.model  # type: ignore[return-value]
        if ckpt.kind != "fused_emotion":
            raise CheckpointError(
                f"{cfg.model.checkpoint} is an encoder checkpoint ({ckpt.kind}); the app needs a "
                "fused emotion model: fine-tune one with physio-train finetune"
            )
        if cfg.model.baseline:
            raise ConfigError(
                f"model.baseline: {cfg.model.checkpoint} takes no baseline (only readout models "
                "do); remove model.baseline"
            )
        return ckpt.model
    n_patches = round(cfg.aligner.window)  # 1-s patches at the model rate
    if cfg.model.size == "tiny":
        enc = CBraModConfig(depth=2, out_dim=None)
    else:
        enc = CBraModConfig(out_dim=None)

    def spec(name: str, labels: tuple[str, ...], unit_uv: float) -> ModalityConfig:
        return ModalityConfig(
            name=name,
            channels=labels,
            n_patches=n_patches,
            sampling_rate=cfg.aligner.rate,
            patch_size=200,
            units="uV",
            scale=1.0 / unit_uv,
            encoder=enc,
        )

    fcfg = FusedEmotionConfig(
        eeg=spec("eeg", eeg_labels, cfg.aligner.eeg.unit_uv),
        ecg=spec("ecg", ecg_labels, cfg.aligner.ecg.unit_uv),
    )
    torch.manual_seed(0)  # the same untrained weights every run, so replays match live
    return FusedEmotionModel(fcfg)


def _load_baseline(model: ReadoutModel, path: Path) -> None:
    """Read a saved resting baseline into a readout model (one clear error when it does not fit)."""
    import json

    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"model.baseline: cannot read {path} ({' '.join(str(exc).split())[:120]}); give a "
            ".baseline.json a session wrote, or null to take the baseline at the start"
        ) from None
    model.load_baseline(state, where=f"model.baseline {path}")


def save_baseline(model: torch.nn.Module, path: Path) -> Path | None:
    """Write a readout model's resting baseline (JSON) to ``path``; None for any other model, or
    when it took none."""
    import json

    from physio_live.models import ReadoutModel

    if not isinstance(model, ReadoutModel) or not model.finish_baseline():
        return None
    path.write_text(json.dumps(model.baseline_state(), indent=1))
    return path


def model_aligner_config(cfg: Config, model: FusedEmotionModel) -> AlignerConfig:
    """The aligner settings that feed ``model`` as it was trained: the config's, with each
    modality's scaling taken from the model (the rate and, for ``flatten`` models, the window
    length must already match). A new object; ``cfg`` is not changed."""
    mc = model.config
    aligner = cfg.aligner
    for mod in ("eeg", "ecg"):
        spec = getattr(mc, mod)
        to_uv = unit_scale_uv(spec.units, None)
        if to_uv is None:
            raise ConfigError(f"model {mod} units {spec.units!r} unknown; expected uV or mV")
        scaled = replace(getattr(aligner, mod), unit_uv=to_uv / spec.scale)
        aligner = replace(aligner, **{mod: scaled})
        if abs(spec.sampling_rate - cfg.aligner.rate) > 1e-9:
            raise ConfigError(
                f"{cfg.path}: aligner.rate is {cfg.aligner.rate} Hz but the model takes "
                f"{spec.sampling_rate} Hz; set aligner.rate: {spec.sampling_rate:g}"
            )
        if mc.pooling == "flatten" and abs(spec.window_seconds - cfg.aligner.window) > 1e-9:
            raise ConfigError(
                f"{cfg.path}: aligner.window is {cfg.aligner.window} s but the model was trained "
                f"on {spec.window_seconds:g}-s windows; set aligner.window: {spec.window_seconds:g}"
            )
    return aligner


@dataclass
class SessionStatus:
    """What a status line shows."""

    elapsed: float
    rates: dict[str, tuple[float, float]]
    windows: int
    estimates: int
    windows_per_s: float
    estimates_per_s: float
    latency_p50: float
    latency_p99: float
    dropped: int
    lost_samples: int
    recording: str | None
    recording_bytes: int
    #: every user-facing message of the session so far, oldest first, append-only (the one
    #: channel through which problems reach the user: a reader remembers how many it has shown)
    errors: list[str]
    #: regular live streams judged lost by the session: stream key -> monotonic time of their
    #: last chunk (judged once, here; the dashboard and the CLI only show it)
    lost: dict[str, float] = field(default_factory=dict)


def _recorder_messages(st: RecorderStatus) -> list[str]:
    msgs = [f"recording: {m}" for m in st.notices + st.stream_errors]
    if st.error:
        msgs.append(f"recording: {st.error}")
    return msgs


class Session:
    """Everything a running app holds; ``open`` -> ``start`` -> ``close``."""

    def __init__(
        self,
        cfg: Config,
        *,
        mode: str = "live",
        sources: list[Source] | None = None,
        recording: Recording | None = None,
        speed: float | None = None,
    ):
        """``sources`` replace the config's (tests, benchmarks); ``mode`` ``replay`` drops no
        window. ``recording`` replays a file instead of opening sources, at ``speed`` (1 = real
        time, None = as fast as possible); replays never drop a window."""
        #: the config as given; never changed
        self.base_cfg = cfg
        #: what the session runs on: ``base_cfg`` with the demo's source ids and the model's input
        #: scaling filled in by ``open`` (derived copies, so ``base_cfg`` stays as it was)
        self.cfg = cfg
        self.replay = recording
        self.speed = speed
        self.mode = "replay" if recording is not None else mode
        self.finished = threading.Event()  # set when a replay has been fed completely
        self._replay_thread: threading.Thread | None = None
        self._watch_thread: threading.Thread | None = None
        self._sources = sources
        self.demo: DemoOutlets | None = None
        self.pipeline: Pipeline | None = None
        self.worker: InferenceWorker | None = None
        self.recorder: Recorder | None = None
        #: where a readout model's resting baseline was saved at close (beside the recording)
        self.baseline_path: Path | None = None
        self.outlet: EstimateOutlet | None = None
        self._marker_outlet: pylsl.StreamOutlet | None = None
        self._readout_outlet: pylsl.StreamOutlet | None = None
        self._marker_info: StreamInfo | None = None
        self._readout_info: StreamInfo | None = None
        #: the annotation stage (readouts, quality gate, the one R-peak detector)
        self.annotator: WindowAnnotator | None = None
        self._closing = False
        #: a paced replay's schedule: recorded time ``t`` is fed at ``wall + (t - t_rec) / speed``
        #: (``wall``, ``t_rec``, ``speed``), re-anchored by :meth:`set_speed`
        self._pace: tuple[float, float, float] | None = None
        self._pace_lock = threading.Lock()
        self._running = False
        self.recording_status: RecorderStatus | None = None  # the last closed recording's
        self.estimates: list[Estimate] = []
        # the latest 512-1023 estimates, for a dashboard attaching to a running session; older
        # ones live in the recording, the CSV and on the outlet. Bounded so that a long session's
        # memory stays flat (10,000 kept made a 60-min soak grow by 3 %).
        self._keep_estimates = 512
        self._estimate_info: StreamInfo | None = None
        self._listeners: list[Callable[[Estimate], None]] = []
        self._t_start = 0.0
        self._last = (0.0, 0, 0)
        self._rates = (0.0, 0.0)
        #: the fused model (set by ``open``)
        self.model: FusedEmotionModel | None = None
        self.lost_streams: dict[str, float] = {}
        self._messages: list[str] = []
        self._message_lock = threading.Lock()
        # how many entries of each part's own message list are already in ``_messages``
        self._taken: dict[object, int] = {}

    def on_estimate(self, fn: Callable[[Estimate], None]) -> None:
        """Call ``fn`` with every Estimate (from the worker thread), after the session's sinks."""
        self._listeners.append(fn)

    def open(
        self,
        stop: threading.Event | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Open sources (a source with ``on_missing: wait`` waits for its stream or device,
        reporting to ``on_wait``, until ``stop`` is set), model, worker, recorder and outlets."""
        cfg = self.cfg
        try:
            if cfg.demo.enabled and self._sources is None and self.replay is None:
                self.demo = DemoOutlets(cfg.demo)
                self.demo.start()
                # the demo's outlets carry this process's source ids: a derived config names them
                cfg = self.cfg = bind_demo_sources(cfg, self.demo)
            if cfg.model.threads:
                torch.set_num_threads(cfg.model.threads)
            device = pick_device(cfg.model.device)
            if self.replay is not None:
                self.pipeline = Pipeline(cfg, sources=[])
                self.pipeline.prepare(self.replay.infos)
            else:
                self.pipeline = Pipeline(cfg, self._sources)
                # resolves streams; aligner rebuilt once units are known
                self.pipeline.open(stop, on_wait)
            eeg = tuple(
                lab for s in self.pipeline.streams if s.role == "eeg" for lab in s.channel_labels
            )
            ecg = tuple(
                lab for s in self.pipeline.streams if s.role == "ecg" for lab in s.channel_labels
            )
            # off this thread: see in_own_thread (the inference thread stays the only one
            # with an OpenMP team)
            self.model = in_own_thread(lambda: build_model(cfg, eeg, ecg))
            # the model fixes the input scaling: the session runs on a derived config (the
            # caller's stays as it was, e.g. for the dashboard's "Back to live")
            aligner_cfg = model_aligner_config(cfg, self.model)
            cfg = self.cfg = replace(cfg, aligner=aligner_cfg)
            self._check_channels(eeg, ecg)
            self.worker = InferenceWorker(
                self.model,
                device=device,
                mode=self.mode,
                max_queue=cfg.model.queue,
                max_batch=cfg.model.max_batch,
                bf16=cfg.model.bf16,
                cuda_graphs=cfg.model.cuda_graphs,
                # a replay at full speed: nobody waits for an estimate, so batches run full
                full_batches=self.replay is not None and self.speed is None,
            )
            if cfg.model.bf16 and device.type == "cpu":
                from physio_live.models import cpu_bf16_native

                if not cpu_bf16_native():
                    self._say(
                        "model.bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so "
                        "bfloat16 is emulated and several times slower than float32 here (a 1-h "
                        "replay on an AVX2 EPYC: 11.1x real time against 82.8x); set "
                        "model.bf16: false"
                    )
            targets = tuple(self.model.config.targets)
            # the app's own streams; a replay of a file this process recorded holds streams of
            # the same source ids, so the replaying session's own get a distinct one
            base = f"physio-live-{os.getpid()}"
            if self.replay is not None and any(
                i.source_id.startswith(f"{base}-") for i in self.replay.infos
            ):
                base += "-replay"
            sid = f"{base}-estimates"
            self._estimate_info = estimate_stream_info(
                cfg.outlet.name, cfg.outlet.type, targets, sid
            )
            self._readout_info = readout_stream_info(
                f"{cfg.outlet.name}-readouts", f"{base}-readouts"
            )
            self._marker_info = StreamInfo(
                name=f"{cfg.outlet.name}-markers",
                type="Markers",
                role="markers",
                channel_labels=("marker",),
                channel_units=("",),
                nominal_srate=0.0,
                source_id=f"{base}-markers",
                channel_format="string",
            )
            # app markers go to the windows and the file; the aligner is built (again) with the
            # model's scaling
            self.pipeline.prepare([self._marker_info], aligner=aligner_cfg)
            self.pipeline.on_chunk(self._on_chunk)
            if cfg.recording.enabled:
                self.start_recording()
            if cfg.outlet.enabled:
                self.outlet = EstimateOutlet(
                    self._estimate_info, self.model.model_id, self.model.untrained
                )
                self._marker_outlet = make_outlet(self._marker_info)
                self._readout_outlet = make_outlet(self._readout_info)
            self.annotator = WindowAnnotator(cfg, self.pipeline.streams)
            self.pipeline.on_aligner_input(self.annotator.push)
            self.pipeline.on_window(self._on_window)
            self.pipeline.yield_to(self.worker.idle)  # acquisition waits while the model runs
            self.worker.on_estimate(self._on_estimate)
        except BaseException:
            self.close()
            raise

    # -- recording and markers (both front ends) -------------------------------------------
    def start_recording(self, path: str | Path | None = None) -> Path:
        """Start an XDF recording (``path`` or the config's folder/filename); returns its path.

        Raises :class:`~physio_live.core.RecordingError` when the folder is not writable.
        """
        assert self.pipeline is not None and self.model is not None
        if self.recorder is not None:
            return self.recorder.path
        if path is None:
            folder = Path(self.cfg.recording.folder).expanduser()
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = folder / self.cfg.recording.filename.replace("{time}", stamp)
        rec = Recorder(path)
        rec.start()
        rec.add_streams(self.pipeline.streams)
        rec.add_stream(
            self._estimate_info,
            {"model_id": self.model.model_id, "untrained": str(self.model.untrained).lower()},
        )
        rec.add_stream(self._readout_info)
        self.recorder = rec
        return rec.path

    def stop_recording(self) -> RecorderStatus | None:
        """Close the current recording (footers written); acquisition goes on."""
        rec, self.recorder = self.recorder, None
        if rec is None:
            return None
        self.recording_status = st = rec.close()
        with self._message_lock:  # what it said up to and while closing stays in the log
            self._take(("recorder", id(rec)), _recorder_messages(st))
        return self.recording_status

    def insert_marker(self, text: str, timestamp: float | None = None) -> float:
        """A marker now (or at ``timestamp``): recorded, put in windows, sent on the LSL outlet."""
        import pylsl

        assert self.pipeline is not None
        t = pylsl.local_clock() if timestamp is None else float(timestamp)
        chunk = Chunk(self._marker_info, np.array([[str(text)]], dtype=object), np.array([t]))
        self.pipeline.ingest(chunk)
        if self._marker_outlet is not None:
            self._marker_outlet.push_sample([str(text)], t)
        return t

    def _on_window(self, window: Window) -> None:
        """A finished window: annotated (its raw samples went through the stage first), then
        queued for the model with its annotation."""
        assert self.annotator is not None and self.worker is not None
        self.worker.submit(window, self.annotator.annotate(window))

    def _on_chunk(self, chunk: Chunk) -> None:
        rec = self.recorder
        if rec is not None:
            rec.write(chunk)

    def _check_channels(self, eeg: tuple[str, ...], ecg: tuple[str, ...]) -> None:
        """The streams must give the channels the model was trained on, in its order.

        Another count is refused. Same count, other EEG names (10-20 positions; T3/T7, T4/T8,
        T5/P7, T6/P8 count as the same) or another order is refused too: the encoder's spatial
        attention is tied to the montage. Unnamed channels (``ch1``...) and other ECG lead names
        (device-specific) are accepted with a warning in the status."""
        mc = self.model.config
        for mod, have in (("eeg", eeg), ("ecg", ecg)):
            want = getattr(mc, mod).channels
            if want and have and len(want) != len(have):
                raise ConfigError(
                    f"the model takes {len(want)} {mod.upper()} channels ({', '.join(want)}) but "
                    f"the {mod.upper()} streams give {len(have)} ({', '.join(have)}); pick the "
                    "matching streams or a checkpoint trained on these channels"
                )
            if not want or not have:
                continue
            w, h = [_norm_label(x) for x in want], [_norm_label(x) for x in have]
            if w == h:
                continue
            up = mod.upper()
            if all(_GENERIC_LABEL.match(x) for x in h) or all(_GENERIC_LABEL.match(x) for x in w):
                self._say(
                    f"{up} channels unnamed ({', '.join(have[:3])} ...): assuming they are the "
                    f"model's {', '.join(want)} in this order; name them (sources[N].labels) to "
                    "have them checked"
                )
                continue
            if sorted(w) == sorted(h):
                problem = (
                    f"the {up} streams give the model's {len(want)} channels in another order "
                    f"({', '.join(have)}; the model takes {', '.join(want)})"
                )
            else:
                missing = [a for a, b in zip(want, w, strict=True) if b not in h]
                extra = [a for a, b in zip(have, h, strict=True) if b not in w]
                problem = (
                    f"the model was trained on {up} channels {', '.join(want)} but the {up} "
                    f"streams give {', '.join(have)} (not in the streams: "
                    f"{', '.join(missing) or '-'}; not the model's: {', '.join(extra) or '-'})"
                )
            if mod == "ecg":  # lead names differ between devices for the same placement
                self._say(f"{problem}; check that the leads correspond")
                continue
            raise ConfigError(
                f"{problem}; pick streams with the model's channels in its order, rename "
                "channels that are only named differently with sources[N].labels, or use a "
                "checkpoint trained on these channels"
            )

    def _on_estimate(self, est: Estimate) -> None:
        self.estimates.append(est)
        if len(self.estimates) >= 2 * self._keep_estimates:  # trim in blocks: O(1) amortised
            del self.estimates[: len(self.estimates) - self._keep_estimates]
        rec = self.recorder
        if rec is not None and self._estimate_info is not None:
            values = np.asarray([est.probabilities], np.float32)
            if est.withheld:
                values[:] = np.nan
            rec.write(Chunk(self._estimate_info, values, np.array([est.t_end])))
        readouts = np.array([[est.readouts.get(k, np.nan) for k in READOUT_KEYS]], dtype=np.float32)
        if rec is not None and self._readout_info is not None:
            rec.write(Chunk(self._readout_info, readouts, np.array([est.t_end])))
        if self.outlet is not None:
            self.outlet.push(est)
        if self._readout_outlet is not None:
            self._readout_outlet.push_sample(readouts[0].tolist(), est.t_end)
        for fn in self._listeners:
            fn(est)

    @property
    def running(self) -> bool:
        """``start`` has been called (and ``close`` not yet)."""
        return self._running

    def start(self) -> None:
        """Start the worker, then the pipeline's threads and the stream watch (live) or the
        thread that feeds the recording (replay)."""
        assert self.pipeline is not None and self.worker is not None
        self._running = True
        self._t_start = time.monotonic()
        self._last = (self._t_start, 0, 0)
        # Python's full collections walk every object: with torch, Qt and the model loaded that
        # took 60-110 ms here, holding the GIL, so a window that met one came out that much late
        # (a few times a minute). Frozen, the objects made until now are not walked again;
        # close() hands them back to the collector.
        with _GC_LOCK:
            if not _GC_FROZEN:
                gc.freeze()
            _GC_FROZEN.add(id(self))
        self.worker.start()
        if self.replay is None:
            self.pipeline.start()
            self._watch_thread = threading.Thread(
                target=self._watch_loop, name="stream-watch", daemon=True
            )
            self._watch_thread.start()
        else:
            self._replay_thread = threading.Thread(
                target=self._replay_loop, name="replay", daemon=True
            )
            self._replay_thread.start()

    def _watch_loop(self) -> None:
        """Mark a live stream that stops delivering, and its return, in the recording.

        A regular stream with no chunk for ``STREAM_LOST_AFTER_S`` gets a marker
        ``physio-live: stream NAME lost ...`` (on the app's marker stream: recorded, in the
        windows, on the LSL marker outlet) and a warning; when data flows again, a marker
        ``physio-live: stream NAME back ...``. The gap itself is flagged by the aligner in every
        window that spans it.
        """
        import pylsl

        assert self.pipeline is not None
        lost: dict[str, float] = {}  # stream key -> monotonic time its last chunk arrived
        while not self._closing:
            time.sleep(0.2)
            now = time.monotonic()
            for key, st in list(self.pipeline.stats.items()):
                if not st.info.is_regular or not st.rate_window or key in self.pipeline.finished:
                    continue
                last_wall = st.rate_window[-1][0]
                name = st.info.name
                if key not in lost and now - last_wall > STREAM_LOST_AFTER_S:
                    t_last = st.last_time if st.last_time is not None else pylsl.local_clock()
                    msg = (
                        f"stream {name} lost: no data for {STREAM_LOST_AFTER_S:g} s after "
                        f"t={t_last:.3f} (waiting for it to come back)"
                    )
                    # the message first, then the state: whoever sees the stream lost also
                    # finds the message that says so
                    self._say(msg)
                    lost[key] = last_wall
                    self.lost_streams[key] = last_wall
                    self._mark(f"physio-live: {msg}")
                elif key in lost and last_wall > lost[key]:
                    away = last_wall - lost.pop(key)
                    self.lost_streams.pop(key, None)
                    msg = f"stream {name} is back after {away:.1f} s without data"
                    self._say(INFO + msg)  # news, not a warning
                    self._mark(f"physio-live: {msg}")

    def _mark(self, text: str) -> None:
        try:
            self.insert_marker(text)
        except Exception as exc:  # a marker must never stop the watch
            self._say(f"marker {text!r} not written: {exc}")

    def _say(self, msg: str) -> None:
        """Add a message of the session itself to the one message log."""
        with self._message_lock:
            self._collect()
            self._messages.append(msg)

    def _collect(self) -> None:
        """Move what the parts (pipeline, worker, recorder, demo, heart monitor) reported since
        the last call into the session's append-only message log, in the order it is found
        (caller holds the lock). Each part keeps its own list; only the new tail of each is taken,
        so a reader's count of messages seen stays valid however the parts interleave."""
        parts: list[tuple[object, list[str]]] = []
        if self.pipeline is not None:
            parts.append((("pipeline", id(self.pipeline)), list(self.pipeline.errors)))
        if self.worker is not None:
            parts.append((("worker", id(self.worker)), list(self.worker.errors)))
        recorder = self.recorder
        if recorder is not None:
            parts.append((("recorder", id(recorder)), _recorder_messages(recorder.status())))
        if self.demo is not None and self.demo.error:
            parts.append((("demo", id(self.demo)), [self.demo.error]))
        from physio_live.models import ReadoutModel

        if isinstance(self.model, ReadoutModel):  # its baseline, taken or loaded
            parts.append((("model", id(self.model)), list(self.model.messages)))
        heart = self.annotator.heart if self.annotator is not None else None
        if heart is not None and heart.error:
            parts.append((("heart", id(heart)), [heart.error]))
        for key, msgs in parts:
            self._take(key, msgs)

    def _take(self, key: object, msgs: list[str]) -> None:
        n = self._taken.get(key, 0)
        if len(msgs) < n:  # a part that started its list afresh
            n = 0
        self._messages.extend(msgs[n:])
        self._taken[key] = len(msgs)

    def messages(self) -> list[str]:
        """Every user-facing message so far, oldest first (append-only)."""
        with self._message_lock:
            self._collect()
            return list(self._messages)

    def _replay_loop(self) -> None:
        """Feed the recording's Chunks in time order, paced at ``speed`` (deadline scheduling
        from one anchor, so sleep errors never accumulate), then wait for the worker."""
        assert self.replay is not None and self.pipeline is not None and self.worker is not None
        rec, pipe = self.replay, self.pipeline
        if self.speed is not None:
            with self._pace_lock:
                self._pace = (time.monotonic(), rec.t_first, self.speed)
        chunk_s = self.cfg.replay.chunk_seconds
        if self.speed is None:  # nothing to pace: fewer, larger chunks (the same windows)
            chunk_s = max(chunk_s, MAX_SPEED_CHUNK_S)
        try:
            for chunk in rec.chunks(chunk_s):
                if self._closing:
                    return
                if self._pace is not None:
                    with self._pace_lock:
                        wall0, t_rec0, speed = self._pace
                    due = wall0 + (float(chunk.timestamps[-1]) - t_rec0) / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                else:
                    # as fast as it goes: take turns with the model, which runs full batches with
                    # the cores and the GIL to itself (sharing them costs both sides more)
                    pipe.wait_for_model()
                pipe.ingest(chunk)
                pipe.step()  # windows go to the worker, which waits for room (no drops)
            self.worker.wait_idle(timeout=600)
        except Exception as exc:  # report, never kill the app
            self._say(f"replay stopped: {type(exc).__name__}: {exc}")
        finally:
            self.finished.set()

    def set_speed(self, speed: float) -> None:
        """Change a paced replay's speed while it runs: recorded time fed so far keeps its
        place, and the rest of the recording follows at ``speed`` (1 = real time) from now.

        Raises :class:`ConfigError` for a live session, a replay at ``--speed max`` (it feeds
        larger chunks and full batches: reopen the file to pace it) or a speed that is not a
        positive number.
        """
        if self.replay is None:
            raise ConfigError("set_speed: this is a live session; only a replay has a speed")
        if self.speed is None:
            raise ConfigError(
                "set_speed: this replay runs at --speed max (unpaced); reopen the file at a "
                "speed to pace it"
            )
        try:
            new = float(speed)
        except (TypeError, ValueError):
            new = math.nan
        if not (math.isfinite(new) and new > 0):
            raise ConfigError(f"set_speed: {speed!r}: give a positive factor (1 = real time)")
        with self._pace_lock:
            if self._pace is not None:  # running: re-anchor at where the schedule is now
                wall0, t_rec0, old = self._pace
                now = time.monotonic()
                self._pace = (now, t_rec0 + (now - wall0) * old, new)
            self.speed = new

    def status(self) -> SessionStatus:
        """Rates, counters, latency, recording and every message so far (see SessionStatus)."""
        pipe, worker = self.pipeline, self.worker
        assert pipe is not None and worker is not None
        now = time.monotonic()
        t_last, w_last, e_last = self._last
        w, e = pipe.windows_out, worker.stats.processed
        if now - t_last >= 0.5:
            self._rates = ((w - w_last) / (now - t_last), (e - e_last) / (now - t_last))
            self._last = (now, w, e)
        p50, p99 = worker.stats.latency_percentiles()
        if self.replay is not None:  # recorded time vs now: not a latency
            p50 = p99 = float("nan")
        rec = self.recorder.status() if self.recorder is not None else None
        lost = dict(self.lost_streams)  # before the messages: a lost stream's message is in them
        errors = self.messages()
        return SessionStatus(
            elapsed=now - self._t_start,
            rates={
                st.info.name: (st.effective_rate, st.info.nominal_srate)
                for st in pipe.stats.values()
            },
            windows=w,
            estimates=e,
            windows_per_s=self._rates[0],
            estimates_per_s=self._rates[1],
            latency_p50=p50,
            latency_p99=p99,
            dropped=worker.stats.dropped,
            lost_samples=sum(st.lost_in_buffer for st in pipe.stats.values()),
            recording=str(rec.path) if rec is not None else None,
            recording_bytes=rec.bytes_written if rec is not None else 0,
            errors=errors,
            lost=lost,
        )

    def close(self) -> None:
        """Stop acquisition, finish queued windows, close the file (footers), stop outlets."""
        self._closing = True
        self._running = False
        if self._replay_thread is not None:
            self._replay_thread.join(timeout=30.0)
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=2.0)
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.worker is not None:
            self.worker.stop(drain=True, timeout=30.0)
        if self.recorder is not None and self.model is not None:
            # a readout model's resting baseline, for later sessions of the same person
            # (model.baseline); one that failed to write costs nothing else
            try:
                self.baseline_path = save_baseline(
                    self.model, self.recorder.path.with_suffix(".baseline.json")
                )
            except OSError as exc:
                with self._message_lock:
                    self._take(("baseline", 0), [f"baseline not saved: {exc}"])
        self.stop_recording()
        if self.outlet is not None:
            self.outlet.close()
        self._marker_outlet = None
        if self.demo is not None:
            self.demo.stop()
            self.demo = None
        with _GC_LOCK:
            if id(self) in _GC_FROZEN:
                _GC_FROZEN.discard(id(self))
                if not _GC_FROZEN:
                    gc.unfreeze()

    def __enter__(self) -> Session:
        self.open()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
