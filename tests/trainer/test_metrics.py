"""Metric functions against hand-computed cases and brute-force definitions on random draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from physio_live.trainer import (
    LogisticRegression,
    accuracy,
    auroc,
    average_precision,
    balanced_accuracy,
    binary_metrics,
    macro_f1,
)


def test_hand_computed_cases() -> None:
    y = np.array([1, 1, 0, 0, 0, 0])
    pred = np.array([1, 0, 0, 0, 0, 1])
    # recall of 1: 1/2, recall of 0: 3/4
    assert balanced_accuracy(y, pred) == pytest.approx((0.5 + 0.75) / 2)
    assert accuracy(y, pred) == pytest.approx(4 / 6)
    assert balanced_accuracy(y, np.zeros(6)) == pytest.approx(0.5)  # constant: chance
    assert balanced_accuracy(y, np.ones(6)) == pytest.approx(0.5)
    # ranked: pos (P 1, R .5), neg, pos (P 2/3, R 1), neg -> AP = .5 * 1 + .5 * 2/3
    s = np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(np.array([1, 0, 1, 0]), s) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(np.array([1, 1, 0, 0]), s) == pytest.approx(1.0)
    # a tie between a positive and a negative is one threshold: P 1/2 at R 1
    assert average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(average_precision(np.array([0, 0]), np.array([0.1, 0.2])))
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert macro_f1(np.array([1, 0]), np.array([1, 0])) == pytest.approx(1.0)
    m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.8]))
    assert m["balanced_accuracy"] == pytest.approx(0.75) and m["auroc"] == pytest.approx(1.0)
    assert m["auc_pr"] == pytest.approx(1.0)


def _brute_ap(y: np.ndarray, s: np.ndarray) -> float:
    total, prev_r = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        sel = s >= t
        p = y[sel].sum() / sel.sum()
        r = y[sel].sum() / y.sum()
        total += (r - prev_r) * p
        prev_r = r
    return total


def _brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def test_random_draws_match_the_definitions() -> None:
    rng = np.random.default_rng()
    for _ in range(30):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.random(n), 1)  # rounding makes ties
        assert average_precision(y, s) == pytest.approx(_brute_ap(y, s))
        assert auroc(y, s) == pytest.approx(_brute_auc(y, s))
        pred = (s > 0.5).astype(int)
        tpr = np.mean(pred[y == 1] == 1)
        tnr = np.mean(pred[y == 0] == 0)
        assert balanced_accuracy(y, pred) == pytest.approx((tpr + tnr) / 2)
    # uninformative scores: AP near the positive rate, AUROC near 0.5
    y = (rng.random(20000) < 0.25).astype(int)
    s = rng.random(20000)
    assert abs(average_precision(y, s) - y.mean()) < 0.03
    assert abs(auroc(y, s) - 0.5) < 0.03


def test_logistic_regression_learns_a_linear_rule() -> None:
    rng = np.random.default_rng()
    x = rng.normal(size=(600, 3))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=600) > 0.8).astype(int)  # imbalanced
    lr = LogisticRegression(l2=1e-3).fit(x[:400], y[:400])
    p = lr.predict_proba(x[400:])
    assert auroc(y[400:], p) > 0.95
    assert balanced_accuracy(y[400:], p > 0.5) > 0.85  # balanced weights: no majority collapse
    assert abs(lr.beta[2]) < 0.3 * abs(lr.beta[0])  # the noise feature gets a small weight
    shuffled = LogisticRegression(l2=1e-3).fit(x[:400], rng.permutation(y[:400]))
    assert np.linalg.norm(shuffled.beta[:3]) < 0.3 * np.linalg.norm(lr.beta[:3])
