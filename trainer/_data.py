"""Fine-tuning data: the data configs, the labelled-window set every data kind produces, and the
dispatch to the loaders.

Data kinds (``data.kind``): ``manifest`` (labelled recordings in any format the app replays, cut by
the app's own aligner, :mod:`physio_live.trainer._manifest`), ``dreamer`` (``DREAMER.mat``),
``synthetic`` (a DREAMER-layout file with planted effects) and ``windows`` (windows exported by
``physio-live --export-windows`` + labels CSVs), the last three in
:mod:`physio_live.trainer._dreamer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from physio_live.core import ConfigError, unit_scale_uv
from physio_live.models import ModalityConfig

__all__ = [
    "DREAMER_TARGETS",
    "FinetuneDataConfig",
    "LabelConfig",
    "ManifestConfig",
    "SessionConfig",
    "SignalConfig",
    "SyntheticConfig",
    "WindowSet",
    "binarize",
    "load_windows",
]

MODEL_RATE = 200.0
PATCH = 200
DREAMER_TARGETS = ("valence", "arousal", "dominance")

# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------


@dataclass
class SignalConfig:
    """Filters and units of one modality (applied at the native rate, before resampling)."""

    #: band-pass edges in Hz; a high edge at or above the native Nyquist becomes a high-pass
    bandpass: list[float] = field(default_factory=lambda: [0.3, 75.0])
    #: notch frequency in Hz or null
    notch: float | None = 50.0
    notch_q: float = 30.0
    order: int = 4
    #: unit of the values stored in the file (uV, mV, V)
    raw_unit: str = "uV"
    #: microvolts per model unit (CBraMod: 100 uV; the default fused ModalityConfig: 100 for both)
    unit_uv: float = 100.0

    def validate(self, where: str) -> None:
        if len(self.bandpass) != 2 or not 0 <= self.bandpass[0] < self.bandpass[1]:
            raise ConfigError(f"{where}.bandpass: give [low, high] in Hz with 0 <= low < high")
        if self.bandpass[1] >= MODEL_RATE / 2:
            raise ConfigError(
                f"{where}.bandpass: high edge {self.bandpass[1]} Hz must be below {MODEL_RATE / 2} "
                "Hz (it is the anti-aliasing filter before resampling to 200 Hz)"
            )
        if self.notch is not None and not 0 < self.notch < MODEL_RATE / 2:
            raise ConfigError(f"{where}.notch: must be between 0 and 100 Hz, or null")
        if not 1 <= self.order <= 10:
            raise ConfigError(f"{where}.order: filter order must be 1..10")
        if unit_scale_uv(self.raw_unit, None) is None:
            raise ConfigError(f"{where}.raw_unit: {self.raw_unit!r} unknown; use uV, mV or V")
        if self.unit_uv <= 0:
            raise ConfigError(f"{where}.unit_uv: must be > 0 microvolts per model unit")


@dataclass
class LabelConfig:
    """How ratings become high/low labels."""

    #: ``threshold``: rating > threshold is high; ``median``: rating > the subject's median
    mode: Literal["threshold", "median"] = "threshold"
    threshold: float = 3.0


@dataclass
class SessionConfig:
    """One exported session of a lab's own data: windows ``.npz`` + labels ``.csv``."""

    windows: str
    labels: str
    #: subject id (sessions of one subject share it); default: the file name
    subject: str | None = None
    #: ``absolute``: CSV times are on the npz ``t_end`` clock (LSL seconds); ``relative``: seconds
    #: since the start of the first window
    times: Literal["absolute", "relative"] = "absolute"


@dataclass
class SyntheticConfig:
    """A DREAMER-layout file with planted effects (``data.kind: synthetic``; smoke runs, tests)."""

    subjects: int = 4
    clips: int = 6
    stimulus_s: float = 20.0
    baseline_s: float = 4.0
    seed: int | None = 0


@dataclass
class ManifestConfig:
    """Labelled recordings (``data.kind: manifest``): a CSV, or rules that build one from a folder.

    CSV: header ``path,subject,<target>...``, one row per recording (XDF, EDF/BDF or WFDB; paths
    relative to ``data.root``). Without a CSV, every file under ``data.root`` matching ``files``
    is a row: its subject is the first group of ``subject_regex`` on the file name, and a target
    is 1 when ``labels[target]`` matches the file name, else 0.
    """

    #: the manifest CSV (relative: to ``data.root``); null: build it from the rules below
    csv: str | None = None
    files: str = "*.edf"
    subject_regex: str = r"^(.+?)\."
    #: target -> regex on the file name (match: 1, else 0)
    labels: dict[str, str] = field(default_factory=dict)
    #: channel label -> role (eeg, ecg, misc), as the app's ``replay.roles``
    roles: dict[str, str] = field(default_factory=dict)
    #: seconds per replayed chunk (the app's ``replay.chunk_seconds``)
    chunk_seconds: float = 0.1
    #: where the windows of each recording are cached (``.npz``, keyed by file and parameters)
    cache_dir: str = "runs/cache/windows"


@dataclass
class FinetuneDataConfig:
    """Which data, and how it becomes labelled model-input windows."""

    #: ``manifest`` (labelled recordings cut by the app's aligner), ``dreamer`` (``file``),
    #: ``windows`` (``sessions``: own exported data) or ``synthetic``
    kind: Literal["manifest", "dreamer", "windows", "synthetic"]
    #: ``manifest``: the folder of the recordings (relative: to the working directory)
    root: str | None = None
    manifest: ManifestConfig = field(default_factory=ManifestConfig)
    #: the DREAMER ``.mat`` file (MATLAB v5)
    file: str | None = None
    sessions: list[SessionConfig] = field(default_factory=list)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    #: 1-based DREAMER subject numbers to use; null: all
    subjects: list[int] | None = None
    targets: list[str] = field(default_factory=lambda: list(DREAMER_TARGETS))
    label: LabelConfig = field(default_factory=LabelConfig)
    #: window length in whole seconds (= 1-s patches); DREAMER only (exported windows keep theirs)
    window_s: int = 4
    #: seconds between window starts (window_s: no overlap)
    hop_s: float = 4.0
    baseline: Literal["none", "subtract"] = "none"
    #: use only the last this many seconds of each clip (null: all of it)
    stimulus_s: float | None = None
    #: seconds dropped at the start of each recording (filter settling; ``manifest``: windows
    #: ending before this are dropped, the app keeps them, so 0 matches a replay)
    settle_s: float = 1.0
    eeg: SignalConfig = field(default_factory=SignalConfig)
    ecg: SignalConfig = field(default_factory=lambda: SignalConfig(bandpass=[0.5, 45.0]))

    def validate(self, where: str) -> None:
        if self.kind == "manifest" and not self.root:
            raise ConfigError(
                f"{where}.root: give the folder of the recordings (data.kind: manifest), e.g. "
                "--set data.root=../shared/datasets/eegmat"
            )
        if self.kind == "manifest" and not self.manifest.csv:
            unknown = sorted(set(self.targets) - set(self.manifest.labels))
            if unknown:
                raise ConfigError(
                    f"{where}.manifest.labels: no rule for targets {unknown}; give a regex per "
                    "target (or a manifest.csv with a column per target)"
                )
        if self.kind == "dreamer" and not self.file:
            raise ConfigError(f"{where}.file: give the path of DREAMER.mat (data.kind: dreamer)")
        if self.kind == "windows" and not self.sessions:
            raise ConfigError(
                f"{where}.sessions: list at least one {{windows: X.npz, labels: X.csv}} "
                "(data.kind: windows)"
            )
        if not self.targets:
            raise ConfigError(f"{where}.targets: list at least one target")
        if self.window_s < 1:
            raise ConfigError(f"{where}.window_s: must be >= 1 (whole 1-s patches)")
        hop = self.hop_s * MODEL_RATE
        if self.hop_s <= 0 or abs(hop - round(hop)) > 1e-6:
            raise ConfigError(f"{where}.hop_s: must be > 0 and a whole number of 200 Hz samples")
        if self.settle_s < 0 or (self.stimulus_s is not None and self.stimulus_s < self.window_s):
            raise ConfigError(f"{where}: need settle_s >= 0 and stimulus_s >= window_s (or null)")
        self.eeg.validate(f"{where}.eeg")
        self.ecg.validate(f"{where}.ecg")


# --------------------------------------------------------------------------------------------------
# The labelled windows
# --------------------------------------------------------------------------------------------------


@dataclass
class WindowSet:
    """Labelled windows of model input, with the groups the protocols split by.

    ``eeg``/``ecg``: float32 ``[N, C, P, 200]`` in model units (None when the data has no such
    modality); ``ratings``/``labels``: ``[N, targets]``; ``subject``: index into ``subjects``;
    ``trial``: one id per (subject, clip) recording, the unit no split may cut; ``clip``: the
    clip (film / labelled segment) number within its subject.
    """

    eeg: np.ndarray | None
    ecg: np.ndarray | None
    ratings: np.ndarray
    labels: np.ndarray
    subject: np.ndarray
    trial: np.ndarray
    clip: np.ndarray
    subjects: list[str]
    targets: tuple[str, ...]
    eeg_spec: ModalityConfig
    ecg_spec: ModalityConfig
    label_threshold: float
    preprocessing: dict[str, Any]
    source: str
    #: window end times (s, on the recording's clock) and the recording of each window, where
    #: the loader knows them (``manifest``)
    t_end: np.ndarray | None = None
    recording: np.ndarray | None = None
    recordings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_patches(self) -> int:
        x = self.eeg if self.eeg is not None else self.ecg
        assert x is not None
        return int(x.shape[2])

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "windows": len(self),
            "subjects": len(self.subjects),
            "trials": len(np.unique(self.trial)),
            "eeg": None if self.eeg is None else list(self.eeg.shape[1:]),
            "ecg": None if self.ecg is None else list(self.ecg.shape[1:]),
            "positive_rate": {
                t: round(float(self.labels[:, i].mean()), 4) for i, t in enumerate(self.targets)
            },
        }


def binarize(
    ratings: np.ndarray, subject: np.ndarray, label: LabelConfig
) -> tuple[np.ndarray, float]:
    """Ratings ``[n, targets]`` -> 0/1 labels, and the threshold recorded with the model.

    ``threshold``: rating > threshold. ``median``: rating > that subject's median rating (per
    target); the recorded threshold is then the median over all ratings (for information only).
    """
    ratings = np.asarray(ratings, np.float64)
    if label.mode == "threshold":
        return (ratings > label.threshold).astype(np.int64), float(label.threshold)
    out = np.zeros(ratings.shape, np.int64)
    for s in np.unique(subject):
        rows = subject == s
        out[rows] = ratings[rows] > np.median(ratings[rows], axis=0, keepdims=True)
    return out, float(np.median(ratings))


def _spec(name: str, channels: tuple[str, ...], n_patches: int, unit_uv: float) -> ModalityConfig:
    return ModalityConfig(
        name=name,
        channels=channels,
        n_patches=n_patches,
        sampling_rate=MODEL_RATE,
        patch_size=PATCH,
        units="uV",
        scale=1.0 / unit_uv,
    )


def load_windows(cfg: FinetuneDataConfig, work_dir: str | Path | None = None) -> WindowSet:
    """The windows ``cfg`` describes (a synthetic file is written to ``work_dir`` first)."""
    from ._dreamer import load_dreamer, load_exported_windows, write_synthetic_dreamer

    if cfg.kind == "manifest":
        from ._manifest import load_manifest

        return load_manifest(cfg)
    if cfg.kind == "windows":
        return load_exported_windows(cfg)
    if cfg.kind == "synthetic":
        s = cfg.synthetic
        out = Path(work_dir or ".") / "dreamer_synthetic.mat"
        write_synthetic_dreamer(
            out,
            n_subjects=s.subjects,
            n_clips=s.clips,
            stimulus_s=s.stimulus_s,
            baseline_s=s.baseline_s,
            seed=s.seed,
        )
        ws = load_dreamer(replace(cfg, kind="dreamer"), out)
        ws.preprocessing["kind"] = "synthetic"
        return ws
    return load_dreamer(cfg)
