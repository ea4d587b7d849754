"""The dashboard's status bar: what :meth:`Session.status` says, as chips.

One chip per stream (effective / nominal rate and its state: waiting, ok, lost, ended), then the
session's elapsed time and estimates per second, the latency (or, in a replay, where in the
recording it is and at what speed), the dropped windows and the recording. It judges nothing
itself: a stream is lost when the session says so (the session also logs and records it).
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from ._format import fmt_bytes, fmt_clock, fmt_ms
from ._session import Session, SessionStatus

__all__ = ["StatusBar", "status_chip"]


def status_chip(text: str = "") -> QtWidgets.QLabel:
    """A label for the status bar with a little padding."""
    lab = QtWidgets.QLabel(text)
    lab.setContentsMargins(6, 0, 6, 0)
    lab.setTextFormat(QtCore.Qt.TextFormat.RichText)
    return lab


class StatusBar:
    """The chips of a window's status bar (GUI thread only)."""

    def __init__(self, bar: QtWidgets.QStatusBar):
        self.stream_box = QtWidgets.QWidget()
        self.stream_layout = QtWidgets.QHBoxLayout(self.stream_box)
        self.stream_layout.setContentsMargins(0, 0, 0, 0)
        self.stream_layout.setSpacing(0)
        #: stream key -> its chip (the session's own marker stream has none)
        self.stream_chips: dict[str, QtWidgets.QLabel] = {}
        #: stream key -> the state its chip shows (waiting, ok, lost, ended)
        self.stream_states: dict[str, str] = {}
        bar.addWidget(self.stream_box, 1)
        self.pipeline_chip = status_chip()
        self.latency_chip = status_chip()
        self.dropped_chip = status_chip()
        self.recording_chip = status_chip()
        for chip in (self.pipeline_chip, self.latency_chip, self.dropped_chip):
            bar.addPermanentWidget(chip)
        bar.addPermanentWidget(self.recording_chip)

    @property
    def any_lost(self) -> bool:
        """A stream chip shows its stream lost."""
        return "lost" in self.stream_states.values()

    def set_session(self, session: Session | None) -> None:
        """One chip per stream of ``session`` (none without a session)."""
        for chip in self.stream_chips.values():
            self.stream_layout.removeWidget(chip)
            chip.deleteLater()
        self.stream_chips.clear()  # the same dict: whoever holds it sees the new chips
        if session is None or session.pipeline is None:
            return
        own = f"{session.cfg.outlet.name}-markers"
        for info in session.pipeline.streams:
            if info.name == own:
                continue
            chip = status_chip(info.name)
            self.stream_layout.addWidget(chip)
            self.stream_chips[info.key] = chip
        self.stream_layout.addStretch(1)

    def show_no_session(self) -> None:
        self.pipeline_chip.setText("<i>no session</i>")

    def show(self, session: Session, st: SessionStatus, now: float) -> None:
        """Every chip from ``st`` (``session.status()``, taken at monotonic time ``now``)."""
        assert session.pipeline is not None
        for key, chip in self.stream_chips.items():
            stats = session.pipeline.stats[key]
            info = stats.info
            if not info.is_regular:
                chip.setText(f"<b>{info.name}</b> {stats.samples} markers")
                continue
            try:
                last_wall = stats.rate_window[-1][0]
            except IndexError:
                last_wall = None
            if last_wall is None:
                state, colour, rate = "waiting", "#b36b00", 0.0
            elif key in st.lost:  # judged by the session, which also says so in a message
                state, colour, rate = f"lost ({now - st.lost[key]:.0f} s)", "#b00020", 0.0
            elif key in session.pipeline.finished:
                state, colour, rate = "ended", "#808080", 0.0
            else:
                state, colour, rate = "ok", "#2a7f3f", stats.effective_rate
            self.stream_states[key] = state.split(" ")[0]
            chip.setText(
                f"<b>{info.name}</b> {rate:.0f}/{info.nominal_srate:g} Hz "
                f"<span style='color:{colour}'>● {state}</span>"
            )
            chip.setMinimumWidth(chip.sizeHint().width())  # never clip the state
        self.pipeline_chip.setText(f"{st.elapsed:.0f} s · {st.estimates_per_s:.1f} est/s")
        replay = session.replay
        if replay is not None:  # recorded time vs now is not a latency: show the position
            done = session.estimates[-1].t_end - replay.t_first if session.estimates else 0.0
            speed = "max" if session.speed is None else f"{session.speed:g}×"
            self.latency_chip.setText(
                f"replay {fmt_clock(done)} / {fmt_clock(replay.t_last - replay.t_first)} · {speed}"
            )
        else:
            self.latency_chip.setText(
                f"latency p50 {fmt_ms(st.latency_p50, ' ')} · p99 {fmt_ms(st.latency_p99, ' ')}"
            )
        colour = "#b00020" if st.dropped else "#202020"
        self.dropped_chip.setText(f"<span style='color:{colour}'>dropped {st.dropped}</span>")
        if st.recording:
            self.recording_chip.setText(
                f"<span style='color:#b00020'><b>● REC</b></span> {Path(st.recording).name} "
                f"({fmt_bytes(st.recording_bytes, ' ')})"
            )
            self.recording_chip.setToolTip(st.recording)
        else:
            self.recording_chip.setText("<span style='color:#808080'>not recording</span>")
