"""The eegmat table: classical rows and deep rows (random or LUDB-pretrained ECG encoder).

Reads the ``results.csv`` / ``summary.json`` of ``physio-train finetune`` runs of
``configs/finetune_eegmat.yaml``: one with the classical rows and EEG only, one with ECG only and
fused with a randomly initialised ECG encoder, one with ``model.ecg.init`` set to the pretrained
encoder (a run holding every row can be given more than once) and prints one JSON line and a
Markdown table: published split (test subjects 32-35, mean +/- std over seeds) and subject-wise CV
(mean +/- std over folds), next to CBraMod's published EEG-only row.

    python benchmarks/eegmat_table.py runs/eegmat_eeg runs/eegmat_ecg_random_fused \
        runs/eegmat_ecg_ludb
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

METRICS = (("balanced_accuracy", "bal. acc."), ("auc_pr", "AUC-PR"), ("auroc", "AUROC"))
#: CBraMod, Wang et al. ICLR 2025, Table 12 (published split, 5 seeds; EEG only, 5-s windows)
CBRAMOD = {"balanced_accuracy": (0.7256, 0.0132), "auc_pr": (0.6267, 0.0099),
           "auroc": (0.7905, 0.0073)}  # fmt: skip


def read(run: Path) -> dict[tuple[str, str], dict[str, float]]:
    with (run / "results.csv").open(newline="") as f:
        return {
            (r["protocol"], r["modality"]): {k: float(v) for k, v in r.items() if "_" in k}
            | {"n": int(r["n"])}
            for r in csv.DictReader(f)
            if r["target"] == "mean"
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", type=Path, help="run with the classical rows and EEG only")
    ap.add_argument("random", type=Path, help="run with a randomly initialised ECG encoder")
    ap.add_argument("pretrained", type=Path, nargs="?", help="run with the pretrained ECG encoder")
    args = ap.parse_args()
    e = read(args.base)
    a = read(args.random)
    b = read(args.pretrained) if args.pretrained else {}
    rows = [
        ("majority (chance)", e, "majority"),
        ("band powers + LR (EEG)", e, "bandpower-lr"),
        ("heart rate + LR (ECG)", e, "hr-lr"),
        ("EEG only (random init)", e, "eeg"),
        ("ECG only, random init", a, "ecg"),
        ("ECG only, LUDB-pretrained", b, "ecg"),
        ("fused, random-init ECG", a, "fused"),
        ("fused, LUDB-pretrained ECG", b, "fused"),
    ]
    out: dict[str, dict[str, dict[str, float]]] = {}
    head = " | ".join(f"{p} {n}" for p in ("split", "CV") for _, n in METRICS)
    lines = [f"| method | {head} |", "|---|" + "---|" * 6]
    for name, res, mod in rows:
        cells = []
        for proto in ("split", "cv"):
            r = res.get((proto, mod))
            for k, _ in METRICS:
                cells.append("-" if r is None else f"{r[k + '_mean']:.3f} ± {r[k + '_std']:.3f}")
            if r is not None:
                out.setdefault(name, {})[proto] = {k: r[k + "_mean"] for k, _ in METRICS}
        lines.append(f"| {name} | {' | '.join(cells)} |")
    pub = " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in CBRAMOD.values())
    lines.append(f"| CBraMod (published, EEG only) | {pub} | - | - | - |")
    secs = {}
    for run in (args.base, args.random, args.pretrained):
        if run is not None and (run / "summary.json").is_file():
            secs[str(run)] = json.loads((run / "summary.json").read_text())["seconds"]
    print(json.dumps({"results": out, "seconds": secs}))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
