"""The data that flows through the pipeline: stream descriptions, chunks of samples, windows.

Every source yields :class:`Chunk` objects; nothing downstream knows where they came from.
Timestamps are seconds on the LSL clock (``pylsl.local_clock()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChannelQuality", "Chunk", "Quality", "StreamInfo", "Window"]

#: Stream roles the aligner understands.
ROLES = ("eeg", "ecg", "markers", "misc")


@dataclass(frozen=True)
class StreamInfo:
    """What a stream is: the facts a recorder or an aligner needs, nothing source-specific.

    ``role`` is what the pipeline does with it (``eeg``, ``ecg``, ``markers`` or ``misc``);
    ``type`` is the stream's own type string (LSL ``type``, e.g. ``EEG``).
    """

    name: str
    type: str
    role: str
    channel_labels: tuple[str, ...]
    channel_units: tuple[str, ...]
    nominal_srate: float
    source_id: str = ""
    channel_format: str = "float32"
    channel_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if len(self.channel_labels) != len(self.channel_units):
            raise ValueError("channel_labels and channel_units must have the same length")

    @property
    def n_channels(self) -> int:
        return len(self.channel_labels)

    @property
    def is_regular(self) -> bool:
        return self.nominal_srate > 0

    @property
    def key(self) -> str:
        """Unique key of the stream inside one session (name + source id)."""
        return f"{self.name}#{self.source_id}" if self.source_id else self.name


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive samples of one stream.

    ``data`` is ``[n_samples, n_channels]`` (float32 for signals, object/str for markers),
    ``timestamps`` float64 ``[n_samples]`` on the LSL clock.
    """

    info: StreamInfo
    data: np.ndarray
    timestamps: np.ndarray
    #: the stream's timeline is broken just before this chunk (a device clock reset): the
    #: pipeline flags the grid samples between the previous chunk and this one as a gap
    gap_before: bool = False

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ValueError(f"chunk data must be 2-D [samples, channels], got {self.data.shape}")
        if self.data.shape[0] != self.timestamps.shape[0]:
            raise ValueError(
                f"chunk has {self.data.shape[0]} samples but {self.timestamps.shape[0]} timestamps"
            )
        if self.data.shape[1] != self.info.n_channels:
            raise ValueError(
                f"chunk of stream {self.info.name!r} has {self.data.shape[1]} channels, "
                f"its StreamInfo declares {self.info.n_channels}"
            )

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


@dataclass(frozen=True)
class ChannelQuality:
    """Quality of one modality inside one window.

    Channel lists hold channel indices (into the modality's channel order).
    ``gap_fraction`` is the share of window samples with no source sample within the gap limit.
    """

    gap_fraction: float = 0.0
    nan_channels: tuple[int, ...] = ()
    flat_channels: tuple[int, ...] = ()
    saturated_channels: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            self.gap_fraction == 0.0
            and not self.nan_channels
            and not self.flat_channels
            and not self.saturated_channels
        )

    def reasons(self) -> list[str]:
        out = []
        if self.gap_fraction:
            out.append(f"gap {self.gap_fraction:.0%}")
        if self.nan_channels:
            out.append(f"nan ch {list(self.nan_channels)}")
        if self.flat_channels:
            out.append(f"flat ch {list(self.flat_channels)}")
        if self.saturated_channels:
            out.append(f"saturated ch {list(self.saturated_channels)}")
        return out


@dataclass(frozen=True)
class Quality:
    """Quality flags of a window, per modality."""

    per_modality: dict[str, ChannelQuality] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(q.ok for q in self.per_modality.values())

    def summary(self) -> str:
        parts = [f"{m}: {', '.join(q.reasons())}" for m, q in self.per_modality.items() if not q.ok]
        return "; ".join(parts) if parts else "ok"


@dataclass(frozen=True)
class Window:
    """A fixed-length, aligned window at the model rate, in model units.

    ``eeg`` is ``[C_eeg, T]`` and ``ecg`` ``[C_ecg, T]`` (``None`` when the config has no stream of
    that modality). Sample ``i`` sits at time ``t_end - (T - 1 - i) / rate`` on the LSL clock.
    ``markers`` are ``(time, value)`` pairs of marker streams that fall inside the window.
    """

    t_end: float
    rate: float
    eeg: np.ndarray | None
    ecg: np.ndarray | None
    quality: Quality
    index: int = 0
    eeg_labels: tuple[str, ...] = ()
    ecg_labels: tuple[str, ...] = ()
    markers: tuple[tuple[float, str], ...] = ()

    @property
    def n_samples(self) -> int:
        arr = self.eeg if self.eeg is not None else self.ecg
        return 0 if arr is None else int(arr.shape[1])

    @property
    def times(self) -> np.ndarray:
        """LSL time of every sample of the window."""
        n = self.n_samples
        return self.t_end - (np.arange(n)[::-1]) / self.rate


@dataclass(frozen=True)
class Estimate:
    """The model's output for one window.

    ``probabilities[i]`` is P(``targets[i]`` is high). ``latency`` = ``t_emit - t_end`` (seconds
    on the LSL clock). ``untrained`` is set when the weights are random: the numbers then mean
    nothing, and every sink says so. ``withheld`` is set when the window's quality is below the
    configured bar: the probabilities are then NaN and ``reason`` says why.
    """

    t_end: float
    t_emit: float
    targets: tuple[str, ...]
    probabilities: tuple[float, ...]
    quality: Quality
    model_id: str
    untrained: bool
    window_index: int = 0
    eeg_missing: bool = False
    ecg_missing: bool = False
    withheld: bool = False
    reason: str = ""
    readouts: dict[str, float] = field(default_factory=dict)

    @property
    def latency(self) -> float:
        return self.t_emit - self.t_end

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.targets, self.probabilities, strict=True))
