"""One resampling for the app and for training: the aligner and the pretraining corpus give the
same grid samples for the same recording (real 12-lead ECG, 1000 Hz, fed in chunks of random
sizes to the aligner, whole to the corpus)."""

from __future__ import annotations

import numpy as np
import pytest

from physio_live.core import Aligner, AlignerConfig, Chunk, open_recording, resample_to_grid
from physio_live.trainer import DataConfig
from physio_live.trainer._corpus import preprocess_record, to_model_grid


def test_resample_to_grid_is_linear_interpolation_on_the_global_grid():
    rng = np.random.default_rng(0)
    t = 3.0 + np.cumsum(rng.uniform(0.001, 0.006, 500))  # irregular, starts off the grid
    y = rng.normal(size=(500, 3))
    g = resample_to_grid(t, y, 200.0)
    assert g.k[0] == np.ceil(t[0] * 200) and g.k[-1] == np.floor(t[-1] * 200)
    ref = np.stack([np.interp(g.k / 200.0, t, y[:, c]) for c in range(3)], axis=1)
    np.testing.assert_allclose(g.values, ref, rtol=0, atol=1e-12)
    # chunk by chunk with the last sample carried, as the aligner does: the same samples
    parts, k_next, prev = [], None, None
    for a in range(0, 500, 37):
        tc, yc = t[a : a + 37], y[a : a + 37]
        if prev is not None:
            tc, yc = np.concatenate(([prev[0]], tc)), np.concatenate((prev[1][None], yc))
        gc = resample_to_grid(tc, yc, 200.0, k_next)
        parts.append(gc.values)
        k_next = int(gc.k[-1]) + 1 if len(gc.k) else k_next
        prev = (tc[-1], yc[-1])
    np.testing.assert_allclose(np.concatenate(parts), g.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("record", ["wfdb_ptbdb_s0010_re/s0010_re", "wfdb_mitdb_100/100"])
def test_aligner_and_corpus_give_the_same_samples(data_dir, record):
    path = data_dir / f"{record}.hea"
    stream = next(s for s in open_recording(path).streams if s.info.role == "ecg")
    fs = stream.info.nominal_srate
    n = int(20 * fs)  # 20 s
    data = stream.data[:n]
    ts = np.arange(n) / fs  # starts at 0: grid sample k is at k / 200 s for both
    acfg = AlignerConfig(window=4.0, hop=1.0)
    aligner = Aligner(acfg, [stream.info])
    rng = np.random.default_rng(1)
    windows, a = [], 0
    while a < n:
        b = min(n, a + int(rng.integers(1, 400)))
        aligner.push(Chunk(stream.info, data[a:b], ts[a:b]))
        windows += aligner.pop_windows()
        a = b
    assert len(windows) >= 10
    # the corpus with the app's ECG defaults (band-pass, notch, order, Q) in the same units
    m = acfg.ecg
    cfg = DataConfig(
        kind="wfdb",
        root=str(path.parent),
        channels=list(stream.info.channel_labels),
        n_channels=stream.info.n_channels,
        bandpass=list(m.bandpass),
        notch=m.notch,
        notch_q=m.notch_q,
        order=m.order,
        sample_patches=4,
        hop_patches=1,
        unit_uv=m.unit_uv,
        dtype="float32",
    )
    x = data.astype(np.float64) * 1000.0 / m.unit_uv  # mV -> model units, as the corpus does
    grid = to_model_grid(x, fs, cfg)
    for w in windows:
        k1 = round(w.t_end * acfg.rate)
        k0 = k1 - w.ecg.shape[1] + 1
        np.testing.assert_allclose(w.ecg, grid[k0 : k1 + 1].T, rtol=1e-5, atol=1e-5)
    # and the cached samples are slices of that grid signal (after the settling second)
    info = preprocess_record(path, cfg)
    settle = round(cfg.settle_s * cfg.rate)
    full = to_model_grid(stream.data.astype(np.float64) * 1000.0 / m.unit_uv, fs, cfg)
    for j in (0, 3, 7):
        ref = full[settle + 200 * j : settle + 200 * j + 800].T.reshape(-1, 4, 200)
        np.testing.assert_allclose(info["samples"][j], ref, rtol=1e-5, atol=1e-5)
