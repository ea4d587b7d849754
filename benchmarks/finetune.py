"""Fine-tuning cost: time per training step of the fused model, and the run time of a recipe.

The DREAMER recipe (``configs/finetune_dreamer.yaml``) trains a fixed number of steps per
(protocol x fold x modality), so its run time hardly depends on how long the recordings are:
trainings x steps x time per step, plus (probe mode) one pass of the frozen encoders over every
window. This script measures, on this machine, what one step costs with the recipe's own model
(two 12-layer CBraMod encoders, DREAMER's 14 EEG channels and 2 ECG leads, 4-s windows, the
recipe's batch size) for each modality variant (EEG only, ECG only, fused: forward, backward,
gradient clipping, AdamW), and the frozen encoders' throughput in windows/s; then it projects the
recipe's run time: k-fold folds + 23 leave-one-subject-out folds, times the modalities, plus the
final fused model.

    python benchmarks/finetune.py                        # CPU, the shipped recipe
    python benchmarks/finetune.py --device cuda          # on a GPU (bf16 is not used here)
    python benchmarks/finetune.py --windows 20000        # probe: embed this many windows

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from physio_live.models import FusedEmotionConfig, FusedEmotionModel
from physio_live.trainer import load_finetune_config

ROOT = Path(__file__).resolve().parents[1]
DREAMER_SUBJECTS = 23


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def step_seconds(mod: str, batch: int, steps: int, warm: int, dev: torch.device) -> float:
    """Mean seconds per full fine-tuning step with modality ``mod`` present."""
    torch.manual_seed(0)
    model = FusedEmotionModel(FusedEmotionConfig()).to(dev).train()
    cfg = model.config
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    loss_fn = nn.BCEWithLogitsLoss()
    eeg = torch.randn(batch, len(cfg.eeg.channels), cfg.eeg.n_patches, cfg.eeg.patch_size)
    ecg = torch.randn(batch, len(cfg.ecg.channels), cfg.ecg.n_patches, cfg.ecg.patch_size)
    y = (torch.rand(batch, len(cfg.targets)) > 0.5).float().to(dev)
    eeg, ecg = eeg.to(dev), ecg.to(dev)
    on = torch.ones(batch, dtype=torch.bool, device=dev)
    t0 = 0.0
    for i in range(warm + steps):
        if i == warm:
            _sync(dev)
            t0 = time.perf_counter()
        e = eeg if mod in ("eeg", "fused") else None
        c = ecg if mod in ("ecg", "fused") else None
        logits = model(
            e,
            c,
            eeg_present=on if e is not None else None,
            ecg_present=on if c is not None else None,
        )
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    _sync(dev)
    return (time.perf_counter() - t0) / steps


@torch.no_grad()
def embed_windows_per_s(batch: int, n: int, dev: torch.device) -> float:
    """Windows/s of both frozen encoders (probe mode embeds every window once)."""
    torch.manual_seed(0)
    model = FusedEmotionModel(FusedEmotionConfig()).to(dev).eval()
    cfg = model.config
    eeg = torch.randn(batch, len(cfg.eeg.channels), cfg.eeg.n_patches, cfg.eeg.patch_size).to(dev)
    ecg = torch.randn(batch, len(cfg.ecg.channels), cfg.ecg.n_patches, cfg.ecg.patch_size).to(dev)
    model.eeg_encoder.forward_features(eeg)  # warm-up
    model.ecg_encoder.forward_features(ecg)
    _sync(dev)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        model.eeg_encoder.forward_features(eeg).mean(dim=(1, 2))
        model.ecg_encoder.forward_features(ecg).mean(dim=(1, 2))
        done += batch
    _sync(dev)
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "finetune_dreamer.yaml"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per modality")
    ap.add_argument("--warm", type=int, default=1)
    ap.add_argument("--embed", type=int, default=256, help="windows embedded for the timing")
    ap.add_argument("--windows", type=int, default=10_000, help="windows in the data set (probe)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cfg = load_finetune_config(args.config)
    t = cfg.train
    mods = list(cfg.eval.modalities)
    per_step = {m: step_seconds(m, t.batch_size, args.steps, args.warm, dev) for m in mods}
    wps = embed_windows_per_s(t.eval_batch_size, args.embed, dev)
    folds = 0
    for proto in cfg.eval.protocols:
        folds += cfg.eval.folds if proto == "kfold" else DREAMER_SUBJECTS
    final = "fused" if "fused" in mods else mods[0]
    full_s = folds * t.steps * sum(per_step.values())
    if cfg.eval.final_model:
        full_s += t.steps * per_step[final]
    trainings = folds * len(mods) + int(cfg.eval.final_model)
    result = {
        "benchmark": "finetune",
        "device": str(dev),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": args.threads,
        "recipe": Path(args.config).name,
        "batch_size": t.batch_size,
        "steps_per_training": t.steps,
        "trainings": trainings,
        "step_s": {m: round(v, 3) for m, v in per_step.items()},
        "embed_windows_per_s": round(wps, 1),
        "full_finetune_hours": round(full_s / 3600, 1),
        "probe_embed_minutes": round(args.windows / wps / 60, 1),
        "probe_windows": args.windows,
    }
    print(json.dumps(result))
    print(f"{'modality':>9} {'s/step':>8} {'trainings':>10} {'hours':>7}")
    for m, v in per_step.items():
        n = folds + (1 if cfg.eval.final_model and m == final else 0)
        print(f"{m:>9} {v:>8.3f} {n:>10} {n * t.steps * v / 3600:>7.1f}")
    print(
        f"full fine-tuning of the recipe: {trainings} trainings x {t.steps} steps = "
        f"{result['full_finetune_hours']} h on {dev}; probe: frozen encoders embed "
        f"{wps:.0f} windows/s ({result['probe_embed_minutes']} min for {args.windows} windows), "
        "head steps are negligible"
    )


if __name__ == "__main__":
    main()
