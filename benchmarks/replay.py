"""Replay benchmark: a one-hour session at ``--speed max`` through the full pipeline on the CPU.

The hour is built by looping the real eegmat recording (19 EEG + 1 ECG channel at 500 Hz, 182 s)
end to end with continuous timestamps. It is replayed through the same Session as
``physio-live --replay --speed max``: buffers, aligner (causal filters, 200 Hz, 4-s windows at a
1-s hop), inference worker with the default CBraMod-size fused model. Reported: seconds taken and
x real-time, for the default ``max_batch`` (1, bit-identical to live), a batched run, and a batched
run with ``model.bf16`` (on CPUs with AVX512-BF16/AMX the encoders' linears run in bfloat16; on
others autocast emulates bfloat16, ~7x slower, so ``--bf16 auto``, the default, skips the bf16
figures there and says why; ``--bf16 on`` runs them all the same). At
``--speed max`` the replay thread and the model take turns, and batched runs take full batches.
Where the time goes: ``parts`` times the two halves alone on the same hour, the acquisition side
(chunks -> buffers -> aligner -> annotation stage, what the replay thread does; no model) and the
model alone (forward passes of the batched size on the same number of windows, float32 and bf16);
each gives the x real-time it would reach by itself; taking turns, a run costs about their sum.

    python benchmarks/replay.py                  # one hour
    python benchmarks/replay.py --minutes 10 --threads 2
    python benchmarks/replay.py --checkpoint eegmat-fused   # the shipped model instead

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))
DATA = Path(os.environ.get("PHYSIO_LIVE_DATA", ROOT.parent / "shared" / "data"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def hour_recording(minutes: float):
    from physio_live.core import RecordedStream, Recording, open_recording

    base = open_recording(DATA / "eeg_ecg_eegmat" / "Subject00_1.edf")
    out = []
    for s in base.streams:
        if s.info.role not in ("eeg", "ecg"):
            continue
        fs = s.info.nominal_srate
        n = int(minutes * 60 * fs)
        reps = -(-n // len(s.data))
        data = np.tile(s.data, (reps, 1))[:n]
        out.append(RecordedStream(s.info, data, np.arange(n) / fs))
    return Recording(base.path, out, [], [])


def run(minutes: float, max_batch: int, bf16: bool = False, checkpoint: str | None = None) -> dict:
    from physio_live.app._session import Session
    from physio_live.core import config_from_dict

    rec = hour_recording(minutes)
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "aligner": {"window": 4.0, "hop": 1.0},
            "model": {
                "device": "cpu",
                "checkpoint": checkpoint,
                "max_batch": max_batch,
                "queue": max(8, 2 * max_batch),
                "bf16": bf16,
            },
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    session = Session(cfg, recording=rec, speed=None)
    session.open()
    t0 = time.perf_counter()
    session.start()
    session.finished.wait()
    took = time.perf_counter() - t0
    session.close()
    signal_s = rec.t_last - rec.t_first
    return {
        "max_batch": max_batch,
        "bf16": bf16,
        "signal_s": round(signal_s, 1),
        "seconds": round(took, 2),
        "x_realtime": round(signal_s / took, 1),
        "windows": session.pipeline.windows_out,
        "estimates": session.worker.stats.processed,
    }


def parts(minutes: float, max_batch: int, checkpoint: str | None = None, bf16: bool = True) -> dict:
    """The replay's two halves alone: acquisition (no model) and the model (no acquisition)."""
    from dataclasses import replace

    from physio_live.app._annotate import WindowAnnotator
    from physio_live.app._session import MAX_SPEED_CHUNK_S, build_model, model_aligner_config
    from physio_live.core import Pipeline, config_from_dict

    rec = hour_recording(minutes)
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "aligner": {"window": 4.0, "hop": 1.0},
            "model": {"device": "cpu", "checkpoint": checkpoint},
        }
    )
    labels = {m: tuple(c for i in rec.infos if i.role == m for c in i.channel_labels)
              for m in ("eeg", "ecg")}  # fmt: skip
    model = build_model(cfg, labels["eeg"], labels["ecg"]).eval()
    cfg = replace(cfg, aligner=model_aligner_config(cfg, model))
    pipe = Pipeline(cfg, sources=[])
    pipe.prepare(rec.infos, aligner=cfg.aligner)
    stage = WindowAnnotator(cfg, pipe.streams)  # what the session wires, without the worker
    pipe.on_aligner_input(stage.push)
    windows = []
    pipe.on_window(lambda w: windows.append((w, stage.annotate(w))))
    t0 = time.perf_counter()
    for chunk in rec.chunks(max(cfg.replay.chunk_seconds, MAX_SPEED_CHUNK_S)):
        pipe.ingest(chunk)
        pipe.step()
    acq = time.perf_counter() - t0
    w0 = windows[0][0]
    eeg = torch.from_numpy(np.stack([w0.eeg] * max_batch)).view(max_batch, w0.eeg.shape[0], 4, -1)
    ecg = torch.from_numpy(np.stack([w0.ecg] * max_batch)).view(max_batch, w0.ecg.shape[0], 4, -1)
    n_batches = -(-len(windows) // max_batch)
    fwd: dict[bool, float] = {}
    with torch.inference_mode():
        for half in (False, True) if bf16 else (False,):
            model.predict(eeg, ecg, bf16=half)  # warm-up
            t0 = time.perf_counter()
            for _ in range(n_batches):
                model.predict(eeg, ecg, bf16=half)
            fwd[half] = time.perf_counter() - t0
    signal_s = rec.t_last - rec.t_first
    per_window = 1000 / (n_batches * max_batch)
    return {
        "windows": len(windows),
        "acquisition_s": round(acq, 2),
        "acquisition_ms_per_window": round(1000 * acq / len(windows), 2),
        "acquisition_x_realtime": round(signal_s / acq, 1),
        "model_batch": max_batch,
        "model_s": round(fwd[False], 2),
        "model_ms_per_window": round(per_window * fwd[False], 2),
        "model_x_realtime": round(signal_s / fwd[False], 1),
        "model_bf16_ms_per_window": round(per_window * fwd[True], 2) if bf16 else None,
        "model_bf16_x_realtime": round(signal_s / fwd[True], 1) if bf16 else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batched", type=int, default=16, help="max_batch of the second run (0: skip)")
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="a shipped name or path (e.g. eegmat-fused, whose small encoders leave the "
        "acquisition side most of the time); default: untrained CBraMod-size weights",
    )
    ap.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="the bf16 run and figures: auto (only where the CPU has native bfloat16), on, off",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from physio_live.models import cpu_bf16_native

    native = cpu_bf16_native()
    bf16 = args.bf16 == "on" or (args.bf16 == "auto" and native)
    ck = args.checkpoint
    runs = [run(args.minutes, 1, checkpoint=ck)]
    if args.batched:
        runs.append(run(args.minutes, args.batched, checkpoint=ck))
        if bf16:
            runs.append(run(args.minutes, args.batched, bf16=True, checkpoint=ck))
    halves = parts(args.minutes, args.batched or 1, checkpoint=ck, bf16=bf16)
    print(
        json.dumps(
            {
                "benchmark": "replay",
                "device": "cpu",
                "checkpoint": ck,
                "threads": args.threads,
                "window_s": 4.0,
                "hop_s": 1.0,
                "cpu_bf16_native": native,
                "bf16_skipped": None
                if bf16
                else f"--bf16 {args.bf16}"
                + ("" if native else ": no native bfloat16 on this CPU (emulated, ~7x slower)"),
                "runs": runs,
                "parts": halves,
            }
        )
    )
    print()
    print(f"{'max_batch':>9s} {'signal s':>9s} {'took s':>8s} {'x real-time':>12s} {'windows':>8s}")
    for r in runs:
        print(
            f"{r['max_batch']:9d} {r['signal_s']:9.0f} {r['seconds']:8.1f} "
            f"{r['x_realtime']:12.1f} {r['windows']:8d}"
        )
    h = halves
    half = (
        f"with bf16 {h['model_bf16_ms_per_window']:.2f} ms/window "
        f"({h['model_bf16_x_realtime']:.0f}x)"
        if bf16
        else "bf16 skipped (--bf16 on runs it)"
    )
    print(
        f"alone: acquisition {h['acquisition_ms_per_window']:.2f} ms/window "
        f"({h['acquisition_x_realtime']:.0f}x), model at batch {h['model_batch']} "
        f"{h['model_ms_per_window']:.2f} ms/window ({h['model_x_realtime']:.0f}x), {half}"
    )


if __name__ == "__main__":
    main()
