"""Smoke pretraining on the real WFDB records vs the zeros and interpolation baselines.

The shipped smoke config trains on every record in ``../shared/data`` except the Challenge-2015
record v102s (another patient, another database: leads II and V, a fast rhythm), which is held
out. Numbers on the training records (in distribution) and on the held-out record are printed,
total and per mask kind (intra-/inter-lead), with the two baselines on the very same masks.

The held-out test is an expected failure: a tiny encoder trained for seconds on what is 97 %
one patient (mitdb 100) does not beat predicting zeros on an unseen patient. Its predictions on
the held-out masked patches are uncorrelated with the truth (r ~ 0.06, rms 0.8 vs 2.3), and for
inter-lead masks nothing in the input says how this patient's hidden lead relates to the visible
one: even a zero-lag least-squares scale fitted *on v102s itself* is only 3.4 % below zeros (the
leads correlate at r = 0.19), and a 51-tap filter fitted on mitdb 100 is worse than zeros on
v102s. See the README (training section) for the recipes tried and their numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from physio_live.trainer import Corpus, evaluate, load_pretrain_config, pretrain

ROOT = Path(__file__).resolve().parents[2]
#: the run takes ~15 s on a quiet 2-core CPU, but several minutes when the cores are shared
pytestmark = pytest.mark.timeout(900)
PARTS = ("", "_intra", "_inter")


def _line(name: str, ev: dict[str, float]) -> str:
    cells = [
        f"{part[1:] or 'all'} {ev['mse' + part]:.3f} (zeros {ev['zeros' + part]:.3f}, "
        f"interp {ev['interp' + part]:.3f})"
        for part in PARTS
    ]
    return f"{name}: " + " | ".join(cells)


@pytest.fixture(scope="module")
def smoke_run(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    cfg = load_pretrain_config(
        ROOT / "configs/pretrain_ecg_smoke.yaml",
        [f"data.root={data_dir}", f"data.cache_dir={tmp / 'cache'}", f"run.out_dir={tmp / 'run'}"],
    )
    res = pretrain(cfg, progress=False)
    corpus = Corpus(res.cache)
    train, val = corpus.split(cfg.data.val_records)
    model = res_model(res)
    on_train = evaluate(model, corpus, train, cfg)
    # the held-out record again with three fresh sets of masks (the run's own is seed 0)
    fresh = [
        evaluate(
            model, corpus, val, dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=s))
        )
        for s in (101, 202, 303)
    ]
    print()
    print(_line("train records", on_train))
    print(_line("held-out record", res.eval))
    for s, ev in zip((101, 202, 303), fresh, strict=True):
        print(_line(f"held-out record, masks seed {s}", ev))
    return cfg, res, on_train, [res.eval, *fresh]


def res_model(res):
    from physio_live.models import load_checkpoint

    return load_checkpoint(res.encoder).model


@pytest.mark.slow
def test_learns_on_training_records(smoke_run):
    _, res, ev, _ = smoke_run
    assert res.finished
    for part in ("_intra", "_inter"):
        assert ev[f"mse{part}"] < 0.85 * ev[f"zeros{part}"], ev
        assert ev[f"mse{part}"] < 0.85 * ev[f"interp{part}"], ev


@pytest.mark.slow
@pytest.mark.xfail(
    reason="held-out patient (v102s): the smoke encoder's masked MSE is ~9 % ABOVE predicting "
    "zeros (5.67 vs 5.22; intra 5.68 vs 5.29, inter 5.67 vs 5.18); its predictions there are "
    "uncorrelated with the truth. Needs more patients than ../shared/data has (see module doc)",
    strict=False,
)
def test_beats_baselines_on_held_out_record(smoke_run):
    _, _, _, evs = smoke_run
    for ev in evs:  # every set of masks, every mask kind: 10 % below the better baseline
        for part in PARTS:
            assert ev[f"mse{part}"] < 0.9 * min(ev[f"zeros{part}"], ev[f"interp{part}"]), ev
