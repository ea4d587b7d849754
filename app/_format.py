"""Number formatting shared by the status line and the dashboard."""

from __future__ import annotations

import math

__all__ = ["fmt_bytes", "fmt_ms"]


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
