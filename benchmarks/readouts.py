"""Readout throughput: streaming R-peak detection on MIT-BIH record 100, band powers, quality.

The detector gets the whole 30-min, 2-lead record (360 Hz) in chunks of a fixed size (best lead
picked after the learning period, as live), several chunk sizes; the figure is input samples per
second of CPU-side wall time (one sample = one time point of both leads). Band powers and the
quality check run on 4-s windows of the eegmat EEG (19 channels, 500 Hz raw / 200 Hz model rate).
Prints one JSON line of figures, then a short table.

    python benchmarks/readouts.py [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pyedflib
from scipy import signal

from physio_live.core._readouts import (
    StreamingRPeakDetector,
    assess_window_quality,
    band_powers,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
    import wfdb


def bench_detector(x: np.ndarray, fs: float, chunk: int, repeats: int) -> tuple[float, int]:
    """Best-of-``repeats`` samples/s of the detector fed ``chunk``-sample chunks."""
    ts = 100.0 + np.arange(len(x)) / fs
    best = 0.0
    n_peaks = 0
    for _ in range(repeats):
        det = StreamingRPeakDetector(fs)
        t = time.perf_counter()
        for a in range(0, len(x), chunk):
            det.push(x[a : a + chunk], ts[a : a + chunk])
        el = time.perf_counter() - t
        best = max(best, len(x) / el)
        n_peaks = len(det.peak_times)
    return best, n_peaks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("PHYSIO_LIVE_DATA", default_data))
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rec = wfdb.rdrecord(str(args.data / "wfdb_mitdb_100" / "100"))
    x = rec.p_signal.astype(np.float32)
    fs = float(rec.fs)
    rows = []
    for chunk in (1, 10, 36, 360, 3600):
        reps = 1 if chunk == 1 else args.repeats
        sub = x[: int(300 * fs)] if chunk == 1 else x  # 1-sample chunks: 5 min is plenty
        rate, n_peaks = bench_detector(sub, fs, chunk, reps)
        rows.append({"chunk": chunk, "samples_per_s": round(rate), "x_realtime": round(rate / fs)})

    with pyedflib.EdfReader(str(args.data / "eeg_ecg_eegmat" / "Subject00_1.edf")) as f:
        eeg = np.stack([f.readSignal(i) for i in range(19)], axis=1)
        efs = float(f.getSampleFrequency(0))
    model = signal.resample_poly(eeg, 2, 5, axis=0).T  # [C, T] at 200 Hz
    n_win = 0
    t = time.perf_counter()
    for a in range(0, model.shape[1] - 800, 100):
        band_powers(model[:, a : a + 800], 200.0)
        n_win += 1
    bp_ms = 1e3 * (time.perf_counter() - t) / n_win
    ts = np.arange(len(eeg)) / efs
    n_q = 0
    t = time.perf_counter()
    for a in range(0, len(eeg) - 2000, 250):
        assess_window_quality(eeg[a : a + 2000], ts[a : a + 2000], efs)
        n_q += 1
    q_ms = 1e3 * (time.perf_counter() - t) / n_q

    result = {
        "benchmark": "readouts",
        "record": "mitdb/100 (2 leads, 360 Hz, 30 min)",
        "detector": rows,
        "peaks": n_peaks,
        "band_powers_ms_per_window": round(bp_ms, 3),
        "quality_ms_per_window": round(q_ms, 3),
        "window": "4 s, 19 ch (band powers at 200 Hz, quality on raw 500 Hz)",
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result))
    print()
    print(f"{'R-peak detector, chunk (samples)':34s} {'samples/s':>12s} {'x real time':>12s}")
    for r in rows:
        print(f"{r['chunk']:34d} {r['samples_per_s']:12d} {r['x_realtime']:12d}")
    print(f"{'band_powers, 4-s window, 19 ch':34s} {bp_ms:10.3f} ms")
    print(f"{'assess_window_quality, 4-s, 19 ch':34s} {q_ms:10.3f} ms")


if __name__ == "__main__":
    main()
