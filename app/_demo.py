"""The built-in demo: real LSL outlets started inside the app, consumed by the normal LSL inlets.

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

import numpy as np

from physio_live.core import (
    BrainFlowSource,
    BrainFlowSourceConfig,
    BrainFlowStreamConfig,
    Config,
    LSLSourceConfig,
    StreamInfo,
)

from ._ecgsim import ECGSimulator
from ._outlet import make_outlet

__all__ = ["DemoOutlets", "bind_demo_sources"]


class DemoOutlets:
    """Runs the demo outlets in one background thread until ``stop``."""

    def __init__(self, cfg, tag: str | None = None):
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
        self.error: str | None = None

    def start(self) -> None:
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
        mk_info = StreamInfo(
            self.names["markers"],
            "Markers",
            "markers",
            ("marker",),
            ("",),
            0.0,
            self.source_ids["markers"],
            channel_format="string",
        )
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
        self._board.close()
        for name in ("_eeg_out", "_ecg_out", "_mk_out"):
            setattr(self, name, None)


def bind_demo_sources(cfg: Config, demo: DemoOutlets) -> None:
    """Point the config's LSL sources that name a demo stream at this process's demo outlets."""
    by_name = {name: demo.source_ids[role] for role, name in demo.names.items()}
    for src in cfg.sources:
        if isinstance(src, LSLSourceConfig) and src.name in by_name and src.source_id is None:
            src.source_id = by_name[src.name]
