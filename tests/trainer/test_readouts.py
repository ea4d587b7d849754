"""``physio-train readouts`` on real eegmat recordings (a slice: 18 of the 36 subjects).

The readout model is fitted on the training subjects and scored on two held-out ones; calibration
against each person's first 60 s of rest must help, the exported checkpoint must load in the app's
format and score the test windows as the run reported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from physio_live.models import checkpoint_test_metrics, describe_checkpoint, load_checkpoint
from physio_live.trainer import (
    auroc,
    load_finetune_config,
    load_windows,
    score_like_app,
    subject_split,
)
from physio_live.trainer._readout_fit import calibration_windows, window_features
from physio_live.trainer.cli import main

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("PHYSIO_LIVE_DATASETS", ROOT.parent / "shared" / "datasets"))


@pytest.mark.slow
def test_readouts_fit_calibrate_and_export(tmp_path, capsys):
    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    sets = [
        f"data.root={root}",
        "data.manifest.files=Subject[0-3][02468]_*.edf",  # the even subjects: 18 of 36
        f"data.manifest.cache_dir={tmp_path / 'cache'}",
        f"run.out_dir={tmp_path / 'run'}",
        "eval.split.train=[]",
        "eval.split.val=['28', '30']",
        "eval.split.test=['32', '34']",
        "eval.protocols=[split]",
    ]
    out = tmp_path / "readouts.safetensors"
    argv = ["readouts", "--config", str(ROOT / "configs/finetune_eegmat.yaml"), "--quiet"]
    argv += ["--export", str(out)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    split = res["split"]
    # 28 windows of rest (4..60 s, every 2 s) per subject make its baseline
    assert split["calibration_windows"] == 2 * 29
    assert split["calibrated"]["auroc"] > split["uncalibrated"]["auroc"]
    assert split["calibrated"]["auroc"] > 0.85 and split["app"]["auroc"] > 0.8
    assert "cv" not in res and (tmp_path / "run/readouts.json").is_file()

    # the exported model, loaded as the app loads it, scores the test windows as reported
    ck = load_checkpoint(out)
    assert ck.kind == "readout_lr" and ck.model.config.calibrate_s == 60.0
    recorded = checkpoint_test_metrics(json.loads(describe_checkpoint(out)["provenance"]["notes"]))
    assert recorded["auroc"] == split["app"]["auroc"] and recorded["hop_s"] == 2.0
    cfg = load_finetune_config(ROOT / "configs/finetune_eegmat.yaml", sets)
    ws = load_windows(cfg.data)
    fold = subject_split(ws, [], ["28", "30"], ["32", "34"])
    p = score_like_app(ck.model, ws, fold.test)
    assert np.isfinite(p[fold.test]).all() and np.isnan(np.delete(p, fold.test)).all()
    # the run scored from its cached features: the same numbers as the model's own predict
    fast = score_like_app(ck.model, ws, fold.test, window_features(ws))
    np.testing.assert_array_equal(fast[fold.test], p[fold.test])
    y = ws.labels[:, 0]
    assert round(auroc(y[fold.test], p[fold.test]), 4) == recorded["auroc"]
    calib = calibration_windows(ws, 60.0)
    assert calib.sum() == 29 * len(ws.subjects) and (y[calib] == 0).all()


def test_readouts_on_an_empty_folder_fail_in_one_line(tmp_path, capsys):
    bad = ["--set", f"data.root={tmp_path}"]
    argv = ["readouts", "--config", str(ROOT / "configs/finetune_eegmat.yaml"), "--quiet", *bad]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("physio-train: error:") and "\n" not in err


@pytest.mark.slow
def test_evaluate_scores_the_shipped_readout_model_as_its_run_recorded(tmp_path):
    """``physio-train evaluate`` on the four test subjects gives the test AUROC in the checkpoint
    (a session per subject: rest recording first, its first minute the baseline)."""
    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    notes = json.loads(describe_checkpoint("eegmat-readouts")["provenance"]["notes"])
    recorded = checkpoint_test_metrics(notes)
    argv = ["evaluate", "--config", str(ROOT / "configs/finetune_eegmat.yaml"), "--quiet"]
    for s in (f"data.root={root}", "data.manifest.files=Subject3[2-5]_*.edf",
              f"data.manifest.cache_dir={tmp_path / 'cache'}", f"run.out_dir={tmp_path / 'ev'}",
              "eval.checkpoint=eegmat-readouts"):  # fmt: skip
        argv += ["--set", s]
    assert main(argv) == 0
    res = json.loads((tmp_path / "ev/summary.json").read_text())
    rows = [r for r in res["results"] if r["protocol"] == "all" and r["target"] != "mean"]
    (row,) = rows
    assert row["modality"] == "readouts" and row["target"] == "arithmetic"
    assert round(row["auroc_mean"], 4) == recorded["auroc"]
    assert round(row["balanced_accuracy_mean"], 4) == recorded["balanced_accuracy"]
