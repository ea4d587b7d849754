"""Session switching for the dashboard: open the next session (another config, a replay, back to
live) on a background thread while the window stays responsive.

The previous session is closed on that thread first (footers written), then the new one is opened
and started; a source with ``on_missing: wait`` reports each attempt, and the wait ends when the
user makes another choice or closes the window. What happens comes back to the GUI thread through a
queue (:meth:`SessionSwitcher.take`): the frame timer attaches the session or shows the message.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from physio_live.core import PhysioLiveError

from ._session import Session

__all__ = ["Opened", "SessionSwitcher", "ensure_running"]


def ensure_running(
    session: Session,
    stop: threading.Event | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Session:
    """Open and start ``session`` unless that already happened (replay may hand over either).

    A source with ``on_missing: wait`` reports each attempt to ``on_wait`` and gives up when
    ``stop`` is set (the window closes, or another choice is made)."""
    if session.pipeline is None:
        session.open(stop, on_wait=on_wait)
    if not session.running:
        try:
            session.start()
        except BaseException:
            session.close()
            raise
    return session


@dataclass(frozen=True)
class Opened:
    """One report of the opening thread: a running ``session`` (opened for ``what``), or a
    ``message`` (opening failed, the previous session did not close cleanly, or progress such as
    waiting for a stream)."""

    session: Session | None = None
    what: str = ""
    message: str = ""


class SessionSwitcher:
    """Opens one session at a time in a thread; the GUI thread collects the outcome."""

    def __init__(self) -> None:
        self._reports: queue.SimpleQueue[Opened] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # ends a pending open's wait for a missing source

    @property
    def busy(self) -> bool:
        """An opening thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def cancel(self) -> None:
        """Give up the pending open's wait for a missing source (it then reports an error)."""
        self._stop.set()

    def switch(self, factory: Callable[[], Session], what: str, old: Session | None) -> None:
        """Close ``old`` (if any), then build, open and start ``factory()``, in a thread."""
        self._stop = stop = threading.Event()

        def work() -> None:
            if old is not None:
                try:
                    old.close()
                except Exception as exc:
                    self._reports.put(Opened(message=f"closing the previous session: {exc}"))
            try:
                session = ensure_running(
                    factory(), stop, on_wait=lambda msg: self._reports.put(Opened(message=msg))
                )
                self._reports.put(Opened(session=session, what=what))
            except PhysioLiveError as exc:
                self._reports.put(Opened(message=f"{what} failed: {exc}"))
            except Exception as exc:
                self._reports.put(Opened(message=f"{what} failed: {type(exc).__name__}: {exc}"))

        self._thread = threading.Thread(target=work, name="dashboard-open", daemon=True)
        self._thread.start()

    def take(self) -> list[Opened]:
        """The reports since the last call, oldest first (GUI thread)."""
        out = []
        while not self._reports.empty():
            out.append(self._reports.get_nowait())
        return out

    def close(self, timeout: float = 30.0) -> None:
        """End a pending open (its wait cancelled) and close a session it opened meanwhile."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        for item in self.take():
            if item.session is not None:
                item.session.close()
