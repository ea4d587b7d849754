"""Would the readouts help the fused model? A probe on the eegmat published split.

The app computes EEG band powers and heart rate for every window (the readouts); the classical
rows of the eegmat table fit a logistic regression on exactly those and beat every deep row. This
asks whether a head that sees both, the shipped fused model's embeddings and the readouts, does
better than either alone. Windows come from ``configs/finetune_eegmat.yaml`` (the app's aligner
path, 4-s windows every 2 s); features per window:

- ``readouts``: log10 band powers of the 19 EEG channels (``band_power_features``) + heart rate
  (``heart_rate``), as the table's classical rows;
- ``embedding``: the frozen ``eegmat-fused`` model's fused embedding (both encoders, pooled as the
  model pools, concatenated), which was fine-tuned on subjects 00-27 and chosen on 28-31;
- ``embedding + readouts``: both;
- ``model output (logit)``: the shipped model's own output (a logistic regression on one feature
  keeps its ranking, so uncalibrated this row is the model's own AUROC on these windows).

Each gets the classical rows' L2 logistic regression (class-balanced, L2 chosen on validation
AUROC, subjects 28-31), fitted on subjects 00-27 and scored once on 32-35. Only the published
split: the shipped model saw every other subject, so a cross-validation here would leak.

Each set also comes rest-calibrated: every feature as a z-score against the person's own first
``--calibrate`` seconds (60) of the rest recording, as a session would record a resting baseline
before the task. Those calibration windows are scored by no row, calibrated or not, so every row
is scored on the same windows (the published rows use every window: not comparable).

    python benchmarks/hybrid_probe.py

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "finetune_eegmat.yaml"))
    ap.add_argument("--checkpoint", default="eegmat-fused")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibrate", type=float, default=60.0, help="rest baseline per person, s")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from physio_live.models import load_checkpoint, resolve_checkpoint
    from physio_live.trainer import (
        LogisticRegression,
        auroc,
        band_power_features,
        binary_metrics,
        heart_rate,
        load_finetune_config,
        load_windows,
        subject_split,
    )

    cfg = load_finetune_config(args.config)
    ws = load_windows(cfg.data)
    split = cfg.eval.split
    fold = subject_split(ws, split.train, split.val, split.test)
    y = ws.labels[:, 0]

    bp = band_power_features(ws.eeg)
    hr = heart_rate(ws.ecg)
    hr = np.where(np.isfinite(hr), hr, np.nanmedian(hr[fold.train]))[:, None]
    model = load_checkpoint(resolve_checkpoint(args.checkpoint)).model.eval()
    embs, logits = [], []
    with torch.inference_mode():
        for i in range(0, len(ws), 64):
            e = torch.from_numpy(ws.eeg[i : i + 64])
            c = torch.from_numpy(ws.ecg[i : i + 64])
            z = model.forward_embeddings(e, c)[0]
            embs.append(z.float().numpy())
            logits.append(model.head(z).float().numpy())
    emb = np.concatenate(embs)
    feats = {
        "model output (logit)": np.concatenate(logits),
        "readouts": np.c_[bp, hr],
        "embedding": emb,
        "embedding + readouts": np.c_[emb, bp, hr],
    }
    # a per-person rest baseline: each subject's first ``--calibrate`` s of the rest recording;
    # those windows calibrate and are scored by no row (every row is scored on the same windows)
    t0 = np.array([ws.t_end[ws.recording == r].min() for r in ws.recording]) - 4.0
    calib = (y == 0) & (ws.t_end - t0 <= args.calibrate)
    scored = ~calib
    train, val, test = (np.intersect1d(f, np.flatnonzero(scored)) for f in
                        (fold.train, fold.val, fold.test))  # fmt: skip

    def calibrated(x: np.ndarray) -> np.ndarray:
        """Features as z-scores against the subject's own calibration windows."""
        out = np.empty_like(x, dtype=np.float64)
        for s in np.unique(ws.subject):
            rows_s = ws.subject == s
            ref = x[rows_s & calib]
            out[rows_s] = (x[rows_s] - ref.mean(0)) / (ref.std(0) + 1e-9)
        return out

    grid = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    rows = {}
    for name, x0 in feats.items():
        for suffix, x in (("", x0), (", rest-calibrated", calibrated(x0))):
            best = (-math.inf, 1.0)
            for l2 in grid:
                lr = LogisticRegression(l2).fit(x[train], y[train])
                a = auroc(y[val], lr.predict_proba(x[val]))
                if a > best[0]:
                    best = (a, l2)
            lr = LogisticRegression(best[1]).fit(x[train], y[train])
            m = binary_metrics(y[test], lr.predict_proba(x[test]))
            rows[name + suffix] = {
                "features": int(x.shape[1]),
                "l2": best[1],
                "val_auroc": round(float(best[0]), 4),
                **{k: round(float(v), 4) for k, v in m.items()},
            }
    out = {
        "benchmark": "hybrid_probe",
        "checkpoint": args.checkpoint,
        "calibrate_s": args.calibrate,
        "windows": {
            "train": len(train),
            "val": len(val),
            "test": len(test),
            "calibration": int(calib.sum()),
        },
        "rows": rows,
    }
    print(json.dumps(out))
    print()
    keys = [k for k in next(iter(rows.values())) if k not in ("features", "l2")]
    print(f"{'features':42s} {'n':>5s} " + " ".join(f"{k:>18s}" for k in keys))
    for name, r in rows.items():
        print(f"{name:42s} {r['features']:5d} " + " ".join(f"{r[k]:18.4f}" for k in keys))


if __name__ == "__main__":
    main()
