"""LSL outlet of the estimates, for stimulus software (PsychoPy, Unity ...) to react to.

One float32 channel per target (P(high)), irregular rate, each sample stamped with its window's end
time on the LSL clock. ``desc`` carries the channel labels, the model id and, for random weights,
the untrained warning. Withheld estimates (poor signal quality) are sent as NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from physio_live.core import Estimate, StreamInfo

if TYPE_CHECKING:
    import pylsl

__all__ = ["EstimateOutlet", "estimate_stream_info", "make_outlet"]


def make_outlet(
    info: StreamInfo, chunk_size: int = 0, extra: dict[str, str] | None = None
) -> pylsl.StreamOutlet:
    """A pylsl outlet for ``info`` with channel labels/units/types in ``desc``."""
    import pylsl

    fmt = pylsl.cf_string if info.channel_format == "string" else pylsl.cf_float32
    sinfo = pylsl.StreamInfo(
        info.name, info.type, info.n_channels, info.nominal_srate, fmt, info.source_id
    )
    chans = sinfo.desc().append_child("channels")
    types = info.channel_types or (info.type,) * info.n_channels
    for label, unit, ctype in zip(info.channel_labels, info.channel_units, types, strict=True):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", ctype)
    for key, value in (extra or {}).items():
        sinfo.desc().append_child_value(key, value)
    return pylsl.StreamOutlet(sinfo, chunk_size=chunk_size, max_buffered=360)


def estimate_stream_info(
    name: str, type_: str, targets: tuple[str, ...], source_id: str
) -> StreamInfo:
    return StreamInfo(
        name=name,
        type=type_,
        role="misc",
        channel_labels=tuple(targets),
        channel_units=("probability",) * len(targets),
        nominal_srate=0.0,
        source_id=source_id,
        channel_types=("Emotion",) * len(targets),
    )


class EstimateOutlet:
    """Pushes each Estimate as one sample."""

    def __init__(self, info: StreamInfo, model_id: str, untrained: bool):
        from physio_live.models import UNTRAINED_WARNING

        extra = {"model_id": model_id, "untrained": str(untrained).lower()}
        if untrained:
            extra["warning"] = UNTRAINED_WARNING
        self.info = info
        self._outlet = make_outlet(info, extra=extra)
        self.sent = 0

    def push(self, est: Estimate) -> None:
        values = np.asarray(est.probabilities, np.float32)
        if est.withheld:
            values[:] = np.nan
        self._outlet.push_sample(values.tolist(), est.t_end)
        self.sent += 1

    def close(self) -> None:
        self._outlet = None
