"""Latency benchmark: real LSL outlets -> the app pipeline -> estimates, vs an mne-lsl peer loop.

32-ch EEG @ 250 Hz and 2-ch ECG @ 256 Hz come from real LSL outlets in a separate process
(``tests/lsl_outlets.py``, pushing every 5 ms). The app's Session (LSL inlets, ring buffers,
aligner: causal filters + 200 Hz + 4-s windows at a 0.25-s hop, inference worker on the CPU with the
default CBraMod-size fused model) runs for ``--seconds``; latency = emission time - window end time
(both on the LSL clock). In the same run, the peer loop does what a script built on mne-lsl would:
``StreamLSL`` per stream, poll until a hop of new samples has arrived, ``get_data(4 s)``,
resample to 200 Hz, run the same model; latency = emission - newest sample's timestamp.

    python benchmarks/latency.py                 # 60 s each
    python benchmarks/latency.py --seconds 20
    python benchmarks/latency.py --bf16          # model.bf16 (the approximate option) in both loops
    python benchmarks/latency.py --checkpoint eegmat-fused   # the shipped model (19 + 1 channels)

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _outlets import start_outlets  # sets LSLAPICFG before pylsl is imported


def outlets(seconds: float, n_eeg: int = 32, n_ecg: int = 2):
    return start_outlets(
        [
            {"name": "lat-EEG", "type": "EEG", "n_ch": n_eeg, "srate": 250.0},
            {"name": "lat-ECG", "type": "ECG", "n_ch": n_ecg, "srate": 256.0, "unit": "millivolts"},
        ],
        seconds,
        push_interval=0.005,
    )


def pct(x: list[float]) -> dict[str, float]:
    a = np.asarray(x) * 1000.0
    if len(a) == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)}


def run_app(
    spec: dict, seconds: float, device: str, bf16: bool = False, checkpoint: str | None = None
) -> tuple[dict, object]:
    from physio_live.app._session import Session
    from physio_live.core import config_from_dict

    eeg, ecg = spec["streams"]
    cfg = config_from_dict(
        {
            "sources": [
                {"kind": "lsl", "role": "eeg", "name": eeg["name"], "channels": eeg["n_ch"]},
                {"kind": "lsl", "role": "ecg", "name": ecg["name"], "channels": ecg["n_ch"]},
            ],
            # the outlets carry a sample counter and impulses: not physiology, so no gate here
            "aligner": {"window": 4.0, "hop": 0.25, "gate": {"enabled": False}},
            "model": {"device": device, "bf16": bf16, "checkpoint": checkpoint},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    session = Session(cfg)
    session.open()
    lat: list[float] = []
    session.start()
    time.sleep(5.0)  # first windows need 4 s of signal; skip the start-up
    session.on_estimate(lambda e: lat.append(e.latency))
    n0 = session.worker.stats.dropped
    time.sleep(seconds)
    dropped = session.worker.stats.dropped - n0
    session.close()
    comp = list(session.worker.stats.compute)
    handoff = list(session.worker.stats.handoff)
    res = {
        "estimates": len(lat),
        "dropped": dropped,
        **pct(lat),
        "compute_p50_ms": round(float(np.median(comp)) * 1000, 2),
        # window end -> queued for the model: samples past the end, aligner, readouts (and gate)
        "handoff_p50_ms": round(float(np.median(handoff)) * 1000, 2),
    }
    return res, session.model


def run_peer(spec: dict, seconds: float, model, device: str, bf16: bool = False) -> dict:
    import mne
    import pylsl
    from mne_lsl.stream import StreamLSL

    mne.set_log_level("ERROR")
    streams = [
        StreamLSL(bufsize=10, name=s["name"]).connect(
            acquisition_delay=0.001, processing_flags=["clocksync", "dejitter", "monotize"]
        )
        for s in spec["streams"]
    ]
    dev = torch.device(device)
    model = model.to(dev).eval()
    time.sleep(5.0)
    lat: list[float] = []
    hop = 0.25
    t_stop = time.monotonic() + seconds
    last_t = None
    grid_n = 800
    while time.monotonic() < t_stop:
        eeg_x, eeg_t = streams[0].get_data(winsize=4.0)
        ecg_x, ecg_t = streams[1].get_data(winsize=4.0)
        if len(eeg_t) == 0 or len(ecg_t) == 0:
            time.sleep(0.002)
            continue
        t_end = min(eeg_t[-1], ecg_t[-1])
        if last_t is not None and t_end < last_t + hop:
            time.sleep(0.002)
            continue
        last_t = t_end
        grid = t_end - (np.arange(grid_n)[::-1]) / 200.0
        e = np.stack([np.interp(grid, eeg_t, ch) for ch in eeg_x]).astype(np.float32) / 100.0
        c = np.stack([np.interp(grid, ecg_t, ch) for ch in ecg_x]).astype(np.float32) * 10.0
        with torch.inference_mode():
            et = torch.from_numpy(e).view(1, len(e), 4, 200).to(dev)
            ct = torch.from_numpy(c).view(1, len(c), 4, 200).to(dev)
            p = model.predict(et, ct, bf16=bf16)
            _ = p.probabilities.cpu()
        lat.append(pylsl.local_clock() - t_end)
    for st in streams:
        st.disconnect()
    return {"estimates": len(lat), **pct(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument(
        "--bf16", action="store_true", help="model.bf16 (the approximate option) in both loops"
    )
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="a shipped name or path (e.g. eegmat-fused); the outlets then carry its channel "
        "counts (unnamed channels, which the app accepts with a warning); default: untrained "
        "CBraMod-size weights",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_eeg, n_ecg = 32, 2
    if args.checkpoint:
        from physio_live.models import describe_checkpoint

        # the header alone: no weights loaded, no torch work on this thread (see in_own_thread)
        mods = describe_checkpoint(args.checkpoint)["modalities"]
        n_eeg, n_ecg = len(mods["eeg"]["channels"]), len(mods["ecg"]["channels"])
    proc, spec = outlets(2 * args.seconds + 60, n_eeg, n_ecg)
    try:
        app, model = run_app(spec, args.seconds, args.device, args.bf16, args.checkpoint)
        peer = (
            None if args.skip_peer else run_peer(spec, args.seconds, model, args.device, args.bf16)
        )
    finally:
        proc.terminate()
        proc.wait(10)
    result = {
        "benchmark": "latency",
        "seconds": args.seconds,
        "device": args.device,
        "torch_threads": args.threads,
        "bf16": args.bf16,
        "checkpoint": args.checkpoint,
        "eeg": f"{n_eeg}ch@250Hz",
        "ecg": f"{n_ecg}ch@256Hz",
        "window_s": 4.0,
        "hop_s": 0.25,
        "app": app,
        "peer_mne_lsl": peer,
    }
    print(json.dumps(result))
    print()
    print(f"{'loop':28s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'dropped':>8s}")
    print(
        f"{'physio-live app':28s} {app['estimates']:5d} {app['p50_ms']:8.1f} "
        f"{app['p95_ms']:8.1f} {app['p99_ms']:8.1f} {app['dropped']:8d}"
    )
    if peer:
        print(
            f"{'mne-lsl StreamLSL peer loop':28s} {peer['estimates']:5d} {peer['p50_ms']:8.1f} "
            f"{peer['p95_ms']:8.1f} {peer['p99_ms']:8.1f} {'-':>8s}"
        )
    print(
        f"app p50 = window end -> queued for the model {app['handoff_p50_ms']:.1f} ms + compute "
        f"{app['compute_p50_ms']:.1f} ms (+ emission)"
    )


if __name__ == "__main__":
    main()
