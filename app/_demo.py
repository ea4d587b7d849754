"""The built-in demo: real LSL outlets started inside the app, consumed by the normal LSL inlets.

``play: recording`` (the default demo): a bundled recording (:mod:`._demo_data`: a held-out eegmat
subject, rest then mental arithmetic) played in real time from ``demo.start`` s on, then again
from its beginning after its end:

- EEG (19 channels, microvolts) and ECG (1 lead, millivolts) on two outlets at the file's rate,
  each sample stamped ``t0 + i / rate`` on the LSL clock.
- Markers: the segment's name (``demo/rest``, ``demo/arithmetic``) where each segment starts.

``play: synthetic``:

- EEG: the BrainFlow synthetic board (read through our BrainFlow source), re-published on an LSL
  outlet with its LSL timestamps and channel labels.
- ECG: :class:`~physio_live.app._ecgsim.ECGSimulator` on a second outlet.
- Markers: a string marker every few seconds (``demo/tick N``) on a third outlet.

Outlets carry a per-process ``source_id`` so two demos on one machine never cross; the app binds
the config's demo sources to them (:func:`bind_demo_sources`).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace

import numpy as np

from physio_live.core import (
    BrainFlowSource,
    BrainFlowSourceConfig,
    BrainFlowStreamConfig,
    Config,
    DemoConfig,
    LSLSourceConfig,
    StreamInfo,
)

from ._ecgsim import ECGSimulator
from ._outlet import make_outlet

__all__ = ["DemoOutlets", "bind_demo_sources"]


class DemoOutlets:
    """Runs the demo outlets in one background thread until ``stop``."""

    def __init__(self, cfg: DemoConfig, tag: str | None = None):
        self.cfg = cfg
        self.tag = tag or f"{os.getpid()}"
        self.names = {
            "eeg": f"{cfg.name_prefix}-EEG",
            "ecg": f"{cfg.name_prefix}-ECG",
            "markers": f"{cfg.name_prefix}-Markers",
        }
        self.source_ids = {role: f"{name}-{self.tag}" for role, name in self.names.items()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._board: BrainFlowSource | None = None
        self.error: str | None = None

    def start(self) -> None:
        if self.cfg.play == "recording":
            self._start_recording()
        else:
            self._start_synthetic()

    def _start_recording(self) -> None:
        import pylsl

        from ._demo_data import load_demo_recording

        rec = self._rec = load_demo_recording(self.cfg.recording)
        self._board = None
        self._first = min(round(self.cfg.start * rec.rate), rec.n_samples - 1)

        def info(role: str, type_: str, labels: tuple[str, ...], unit: str) -> StreamInfo:
            return StreamInfo(
                self.names[role], type_, role, labels, (unit,) * len(labels), rec.rate,
                self.source_ids[role],
            )  # fmt: skip

        self._eeg_out = make_outlet(info("eeg", "EEG", rec.eeg_labels, "microvolts"))
        self._ecg_out = make_outlet(info("ecg", "ECG", rec.ecg_labels, "millivolts"))
        self._mk_out = make_outlet(self._marker_info())
        self._t0 = pylsl.local_clock()
        self._thread = threading.Thread(target=self._play, name="demo-outlets", daemon=True)
        self._thread.start()

    def _marker_info(self) -> StreamInfo:
        return StreamInfo(
            self.names["markers"],
            "Markers",
            "markers",
            ("marker",),
            ("",),
            0.0,
            self.source_ids["markers"],
            channel_format="string",
        )

    def _play(self) -> None:
        """Push the recording in real time from ``start``; play it again from 0 at its end."""
        import pylsl

        rec = self._rec
        sent = 0  # samples pushed since t0
        pos = self._first  # index into the recording of the next sample
        starts = dict(rec.segments)
        marked = pos  # the recording index whose marker was pushed last
        # the first part's name once the app's inlets have had time to connect (LSL does not
        # send a marker pushed before an inlet connects)
        first_mark: float | None = self._t0 + 1.0
        try:
            while not self._stop.is_set():
                due = int((pylsl.local_clock() - self._t0) * rec.rate)
                while due > sent:
                    n = min(due - sent, rec.n_samples - pos)
                    stamps = (self._t0 + np.arange(sent, sent + n) / rec.rate).tolist()
                    self._eeg_out.push_chunk(rec.eeg[pos : pos + n], stamps)
                    self._ecg_out.push_chunk(rec.ecg[pos : pos + n], stamps)
                    for i, name in starts.items():
                        if pos <= i < pos + n and i != marked:
                            self._mk_out.push_sample([f"demo/{name}"], stamps[i - pos])
                            marked = i
                    sent += n
                    pos += n
                    if pos >= rec.n_samples:  # again, the whole recording (all of its rest)
                        pos = marked = 0
                        t = self._t0 + sent / rec.rate
                        self._mk_out.push_sample([f"demo/{rec.segment_at(pos)}"], t)
                if first_mark is not None and pylsl.local_clock() >= first_mark:
                    if marked == self._first:  # no other part has begun since
                        self._mk_out.push_sample([f"demo/{rec.segment_at(self._first)}"])
                    first_mark = None
                time.sleep(0.01)
        except Exception as exc:
            self.error = f"demo outlets stopped: {type(exc).__name__}: {exc}"

    def _start_synthetic(self) -> None:
        import pylsl

        labels = list(self.cfg.eeg_labels)
        self._board = BrainFlowSource(
            BrainFlowSourceConfig(
                kind="brainflow",
                board=self.cfg.eeg_board,
                streams=[
                    BrainFlowStreamConfig(role="eeg", rows=list(self.cfg.eeg_rows), labels=labels)
                ],
            )
        )
        self._board.open()
        board_info = self._board.streams[0]
        eeg_info = StreamInfo(
            self.names["eeg"],
            "EEG",
            "eeg",
            tuple(labels),
            ("microvolts",) * len(labels),
            board_info.nominal_srate,
            self.source_ids["eeg"],
        )
        leads = tuple(self.cfg.ecg_leads)
        ecg_info = StreamInfo(
            self.names["ecg"],
            "ECG",
            "ecg",
            leads,
            ("millivolts",) * len(leads),
            self.cfg.ecg_rate,
            self.source_ids["ecg"],
        )
        mk_info = self._marker_info()
        self._eeg_out = make_outlet(eeg_info)
        self._ecg_out = make_outlet(ecg_info)
        self._mk_out = make_outlet(mk_info)
        self._sim = ECGSimulator(self.cfg.ecg_rate, len(leads), self.cfg.heart_rate)
        self._t0 = pylsl.local_clock()
        self._thread = threading.Thread(target=self._loop, name="demo-outlets", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import pylsl

        ecg_sent = 0
        next_marker = self._t0 + self.cfg.marker_period
        n_marker = 0
        try:
            while not self._stop.is_set():
                for chunk in self._board.read(timeout=0.02):
                    self._eeg_out.push_chunk(chunk.data, chunk.timestamps.tolist())
                now = pylsl.local_clock()
                due = int((now - self._t0) * self.cfg.ecg_rate)
                if due > ecg_sent:
                    data = self._sim.read(due - ecg_sent)
                    stamps = self._t0 + np.arange(ecg_sent, due) / self.cfg.ecg_rate
                    self._ecg_out.push_chunk(data, stamps.tolist())
                    ecg_sent = due
                if self.cfg.marker_period > 0 and now >= next_marker:
                    n_marker += 1
                    self._mk_out.push_sample([f"demo/tick {n_marker}"], next_marker)
                    next_marker += self.cfg.marker_period
                time.sleep(0.01)
        except Exception as exc:
            self.error = f"demo outlets stopped: {type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._board is not None:
            self._board.close()
        for name in ("_eeg_out", "_ecg_out", "_mk_out"):
            setattr(self, name, None)


def bind_demo_sources(cfg: Config, demo: DemoOutlets) -> Config:
    """A copy of ``cfg`` whose LSL sources that name a demo stream point at this process's demo
    outlets (by source id); ``cfg`` itself is not changed."""
    by_name = {name: demo.source_ids[role] for role, name in demo.names.items()}
    sources = [
        replace(src, source_id=by_name[src.name])
        if isinstance(src, LSLSourceConfig) and src.name in by_name and src.source_id is None
        else src
        for src in cfg.sources
    ]
    return replace(cfg, sources=sources)
