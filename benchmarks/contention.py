"""What slows a forward pass down inside the live app: the same model, in a thread, every hop.

The default CBraMod-size fused model (32-ch EEG + 2-lead ECG, 4 patches) runs one forward pass
every ``--hop`` seconds in a worker thread, as the app's inference worker does, under five
conditions in one process:

1. alone;
2. with the latency benchmark's LSL outlets pushing in another process (32 ch @ 250 Hz + 2 ch @
   256 Hz, every 5 ms);
3. plus two reader threads pulling those streams as the app's readers do
   (``pull_chunk(timeout=0.05, min_samples=1)``);
4. the readers waiting while a forward pass runs (the app's ``Pipeline.yield_to``);
5. as 4, with the interpreter's thread switch interval at 0.2 ms instead of 5 ms.

Reported: the median and 90th percentile of the forward time in each.

    python benchmarks/contention.py [--passes 40] [--threads 2]

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np
import torch
from latency import outlets  # sets LSLAPICFG before pylsl is imported


def build_model():
    """The model the latency benchmark's session runs: the app's own untrained default for a
    32-ch EEG stream and a 2-lead ECG stream."""
    from physio_live.app._session import build_model as app_model
    from physio_live.core import config_from_dict

    cfg = config_from_dict({"sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}]})
    eeg = tuple(f"c{i}" for i in range(32))
    return app_model(cfg, eeg, ("ecg0", "ecg1")).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=40, help="timed forward passes per condition")
    ap.add_argument("--hop", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model()
    eeg, ecg = torch.randn(1, 32, 4, 200), torch.randn(1, 2, 4, 200)
    idle = threading.Event()
    idle.set()

    def timed() -> dict[str, float]:
        times: list[float] = []

        def work() -> None:
            for _ in range(5):
                model.predict(eeg, ecg)
            for _ in range(args.passes):
                time.sleep(args.hop)
                idle.clear()
                t0 = time.perf_counter()
                model.predict(eeg, ecg)
                times.append(time.perf_counter() - t0)
                idle.set()

        t = threading.Thread(target=work, name="inference")
        t.start()
        t.join()
        a = np.asarray(times) * 1000.0
        return {
            "p50_ms": round(float(np.median(a)), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2),
        }

    res: dict[str, dict[str, float]] = {"alone": timed()}
    proc, spec = outlets(10 * args.passes * args.hop + 60)
    stop = threading.Event()
    yield_to_model = threading.Event()
    try:
        time.sleep(3.0)
        res["outlets"] = timed()
        import pylsl

        def reader(name: str) -> None:
            info = pylsl.resolve_byprop("name", name, timeout=10)[0]
            inlet = pylsl.StreamInlet(
                info, max_buflen=10, processing_flags=pylsl.proc_clocksync | pylsl.proc_dejitter
            )
            while not stop.is_set():
                if yield_to_model.is_set():
                    idle.wait(0.1)
                inlet.pull_chunk(timeout=0.05, max_samples=1024, min_samples=1)

        readers = [
            threading.Thread(target=reader, args=(s["name"],), daemon=True) for s in spec["streams"]
        ]
        for r in readers:
            r.start()
        time.sleep(2.0)
        res["readers"] = timed()
        yield_to_model.set()
        res["readers_yield"] = timed()
        old = sys.getswitchinterval()
        sys.setswitchinterval(0.0002)
        res["readers_yield_switch_0.2ms"] = timed()
        sys.setswitchinterval(old)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
    print(json.dumps({"benchmark": "contention", "threads": args.threads, "hop_s": args.hop,
                      "passes": args.passes, "forward": res}))  # fmt: skip
    print()
    print(f"{'condition':32s} {'p50 ms':>8s} {'p90 ms':>8s}")
    for k, v in res.items():
        print(f"{k:32s} {v['p50_ms']:8.2f} {v['p90_ms']:8.2f}")


if __name__ == "__main__":
    main()
