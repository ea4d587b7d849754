"""Readout throughput: streaming R-peak detection on MIT-BIH record 100, band powers, quality.

The detector gets the whole 30-min, 2-lead record (360 Hz) in chunks of a fixed size (best lead
picked after the learning period, as live), several chunk sizes; the figure is input samples per
second of CPU-side wall time (one sample = one time point of both leads). Band powers and the
quality check run on 4-s windows of the eegmat EEG (19 channels, 500 Hz raw / 200 Hz model
rate), and so does the shipped readout model (`eegmat-readouts`: its predict, one window at a
time).
Prints one JSON line of figures, then a short table.

``--ludb`` instead scores the detector on LUDB (200 patients, 10 s, 12 leads, 500 Hz) against the
lead-ii QRS marks, as ``tests/core/test_rpeaks_ludb.py`` does (150 ms, one to one, detections
outside the marked span count only when they match), with the stream starting at several offsets
into each record: the 2-s learning period then falls on another part of the record, which shows
how much the figures depend on what that period holds. Reference beats before the start are left
out.

    python benchmarks/readouts.py [--data ../shared/data] [--repeats 3]
    python benchmarks/readouts.py --ludb [--datasets ../shared/datasets]
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

from physio_live.core import (
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


def _match(ref: np.ndarray, det: np.ndarray, tol: float) -> set[int]:
    """Indices of the detections matched one to one to ``ref`` within ``tol``, closest first."""
    near = [(i, j) for i, r in enumerate(ref) for j in np.flatnonzero(abs(det - r) <= tol)]
    used_r: set[int] = set()
    used_d: set[int] = set()
    for _, i, j in sorted((abs(det[j] - ref[i]), i, int(j)) for i, j in near):
        if i not in used_r and j not in used_d:
            used_r.add(i)
            used_d.add(j)
    return used_d


def bench_ludb(datasets: Path, offsets: list[float], tol: float = 0.150) -> list[dict]:
    """Pooled Se/PPV on LUDB per start offset, lead ii and lead picked by the detector."""
    from physio_live.core import open_recording

    recs = []
    for r in range(1, 201):
        base = datasets / "ludb" / "data" / str(r)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
            ann = wfdb.rdann(str(base), "ii")
        t = np.asarray(ann.sample) / float(ann.fs)
        sym = np.asarray(ann.symbol)
        (stream,) = open_recording(base.with_suffix(".hea")).streams
        recs.append((r, stream, t[sym == "N"], float(t[0]), float(t[-1])))
    rows = []
    for lead in ("ii", None):
        for off in offsets:
            tp = n_ref = n_det = 0
            worst: list[tuple[int, int, int]] = []
            for r, st, ref, first, last in recs:
                fs = st.info.nominal_srate
                det = StreamingRPeakDetector(fs, lead=lead, labels=st.info.channel_labels)
                step = round(0.1 * fs)
                for a in range(round(off * fs), len(st.timestamps), step):
                    det.push(st.data[a : a + step], st.timestamps[a : a + step])
                det.flush()
                found = np.asarray(det.peak_times)
                ref = ref[ref >= off]
                hit = _match(ref, found, tol)
                m = len(hit)
                inside = (found >= max(first, off)) & (found <= last)
                counted = sum(1 for j in range(len(found)) if inside[j] or j in hit)
                tp, n_ref, n_det = tp + m, n_ref + len(ref), n_det + counted
                if len(ref) + counted - 2 * m:
                    worst.append((r, len(ref) - m, counted - m))
            worst.sort(key=lambda w: -(w[1] + w[2]))
            rows.append(
                {
                    "lead": lead or "picked",
                    "start_s": off,
                    "se": round(tp / n_ref, 5),
                    "ppv": round(tp / n_det, 5),
                    "ref": n_ref,
                    "missed": n_ref - tp,
                    "extra": n_det - tp,
                    "worst (record, missed, extra)": worst[:4],
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("PHYSIO_LIVE_DATA", default_data))
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ludb", action="store_true", help="score on LUDB at several start offsets")
    ap.add_argument("--datasets", type=Path, default=default_data.parent / "datasets")
    args = ap.parse_args()

    if args.ludb:
        rows = bench_ludb(args.datasets, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        print(json.dumps({"benchmark": "readouts-ludb", "tolerance_s": 0.15, "rows": rows}))
        print()
        head = ("lead", "start s", "Se", "PPV", "missed", "extra")
        print(f"{head[0]:7s} {head[1]:>7s} {head[2]:>8s} {head[3]:>8s} {head[4]:>6s} {head[5]:>6s}")
        for r in rows:
            print(
                f"{r['lead']:7s} {r['start_s']:7.1f} {r['se']:8.2%} {r['ppv']:8.2%} "
                f"{r['missed']:6d} {r['extra']:6d}  worst {r['worst (record, missed, extra)']}"
            )
        return

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
    ro_ms = readout_model_ms(model, args.data / "eeg_ecg_eegmat" / "Subject00_1.edf")

    result = {
        "benchmark": "readouts",
        "record": "mitdb/100 (2 leads, 360 Hz, 30 min)",
        "detector": rows,
        "peaks": n_peaks,
        "band_powers_ms_per_window": round(bp_ms, 3),
        "quality_ms_per_window": round(q_ms, 3),
        "readout_model_ms_per_window": round(ro_ms, 3),
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
    print(f"{'eegmat-readouts predict, 1 window':34s} {ro_ms:10.3f} ms")


def readout_model_ms(eeg200: np.ndarray, edf: Path) -> float:
    """The shipped readout model's ``predict`` on one window at a time (band powers of 19
    channels, the R-peak detector over the window's ECG, the regression; past its baseline),
    median ms over the record's windows every 0.5 s. The ECG is the recording's own lead."""
    import torch

    from physio_live.models import load_checkpoint

    with pyedflib.EdfReader(str(edf)) as f:
        ecg_ch = next(i for i, lab in enumerate(f.getSignalLabels()) if "ECG" in lab.upper())
        ecg = f.readSignal(ecg_ch)  # mV
    ecg200 = signal.resample_poly(ecg, 2, 5) * 10.0  # model units: 100 uV
    m = load_checkpoint("eegmat-readouts").model
    x = torch.from_numpy(eeg200.astype(np.float32) / 100.0)  # uV -> 100 uV
    e = torch.from_numpy(ecg200.astype(np.float32))
    times = []
    for a in range(0, x.shape[1] - 800, 100):
        w_eeg = x[:, a : a + 800].reshape(1, 19, 4, 200)
        w_ecg = e[a : a + 800].reshape(1, 1, 4, 200)
        t = time.perf_counter()
        m.predict(w_eeg, w_ecg, t_end=np.array([(a + 800) / 200.0]))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


if __name__ == "__main__":
    main()
