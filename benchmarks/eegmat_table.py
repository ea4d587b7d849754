"""The eegmat table: classical rows and deep rows (random or LUDB-pretrained ECG encoder).

Reads the ``results.csv`` / ``summary.json`` of ``physio-train finetune`` runs of
``configs/finetune_eegmat.yaml``: one with the classical rows and EEG only, one with ECG only and
fused with a randomly initialised ECG encoder, one with ``model.ecg.init`` set to the pretrained
encoder (a run holding every row can be given more than once) and prints one JSON line and a
Markdown table: published split (test subjects 32-35, mean +/- std over seeds) and subject-wise CV
(mean +/- std over folds), next to CBraMod's published EEG-only row. Then the paired counts
(``folds.csv``: in how many seeds / folds one row's test AUROC is above another's, same seed or
fold), from the pretrained run's ``test_predictions.csv`` (its exported model) the AUROC
within each test subject, and for each deep row the balanced accuracy before its decision point
was moved to the validation subjects' (``train.recalibrate``; runs from before that column have
none).

    python benchmarks/eegmat_table.py runs/eegmat_eeg runs/eegmat_ecg_random_fused \
        runs/eegmat_ecg_ludb
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from physio_live.trainer import auroc  # the trainer's own metric

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


def read_folds(run: Path) -> dict[tuple[str, str, str], float]:
    """``{(modality, protocol, seed or fold): test AUROC}`` of a run's ``folds.csv``."""
    out = {}
    with (run / "folds.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            key = r["seed"] if r["protocol"] == "split" else r["fold"]
            out[(r["modality"], r["protocol"], key)] = float(r["auroc"])
    return out


def paired(a: dict, b: dict, mod_a: str, mod_b: str) -> dict[str, list[int]]:
    """``{protocol: [wins of a, pairs]}``: same seed (split; a seedless row such as a classical
    one pairs with every seed) or same fold (CV)."""
    out = {}
    for proto in ("split", "cv"):
        wins = n = 0
        for (m, p, key), v in a.items():
            if m != mod_a or p != proto:
                continue
            w = b.get((mod_b, p, key), b.get((mod_b, p, "")))
            if w is not None:
                n += 1
                wins += v > w
        out[proto] = [wins, n]
    return out


def uncalibrated(run: Path, modality: str) -> dict[str, float]:
    """``{protocol: mean balanced accuracy before recalibration}`` of one deep row (``folds.csv``'s
    ``balanced_accuracy_uncalibrated``; seeds of a fold averaged first, as the table does; empty
    for runs without it)."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with (run / "folds.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            v = float(r.get("balanced_accuracy_uncalibrated") or "nan")
            if r["modality"] == modality and np.isfinite(v):
                per[r["protocol"]][r["fold"]].append(v)
    return {p: float(np.mean([np.mean(v) for v in folds.values()])) for p, folds in per.items()}


def per_subject(run: Path) -> dict[str, float]:
    """AUROC within each test subject of a run's exported model (``test_predictions.csv``)."""
    rows = defaultdict(list)
    with (run / "test_predictions.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        target = next(c for c in reader.fieldnames or [] if c.startswith("p_"))[2:]
        for r in reader:
            rows[r["subject"]].append((float(r[target]), float(r["p_" + target])))
    return {s: auroc(*np.array(v).T) for s, v in sorted(rows.items())}


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
    runs = {"base": read_folds(args.base), "random": read_folds(args.random)}
    if args.pretrained:
        runs["pretrained"] = read_folds(args.pretrained)
    pairs = {}
    for name, (ra, ma), (rb, mb) in (
        ("ECG: pretrained > random", ("pretrained", "ecg"), ("random", "ecg")),
        ("fused: pretrained > random ECG", ("pretrained", "fused"), ("random", "fused")),
        ("fused > ECG alone (pretrained)", ("pretrained", "fused"), ("pretrained", "ecg")),
        ("fused (pretrained) > EEG alone", ("pretrained", "fused"), ("base", "eeg")),
        ("fused (pretrained) > band powers", ("pretrained", "fused"), ("base", "bandpower-lr")),
        ("fused (pretrained) > heart rate + LR", ("pretrained", "fused"), ("base", "hr-lr")),
    ):
        if ra in runs and rb in runs:
            pairs[name] = paired(runs[ra], runs[rb], ma, mb)
    subjects = {}
    if args.pretrained and (args.pretrained / "test_predictions.csv").is_file():
        subjects = per_subject(args.pretrained)
    runs_by = {"base": args.base, "random": args.random, "pretrained": args.pretrained}
    raw_bacc = {}
    for name, run, mod in (
        ("EEG only (random init)", "base", "eeg"),
        ("ECG only, random init", "random", "ecg"),
        ("ECG only, LUDB-pretrained", "pretrained", "ecg"),
        ("fused, random-init ECG", "random", "fused"),
        ("fused, LUDB-pretrained ECG", "pretrained", "fused"),
    ):
        if runs_by[run] is not None and (got := uncalibrated(runs_by[run], mod)):
            raw_bacc[name] = got
    print(json.dumps({"results": out, "seconds": secs, "pairs": pairs, "per_subject": subjects,
                      "balanced_accuracy_uncalibrated": raw_bacc}))  # fmt: skip
    print("\n".join(lines))
    print()
    for name, v in pairs.items():
        print(f"{name}: split {v['split'][0]} of {v['split'][1]} seeds, CV {v['cv'][0]} of "
              f"{v['cv'][1]} folds")  # fmt: skip
    if subjects:
        print("exported model, AUROC within each test subject: "
              + ", ".join(f"{s} {a:.3f}" for s, a in subjects.items()))  # fmt: skip
    for name, v in raw_bacc.items():  # a diagnostic: the table's figures are after it
        print(f"{name}, balanced accuracy before recalibration: "
              + ", ".join(f"{p} {x:.3f}" for p, x in v.items()))  # fmt: skip


if __name__ == "__main__":
    main()
