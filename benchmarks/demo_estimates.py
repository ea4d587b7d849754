"""What the built-in demo shows: P(arithmetic) during rest and during the task, live.

Runs the built-in ``demo`` config as ``physio-live --stream`` does (the app's own LSL outlets play
the bundled eegmat test subject in real time, read back by LSL inlets, through the shipped model)
for ``--duration`` seconds, and averages the estimates over the windows wholly in rest (ending
before the ``demo/arithmetic`` marker) and wholly in the task (starting at or after it, up to the
next ``demo/rest``); windows that straddle the onset are counted apart.

    python benchmarks/demo_estimates.py                          # 20 s: 10 s of rest, then the task
    python benchmarks/demo_estimates.py --duration 126 --set demo.start=0   # the whole recording

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()

    from physio_live.app._session import Session
    from physio_live.core import load_config

    cfg = load_config(
        args.config, ["recording.enabled=false", "outlet.enabled=false", *args.overrides]
    )
    session = Session(cfg)
    session.open()
    est: list[tuple[float, float]] = []
    marks: list[tuple[float, str]] = []
    lock = threading.Lock()

    def on_window(w) -> None:
        with lock:
            marks.extend(w.markers)

    def on_estimate(e) -> None:
        with lock:
            est.append((e.t_end, float("nan") if e.withheld else float(e.probabilities[0])))

    session.pipeline.on_window(on_window)
    session.on_estimate(on_estimate)
    session.start()
    time.sleep(args.duration)
    session.close()

    onsets = sorted({t for t, m in marks if m == "demo/arithmetic"})
    if not onsets:
        raise SystemExit("no demo/arithmetic marker in the run: make --duration longer")
    onset = onsets[0]
    later_rest = sorted(t for t, m in marks if m == "demo/rest" and t > onset)
    end = later_rest[0] if later_rest else np.inf
    t, p = (np.array(x) for x in zip(*sorted(est), strict=True))
    w = cfg.aligner.window
    parts = {
        "rest": p[t <= onset],
        "task": p[(t - w >= onset) & (t <= end)],
        "straddling": p[(t > onset) & (t - w < onset)],
    }
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "duration_s": args.duration,
        "model": session.model.model_id,
        "window_s": w,
        "hop_s": cfg.aligner.hop,
        **{
            name: {
                "mean_p": round(float(np.nanmean(x)), 3) if np.isfinite(x).any() else None,
                "windows": len(x),
                "withheld": int(np.isnan(x).sum()),
            }
            for name, x in parts.items()
        },
    }
    print(json.dumps(result))
    print(f"\n{'windows':<12} {'n':>4} {'withheld':>9} {'mean P':>7}")
    for name in parts:
        r = result[name]
        mean = "-" if r["mean_p"] is None else f"{r['mean_p']:.3f}"
        print(f"{name:<12} {r['windows']:>4} {r['withheld']:>9} {mean:>7}")


if __name__ == "__main__":
    main()
