"""Streaming core: stream types, sources, ring buffers, aligner and windows, config loading.

Pure Python + NumPy/SciPy; imports neither ``physio_live.models`` nor ``physio_live.app``.
"""

from __future__ import annotations

from ._errors import (
    ChannelMismatchError,
    ConfigError,
    PhysioLiveError,
    SourceError,
    StreamNotFoundError,
)
from ._types import ChannelQuality, Chunk, Quality, StreamInfo, Window

__all__ = [
    "ChannelMismatchError",
    "ChannelQuality",
    "Chunk",
    "ConfigError",
    "PhysioLiveError",
    "Quality",
    "SourceError",
    "StreamInfo",
    "StreamNotFoundError",
    "Window",
]
