"""Number and message formatting shared by the status line, the CLI and the dashboard."""

from __future__ import annotations

import math

from physio_live.core import INFO

__all__ = ["fmt_bytes", "fmt_clock", "fmt_message", "fmt_ms", "is_warning"]


def fmt_bytes(n: float, sep: str = "") -> str:
    """``1234567`` -> ``1.2MB`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{sep}{unit}" if unit == "B" else f"{n:.1f}{sep}{unit}"
        n /= 1000.0
    return f"{n:.1f}{sep}GB"


def fmt_ms(seconds: float, sep: str = "") -> str:
    """Seconds as whole milliseconds, ``-`` for NaN."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}{sep}ms"


def fmt_clock(seconds: float) -> str:
    """``83.4`` -> ``1:23``; ``3725`` -> ``1:02:05`` (a position in a recording)."""
    if not math.isfinite(seconds):
        return "-"
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def is_warning(msg: str) -> bool:
    """Whether a session message is a warning or error, not information (a recovery, a baseline
    taken: the ``info: `` ones)."""
    return not msg.startswith(INFO)


def fmt_message(msg: str) -> str:
    """A session message as the headless app prints it on stderr."""
    return f"physio-live: {msg}" if msg.startswith(INFO) else f"physio-live: warning: {msg}"
