"""Soak test: the headless app on real LSL outlets for a long time; memory, drops, latency, samples.

Real outlets in a separate process (``tests/lsl_outlets.py``: 32-ch EEG @ 250 Hz, 2-ch ECG @ 256 Hz
in mV, channel 0 = sample index, pushed every 20 ms) feed the real headless app
(``physio-live --stream --estimates``, a separate process) with its default model on the CPU,
recording to XDF and publishing estimates on LSL. This script watches from outside:

- RSS of the app process (``/proc/<pid>/status``) every 5 s; "start" is taken after a 60-s warm-up
  (model loaded, first windows done, buffers and queues at their working size), "end" at the last
  reading before the app is asked to stop;
- every estimate line the app prints (its latency = emission - window end, on the LSL clock), as
  p50/p99 per minute;
- the dropped-window count from the app's summary;
- afterwards the XDF is read with pyxdf: for EEG and ECG the sample-index channel must run without
  a hole or repeat from the first recorded sample to the last, and the count recorded is compared
  with the count the outlet sent over that span.

    python benchmarks/soak.py                  # 10 minutes
    python benchmarks/soak.py --minutes 60     # the long run

Prints one JSON line, then a short table. Goals (the reliability issue): RSS growth <= 2 %, 0
samples lost, flat p99.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _outlets import ROOT, start_outlets  # sets LSLAPICFG before pylsl is imported

WARMUP = 60.0
_EST = re.compile(r"^estimate t_end=\S+ latency=([0-9.]+)ms")
_SUMMARY = re.compile(r"(\d+) samples, (\d+) lost, (\d+) windows, (\d+) estimates, (\d+) dropped")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def write_config(folder: Path, spec: dict, threads: int) -> Path:
    eeg, ecg = spec["streams"]
    text = f"""# soak benchmark (written by benchmarks/soak.py)
sources:
  - {{kind: lsl, role: eeg, name: {eeg["name"]}, channels: 32}}
  - {{kind: lsl, role: ecg, name: {ecg["name"]}, channels: 2}}
aligner:
  # the outlets carry a sample counter and sines, not physiology: no quality gate
  gate: {{enabled: false}}
model:
  device: cpu
  threads: {threads}
recording:
  folder: {folder / "rec"}
outlet:
  name: soak-estimates-{os.getpid()}
"""
    path = folder / "soak.yaml"
    path.write_text(text)
    return path


def check_recording(path: Path, names: list[str]) -> dict:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
    out = {}
    for s in streams:
        name = s["info"]["name"][0]
        if name not in names:
            continue
        idx = np.asarray(s["time_series"])[:, 0].astype(np.int64)
        d = np.diff(idx)
        out[name] = {
            "recorded": len(idx),
            "sent_over_span": int(idx[-1] - idx[0] + 1) if len(idx) else 0,
            "lost": int(np.sum(np.maximum(d - 1, 0))),
            "repeated": int(np.sum(d < 1)),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the recording and config")
    args = ap.parse_args()
    seconds = args.minutes * 60.0
    tmp = Path(tempfile.mkdtemp(prefix="physio-soak-"))
    proc_out, spec = start_outlets(
        [
            {"name": "soak-EEG", "type": "EEG", "n_ch": 32, "srate": 250.0},
            {"name": "soak-ECG", "type": "ECG", "n_ch": 2, "srate": 256.0, "unit": "millivolts"},
        ],
        seconds + 180.0,
    )
    cfg = write_config(tmp, spec, args.threads)
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "physio_live.app.cli", "--stream", "--estimates"]
    cmd += ["--config", str(cfg)]
    app = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    t0 = time.monotonic()
    lat: list[tuple[float, float]] = []  # (seconds since start, latency ms)
    summary: dict = {}
    lines_err: list[str] = []

    def read_out() -> None:
        assert app.stdout is not None
        for line in app.stdout:
            m = _EST.match(line)
            if m:
                lat.append((time.monotonic() - t0, float(m.group(1))))
            elif line.startswith("summary:"):
                s = _SUMMARY.search(line)
                if s:
                    keys = ("samples", "lost", "windows", "estimates", "dropped")
                    summary.update(dict(zip(keys, map(int, s.groups()), strict=True)))

    def read_err() -> None:
        assert app.stderr is not None
        for line in app.stderr:
            lines_err.append(line.rstrip())

    threads = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for t in threads:
        t.start()
    rss: list[tuple[float, float]] = []
    try:
        while time.monotonic() - t0 < seconds and app.poll() is None:
            rss.append((time.monotonic() - t0, rss_mb(app.pid)))
            time.sleep(5.0)
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGINT)
        code = app.wait(120)
        for t in threads:
            t.join(10)
        proc_out.terminate()
        proc_out.wait(10)
    names = [s["name"] for s in spec["streams"]]
    files = sorted((tmp / "rec").glob("*.xdf"))
    samples = check_recording(files[0], names) if files else {}
    warm = [r for t, r in rss if t >= WARMUP]
    rss_start, rss_end = (warm[0], warm[-1]) if warm else (float("nan"), float("nan"))
    per_min = []
    arr = np.array(lat) if lat else np.zeros((0, 2))
    for m in range(int(np.ceil(seconds / 60.0))):
        sel = arr[(arr[:, 0] >= m * 60) & (arr[:, 0] < (m + 1) * 60), 1]
        if len(sel):
            per_min.append(
                {
                    "minute": m + 1,
                    "n": len(sel),
                    "p50_ms": round(float(np.percentile(sel, 50)), 1),
                    "p99_ms": round(float(np.percentile(sel, 99)), 1),
                }
            )
    steady = [p["p99_ms"] for p in per_min if p["minute"] > 1]
    result = {
        "benchmark": "soak",
        "minutes": args.minutes,
        "exit_code": code,
        "eeg": "32ch@250Hz",
        "ecg": "2ch@256Hz",
        "rss_mb_after_10s": round(next((r for t, r in rss if t >= 10), float("nan")), 1),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_growth_pct": round(100.0 * (rss_end - rss_start) / rss_start, 2),
        "samples": samples,
        "samples_lost": sum(v["lost"] for v in samples.values()),
        "app_summary": summary,
        "estimates_seen": len(lat),
        "p99_ms_per_minute_min": min(steady) if steady else None,
        "p99_ms_per_minute_max": max(steady) if steady else None,
        "latency_per_minute": per_min,
        "rss_mb_per_minute": [
            round(next((r for t, r in rss if t >= 60 * m), rss[-1][1]), 1)
            for m in range(1, int(seconds // 60) + 1)
        ]
        if rss
        else [],
        "app_warnings": [e for e in lines_err if "UNTRAINED" not in e.upper() and "INFO|" not in e][
            :10
        ],
        "recording_mb": round(files[0].stat().st_size / 1e6, 1) if files else 0.0,
    }
    print(json.dumps(result))
    print(f"{'minute':>6} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for p in per_min:
        print(f"{p['minute']:>6} {p['n']:>5} {p['p50_ms']:>8} {p['p99_ms']:>8}")
    print(
        f"RSS {rss_start:.0f} -> {rss_end:.0f} MB ({result['rss_growth_pct']:+.2f} %), "
        f"dropped {summary.get('dropped')}, samples lost {result['samples_lost']}, "
        f"exit {code}"
    )
    for name, v in samples.items():
        print(
            f"  {name}: recorded {v['recorded']} of {v['sent_over_span']} sent, "
            f"lost {v['lost']}, repeated {v['repeated']}"
        )
    if not args.keep:
        for f in files:
            f.unlink()
    else:
        print(f"kept: {tmp}")


if __name__ == "__main__":
    main()
