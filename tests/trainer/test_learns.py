"""Smoke pretraining on the real WFDB records vs the zeros and interpolation baselines.

Numbers on the training records (in distribution) and on the held-out record (the Challenge-2015
record, leads II and V, another patient and another database) are printed; see the report in
``summary.json`` of the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from physio_live.trainer import Corpus, evaluate, load_pretrain_config, pretrain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_run(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    cfg = load_pretrain_config(
        ROOT / "configs/pretrain_ecg_smoke.yaml",
        [f"data.root={data_dir}", f"data.cache_dir={tmp / 'cache'}", f"run.out_dir={tmp / 'run'}"],
    )
    res = pretrain(cfg, progress=False)
    corpus = Corpus(res.cache)
    train, _val = corpus.split(cfg.data.val_records)
    on_train = evaluate(res_model(res), corpus, train, cfg)
    print(f"\ntrain records: {on_train}\nheld-out record: {res.eval}")
    return cfg, res, on_train


def res_model(res):
    from physio_live.models import load_checkpoint

    return load_checkpoint(res.encoder).model


@pytest.mark.slow
def test_learns_on_training_records(smoke_run):
    _, res, ev = smoke_run
    assert res.finished
    for part in ("_intra", "_inter"):
        assert ev[f"mse{part}"] < 0.85 * ev[f"zeros{part}"], ev
        assert ev[f"mse{part}"] < 0.85 * ev[f"interp{part}"], ev


@pytest.mark.slow
@pytest.mark.xfail(
    reason="the smoke corpus is one patient (mitdb 100) plus minutes of others: the tiny model "
    "does not generalise to the held-out patient (about 10 % above the zeros baseline)",
    strict=False,
)
def test_beats_baselines_on_held_out_record(smoke_run):
    _, res, _ = smoke_run
    ev = res.eval
    assert ev["mse"] < 0.9 * min(ev["zeros"], ev["interp"]), ev
