"""Fine-tuning results: the rows of each fold and model, their mean +/- std over seeds (one-fold
protocols) or folds, and the files they are written to (``folds.csv``, ``results.csv``,
``results.md``, ``test_predictions.csv``, JSON summaries, written atomically)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._data import WindowSet
from ._metrics import METRIC_NAMES, binary_metrics, nanmean

METRICS = ("balanced_accuracy", "auc_pr", "auroc", "accuracy", "f1")


def fold_rows(
    protocol: str,
    fold: str,
    modality: str,
    ws: WindowSet,
    test: np.ndarray,
    prob: np.ndarray,
    seed: int | str = "",
    val_auroc: float = math.nan,
    raw_prob: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One row per target: the metrics of ``prob`` on windows ``test``. ``raw_prob``: the same
    model's probabilities before recalibration, whose balanced accuracy is kept beside
    (``balanced_accuracy_uncalibrated``: what the decision point set on validation changed; NaN
    when the model was not recalibrated)."""
    rows = []
    for j, target in enumerate(ws.targets):
        y = ws.labels[test, j]
        m = binary_metrics(y, prob[:, j])
        raw_bacc = (
            math.nan if raw_prob is None else binary_metrics(y, raw_prob[:, j])["balanced_accuracy"]
        )
        rows.append(
            {
                "protocol": protocol,
                "fold": fold,
                "seed": seed,
                "modality": modality,
                "target": target,
                "n_test": len(test),
                "pos_rate": round(float(y.mean()), 4) if len(y) else math.nan,
                **m,
                "val_auroc": val_auroc,
                "balanced_accuracy_uncalibrated": raw_bacc,
            }
        )
    return rows


def aggregate(rows: list[dict[str, Any]], targets: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and std per (protocol, modality, target), plus the mean over targets.

    Within a fold, seeds are averaged first; a protocol with one fold (``split``) then reports
    mean +/- std over its seeds, the others over their folds.
    """
    out = []
    keys = dict.fromkeys((r["protocol"], r["modality"]) for r in rows)
    for proto, mod in keys:
        sel = [r for r in rows if r["protocol"] == proto and r["modality"] == mod]
        folds = list(dict.fromkeys(r["fold"] for r in sel))
        over_seeds = len(folds) == 1 and any(r["seed"] != "" for r in sel)
        for target in [*targets, "mean"]:
            rs = sel if target == "mean" else [r for r in sel if r["target"] == target]
            units: dict[Any, list[dict[str, Any]]] = {}
            for r in rs:  # one unit per seed (split) or per fold (others)
                units.setdefault(r["seed"] if over_seeds else r["fold"], []).append(r)
            per = [{k: nanmean([r[k] for r in u]) for k in METRICS} for u in units.values()]
            row: dict[str, Any] = {"protocol": proto, "modality": mod, "target": target}
            for k in METRICS:
                v = np.array([p[k] for p in per], np.float64)
                ok = v[np.isfinite(v)]
                row[f"{k}_mean"] = float(ok.mean()) if len(ok) else math.nan
                row[f"{k}_std"] = float(ok.std()) if len(ok) else math.nan
            row["folds"] = len(folds)
            row["n"] = len(per)
            row["over"] = "seeds" if over_seeds else "folds"
            out.append(row)
    return out


def _fmt(m: float, s: float) -> str:
    return "n/a" if not math.isfinite(m) else f"{m:.3f} ± {s:.3f}"


def write_tables(out: Path, folds: list[dict[str, Any]], agg: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("folds.csv", folds), ("results.csv", agg)):
        with (out / name).open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    names = [METRIC_NAMES[k] for k in METRICS]
    lines = [
        f"| protocol | modality | target | {' | '.join(names)} | folds | mean ± std over |",
        "|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    for r in agg:
        cells = [_fmt(r[f"{k}_mean"], r[f"{k}_std"]) for k in METRICS]
        lines.append(
            f"| {r['protocol']} | {r['modality']} | {r['target']} | {' | '.join(cells)} "
            f"| {r['folds']} | {r['n']} {r['over']} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def write_predictions(path: Path, ws: WindowSet, idx: np.ndarray, prob: np.ndarray) -> None:
    """Per test window: recording, window end (s on the recording clock), truth, probability."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["recording", "subject", "t_end", *ws.targets, *(f"p_{t}" for t in ws.targets)])
        for i, row in enumerate(idx):
            rec = ws.recordings[ws.recording[row]] if ws.recording is not None else ""
            t_end = f"{ws.t_end[row]:.3f}" if ws.t_end is not None else ""
            w.writerow(
                [Path(rec).name, ws.subjects[ws.subject[row]], t_end,
                 *ws.labels[row].tolist(), *(f"{v:.6f}" for v in prob[i])]
            )  # fmt: skip
