"""CBraMod encoder accuracy: our inference path and the official layout, both in float32, against
the same official-layout model in float64, over several random weight draws and input shapes;
and the shipped encoders (our inference path vs our module path vs float64) on a real recording.

The figure compared is the largest absolute difference divided by the largest absolute output
(of the float64 model, or of the official float32 model for ours vs official).

    python benchmarks/encoder_accuracy.py [--draws 8] [--threads 1]

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from encoder import OfficialCBraMod
from torch import Tensor

from physio_live.models import CBraMod, load_checkpoint, to_official_state_dict

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHYSIO_LIVE_DATA", ROOT.parent / "shared" / "data"))
SHAPES = ((1, 19, 4), (1, 2, 4), (4, 32, 4), (2, 14, 30))


def _rel(a: Tensor, b: Tensor, scale: Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / scale.double().abs().max())


def _stats(v: list[float]) -> dict[str, float]:
    return {"max": float(f"{max(v):.3g}"), "mean": float(f"{sum(v) / len(v):.3g}")}


def random_draws(draws: int) -> dict[str, dict[str, float]]:
    res: dict[str, list[float]] = {"official_vs_f64": [], "ours_vs_f64": [], "ours_vs_official": []}
    for seed in range(draws):
        torch.manual_seed(seed)
        ours = CBraMod().eval()
        ref = OfficialCBraMod().eval()
        ref.load_state_dict(to_official_state_dict(ours.state_dict()))
        ref64 = copy.deepcopy(ref).double()
        for shape in SHAPES:
            x = torch.randn(*shape, 200)
            with torch.inference_mode():
                truth, official, fast = ref64(x.double()), ref(x), ours(x)
            res["official_vs_f64"].append(_rel(official, truth, truth))
            res["ours_vs_f64"].append(_rel(fast, truth, truth))
            res["ours_vs_official"].append(_rel(fast, official, official))
    return {k: _stats(v) for k, v in res.items()}


def _eegmat_windows(n: int) -> dict[str, Tensor]:
    from scipy.signal import resample_poly

    from physio_live.core import open_recording

    rec = open_recording(DATA / "eeg_ecg_eegmat" / "Subject00_1.edf")
    out = {}
    for s in rec.streams:
        if s.info.role in ("eeg", "ecg"):
            sig = resample_poly(s.data[: 500 * 4 * n].astype(np.float64), 2, 5, axis=0)
            sig = (sig - sig.mean(axis=0)) / 100.0  # model units: 100 uV
            win = sig.reshape(n, 4, 200, -1).transpose(0, 3, 1, 2)
            out[s.info.role] = torch.from_numpy(np.ascontiguousarray(win, dtype=np.float32))
    return out


def shipped(n: int) -> list[dict[str, object]]:
    x = _eegmat_windows(n)
    fused = load_checkpoint("eegmat-fused").model
    cases = [
        ("eegmat-fused EEG encoder", fused.eeg_encoder, x["eeg"]),
        ("eegmat-fused ECG encoder", fused.ecg_encoder, x["ecg"]),
        ("ecg-ludb", load_checkpoint("ecg-ludb").model, x["ecg"]),
    ]
    rows = []
    for name, enc, windows in cases:
        enc64 = copy.deepcopy(enc).double()
        for batch in (windows[:1], windows):
            with torch.inference_mode():
                fast = enc.forward_features(batch)
                enc.fast_inference = False
                module = enc.forward_features(batch)
                enc.fast_inference = True
                truth = enc64.forward_features(batch.double())
            rows.append(
                {
                    "encoder": name,
                    "shape": list(batch.shape[:3]),
                    "fast_vs_module": float(f"{_rel(fast, module, module):.3g}"),
                    "fast_vs_f64": float(f"{_rel(fast, truth, truth):.3g}"),
                    "module_vs_f64": float(f"{_rel(module, truth, truth):.3g}"),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=8, help="random weight draws (seeds 0..N-1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=3, help="real windows for the shipped models")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    draws = random_draws(args.draws)
    ships = shipped(args.windows) if (DATA / "eeg_ecg_eegmat").is_dir() else []
    print(
        json.dumps(
            {
                "benchmark": "cbramod_encoder_accuracy",
                "torch": torch.__version__,
                "draws": args.draws,
                "shapes": [list(s) for s in SHAPES],
                "random_weights": draws,
                "shipped": ships,
            }
        )
    )
    print()
    print(f"random weights, {args.draws} draws x {len(SHAPES)} shapes (max / mean):")
    for k, v in draws.items():
        print(f"  {k:18s} {v['max']:.2e} / {v['mean']:.2e}")
    for r in ships:
        print(
            f"  {r['encoder']:26s} {r['shape']!s:12s} fast~module {r['fast_vs_module']:.2e}"
            f"  fast~f64 {r['fast_vs_f64']:.2e}  module~f64 {r['module_vs_f64']:.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
