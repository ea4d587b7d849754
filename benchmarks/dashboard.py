"""Dashboard frame time: 64-ch EEG at 1000 Hz, a 10-s span, offscreen, while the worker runs.

Real LSL outlets in a separate process (``tests/lsl_outlets.py``: 64-ch EEG @ 1000 Hz and 2-ch ECG
@ 256 Hz, pushed every 20 ms) feed a normal Session (LSL inlets, ring buffers, aligner, inference
worker with the CBraMod-size fused model on the CPU, 4-s windows at a 0.5-s hop, R-peak detection on
the reader thread). The Dashboard shows it at 1600x1000 with a 10-s span; its own timer is replaced
by a loop paced at 30 Hz that times one frame = ``Dashboard.refresh()`` (estimates handed over,
64 + 2 curves set from the ring buffers, peak downsampling, clip to view, status bar) plus
``processEvents()`` (the repaint). A frame budget of 33 ms means >= 30 frames/s.

    python benchmarks/dashboard.py                  # 20 s measured after 6 s of warm-up
    python benchmarks/dashboard.py --seconds 10 --model tiny

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from _outlets import start_outlets  # noqa: E402


def outlets(n_ch: int, rate: float, seconds: float) -> tuple[subprocess.Popen, list[str]]:
    proc, spec = start_outlets(
        [
            {"name": "dash-EEG", "type": "EEG", "n_ch": n_ch, "srate": rate},
            {"name": "dash-ECG", "type": "ECG", "n_ch": 2, "srate": 256.0, "unit": "mV"},
        ],
        seconds,
    )
    return proc, [s["name"] for s in spec["streams"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time")
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--span", type=float, default=10.0)
    ap.add_argument("--model", choices=["base", "tiny"], default="base")
    args = ap.parse_args()

    from PySide6 import QtCore, QtWidgets

    from physio_live.app._dashboard import Dashboard
    from physio_live.app._session import Session
    from physio_live.core import config_from_dict

    proc, (eeg_name, ecg_name) = outlets(args.channels, args.rate, args.warmup + args.seconds + 30)
    cfg = config_from_dict(
        {
            "sources": [
                {"kind": "lsl", "role": "eeg", "name": eeg_name, "timeout": 10},
                {"kind": "lsl", "role": "ecg", "name": ecg_name, "timeout": 10},
            ],
            "aligner": {"window": 4.0, "hop": 0.5},
            "model": {"size": args.model, "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    session = Session(cfg)
    session.open()
    paints = [0]

    class PaintCounter(QtCore.QObject):
        def eventFilter(self, obj, event):
            if event.type() == QtCore.QEvent.Type.Paint:
                paints[0] += 1
            return False

    try:
        session.start()
        win = Dashboard(session, owns_session=False)
        win.resize(1600, 1000)
        win.show()
        win.set_span(args.span)
        counter = PaintCounter()
        win.eeg_plot.viewport().installEventFilter(counter)
        t_end = time.monotonic() + args.warmup
        while time.monotonic() < t_end:  # the window's own 30-Hz timer during warm-up
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        win.timer.stop()
        period = 1.0 / 30.0
        frames: list[float] = []
        updates: list[float] = []  # refresh() alone: reading buffers, decimating, setData
        est0 = win.estimates.count
        paints0 = paints[0]
        t0 = time.perf_counter()
        next_frame = t0
        while time.perf_counter() - t0 < args.seconds:
            a = time.perf_counter()
            win.refresh()
            b = time.perf_counter()
            app.processEvents()
            frames.append(time.perf_counter() - a)
            updates.append(b - a)
            next_frame += period
            left = next_frame - time.perf_counter()
            if left > 0:
                time.sleep(left)  # idle like the window's timer would (frees the GIL)
            else:  # fell behind: start the next frame now, do not burst
                next_frame = time.perf_counter()
        wall = time.perf_counter() - t0
        st = session.status()
        eeg_samples = len(
            session.pipeline.buffers[win.eeg_plot.streams[0].key].read_seconds(args.span)[1]
        )
        n_points = win.eeg_plot.channel_points(0)
        estimates = win.estimates.count - est0
        win.close()
    finally:
        session.close()
        proc.terminate()
        proc.wait(5)
    ft = np.asarray(frames) * 1000.0
    result = {
        "benchmark": "dashboard_frame_time",
        "platform": os.environ.get("QT_QPA_PLATFORM"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "eeg_channels": args.channels,
        "eeg_rate_hz": args.rate,
        "span_s": args.span,
        "samples_per_channel_in_view": int(eeg_samples),
        "points_drawn_per_channel": n_points,
        "curves": len(win.eeg_plot.curves),
        "model": args.model,
        "seconds": round(wall, 2),
        "frames": len(frames),
        "fps": round(len(frames) / wall, 1),
        "frame_ms_p50": round(float(np.percentile(ft, 50)), 2),
        "frame_ms_p99": round(float(np.percentile(ft, 99)), 2),
        "frame_ms_max": round(float(ft.max()), 2),
        "frames_over_33ms": int((ft > 33.3).sum()),
        "refresh_ms_p50": round(float(np.percentile(np.asarray(updates) * 1000.0, 50)), 2),
        "paint_ms_p50": round(float(np.percentile(ft - np.asarray(updates) * 1000.0, 50)), 2),
        "eeg_repaints": paints[0] - paints0,
        "estimates_during_run": estimates,
        "worker_dropped": st.dropped,
        "latency_p50_ms": round(st.latency_p50 * 1000, 1),
        "latency_p99_ms": round(st.latency_p99 * 1000, 1),
        "effective_eeg_rate_hz": round(next(iter(st.rates.values()))[0], 1),
    }
    print(json.dumps(result))
    print()
    print(f"{'what':34s} {'value':>12s}")
    rows = [
        ("EEG channels x rate", f"{args.channels} x {args.rate:g} Hz"),
        ("span / samples per channel", f"{args.span:g} s / {eeg_samples}"),
        ("frames / fps (paced at 30)", f"{len(frames)} / {result['fps']}"),
        ("frame time p50 / p99 (ms)", f"{result['frame_ms_p50']} / {result['frame_ms_p99']}"),
        ("frames over 33 ms", str(result["frames_over_33ms"])),
        ("EEG plot repaints", str(result["eeg_repaints"])),
        ("estimates / dropped windows", f"{estimates} / {st.dropped}"),
        (
            "estimate latency p50 / p99 (ms)",
            f"{result['latency_p50_ms']} / {result['latency_p99_ms']}",
        ),
    ]
    for name, value in rows:
        print(f"{name:34s} {value:>12s}")


if __name__ == "__main__":
    main()
