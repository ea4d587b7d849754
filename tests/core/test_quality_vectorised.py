"""The vectorised quality gate and Welch PSD against their straightforward references: scipy's
``welch``, and the gate as first written (one channel at a time, ``conftest.py``), on
fresh random windows with every kind of fault planted at random."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest
from scipy import signal

from physio_live.core import QualityThresholds, assess_window_quality
from physio_live.core._spectra import welch_psd


def _rng() -> tuple[np.random.Generator, int]:
    seed = int.from_bytes(os.urandom(4), "little")
    return np.random.default_rng(seed), seed


@pytest.mark.parametrize("axis", [0, -1])
def test_welch_psd_matches_scipy(axis: int) -> None:
    rng, seed = _rng()
    for _ in range(20):
        n = int(rng.integers(2, 3000))
        nperseg = int(rng.integers(2, 1200))
        chans = int(rng.integers(1, 25))
        rate = float(rng.choice([128.0, 200.0, 250.0, 256.0, 500.0, 1000.0]))
        noverlap = int(rng.integers(0, min(nperseg, n))) if rng.random() < 0.5 else None
        x = rng.standard_normal((n, chans) if axis == 0 else (chans, n)) * rng.uniform(1, 100)
        x += rng.uniform(-1e3, 1e3)  # an offset the per-segment mean removal takes away
        seg = min(nperseg, n)
        f_ref, p_ref = signal.welch(
            x, fs=rate, nperseg=seg, noverlap=seg // 2 if noverlap is None else noverlap, axis=axis
        )
        f, p = welch_psd(x, rate, nperseg, noverlap, axis=axis)
        msg = f"seed {seed}: n={n} nperseg={nperseg} noverlap={noverlap}"
        np.testing.assert_array_equal(f, f_ref, err_msg=msg)
        assert p.shape == p_ref.shape, msg
        np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-12 * np.abs(p_ref).max(), err_msg=msg)


def test_welch_psd_rejects_bad_segments() -> None:
    with pytest.raises(ValueError, match="noverlap"):
        welch_psd(np.zeros(100), 100.0, 50, 50)
    for n in (0, 1):
        with pytest.raises(ValueError, match="at least 2 samples"):
            welch_psd(np.zeros(n), 100.0, 50)


def _faulty_window(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """A raw window [n, C] with random faults on random channels, its timestamps and rate."""
    rate = float(rng.choice([250.0, 256.0, 500.0]))
    n = int(rng.integers(int(0.5 * rate), int(4.5 * rate)))
    chans = int(rng.integers(1, 24))
    t = np.arange(n) / rate
    x = rng.standard_normal((n, chans)) * rng.uniform(2, 40, chans)
    x += rng.uniform(-50, 50, chans) + np.outer(t, rng.uniform(-20, 20, chans))
    for c in range(chans):
        kind = rng.choice(
            ["clean", "nan", "all_nan", "one_finite", "flat", "held", "clip", "line", "big",
             "small", "inf", "quantised"]
        )  # fmt: skip
        a = int(rng.integers(0, n))
        b = int(min(n, a + rng.integers(1, max(2, n // 2))))
        if kind == "nan":
            x[a:b, c] = np.nan
        elif kind == "all_nan":
            x[:, c] = np.nan
        elif kind == "one_finite":
            x[:, c] = np.nan
            x[a, c] = rng.uniform(-10, 10)
        elif kind == "flat":
            x[:, c] = rng.uniform(-100, 100) + rng.uniform(0, 0.4) * (np.arange(n) % 2)
        elif kind == "held":
            x[a:b, c] = x[a, c]
        elif kind == "clip":
            rail = np.quantile(x[:, c], 0.9)
            x[:, c] = np.minimum(x[:, c], rail)
        elif kind == "line":
            x[:, c] += rng.uniform(5, 80) * np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * t)
        elif kind == "big":
            x[:, c] *= rng.uniform(20, 200)
        elif kind == "small":
            x[:, c] *= rng.uniform(0.001, 0.05)
        elif kind == "inf":
            x[a, c] = np.inf
        elif kind == "quantised":  # a coarse ADC: many short runs of equal values
            x[:, c] = np.round(x[:, c] / rng.uniform(2, 20))
    ts = 100.0 + t
    if rng.random() < 0.4:  # samples lost on the way
        a = int(rng.integers(0, n))
        keep = np.ones(n, bool)
        keep[a : a + int(rng.integers(1, max(2, n // 4)))] = False
        x, ts = x[keep], ts[keep]
    kw: dict = {"labels": [f"ch{i}" for i in range(chans)]}
    if rng.random() < 0.5:
        kw["t_start"], kw["t_end"] = 100.0 - 0.5 / rate, 100.0 + (n - 0.5) / rate
    if rng.random() < 0.3:
        kw["units"] = "mV"
        x = x / 1000.0
    if rng.random() < 0.5:
        th = QualityThresholds(saturation_uv=float(rng.uniform(20, 200)))
        kw["thresholds"] = th if rng.random() < 0.5 else QualityThresholds.ecg(saturation_uv=150.0)
    return x, ts, rate, kw


def test_vectorised_gate_matches_the_per_channel_reference(
    quality_reference: Callable[..., object],
) -> None:
    rng, seed = _rng()
    flagged = set()
    for i in range(150):
        x, ts, rate, kw = _faulty_window(rng)
        got = assess_window_quality(x, ts, rate, **kw)
        want = quality_reference(x, ts, rate, **kw)
        msg = f"seed {seed}, window {i}"
        assert got.channel_reasons == want.channel_reasons, msg
        assert got.gap_s == pytest.approx(want.gap_s, abs=1e-12), msg
        assert got.gap_flagged == want.gap_flagged, msg
        assert set(got.metrics) == set(want.metrics), msg
        for k, v in want.metrics.items():
            # a flat channel's line ratio is rounding noise over rounding noise (and unused)
            judged = [i for i, r in enumerate(want.channel_reasons) if k != "line_ratio" or
                      "flat" not in r]  # fmt: skip
            np.testing.assert_allclose(
                got.metrics[k][judged], v[judged], rtol=1e-9, atol=1e-12, err_msg=msg
            )
        flagged.update(r for rs in got.channel_reasons for r in rs)
    # the draws reached every reason (else this test would not be checking them)
    assert flagged >= {"nan", "flat", "clipped", "saturated", "line_noise", "amplitude"}, seed
