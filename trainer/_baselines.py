"""Classical reference rows on the same windows and folds as the deep models.

- ``bandpower-lr``: log band powers per EEG channel (delta 1-4, theta 4-8, alpha 8-13, beta 13-30,
  gamma 30-45 Hz; the app's readout: Welch, 2-s Hann segments, half overlap) + an L2 logistic
  regression.
- ``hr-lr``: heart rate of the window (the app's R-peak detector and heart-rate readout: 60 /
  median RR) + a logistic regression.

The logistic regression is fitted here by Newton's method (IRLS) in NumPy, with class-balanced
weights (as the deep models' ``train.balance``) and features standardized on the training part;
its L2 strength is chosen on validation AUROC when the fold has validation subjects.
"""

from __future__ import annotations

import math

import numpy as np

from physio_live.core import BANDS
from physio_live.models import band_power_features, heart_rate

from ._data import WindowSet
from ._metrics import auroc, nanmean
from ._splits import Fold

__all__ = [
    "BANDS",
    "LogisticRegression",
    "band_power_features",
    "baseline_predictions",
    "heart_rate",
]

_L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


class LogisticRegression:
    """Binary logistic regression, L2 penalty ``l2`` on the weights (not the bias), fitted by
    Newton's method on standardized features; ``balanced`` weights classes equally."""

    def __init__(self, l2: float = 1.0, balanced: bool = True, iters: int = 50) -> None:
        self.l2, self.balanced, self.iters = l2, balanced, iters

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        self.mu = x.mean(0)
        self.sd = x.std(0) + 1e-9
        z = np.c_[(x - self.mu) / self.sd, np.ones(len(x))]
        w = np.ones(len(y))
        if self.balanced and 0 < y.mean() < 1:
            w = np.where(y > 0, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
        pen = np.full(z.shape[1], self.l2)
        pen[-1] = 0.0
        beta = np.zeros(z.shape[1])
        n = w.sum()
        for _ in range(self.iters):
            p = 1 / (1 + np.exp(-np.clip(z @ beta, -30, 30)))
            grad = z.T @ (w * (p - y)) / n + pen * beta
            hess = (z * (w * p * (1 - p))[:, None]).T @ z / n + np.diag(pen + 1e-9)
            step = np.linalg.solve(hess, grad)
            beta -= step
            if np.abs(step).max() < 1e-8:
                break
        self.beta = beta
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(y = 1) per row."""
        z = np.c_[(np.asarray(x, np.float64) - self.mu) / self.sd, np.ones(len(x))]
        return 1 / (1 + np.exp(-np.clip(z @ self.beta, -30, 30)))


def fit_on_validation(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray
) -> tuple[LogisticRegression, float, float]:
    """A regression fitted on rows ``train`` with its L2 chosen on the AUROC of rows ``val``
    (1.0 without validation rows); returns it, its L2 and that AUROC (NaN without)."""
    grid = _L2_GRID if len(val) else (1.0,)
    best = (-math.inf, 1.0, math.nan)
    for l2 in grid:
        lr = LogisticRegression(l2).fit(x[train], y[train])
        a = auroc(y[val], lr.predict_proba(x[val])) if len(val) else math.nan
        if not len(val) or (math.isfinite(a) and a > best[0]):
            best = (a if math.isfinite(a) else -math.inf, l2, a)
    return LogisticRegression(best[1]).fit(x[train], y[train]), best[1], best[2]


def _fit_predict(x: np.ndarray, y: np.ndarray, fold: Fold) -> tuple[np.ndarray, float]:
    """Fit on ``fold.train`` (L2 chosen on ``fold.val`` AUROC), predict ``fold.test``."""
    lr, _, val_auroc = fit_on_validation(x, y, fold.train, fold.val)
    return lr.predict_proba(x[fold.test]), val_auroc


def baseline_predictions(ws: WindowSet, fold: Fold) -> dict[str, tuple[np.ndarray, float]]:
    """``{row name: (P(high) [n_test, targets], validation AUROC)}`` of the classical rows the
    data allows (band powers need EEG, heart rate ECG)."""
    feats: dict[str, np.ndarray] = {}
    if ws.eeg is not None:
        feats["bandpower-lr"] = cached_features(
            ws, "bandpower", lambda: band_power_features(ws.eeg)
        )
    if ws.ecg is not None:
        hr = cached_features(ws, "hr", lambda: heart_rate(ws.ecg))[:, None]
        fill = np.nanmedian(hr[fold.train]) if np.isfinite(hr[fold.train]).any() else 70.0
        feats["hr-lr"] = np.where(np.isfinite(hr), hr, fill)
    out = {}
    for name, x in feats.items():
        probs, vals = [], []
        for j in range(len(ws.targets)):
            p, v = _fit_predict(x, ws.labels[:, j], fold)
            probs.append(p)
            vals.append(v)
        out[name] = (np.stack(probs, axis=1), nanmean(vals))
    return out


def cached_features(ws: WindowSet, key: str, fn) -> np.ndarray:
    """Features computed once per window set (folds reuse them)."""
    store = ws.__dict__.setdefault("_features", {})
    if key not in store:
        store[key] = fn()
    return store[key]
