"""How far a lead's own rhythm goes: a rhythm-copy predictor scored on the intra-lead masks of
``physio-train score``.

For every intra-lead masked lead of a window, the rhythm's period ``L`` (0.3-1.5 s) is the lag at
which the lead's visible samples best match themselves (least relative squared difference over
visible pairs); a hidden sample at ``t`` is the mean of the visible samples at ``t +/- kL``
(k = 1..3), or 0 when none is visible. It uses nothing but the lead itself, so it shows how much
of a hidden stretch a regular rhythm gives away, the part an encoder trained on 12 leads (where
another lead always shows the hidden instant) may never learn to use. Masks, windows and
preprocessing are exactly those of ``physio-train score`` with the same settings (same seed), so
its ``zeros`` equals the score's intra-lead ``zeros``.

    python benchmarks/rhythm_copy.py --set data.root=../shared/data/wfdb_challenge2015_v102s \\
        [--checkpoint ecg-ludb] [--set repeats=3] [--set ...]

Prints one JSON line (masked MSE of zeros and rhythm copy on the intra-lead masks, in model
units squared, and the percentage below zeros) and a short table.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from physio_live.trainer import score_masks, scoring_windows


def rhythm_copy(lead: np.ndarray, visible: np.ndarray, rate: float) -> np.ndarray:
    """The prediction of one lead ``[T]`` with visible samples ``visible [T]`` (see above)."""
    n = len(lead)
    pred = np.zeros(n)
    best, best_lag = np.inf, 0
    for lag in range(int(0.3 * rate), min(int(1.5 * rate), n - 1) + 1):
        both = visible[lag:] & visible[:-lag]
        if both.sum() < rate / 2:  # need half a second of pairs to judge a lag
            continue
        a, b = lead[lag:][both], lead[:-lag][both]
        err = float(((a - b) ** 2).mean() / max((a**2).mean(), 1e-12))
        if err < best:
            best, best_lag = err, lag
    if not best_lag:
        return pred
    for t in np.flatnonzero(~visible):
        got = [
            lead[u]
            for k in (1, 2, 3)
            for u in (t - k * best_lag, t + k * best_lag)
            if 0 <= u < n and visible[u]
        ]
        if got:
            pred[t] = float(np.mean(got))
    return pred


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="ecg-ludb", help="encoder whose input settings to use")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = ap.parse_args()
    _, _, cfg, records, _ = scoring_windows(args.checkpoint, args.overrides)
    rate = cfg.data.rate
    se_zero = se_copy = count = 0.0
    n_windows = 0
    for no, rec in enumerate(records, start=1):
        x_all = rec.windows.astype(np.float64)
        n, c, _, s = x_all.shape
        n_windows += n
        for j, mb in score_masks(cfg, x_all, no):
            mask, inter = mb.mask.numpy(), mb.inter.numpy()
            for i in range(mask.shape[0]):
                if inter[i]:
                    continue
                for ch in range(c):
                    lead = x_all[j + i, ch].reshape(-1)
                    vis = ~np.repeat(mask[i, ch], s)
                    hid = ~vis
                    pred = rhythm_copy(lead, vis, rate)
                    se_zero += float((lead[hid] ** 2).sum())
                    se_copy += float(((lead[hid] - pred[hid]) ** 2).sum())
                    count += float(hid.sum())
    zeros, copy = se_zero / count, se_copy / count
    out = {
        "benchmark": "rhythm_copy",
        "root": cfg.data.root,
        "records": len(records),
        "windows": n_windows,
        "repeats": cfg.repeats,
        "seed": cfg.seed,
        "intra": {
            "zeros": zeros,
            "rhythm_copy": copy,
            "below_zeros_pct": 100.0 * (1.0 - copy / zeros),
            "masked_samples": int(count),
        },
    }
    print(json.dumps(out, separators=(",", ":")))
    print(f"{'intra-lead masks':<20}{'masked MSE':>12}")
    print(f"{'zeros':<20}{zeros:>12.3f}")
    print(f"{'rhythm copy':<20}{copy:>12.3f}   ({out['intra']['below_zeros_pct']:+.1f} % vs zeros)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
