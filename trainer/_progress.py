"""A one-line progress display (no tqdm dependency): rate, ETA and free-form fields."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_seconds"]


def format_seconds(s: float) -> str:
    """``3725.0`` -> ``1:02:05``."""
    s = max(0, round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """``done/total unit, rate, eta, extra`` on one line: redrawn with ``\\r`` on a terminal,
    printed every ``min_interval`` seconds otherwise (log files stay readable)."""

    def __init__(
        self,
        total: int,
        label: str,
        unit: str = "it",
        *,
        start: int = 0,
        stream: TextIO | None = None,
        enabled: bool = True,
        min_interval: float | None = None,
    ) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.done = self._start = start
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval if min_interval is not None else (0.2 if self.tty else 10)
        self._t0 = time.perf_counter()
        self._last = -1e9

    def update(self, n: int = 1, extra: str = "", force: bool = False) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.enabled or (not force and now - self._last < self.min_interval):
            return
        self._last = now
        rate = (self.done - self._start) / max(now - self._t0, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = format_seconds(left) if left != float("inf") else "?"
        line = (
            f"{self.label} {self.done}/{self.total} {self.unit} | {rate:.3g} {self.unit}/s | "
            f"eta {eta}" + (f" | {extra}" if extra else "")
        )
        end = "\r" if self.tty else "\n"
        self.stream.write(line + end)
        self.stream.flush()

    def close(self, extra: str = "") -> None:
        if self.enabled:
            self.update(0, extra, force=True)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
