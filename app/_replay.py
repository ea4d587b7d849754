"""Offline replay: a recording through the very same pipeline, worker and sinks as live data.

``physio-live --replay PATH --stream`` reads an XDF, EDF/BDF or WFDB file, feeds its Chunks with
their recorded timestamps (paced at ``--speed``, or as fast as possible with ``--speed max``).
:func:`replay_session` is the one factory for such a session (CLI and dashboard); the estimate
CSV and the window exporter it feeds are sinks (``_sinks.py``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from physio_live.core import Config, Recording, open_recording

from ._session import Session

__all__ = ["replay_session"]


def replay_session(
    cfg: Config,
    path: str | Path | Recording,
    speed: float | None = 1.0,
    *,
    start: float | None = None,
    duration: float | None = None,
    record: bool = False,
    autostart: bool = True,
) -> Session:
    """The one way to replay: an opened (and, with ``autostart``, started) Session replaying
    ``path`` (a file, or a :class:`~physio_live.core.Recording` already read), ``speed`` None =
    as fast as possible. The CLI and the dashboard both use it.

    The config's sources and demo are ignored; its aligner, model and sinks are used. Recording
    to XDF stays off unless ``record`` (a replay of a recording is not a new recording); the
    caller's config is not changed. ``autostart=False`` lets the caller attach listeners first.
    """
    if isinstance(path, Recording):
        rec = path.select(start, duration) if start or duration else path
    else:
        rec = open_recording(path, cfg.replay.roles).select(start, duration)
    if not record:
        cfg = replace(cfg, recording=replace(cfg.recording, enabled=False))
    session = Session(cfg, recording=rec, speed=speed)
    session.open()
    if autostart:
        try:
            session.start()
        except BaseException:
            session.close()
            raise
    return session
