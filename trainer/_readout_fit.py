"""Fit, score and export a :class:`~physio_live.models.ReadoutModel` (``physio-train readouts``).

The windows are those of a fine-tuning recipe (``data.kind: manifest``: the app's aligner path),
the split its ``eval.split`` and ``eval.cv_folds``. Per window: log10 band powers of every EEG
channel and heart rate (the app's readouts, :func:`~physio_live.models.readout_features`).

A session's first ``calibrate_s`` seconds are the person's resting baseline: here, the windows of
each subject's *first* recording (manifest order; eegmat: ``SubjectNN_1``, rest) that end within
``calibrate_s`` of its first window's start. Two L2 logistic regressions (class-balanced, L2
chosen on validation AUROC, fitted on the training subjects, neither fitted on calibration
windows):

- ``raw``: on the features as they are (what a session shows while it calibrates);
- ``cal``: on every feature as a z-score against the subject's baseline.

Scoring runs the exported model itself, as the app does: per subject, the baseline is reset, then
the subject's recordings are fed in order (calibration windows get the ``raw`` regression, every
later window the ``cal`` one). Reported per test set: every window scored that way (``app``, what
a replay of the test subjects gives) and the windows after the baseline only (``calibrated``), with
the raw regression on all windows (``uncalibrated``) for comparison.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physio_live.models import (
    ModalityConfig,
    Provenance,
    ReadoutModel,
    ReadoutModelConfig,
    baseline_stats,
    in_baseline,
    readout_features,
    save_checkpoint,
)

from ._baselines import cached_features, fit_on_validation
from ._config import TrainError
from ._data import WindowSet
from ._finetune_config import FinetuneConfig
from ._metrics import binary_metrics
from ._splits import Fold, subject_cv_splits, subject_split

__all__ = ["fit_readout_model", "run_readouts", "score_like_app"]

_REPORTED = ("balanced_accuracy", "auc_pr", "auroc")


def calibration_windows(ws: WindowSet, calibrate_s: float) -> np.ndarray:
    """Boolean ``[N]``: the windows that make each subject's resting baseline."""
    if ws.t_end is None or ws.recording is None:
        raise TrainError("readout models need windows with times and recordings (kind: manifest)")
    out = np.zeros(len(ws), bool)
    window_s = ws.n_patches * ws.eeg_spec.patch_size / ws.eeg_spec.sampling_rate
    for s in np.unique(ws.subject):
        rows = np.flatnonzero(ws.subject == s)
        rows = rows[ws.recording[rows] == ws.recording[rows].min()]
        t = ws.t_end[rows]
        out[rows[in_baseline(t, t.min(), window_s, calibrate_s)]] = True
    return out


def _calibrated(x: np.ndarray, ws: WindowSet, calib: np.ndarray) -> np.ndarray:
    """Features as z-scores against each subject's baseline (as the model computes them)."""
    out = np.empty_like(x)
    for s in np.unique(ws.subject):
        rows = ws.subject == s
        mean, spread = baseline_stats(x[rows & calib])
        out[rows] = (x[rows] - mean) / spread
    return out


def fit_readout_model(
    ws: WindowSet,
    fold: Fold,
    calibrate_s: float,
    *,
    features: np.ndarray | None = None,
    provenance: Provenance | None = None,
) -> tuple[ReadoutModel, dict[str, Any]]:
    """A readout model fitted on ``fold.train`` (L2 on ``fold.val``); returns it and the fit's
    facts (L2s, validation AUROCs, windows used)."""
    if ws.eeg is None or ws.ecg is None:
        raise TrainError("a readout model needs EEG and ECG in the data")
    if len(ws.targets) != 1:
        raise TrainError(f"a readout model has one target; the data has {list(ws.targets)}")
    y = ws.labels[:, 0]
    calib = calibration_windows(ws, calibrate_s)
    x = features if features is not None else window_features(ws)
    hr = x[:, -1].copy()
    fill = float(np.nanmedian(hr[fold.train])) if np.isfinite(hr[fold.train]).any() else 70.0
    x = x.copy()
    x[~np.isfinite(x[:, -1]), -1] = fill
    scored = ~calib
    train = np.intersect1d(fold.train, np.flatnonzero(scored))
    val = np.intersect1d(fold.val, np.flatnonzero(scored))
    cfg = ReadoutModelConfig(
        eeg=_bare(ws.eeg_spec, ws.n_patches),
        ecg=_bare(ws.ecg_spec, ws.n_patches),
        targets=tuple(ws.targets),
        label_threshold=ws.label_threshold,
        calibrate_s=calibrate_s,
        name="readout-lr",
    )
    model = ReadoutModel(cfg, provenance)
    model.hr_fill.fill_(fill)
    facts: dict[str, Any] = {"hr_fill": round(fill, 3), "train_windows": len(train)}
    for part, feats in (("raw", x), ("cal", _calibrated(x, ws, calib))):
        lr, l2, val_auc = fit_on_validation(feats, y, train, val)
        model.set_regression(part, lr.mu, lr.sd, lr.beta[:-1], lr.beta[-1])
        facts[f"{part}_l2"] = l2
        facts[f"{part}_val_auroc"] = round(float(val_auc), 4)
    return model.eval(), facts


def _bare(spec: ModalityConfig, n_patches: int) -> ModalityConfig:
    return ModalityConfig(
        name=spec.name,
        channels=spec.channels,
        n_patches=n_patches,
        sampling_rate=spec.sampling_rate,
        patch_size=spec.patch_size,
        units=spec.units,
        scale=spec.scale,
    )


def window_features(ws: WindowSet) -> np.ndarray:
    """Readout features of every window, heart rate NaN where too few beats (cached on ``ws``)."""
    return cached_features(ws, "readouts", lambda: readout_features(ws.eeg, ws.ecg))


def score_like_app(
    model: ReadoutModel, ws: WindowSet, subjects: np.ndarray, features: np.ndarray | None = None
) -> np.ndarray:
    """P(target) of every window of ``subjects`` (row indices of ``ws``; NaN elsewhere), as a
    session per subject gives them: baseline reset, recordings in order, windows in time order.
    The model computes each window's features itself, unless ``features`` (its
    :func:`window_features`, the same function's output) are given."""
    out = np.full(len(ws), math.nan)
    if ws.t_end is None or ws.recording is None or ws.eeg is None or ws.ecg is None:
        raise TrainError(
            "a readout model is scored on recordings with EEG and ECG, window times and "
            "recordings (data.kind: manifest)"
        )
    for s in np.unique(ws.subject[subjects]):
        model.reset_baseline()
        rows = np.flatnonzero(ws.subject == s)
        for r in np.unique(ws.recording[rows]):
            sel = rows[ws.recording[rows] == r]
            sel = sel[np.argsort(ws.t_end[sel], kind="stable")]
            if features is not None:
                out[sel] = model.score_features(features[sel], ws.t_end[sel])[0]
                continue
            pred = model.predict(
                torch.from_numpy(ws.eeg[sel]),  # type: ignore[index]
                torch.from_numpy(ws.ecg[sel]),  # type: ignore[index]
                t_end=ws.t_end[sel],
            )
            out[sel] = pred.probabilities[:, 0].numpy()
    model.reset_baseline()
    return out


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = binary_metrics(y, p)
    return {k: round(float(m[k]), 4) for k in _REPORTED}


def evaluate_fold(
    ws: WindowSet, fold: Fold, calibrate_s: float, features: np.ndarray
) -> tuple[ReadoutModel, dict[str, Any]]:
    """Fit on the fold, score its test subjects the app's way; the model and the figures."""
    model, facts = fit_readout_model(ws, fold, calibrate_s, features=features)
    y = ws.labels[:, 0]
    p = score_like_app(model, ws, fold.test, features)
    calib = calibration_windows(ws, calibrate_s)
    test = fold.test
    after = test[~calib[test]]
    p_raw = model.score_features(features[test])[0]  # no times, no baseline: the raw regression
    res = {
        **facts,
        "test_windows": len(test),
        "calibration_windows": int(calib[test].sum()),
        "app": _metrics(y[test], p[test]),
        "calibrated": _metrics(y[after], p[after]),
        "uncalibrated": _metrics(y[test], p_raw),
    }
    return model, res


def run_readouts(
    cfg: FinetuneConfig,
    *,
    calibrate_s: float = 60.0,
    export: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The published split and subject-wise CV of a readout model; exports the split's model."""
    from ._data import load_windows
    from ._finetune import _command

    say = log or (lambda _m: None)
    ws = load_windows(cfg.data)
    say(f"readouts: {len(ws)} windows of {len(ws.subjects)} subjects; computing features")
    feats = window_features(ws)
    e = cfg.eval
    split = subject_split(ws, e.split.train, e.split.val, e.split.test)
    model, res_split = evaluate_fold(ws, split, calibrate_s, feats)
    out: dict[str, Any] = {"calibrate_s": calibrate_s, "split": res_split}
    if "cv" in e.protocols:
        folds = [
            evaluate_fold(ws, f, calibrate_s, feats)[1] for f in subject_cv_splits(ws, e.cv_folds)
        ]
        cv: dict[str, Any] = {"folds": len(folds)}
        for kind in ("app", "calibrated", "uncalibrated"):
            cv[kind] = {
                k: [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)]
                for k in _REPORTED
                for v in [[f[kind][k] for f in folds]]
            }
        out["cv"] = cv
    run_dir = Path(cfg.run.out_dir).expanduser()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "readouts.json").write_text(json.dumps(out, indent=1))
    if export:
        command = _command(cfg)
        if not command.startswith("physio-train readouts"):
            command = f"physio-train readouts --config {cfg.path} --calibrate {calibrate_s:g}"
        notes = {
            "chosen": {
                "how": "logistic regressions on the training subjects, L2 chosen on validation "
                "AUROC; calibration windows neither fitted nor scored by the calibrated row",
                "split": {
                    "config": {"train": e.split.train, "val": e.split.val, "test": e.split.test}
                },
                "test_metrics": res_split["app"],
                "test_windows": res_split["test_windows"],
                "window_s": ws.n_patches,
                "hop_s": ws.preprocessing.get("hop_s"),
                "test_note": "every test window scored as a session per subject gives it: the "
                f"first {calibrate_s:g} s of the rest recording by the uncalibrated regression, "
                "the rest calibrated",
            },
            "calibrated_test_metrics": res_split["calibrated"],
            "uncalibrated_test_metrics": res_split["uncalibrated"],
            "cv": out.get("cv"),
            "fit": {k: v for k, v in res_split.items() if k.endswith(("_l2", "_auroc", "fill"))},
            "preprocessing": ws.preprocessing,
            "command": command,
        }
        model.provenance = Provenance(
            trained=True,
            source=f"physio-train readouts (rest-calibrated logistic regression) on {ws.source}",
            datasets=(ws.source,),
            notes=json.dumps(notes, default=str),
        )
        save_checkpoint(export, model)
        out["export"] = str(export)
    return out
