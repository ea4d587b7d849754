"""What bfloat16 inference costs on real people: the shipped model on the eegmat test subjects.

The app replays the four held-out test subjects' eight recordings (rest and arithmetic) at
``--speed max`` through the same Session as ``physio-live --stream --replay FILE``, with the
shipped ``eegmat-fused`` model, once in float32 (``model.bf16=false``, the default) and once with
``model.bf16=true`` (on CPUs with AVX512-BF16/AMX the encoders' linears run in bfloat16 on oneDNN;
elsewhere autocast). Reported per setting: AUROC and balanced accuracy (threshold 0.5) of
P(arithmetic) over every window of the four subjects, the seconds the replays took, and between
the two settings the largest and mean absolute difference of the per-window probabilities and how
many windows change side of 0.5.

    python benchmarks/bf16_cost.py
    python benchmarks/bf16_cost.py --hop 2 --max-batch 16 --threads 2

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
DATASETS = Path(os.environ.get("PHYSIO_LIVE_DATASETS", ROOT.parent / "shared" / "datasets"))
TEST_SUBJECTS = (32, 33, 34, 35)  # the published split's test subjects

import numpy as np  # noqa: E402
import torch  # noqa: E402


def replay(path: Path, hop: float, bf16: bool, max_batch: int) -> dict[int, float]:
    """P(arithmetic) per window index of one recording (withheld windows left out)."""
    from physio_live.app._session import Session
    from physio_live.core import load_config, open_recording

    cfg = load_config(
        "demo",
        [f"aligner.hop={hop}", "model.checkpoint=eegmat-fused", "model.device=cpu",
         f"model.bf16={str(bf16).lower()}", f"model.max_batch={max_batch}",
         f"model.queue={max(8, 2 * max_batch)}", "recording.enabled=false",
         "outlet.enabled=false"],
    )  # fmt: skip
    session = Session(cfg, recording=open_recording(path), speed=None)
    session.open()
    got: dict[int, float] = {}
    lock = threading.Lock()

    def on_estimate(e) -> None:
        if not e.withheld:
            with lock:
                got[e.window_index] = float(e.probabilities[0])

    session.on_estimate(on_estimate)
    try:
        session.start()
        if not session.finished.wait(600):
            raise RuntimeError(f"replay of {path.name} did not finish")
    finally:
        session.close()
    return got


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from physio_live.trainer import binary_metrics  # the trainer's definitions (threshold 0.5)

    m = binary_metrics(y, p)
    return {k: round(float(m[k]), 4) for k in ("auroc", "balanced_accuracy")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hop", type=float, default=2.0, help="window hop, s (the trainer's: 2)")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from physio_live.models import cpu_bf16_native

    root = DATASETS / "eegmat"
    files = [(root / f"Subject{s:02d}_{k}.edf", label)
             for s in TEST_SUBJECTS for k, label in ((1, 0), (2, 1))]  # fmt: skip
    res: dict[bool, dict] = {}
    probs: dict[bool, list[dict[int, float]]] = {}
    for bf16 in (False, True):
        t0 = time.perf_counter()
        probs[bf16] = [replay(f, args.hop, bf16, args.max_batch) for f, _ in files]
        res[bf16] = {"seconds": round(time.perf_counter() - t0, 2)}
    # the windows both settings estimated (the gate is the same code on the same samples)
    ys, p32, p16 = [], [], []
    for (_, label), a, b in zip(files, probs[False], probs[True], strict=True):
        common = sorted(set(a) & set(b))
        ys += [label] * len(common)
        p32 += [a[i] for i in common]
        p16 += [b[i] for i in common]
    y, p32a, p16a = np.array(ys), np.array(p32), np.array(p16)
    for bf16, p in ((False, p32a), (True, p16a)):
        res[bf16].update(scores(y, p))
    diff = np.abs(p16a - p32a)
    out = {
        "benchmark": "bf16_cost",
        "model": "eegmat-fused",
        "subjects": list(TEST_SUBJECTS),
        "hop_s": args.hop,
        "max_batch": args.max_batch,
        "threads": args.threads,
        "onednn_bf16": cpu_bf16_native(),
        "windows": len(y),
        "float32": res[False],
        "bf16": res[True],
        "max_abs_diff": float(f"{diff.max():.3g}"),
        "mean_abs_diff": float(f"{diff.mean():.3g}"),
        "side_changes": int(((p16a >= 0.5) != (p32a >= 0.5)).sum()),
    }
    print(json.dumps(out))
    print()
    print(f"{'setting':>8s} {'AUROC':>7s} {'bal.acc':>8s} {'seconds':>8s}")
    for name, r in (("float32", res[False]), ("bf16", res[True])):
        print(f"{name:>8s} {r['auroc']:7.4f} {r['balanced_accuracy']:8.4f} {r['seconds']:8.1f}")
    print(
        f"{len(y)} windows; |p_bf16 - p_float32| max {out['max_abs_diff']}, mean "
        f"{out['mean_abs_diff']}; {out['side_changes']} change side of 0.5"
    )


if __name__ == "__main__":
    main()
