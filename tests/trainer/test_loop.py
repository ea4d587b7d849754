"""Learning-rate schedule, configs, CLI, checkpoint/resume, export, and torchrun (2 processes)."""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from physio_live.core import ConfigError
from physio_live.models import CBraMod, load_checkpoint
from physio_live.trainer import OptimConfig, load_pretrain_config, lr_at, pretrain
from physio_live.trainer.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_lr_schedule_is_warmup_then_cosine():
    o = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, steps=110)
    lrs = [lr_at(s, o) for s in range(o.steps)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in itertools.pairwise(lrs[:10]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lrs[60] == pytest.approx((1e-3 + 1e-5) / 2)  # half way through the cosine
    assert lr_at(o.steps, o) == pytest.approx(1e-5) and lr_at(10 * o.steps, o) == 1e-5
    assert lr_at(0, OptimConfig(lr=1e-3, warmup_steps=0, steps=10)) == pytest.approx(1e-3)


def test_shipped_configs_load():
    for name in ("pretrain_ecg", "pretrain_eeg", "pretrain_ecg_smoke", "pretrain_eeg_smoke"):
        cfg = load_pretrain_config(ROOT / "configs" / f"{name}.yaml")
        assert cfg.modality in ("ecg", "eeg")
    cfg = load_pretrain_config(ROOT / "configs/pretrain_ecg_smoke.yaml", ["optim.lr=3e-4"])
    assert cfg.optim.lr == 3e-4 and cfg.masking.kind == "dual"
    # the single-lead adaptation never trains on the eegmat test subjects (32-35)
    one = load_pretrain_config(ROOT / "configs/pretrain_ecg_eegmat.yaml")
    assert one.data.n_channels == 1 and one.masking.inter_prob == 0.0
    subjects = [f"Subject{i:02d}_{k}" for i in range(36) for k in (1, 2)]
    train = {s for s in subjects for p in one.data.split.train if fnmatch.fnmatch(s, p)}
    assert train == {s for s in subjects if int(s[7:9]) <= 27}
    # ... nor does the mixed recipe's eegmat half; its LUDB half keeps the LUDB split
    mixed = load_pretrain_config(ROOT / "configs/pretrain_ecg_mixed.yaml")
    ((share, data, masking, _augment),) = mixed.mixed()
    assert (
        mixed.data.split == load_pretrain_config(ROOT / "configs/pretrain_ecg_ludb.yaml").data.split
    )
    assert (share, data.n_channels, masking.inter_prob) == (0.5, 1, 0.0)
    assert data.split.train == one.data.split.train and data.split.test == one.data.split.test


@pytest.mark.parametrize(
    ("override", "text"),
    [
        ("optim.lrr=1", "optim.lrr: unknown key; did you mean 'lr'?"),
        ("masking.kind=block", "masking.kind: expected one of 'patch', 'dual'"),
        ("masking.ratio=1.5", "masking.ratio: must be in [0, 1]"),
        ("data.bandpass=[0.5, 120]", "below 100.0 Hz"),
        ("data.n_channels=1", "inter-lead masking needs data.n_channels >= 2"),
    ],
)
def test_config_errors_are_one_clear_line(override, text):
    with pytest.raises(ConfigError, match=None) as e:
        load_pretrain_config(ROOT / "configs/pretrain_ecg_smoke.yaml", [override])
    assert text in str(e.value) and "\n" not in str(e.value)


def test_cli_errors_and_stubs(capsys, tmp_path):
    assert main(["pretrain", "--config", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("physio-train: error: ") and err.count("\n") == 1
    cfg = ROOT / "configs/pretrain_ecg_smoke.yaml"
    rc = main(["pretrain", "--config", str(cfg), "--set", f"data.root={tmp_path / 'none'}"])
    assert rc == 1 and "is not a folder" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["pretrain", "--config", str(cfg), "--resume", "--set", f"run.out_dir={out}"]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["finetune", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_resume_reaches_the_same_weights(tiny_config, tmp_path):
    full = pretrain(tiny_config(run={"out_dir": str(tmp_path / "full")}), progress=False)
    assert full.finished and full.step == 8
    part = tiny_config(run={"out_dir": str(tmp_path / "part"), "stop_after": 5})
    first = pretrain(part, progress=False)
    assert not first.finished and first.step == 5 and first.encoder is None
    state = _weights(tmp_path / "part")
    assert state["step"] == 5 and len(state["rng"]) == 1
    second = pretrain(part, resume=True, progress=False)
    assert second.finished and second.step == 8
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert torch.equal(a["rng"][0], b["rng"][0])
    # metrics of the steps redone after the checkpoint are not duplicated
    steps = [int(r.split(",")[0]) for r in (tmp_path / "part/train.csv").read_text().split()[1:]]
    assert steps == [2, 4, 5, 6, 8]
    assert full.eval["mse"] == second.eval["mse"]


def test_export_loads_in_the_app_format(tiny_config):
    res = pretrain(tiny_config(optim={"steps": 2}), progress=False)
    ck = load_checkpoint(res.encoder)
    assert ck.kind == "cbramod_encoder" and isinstance(ck.model, CBraMod)
    assert ck.provenance.trained and "dual masking" in ck.provenance.source
    m = ck.config
    assert m.name == "ecg" and m.n_patches == 4 and m.scale == pytest.approx(0.01)
    assert m.encoder.embed_dim == 40 and m.encoder.depth == 1
    with torch.no_grad():
        emb = ck.model.forward_embedding(torch.randn(3, 2, 4, 200))
    assert emb.shape == (3, 40) and torch.isfinite(emb).all()
    summary = json.loads((res.out_dir / "summary.json").read_text())
    assert summary["finished"] and summary["encoder"] == str(res.encoder)


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tiny_config, tmp_path):
    cfg = tiny_config(raw=True, optim={"steps": 6, "batch_size": 4})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "physio_live.trainer.cli", "pretrain", "--config", str(path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(cfg["run"]["out_dir"])
    state = _weights(out)
    assert state["step"] == 6 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0], state["rng"][1])  # each rank its own dropout stream
    assert "2 process(es)" in proc.stderr and "global batch 8" in proc.stderr
    assert proc.stderr.count("pretrain ecg:") == 1  # only rank 0 logs
    rows = (out / "train.csv").read_text().split()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6"]
    assert load_checkpoint(out / "encoder.safetensors").kind == "cbramod_encoder"
    # resuming under torchrun with the same world size continues (nothing left to do here)
    proc = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0 and "continuing from step 6" in proc.stderr


def test_a_torchrun_worker_leaves_at_once_with_its_output_flushed(monkeypatch):
    """Under torchrun the CLI ends a finished worker with os._exit (gloo can abort in the
    interpreter's shutdown); alone, it returns the code."""
    from physio_live.trainer.cli import _leave_if_distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert _leave_if_distributed(7) == 7
    code = (
        "import sys; from physio_live.trainer.cli import _leave_if_distributed\n"
        "print('written'); sys.stderr.write('logged'); _leave_if_distributed(3)\n"
        "print('not reached')"
    )
    env = {**os.environ, "WORLD_SIZE": "2"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "written\n", "logged")


@pytest.mark.gpu
def test_pretrain_on_cuda_with_bf16_autocast(tiny_config):
    """The GPU path (bf16 autocast, fused AdamW) trains and exports; the export runs on the CPU."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    res = pretrain(
        tiny_config(optim={"steps": 30}, run={"device": "cuda", "precision": "auto"}),
        progress=False,
    )
    assert res.finished and res.step == 30
    rows = (res.out_dir / "train.csv").read_text().split()[1:]
    losses = [float(r.split(",")[3]) for r in rows]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    ck = load_checkpoint(res.encoder)
    assert next(ck.model.parameters()).device.type == "cpu"
    with torch.no_grad():
        emb = ck.model.forward_embedding(torch.randn(2, 2, 4, 200))
    assert torch.isfinite(emb).all()
