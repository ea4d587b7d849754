"""The app's configuration schema: sources, aligner, model, recording, outlet, demo, replay.

Typed dataclasses with their checks (``validate``); YAML files become them through the engine in
``_config_engine.py`` (``yaml.safe_load`` only; one :class:`ConfigError` line per problem, naming
the file, the key and the fix).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._config_engine import (
    apply_overrides,
    build_dataclass,
    read_config_file,
    register_tagged_union,
)
from ._errors import ConfigError

__all__ = [
    "AlignerConfig",
    "BrainFlowSourceConfig",
    "BrainFlowStreamConfig",
    "Config",
    "DemoConfig",
    "GateConfig",
    "GateLimits",
    "LSLSourceConfig",
    "ModalityConfig",
    "ModelConfig",
    "OutletConfig",
    "QualityConfig",
    "RecordingConfig",
    "ReplayConfig",
    "apply_overrides",
    "load_config",
]

Role = Literal["eeg", "ecg", "markers", "misc"]


@dataclass
class LSLSourceConfig:
    """An LSL inlet. At least one of name, type, source_id or predicate must be given."""

    kind: Literal["lsl"]
    role: Role
    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    #: XPath 1.0 predicate over the stream's XML info, e.g. ``name='EEG' and nominal_srate>100``
    predicate: str | None = None
    #: seconds to wait for the stream to appear
    timeout: float = 10.0
    #: expected channel count; a stream with another count is refused
    channels: int | None = None
    #: channel labels to use when the stream's ``desc`` has none (or to override them)
    labels: list[str] | None = None
    #: unit of the samples when the stream's ``desc`` has none
    unit: str = "uV"
    #: inlet buffer, seconds
    max_buffered: float = 360.0
    #: the stream is not there at start: ``fail`` after ``timeout``, or ``wait`` for it (one
    #: line every ``timeout`` seconds) until it appears, ``wait_max`` passes or the app stops
    on_missing: Literal["fail", "wait"] = "fail"
    #: with ``on_missing: wait``: give up after this many seconds (null: wait until stopped)
    wait_max: float | None = None
    #: ``lsl``: the stamps are on the outlet's LSL clock (liblsl's clocksync maps them);
    #: ``device``: the device stamps samples with its own clock (offset, drift, resets), so
    #: they are mapped onto this machine's clock from their arrival times (regular streams)
    timestamps: Literal["lsl", "device"] = "lsl"

    def validate(self, where: str) -> None:
        if not (self.name or self.type or self.source_id or self.predicate):
            raise ConfigError(
                f"{where}: an lsl source needs at least one of name, type, source_id or predicate"
            )
        if self.timeout <= 0:
            raise ConfigError(f"{where}.timeout: must be > 0 seconds, got {self.timeout}")
        _validate_wait(self.on_missing, self.wait_max, where)
        if self.timestamps == "device" and self.role == "markers":
            raise ConfigError(
                f"{where}.timestamps: device needs a regular stream (role eeg, ecg or misc); "
                "use timestamps: lsl for markers"
            )
        if self.channels is not None and self.channels <= 0:
            raise ConfigError(f"{where}.channels: must be a positive count, got {self.channels}")
        if (
            self.labels is not None
            and self.channels is not None
            and len(self.labels) != self.channels
        ):
            raise ConfigError(
                f"{where}.labels: {len(self.labels)} labels for channels={self.channels}; "
                "give one label per channel"
            )

    def predicate_xpath(self) -> str:
        """The XPath predicate that ``pylsl.resolve_bypred`` gets."""
        parts = []
        for key in ("name", "type", "source_id"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}='{value}'")
        if self.predicate:
            parts.append(f"({self.predicate})")
        return " and ".join(parts)

    def describe(self) -> str:
        return self.predicate_xpath()


@dataclass
class BrainFlowStreamConfig:
    """One stream cut out of a BrainFlow board's rows."""

    role: Role
    #: board rows; default: the board's own rows for the role (``get_eeg_channels`` ...)
    rows: list[int] | None = None
    labels: list[str] | None = None
    #: stream name; default ``<board>-<role>``
    name: str | None = None
    unit: str = "uV"


@dataclass
class BrainFlowSourceConfig:
    """A BrainFlow board (any ``BoardIds`` name or number) and the streams cut from it."""

    kind: Literal["brainflow"]
    streams: list[BrainFlowStreamConfig]
    board: str | int = "SYNTHETIC_BOARD"
    #: ``BrainFlowInputParams`` fields, e.g. ``serial_port: /dev/ttyUSB0``
    params: dict[str, Any] = field(default_factory=dict)
    #: samples in BrainFlow's ring buffer
    ring_size: int = 450000
    #: the board does not start (off, unplugged): ``fail`` at once, or ``wait``: try again
    #: every ``retry`` seconds until it starts, ``wait_max`` passes or the app stops
    on_missing: Literal["fail", "wait"] = "fail"
    #: with ``on_missing: wait``: give up after this many seconds (null: wait until stopped)
    wait_max: float | None = None
    #: seconds between attempts to start the board with ``on_missing: wait``
    retry: float = 2.0

    def validate(self, where: str) -> None:
        if not self.streams:
            raise ConfigError(f"{where}.streams: list at least one stream (role: eeg, ecg ...)")
        _validate_wait(self.on_missing, self.wait_max, where)
        if self.retry <= 0:
            raise ConfigError(f"{where}.retry: must be > 0 seconds, got {self.retry}")

    def describe(self) -> str:
        return f"BrainFlow board {self.board}"


def _validate_wait(on_missing: str, wait_max: float | None, where: str) -> None:
    if wait_max is None:
        return
    if on_missing != "wait":
        raise ConfigError(
            f"{where}.wait_max: only used with on_missing: wait; set on_missing: wait or remove "
            "wait_max"
        )
    if wait_max <= 0:
        raise ConfigError(
            f"{where}.wait_max: must be > 0 seconds (or null to wait until stopped), got {wait_max}"
        )


SourceConfig = LSLSourceConfig | BrainFlowSourceConfig
_SOURCE_KINDS: dict[str, type] = {"lsl": LSLSourceConfig, "brainflow": BrainFlowSourceConfig}
register_tagged_union(_SOURCE_KINDS, "source")


@dataclass
class ModalityConfig:
    """Causal filters and scaling of one modality before it is resampled to the model rate."""

    #: band-pass edges in Hz (Butterworth, causal); null disables
    bandpass: list[float] | None = field(default_factory=lambda: [0.3, 75.0])
    #: notch frequency in Hz (50 or 60); null disables
    notch: float | None = 50.0
    notch_q: float = 30.0
    order: int = 4
    #: microvolts per model unit (CBraMod: 100 uV)
    unit_uv: float = 100.0

    def validate(self, where: str, rate: float) -> None:
        if self.bandpass is not None:
            if len(self.bandpass) != 2 or not 0 <= self.bandpass[0] < self.bandpass[1]:
                raise ConfigError(
                    f"{where}.bandpass: give [low, high] in Hz with 0 <= low < high, "
                    f"got {self.bandpass}"
                )
            if self.bandpass[1] >= rate / 2:
                raise ConfigError(
                    f"{where}.bandpass: high edge {self.bandpass[1]} Hz must be below the model "
                    f"Nyquist frequency {rate / 2} Hz (it is the anti-aliasing filter)"
                )
        else:
            raise ConfigError(
                f"{where}.bandpass: a band-pass is required (its high edge is the anti-aliasing "
                f"filter before resampling to {rate} Hz); e.g. bandpass: [0.5, 45]"
            )
        if self.order < 1 or self.order > 10:
            raise ConfigError(f"{where}.order: filter order must be 1..10, got {self.order}")
        if self.notch is not None and not 0 < self.notch < rate / 2:
            raise ConfigError(f"{where}.notch: must be between 0 and {rate / 2} Hz or null")
        if self.unit_uv <= 0:
            raise ConfigError(f"{where}.unit_uv: must be > 0 microvolts per model unit")


@dataclass
class QualityConfig:
    """Thresholds for the window quality flags."""

    #: a channel whose filtered signal spans less than this (uV, peak to peak) is flat
    flat_uv: float = 0.5
    #: raw samples with |value| >= this (uV) are saturated; null disables
    saturation_uv: float | None = 5000.0
    #: consecutive samples further apart than this many nominal periods leave a gap
    gap_periods: float = 2.5


@dataclass
class GateLimits:
    """Raw-signal limits of one modality for the quality gate (see ``core._signal_quality``)."""

    #: peak-to-peak range a channel must stay within (uV); null disables a side
    amplitude_min_uv: float | None = 2.0
    amplitude_max_uv: float | None = 500.0
    #: power within +/-1 Hz of 50/60 Hz over power in 1-45 Hz, on the raw (un-notched) signal
    max_line_ratio: float = 0.5


@dataclass
class GateConfig:
    """When an estimate is withheld: the window's quality is below the bar.

    Bad channels are those the aligner flags (NaN, flat, saturated) or the raw-signal check flags
    (clipping, line noise, amplitude out of range). An estimate is withheld (NaN, with the reason)
    when a modality has more than ``max_bad_fraction`` bad channels or more than
    ``max_gap_fraction`` of its window in timestamp gaps; otherwise it is issued with the
    reasons in its quality field.
    """

    enabled: bool = True
    max_bad_fraction: float = 0.25
    max_gap_fraction: float = 0.1
    eeg: GateLimits = field(default_factory=GateLimits)
    ecg: GateLimits = field(
        default_factory=lambda: GateLimits(amplitude_min_uv=50.0, amplitude_max_uv=10000.0)
    )


@dataclass
class AlignerConfig:
    """One timeline, filters, resampling to the model rate and windowing."""

    rate: float = 200.0
    window: float = 4.0
    hop: float = 0.5
    eeg: ModalityConfig = field(default_factory=ModalityConfig)
    ecg: ModalityConfig = field(
        default_factory=lambda: ModalityConfig(bandpass=[0.5, 45.0], unit_uv=1000.0)
    )
    quality: QualityConfig = field(default_factory=QualityConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    def validate(self, where: str) -> None:
        if not (0 <= self.gate.max_bad_fraction <= 1 and 0 <= self.gate.max_gap_fraction <= 1):
            raise ConfigError(f"{where}.gate: max_bad_fraction and max_gap_fraction must be 0..1")
        if self.rate <= 0:
            raise ConfigError(
                f"{where}.rate: must be > 0 Hz, got {self.rate}; the models take 200 (Hz)"
            )
        n_win = self.window * self.rate
        n_hop = self.hop * self.rate
        if self.window <= 0 or abs(n_win - round(n_win)) > 1e-9:
            raise ConfigError(
                f"{where}.window: {self.window} s is not a whole number of samples at "
                f"{self.rate} Hz"
            )
        if self.hop <= 0 or abs(n_hop - round(n_hop)) > 1e-9:
            raise ConfigError(
                f"{where}.hop: {self.hop} s is not a positive whole number of samples at "
                f"{self.rate} Hz"
            )
        if self.hop > self.window:
            raise ConfigError(
                f"{where}.hop: {self.hop} s is longer than the window ({self.window} s), which "
                "would skip data; use hop <= window"
            )
        if self.window < 1.0:
            raise ConfigError(
                f"{where}.window: {self.window} s is shorter than one 1-s model patch; use >= 1"
            )
        self.eeg.validate(f"{where}.eeg", self.rate)
        self.ecg.validate(f"{where}.ecg", self.rate)

    @property
    def window_samples(self) -> int:
        return round(self.window * self.rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop * self.rate)


@dataclass
class ModelConfig:
    """Which model the inference worker runs, and where."""

    #: our checkpoint (``.safetensors``); null runs randomly initialised weights, loudly flagged
    checkpoint: str | None = None
    #: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``
    device: str = "auto"
    #: bfloat16 (an approximate option): on CPUs with AVX512-BF16/AMX the encoders' linears run in
    #: bfloat16 on oneDNN (batch 32 ~1.55x faster, batch 1 ~1.4x), elsewhere bf16 autocast,
    #: which a CPU without them emulates (~7x slower than float32; the session says so);
    #: probabilities differ from float32 by a few thousandths (benchmarks/bf16_cost.py)
    bf16: bool = False
    #: windows per forward pass; 1 keeps replays bit-identical to live (batching changes the
    #: last bits), larger values raise replay throughput
    max_batch: int = 1
    #: windows waiting for the worker; live mode drops the oldest beyond this
    queue: int = 8
    #: on CUDA, run the forward pass as captured CUDA graphs (one per batch size, rounded up to a
    #: power of two): the same kernels without launching each one; batch 1 of the default model
    #: 4.25 ms instead of 16.1 on an H200 (benchmarks/gpu_worker.py); ignored on the CPU
    cuda_graphs: bool = True
    #: torch CPU threads (null: torch's default)
    threads: int | None = None
    #: encoder size when no checkpoint is given: ``base`` (CBraMod, 12 layers) or ``tiny``
    size: Literal["base", "tiny"] = "base"
    #: readout models (``eegmat-readouts``): a resting baseline saved by an earlier session
    #: (``<recording>.baseline.json``); null takes it from this session's first seconds
    baseline: str | None = None

    def validate(self, where: str) -> None:
        if self.baseline is not None and not Path(self.baseline).expanduser().is_file():
            raise ConfigError(
                f"{where}.baseline: {self.baseline} does not exist; give the .baseline.json a "
                "session wrote beside its recording, or null to take the baseline at the start"
            )
        if self.max_batch < 1 or self.queue < 1:
            raise ConfigError(f"{where}: max_batch and queue must be >= 1")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"{where}.device: {self.device!r}; use auto, cpu, cuda or cuda:N")
        if (
            self.checkpoint is not None
            and not Path(self.checkpoint).expanduser().exists()
            and self.checkpoint.removesuffix(".safetensors") not in shipped_checkpoint_names()
        ):
            shipped = ", ".join(shipped_checkpoint_names()) or "none installed"
            raise ConfigError(
                f"{where}.checkpoint: {self.checkpoint} does not exist and is not a shipped "
                f"checkpoint (shipped: {shipped}); give the path of a physio-live checkpoint, "
                "a shipped name, or null for untrained weights"
            )


def shipped_checkpoint_names() -> list[str]:
    """Names of the checkpoints shipped in ``physio_live.models`` (``weights/NAME.safetensors``),
    found without importing the models package (core does not import it)."""
    spec = importlib.util.find_spec("physio_live.models")
    names: set[str] = set()
    for folder in (spec.submodule_search_locations or []) if spec else []:
        weights = Path(folder) / "weights"
        if weights.is_dir():
            names.update(p.stem for p in weights.glob("*.safetensors") if p.is_file())
    return sorted(names)


@dataclass
class RecordingConfig:
    """XDF recording of every raw stream, the estimates and the markers."""

    enabled: bool = True
    folder: str = "recordings"
    #: file name; ``{time}`` becomes the start time (YYYYmmdd-HHMMSS); never overwritten
    filename: str = "physio-live_{time}.xdf"


@dataclass
class OutletConfig:
    """LSL outlet of the estimates (one float32 channel per target, irregular rate)."""

    enabled: bool = True
    name: str = "physio-live-estimates"
    type: str = "Emotion"


@dataclass
class DemoConfig:
    """Real LSL outlets started inside the app: a bundled recording played in real time
    (``play: recording``), or BrainFlow synthetic EEG with a simulated ECG (``play: synthetic``)."""

    enabled: bool = False
    #: what the outlets carry: ``synthetic`` (BrainFlow board + simulated ECG) or ``recording``
    play: Literal["synthetic", "recording"] = "synthetic"
    #: the recording played (``play: recording``): a bundled name (``eegmat-s34``) or an .npz
    recording: str = "eegmat-s34"
    #: seconds into the recording where playing starts (after its end it plays again from 0)
    start: float = 0.0
    name_prefix: str = "physio-live-demo"
    eeg_board: str | int = "SYNTHETIC_BOARD"
    eeg_rows: list[int] = field(default_factory=lambda: list(range(1, 15)))
    eeg_labels: list[str] = field(
        default_factory=lambda: "AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4".split()
    )
    ecg_rate: float = 256.0
    ecg_leads: list[str] = field(default_factory=lambda: ["ECG1", "ECG2"])
    heart_rate: float = 70.0
    #: seconds between demo markers (0: none)
    marker_period: float = 5.0

    def validate(self, where: str) -> None:
        if len(self.eeg_rows) != len(self.eeg_labels):
            raise ConfigError(f"{where}: eeg_rows and eeg_labels must have the same length")
        if self.ecg_rate <= 0 or not 20 <= self.heart_rate <= 250:
            raise ConfigError(f"{where}: ecg_rate must be > 0 and heart_rate 20..250 bpm")
        if self.start < 0:
            raise ConfigError(f"{where}.start: {self.start} s; give 0 or more seconds")


@dataclass
class ReplayConfig:
    """How recordings are read back (``physio-live --replay``)."""

    #: stream names or channel labels -> role (eeg, ecg, markers, misc) where the file's own
    #: stream type / channel type / label prefix does not decide (or decides wrongly)
    roles: dict[str, str] = field(default_factory=dict)
    #: seconds of signal per replayed Chunk (at ``--speed max`` at least 1 s: same windows)
    chunk_seconds: float = 0.1

    def validate(self, where: str) -> None:
        bad = {k: v for k, v in self.roles.items() if v not in ("eeg", "ecg", "markers", "misc")}
        if bad:
            raise ConfigError(
                f"{where}.roles: {bad} - each role must be one of eeg, ecg, markers, misc"
            )
        if not 0 < self.chunk_seconds <= 10:
            raise ConfigError(f"{where}.chunk_seconds: must be in (0, 10] seconds")


@dataclass
class Config:
    """A whole session: sources, windows, model, recording, outlet (and the built-in demo)."""

    sources: list[SourceConfig]
    aligner: AlignerConfig = field(default_factory=AlignerConfig)
    #: seconds of raw signal each ring buffer holds
    buffer_seconds: float = 60.0
    model: ModelConfig = field(default_factory=ModelConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    outlet: OutletConfig = field(default_factory=OutletConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    #: file the config came from ("<dict>" when built in code)
    path: str = "<dict>"

    def validate(self) -> None:
        where = self.path
        if not self.sources:
            raise ConfigError(
                f"{where}: sources: list at least one source (kind: lsl or brainflow)"
            )
        for i, src in enumerate(self.sources):
            src.validate(f"{where}: sources[{i}]")
        self.aligner.validate(f"{where}: aligner")
        self.model.validate(f"{where}: model")
        self.demo.validate(f"{where}: demo")
        self.replay.validate(f"{where}: replay")
        if self.buffer_seconds < self.aligner.window * 2:
            raise ConfigError(
                f"{where}: buffer_seconds: {self.buffer_seconds} s must hold at least two windows "
                f"({2 * self.aligner.window} s)"
            )


def config_from_dict(data: dict, path: str = "<dict>") -> Config:
    """Build and validate a :class:`Config` from a raw mapping."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a mapping of settings (sources:, aligner:)")
    cfg = build_dataclass(Config, data, f"{path}:")
    cfg.path = path
    cfg.validate()
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (default: the built-in ``demo``) with optional dotted overrides.

    ``path`` may also name a built-in config (``demo``) instead of a file.
    """
    data, p = read_config_file("demo" if path is None else path, overrides)
    return config_from_dict(data, str(p))
