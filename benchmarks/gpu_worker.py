"""Inference worker on a GPU: throughput, batch time and how many live subjects one device serves.

Drives the app's own :class:`~physio_live.app._worker.InferenceWorker` (pinned host staging,
non-blocking copy to the device, the fused model's ``predict``, probabilities back to the host)
with the default CBraMod-size fused model shaped as in ``benchmarks/latency.py``: 32 EEG channels
+ 2 ECG leads, 4-s windows at 200 Hz (untrained weights: speed does not depend on them). float32
and bf16 autocast (``model.bf16``), each eager and as captured CUDA graphs (``model.cuda_graphs``,
``app/_cuda_graphs.py``), one after the other (``--modes``).

1. Throughput. For each ``max_batch`` B (1, 2, 4, ...), full batches through the worker in replay
   mode. Batch time = the worker's own time per batch (stack the windows, stage, copy, forward,
   copy back: ``stats.compute``); windows/s = windows processed / wall time.
2. The largest B whose batch-time p99 <= ``--p99-ms`` (60).
3. Live subjects. S simulated subjects each hand the worker a window every ``--hop`` s (0.5), at
   staggered phases, on the worker's clock; one live worker (``max_batch`` = the B of step 2,
   ``max_queue`` = 2B, so a backlog beyond one waiting batch is dropped and counted). Latency =
   emission - window end, as the app reports it. From a first guess (a quarter of what the
   measured throughput could feed), S doubles or halves until it brackets the largest S with p99
   <= ``--p99-ms`` and nothing dropped, then is bisected to ~6 %. Not included: each subject's
   acquisition and alignment run on the CPU (~2 ms per window here, ``benchmarks/replay.py``),
   so the CPU cores bound a real server too.

    python benchmarks/gpu_worker.py                      # CUDA (the figures)
    python benchmarks/gpu_worker.py --device cpu --quick # smoke test of the machinery

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from physio_live.app._worker import InferenceWorker
from physio_live.core import Quality, Window
from physio_live.models import CBraModConfig, FusedEmotionConfig, FusedEmotionModel, ModalityConfig

RATE = 200.0
N_EEG, N_ECG, PATCHES = 32, 2, 4


def default_model(depth: int = 12) -> FusedEmotionModel:
    """The app's untrained default (``app/_session.py build_model``) for 32 EEG + 2 ECG channels."""
    enc = CBraModConfig(depth=depth, out_dim=None)

    def spec(name: str, n: int) -> ModalityConfig:
        return ModalityConfig(
            name=name, channels=tuple(f"{name}{i}" for i in range(n)), n_patches=PATCHES,
            sampling_rate=RATE, patch_size=200, units="uV", scale=0.01, encoder=enc,
        )  # fmt: skip

    torch.manual_seed(0)
    return FusedEmotionModel(FusedEmotionConfig(eeg=spec("eeg", N_EEG), ecg=spec("ecg", N_ECG)))


def window_pool(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    t = PATCHES * 200
    return [
        (
            rng.standard_normal((N_EEG, t), dtype=np.float32),
            rng.standard_normal((N_ECG, t), dtype=np.float32),
        )
        for _ in range(n)
    ]


def _window(arrays: tuple[np.ndarray, np.ndarray], t_end: float, index: int) -> Window:
    return Window(t_end=t_end, rate=RATE, eeg=arrays[0], ecg=arrays[1], quality=Quality(),
                  index=index)  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(
    model: FusedEmotionModel, device: torch.device, bf16: bool, graphs: bool, batch: int,
    n_batches: int, pool: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, float]:  # fmt: skip
    """Full batches of ``batch`` windows through a replay-mode worker."""
    w = InferenceWorker(model, device=device, mode="replay", max_batch=batch, max_queue=batch,
                        bf16=bf16, full_batches=True, clock=time.perf_counter,
                        cuda_graphs=graphs)  # fmt: skip
    w.start()
    k = 0

    def feed(n: int) -> None:
        nonlocal k
        for _ in range(n):
            w.submit(_window(pool[k % len(pool)], time.perf_counter(), k))
            k += 1

    warm = 3 * batch
    feed(warm)
    w.wait_idle(600)
    _sync(device)
    w.stats.compute.clear()
    done0 = w.stats.processed
    t0 = time.perf_counter()
    feed(n_batches * batch)
    w.wait_idle(600)
    _sync(device)
    wall = time.perf_counter() - t0
    w.stop()
    if w.errors:
        raise RuntimeError(w.errors[-1])
    comp = np.asarray(w.stats.compute) * 1000.0
    n = w.stats.processed - done0
    return {
        "batch": batch,
        "windows_per_s": round(n / wall, 1),
        "batch_p50_ms": round(float(np.percentile(comp, 50)), 2),
        "batch_p99_ms": round(float(np.percentile(comp, 99)), 2),
    }


def live(
    model: FusedEmotionModel, device: torch.device, bf16: bool, graphs: bool, batch: int,
    subjects: int, hop: float, seconds: float, pool: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, float]:  # fmt: skip
    """``subjects`` live streams, a window every ``hop`` s each, into one live-mode worker."""
    w = InferenceWorker(model, device=device, mode="live", max_batch=batch, max_queue=2 * batch,
                        bf16=bf16, clock=time.perf_counter, cuda_graphs=graphs)  # fmt: skip
    if graphs:  # capture every batch size before the clock starts (a session pays it once)
        for b in sorted({min(batch, 1 << i) for i in range(batch.bit_length() + 1)}):
            w._predict([_window(pool[i % len(pool)], 0.0, i) for i in range(b)])
    lat: list[float] = []
    settle = 1.0
    start = time.perf_counter()
    w.on_estimate(lambda e: lat.append(e.latency) if e.t_end > start + settle else None)
    w.start()
    # subject s's windows end at start + s*hop/S + j*hop (staggered phases, one schedule)
    step = hop / subjects
    k = 0
    stop = start + seconds
    while True:
        due = start + k * step
        if due > stop:
            break
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        w.submit(_window(pool[k % len(pool)], due, k))
        k += 1
    w.wait_idle(60)
    w.stop()
    if w.errors:
        raise RuntimeError(w.errors[-1])
    a = np.asarray(lat) * 1000.0
    return {
        "subjects": subjects,
        "windows": int(w.stats.submitted),
        "dropped": int(w.stats.dropped),
        "p50_ms": round(float(np.percentile(a, 50)), 2) if a.size else float("nan"),
        "p99_ms": round(float(np.percentile(a, 99)), 2) if a.size else float("nan"),
        "mean_batch": round(w.stats.processed / max(1, w.stats.batches), 1),
    }


def subjects_served(
    run: Callable[[int], dict[str, float]], limit_ms: float, guess: int
) -> tuple[int, list[dict[str, float]]]:
    """Largest S with p99 <= limit and nothing dropped: bracket from ``guess``, then bisect."""
    trials: list[dict[str, float]] = []

    def ok(s: int) -> bool:
        r = run(s)
        trials.append(r)
        return r["dropped"] == 0 and r["p99_ms"] <= limit_ms

    s = max(1, guess)
    if ok(s):
        lo, hi = s, s * 2
        while ok(hi):
            lo, hi = hi, hi * 2
    else:
        lo, hi = s // 2, s
        while lo >= 1 and not ok(lo):
            lo, hi = lo // 2, lo
        if lo < 1:
            return 0, trials
    while hi - lo > max(1, lo // 16):  # to ~6 %
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--p99-ms", type=float, default=60.0)
    ap.add_argument("--hop", type=float, default=0.5, help="each live subject's window hop, s")
    ap.add_argument("--max-batch", type=int, default=1024, help="largest batch tried")
    ap.add_argument("--batches", type=int, default=20, help="timed batches per batch size")
    ap.add_argument("--live-seconds", type=float, default=4.0, help="per live trial")
    ap.add_argument("--depth", type=int, default=12, help="encoder layers (12: the default)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    ap.add_argument(
        "--modes", default="fp32,bf16,fp32+graphs,bf16+graphs",
        help="comma-separated: fp32 / bf16, eager or +graphs (CUDA graphs, CUDA only)",
    )  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="a smoke test: small batches, short")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.max_batch, args.batches, args.live_seconds = min(args.max_batch, 4), 3, 2.0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu (or on a GPU machine)")
    rng = np.random.default_rng()
    pool = window_pool(256, rng)
    model = default_model(args.depth).to(device).eval()
    sizes = [1 << i for i in range(20) if (1 << i) <= args.max_batch]
    out: dict[str, object] = {
        "benchmark": "gpu_worker",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "model": f"fused CBraMod, {args.depth} layers, {N_EEG} EEG + {N_ECG} ECG ch x "
        f"{PATCHES} patches",
        "p99_limit_ms": args.p99_ms,
        "hop_s": args.hop,
    }
    modes = [m for m in args.modes.split(",") if m]
    for prec in modes:
        bf16, graphs = prec.startswith("bf16"), prec.endswith("+graphs")
        if graphs and device.type != "cuda":
            continue
        rows = []
        for b in sizes:
            r = throughput(model, device, bf16, graphs, b, args.batches, pool)
            rows.append(r)
            print(f"# {prec} batch {b}: {r}", flush=True)
            if r["batch_p50_ms"] > 4 * args.p99_ms:
                break
        fit = [r for r in rows if r["batch_p99_ms"] <= args.p99_ms]
        best = max(fit, key=lambda r: r["batch"]) if fit else rows[0]
        # a subject needs 1/hop windows/s: a quarter of what the throughput could feed
        guess = int(best["windows_per_s"] * args.hop / 4)

        def run(
            s: int, bf16: bool = bf16, graphs: bool = graphs, b: int = int(best["batch"]),
            prec: str = prec,
        ) -> dict[str, float]:  # fmt: skip
            r = live(model, device, bf16, graphs, b, s, args.hop, args.live_seconds, pool)
            print(f"# {prec} live batch {b}: {r}", flush=True)
            return r

        served, trials = subjects_served(run, args.p99_ms, guess)
        out[prec] = {
            "throughput": rows,
            "batch_1_windows_per_s": rows[0]["windows_per_s"],
            "largest_batch_within_p99": int(best["batch"]) if fit else None,
            "windows_per_s_at_that_batch": best["windows_per_s"] if fit else None,
            "live_subjects_served": served,
            "live_trials": trials,
        }
    out["torch"] = torch.__version__
    out["cpu_threads"] = torch.get_num_threads()
    out["cpu"] = platform.processor() or platform.machine()
    print(json.dumps(out))
    print(f"{'mode':<12}{'batch':>7}{'win/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for prec in [m for m in modes if m in out]:
        for r in out[prec]["throughput"]:  # type: ignore[index]
            print(f"{prec:<12}{r['batch']:>7}{r['windows_per_s']:>10.1f}"
                  f"{r['batch_p50_ms']:>9.2f}{r['batch_p99_ms']:>9.2f}")  # fmt: skip
        p = out[prec]  # type: ignore[index]
        print(f"{prec}: batch 1 {p['batch_1_windows_per_s']} windows/s; largest batch within "
              f"p99 {args.p99_ms:g} ms: {p['largest_batch_within_p99']} "
              f"({p['windows_per_s_at_that_batch']} windows/s); live subjects at hop "
              f"{args.hop:g} s: {p['live_subjects_served']}")  # fmt: skip


if __name__ == "__main__":
    main()
