"""Progress bars for the trainer: tqdm, as users of PyTorch tools expect, with free-form fields.

On a terminal the bar redraws in place; in a log file (not a terminal) it writes a line at most
every ``min_interval`` seconds (10 s by default), so logs stay short and readable.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress", "format_seconds"]


def format_seconds(s: float) -> str:
    """``3725.0`` -> ``1:02:05`` (tqdm's own interval format)."""
    return tqdm.format_interval(max(0.0, s))


class Progress:
    """A tqdm bar of ``total`` ``unit`` s from ``start``; ``update(n, extra)`` advances it and
    shows ``extra`` (e.g. ``loss 0.41``) after the rate and ETA."""

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
        stream = stream or sys.stderr
        tty = bool(getattr(stream, "isatty", lambda: False)())
        interval = min_interval if min_interval is not None else (0.2 if tty else 10.0)
        self._bar = tqdm(
            total=total,
            initial=start,
            desc=label,
            unit=unit,
            file=stream,
            disable=not enabled,
            mininterval=interval,
            maxinterval=max(interval, 10.0),
            dynamic_ncols=tty,
            ascii=not tty,
            leave=True,
        )
        self._extra = ""

    @property
    def done(self) -> int:
        return int(self._bar.n)

    def update(self, n: int = 1, extra: str = "", force: bool = False) -> None:
        if extra and extra != self._extra:
            self._extra = extra
            self._bar.set_postfix_str(extra, refresh=False)
        self._bar.update(n)
        if force:
            self._bar.refresh()

    def close(self, extra: str = "") -> None:
        if extra:
            self._bar.set_postfix_str(extra, refresh=False)
        self._bar.close()
