"""Streaming core: stream types, sources, ring buffers, aligner and windows, config loading.

Pure Python + NumPy/SciPy at its heart; imports neither ``physio_live.models`` nor
``physio_live.app``. Sources reach the outside world (pylsl, BrainFlow) and import those lazily.
"""

from __future__ import annotations

from ._aligner import Aligner
from ._array_source import ArraySource
from ._brainflow import BrainFlowSource
from ._config import (
    AlignerConfig,
    BrainFlowSourceConfig,
    BrainFlowStreamConfig,
    Config,
    DemoConfig,
    LSLSourceConfig,
    ModalityConfig,
    ModelConfig,
    OutletConfig,
    QualityConfig,
    RecordingConfig,
    ReplayConfig,
    apply_overrides,
    config_from_dict,
    load_config,
)
from ._config_engine import (
    build_dataclass,
    read_config_file,
    register_tagged_union,
    scientific_numbers,
)
from ._eeg_bands import BANDS, AlphaAsymmetry, band_powers, frontal_alpha_asymmetry
from ._errors import (
    INFO,
    ChannelMismatchError,
    ConfigError,
    PhysioLiveError,
    SourceError,
    StoppedWaitingError,
    StreamNotFoundError,
)
from ._filters import StreamingFilter, design_sos, unit_scale_uv
from ._heart import HeartRateTracker, HeartReadout, RPeakConfig, StreamingRPeakDetector
from ._lsl import LSLSource
from ._pipeline import Pipeline, StreamStats, make_source
from ._recorder import Recorder, RecorderStatus
from ._recordings import RecordedStream, Recording, file_sha256, open_recording
from ._resample import GridSamples, resample_to_grid
from ._ringbuffer import RingBuffer
from ._signal_quality import QualityReport, QualityThresholds, assess_window_quality
from ._source import Source
from ._types import ChannelQuality, Chunk, Estimate, Quality, StreamInfo, Window
from ._xdf import RecordingError, XDFWriter

__all__ = [
    "BANDS",
    "INFO",
    "Aligner",
    "AlignerConfig",
    "AlphaAsymmetry",
    "ArraySource",
    "BrainFlowSource",
    "BrainFlowSourceConfig",
    "BrainFlowStreamConfig",
    "ChannelMismatchError",
    "ChannelQuality",
    "Chunk",
    "Config",
    "ConfigError",
    "DemoConfig",
    "Estimate",
    "GridSamples",
    "HeartRateTracker",
    "HeartReadout",
    "LSLSource",
    "LSLSourceConfig",
    "ModalityConfig",
    "ModelConfig",
    "OutletConfig",
    "PhysioLiveError",
    "Pipeline",
    "Quality",
    "QualityConfig",
    "QualityReport",
    "QualityThresholds",
    "RPeakConfig",
    "RecordedStream",
    "Recorder",
    "RecorderStatus",
    "Recording",
    "RecordingConfig",
    "RecordingError",
    "ReplayConfig",
    "RingBuffer",
    "Source",
    "SourceError",
    "StoppedWaitingError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamStats",
    "StreamingFilter",
    "StreamingRPeakDetector",
    "Window",
    "XDFWriter",
    "apply_overrides",
    "assess_window_quality",
    "band_powers",
    "build_dataclass",
    "config_from_dict",
    "design_sos",
    "file_sha256",
    "frontal_alpha_asymmetry",
    "load_config",
    "make_source",
    "open_recording",
    "read_config_file",
    "register_tagged_union",
    "resample_to_grid",
    "scientific_numbers",
    "unit_scale_uv",
]
