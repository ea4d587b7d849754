"""``physio-live models info|pull`` and running the app on a real fused checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from physio_live.models import (
    CBraModConfig,
    FusedEmotionConfig,
    FusedEmotionModel,
    ModalityConfig,
    Provenance,
    cbramod_base,
    save_checkpoint,
    to_official_state_dict,
)

pytestmark = pytest.mark.slow
DEMO_EEG = tuple("AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4".split())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "physio_live.app.cli", *args],
        capture_output=True, text=True, timeout=180, env=dict(os.environ),
    )  # fmt: skip


def test_pull_converts_an_official_file_and_info_describes_it(tmp_path):
    official = tmp_path / "pretrained_weights.pth"
    torch.save(to_official_state_dict(cbramod_base().state_dict()), official)
    out = tmp_path / "cbramod.safetensors"
    r = _cli("models", "pull", "cbramod", "--source", str(official), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists()
    r = _cli("models", "info", str(out))
    assert r.returncode == 0, r.stderr
    assert "4,9" in r.stdout or "4.9" in r.stdout  # ~4.9 M parameters
    assert "cbramod" in r.stdout.lower()


def test_pull_refuses_a_pickle_payload(tmp_path):
    evil = tmp_path / "pretrained_weights.pth"
    torch.save({"weights": torch.zeros(2), "extra": np.float64}, evil)  # a non-tensor object
    r = _cli("models", "pull", "cbramod", "--source", str(evil), "--out", str(tmp_path / "x.st"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "physio-live: error" in r.stderr


def test_app_runs_a_trained_checkpoint_without_the_untrained_warning(tmp_path):
    enc = CBraModConfig(depth=1, out_dim=None)
    cfg = FusedEmotionConfig(
        eeg=ModalityConfig(name="eeg", channels=DEMO_EEG, n_patches=4, encoder=enc),
        ecg=ModalityConfig(name="ecg", channels=("ECG1", "ECG2"), n_patches=4, encoder=enc),
        name="test-fusion",
    )
    model = FusedEmotionModel(cfg, provenance=Provenance(trained=True, source="unit test"))
    ckpt = tmp_path / "fused.safetensors"
    save_checkpoint(ckpt, model)
    r = _cli("--stream", "--duration", "8", "--config", "demo_synthetic", "--checkpoint",
             str(ckpt), "--no-record", "--estimates")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "untrained" not in r.stderr.lower()
    est = [ln for ln in r.stdout.splitlines() if ln.startswith("estimate")]
    assert est and "UNTRAINED" not in est[0]
    assert "model test-fusion-" in r.stdout


def test_checkpoint_for_other_channels_is_refused(tmp_path):
    enc = CBraModConfig(depth=1, out_dim=None)
    cfg = FusedEmotionConfig(
        eeg=ModalityConfig(name="eeg", channels=tuple(f"E{i}" for i in range(19)), encoder=enc),
        ecg=ModalityConfig(name="ecg", channels=("ECG",), encoder=enc),
    )
    ckpt = tmp_path / "fused19.safetensors"
    save_checkpoint(ckpt, FusedEmotionModel(cfg))
    r = _cli("--stream", "--duration", "5", "--config", "demo_synthetic", "--checkpoint",
             str(ckpt), "--no-record")  # fmt: skip
    assert r.returncode == 1
    assert "the model takes 19 EEG channels" in r.stderr and "Traceback" not in r.stderr
