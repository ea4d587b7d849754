"""The classical rows' features are the app's own readouts and measure what they say."""

from __future__ import annotations

import numpy as np

from physio_live.app._ecgsim import ECGSimulator
from physio_live.core import BANDS
from physio_live.trainer import band_power_features, heart_rate


def test_heart_rate_of_each_window_is_the_planted_rate():
    rng = np.random.default_rng()
    rates = rng.uniform(50, 120, 6)
    windows = []
    for hr in rates:
        sim = ECGSimulator(rate=200.0, n_leads=1, heart_rate=float(hr), mains=0.0,
                           seed=int(rng.integers(1 << 30)))  # fmt: skip
        sim.read(400)  # start anywhere in the rhythm
        windows.append(sim.read(800).T.reshape(1, 4, 200) * 10.0)  # mV -> 100-uV units
    got = heart_rate(np.stack(windows))
    # the simulator's RR intervals wander by a few percent around 60 / hr
    np.testing.assert_allclose(got, rates, rtol=0.08)


def test_band_powers_put_a_planted_rhythm_in_its_band():
    rng = np.random.default_rng()
    n, c = 3, 4
    t = np.arange(800) / 200.0
    x = 0.05 * rng.standard_normal((n, c, 800))
    names = list(BANDS)
    planted = rng.integers(0, len(names), size=(n, c))
    for i in range(n):
        for j in range(c):
            lo, hi = BANDS[names[planted[i, j]]]
            x[i, j] += np.sin(2 * np.pi * rng.uniform(lo + 0.5, hi - 0.5) * t)
    feats = band_power_features(x.reshape(n, c, 4, 200)).reshape(n, c, len(names))
    assert (feats.argmax(-1) == planted).all()
