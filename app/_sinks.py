"""Sinks of a session besides the recorder and the outlets: the estimates as CSV, and the aligned
windows as one ``.npz`` of training data (``physio-live --replay ... --export-windows OUT.npz``:
model rate, model units, end times, quality flags, the markers inside each window, channel names
and the preprocessing).
"""

from __future__ import annotations

import csv
import json
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np

from physio_live.core import Config, Estimate, Window

__all__ = ["EstimateCSV", "WindowExporter"]


class EstimateCSV:
    """Writes estimates as CSV rows as they come (worker thread), flushed per row."""

    def __init__(self, path: str | Path, targets: tuple[str, ...]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w", newline="", encoding="utf-8")
        self._w = csv.writer(self._f)
        self._w.writerow(
            ["t_end", "window", *targets, "quality", "withheld", "eeg_missing", "ecg_missing",
             "model_id", "untrained", "reason"]
        )  # fmt: skip
        self._lock = threading.Lock()
        self.rows = 0

    def write(self, est: Estimate) -> None:
        probs = ["nan" if est.withheld else repr(float(p)) for p in est.probabilities]
        with self._lock:
            self._w.writerow(
                [repr(est.t_end), est.window_index, *probs, est.quality.summary(),
                 int(est.withheld), int(est.eeg_missing), int(est.ecg_missing), est.model_id,
                 int(est.untrained), est.reason]
            )  # fmt: skip
            self._f.flush()
            self.rows += 1

    def close(self) -> None:
        with self._lock:
            self._f.close()


class WindowExporter:
    """Collects aligned windows and saves them as one ``.npz`` (``numpy.load`` without pickle).

    Arrays: ``eeg`` [N, C_eeg, T], ``ecg`` [N, C_ecg, T] (float32, model units; absent when the
    recording has no such modality), ``t_end`` [N], ``window_index`` [N], quality:
    ``<mod>_gap_fraction`` [N], ``<mod>_nan`` / ``<mod>_flat`` / ``<mod>_saturated`` [N, C] bools,
    markers: ``marker_time`` [M], ``marker_value`` [M] (str), ``marker_window`` [M] (row of the
    window holding it; a marker inside several overlapping windows appears once per window),
    ``eeg_channels`` / ``ecg_channels`` (str), ``rate``, and ``preprocessing`` (a JSON string of the
    aligner settings and the scaling the model asked for).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.windows: list[Window] = []
        self._lock = threading.Lock()

    def add(self, window: Window) -> None:
        with self._lock:
            self.windows.append(window)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            wins = list(self.windows)
        out: dict[str, np.ndarray] = {
            "t_end": np.array([w.t_end for w in wins], np.float64),
            "window_index": np.array([w.index for w in wins], np.int64),
            "rate": np.array(self.cfg.aligner.rate),
        }
        for mod in ("eeg", "ecg"):
            arrays = [getattr(w, mod) for w in wins]
            if not wins or arrays[0] is None:
                continue
            out[mod] = np.stack(arrays).astype(np.float32)
            labels = getattr(wins[0], f"{mod}_labels")
            out[f"{mod}_channels"] = np.array(labels, dtype=str)
            n_ch = len(labels)
            q = [w.quality.per_modality.get(mod) for w in wins]
            out[f"{mod}_gap_fraction"] = np.array([x.gap_fraction if x else 0.0 for x in q])
            for flag in ("nan", "flat", "saturated"):
                m = np.zeros((len(wins), n_ch), bool)
                for i, x in enumerate(q):
                    if x is not None:
                        m[i, list(getattr(x, f"{flag}_channels"))] = True
                out[f"{mod}_{flag}"] = m
        mt, mv, mw = [], [], []
        for i, w in enumerate(wins):
            for t, v in w.markers:
                mt.append(t)
                mv.append(v)
                mw.append(i)
        out["marker_time"] = np.array(mt, np.float64)
        out["marker_value"] = np.array(mv, dtype=str) if mv else np.array([], dtype="<U1")
        out["marker_window"] = np.array(mw, np.int64)
        out["preprocessing"] = np.array(json.dumps(asdict(self.cfg.aligner)))
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **out)
        tmp.replace(path)
        return path
