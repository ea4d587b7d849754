"""Binary classification metrics of one target: accuracy, macro-F1, balanced accuracy, AUROC and
AUC-PR (average precision), in NumPy with the definitions scikit-learn uses.

All take the 0/1 truth ``y`` and either 0/1 predictions or a score (probability); a metric that is
undefined for the data (one class only) is NaN rather than an exception, so one degenerate fold
does not stop a cross-validation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "METRIC_NAMES",
    "accuracy",
    "auroc",
    "average_precision",
    "balanced_accuracy",
    "binary_metrics",
    "macro_f1",
    "nanmean",
]

#: column name -> name in the tables, in the tables' order
METRIC_NAMES = {
    "balanced_accuracy": "balanced acc.",
    "auc_pr": "AUC-PR",
    "auroc": "AUROC",
    "accuracy": "accuracy",
    "f1": "macro-F1",
}


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of correct 0/1 predictions."""
    y, pred = np.asarray(y), np.asarray(pred)
    return float(np.mean(y == pred)) if len(y) else math.nan


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (sensitivity and specificity averaged for
    a binary task); a constant prediction scores 0.5 whatever the class balance."""
    y, pred = np.asarray(y), np.asarray(pred)
    classes = np.unique(y)
    if not len(classes):
        return math.nan
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean F1 over the classes present in ``y`` or ``pred`` (F1 of a class with no true or
    predicted member would be 0/0; such a class is left out, as scikit-learn does)."""
    y, pred = np.asarray(y), np.asarray(pred)
    scores = []
    for c in np.union1d(y, pred):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else math.nan


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann-Whitney) statistic; ties count one half.
    NaN when ``y`` holds one class only."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """AUC-PR as average precision: sum over score thresholds of (recall step) x precision, with
    tied scores forming one threshold (scikit-learn's ``average_precision_score``). NaN without
    positives."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], y[order]
    tp = np.cumsum(t)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each tied group
    tp, n = tp[last], last + 1
    precision = tp / n
    recall = tp / n_pos
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def nanmean(values) -> float:
    """Mean of the finite values; NaN (without a warning) when there are none."""
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def binary_metrics(y: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, macro-F1, balanced accuracy (prediction: ``prob > threshold``), AUROC and
    AUC-PR of one target."""
    prob = np.asarray(prob, np.float64)
    pred = (prob > threshold).astype(np.int64)
    return {
        "accuracy": accuracy(y, pred),
        "f1": macro_f1(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "auroc": auroc(y, prob),
        "auc_pr": average_precision(y, prob),
    }
