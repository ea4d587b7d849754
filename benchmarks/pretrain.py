"""Pretraining throughput: our loop (``physio_live.trainer.pretrain``) vs a naive loop, same run.

Both train the same encoder (same config, same initial weights) on the same preprocessed corpus
(the ECG smoke corpus from ``../shared/data``) with the same dual masking and AdamW. The naive
loop is what one writes first: read the batch from the cache and build the mask in the training
thread, float32, no ``torch.compile``, ``loss.item()`` every step, ``zero_grad()``. Ours reads
ahead in a background thread, keeps the loss on the device until a log step, and uses autocast
(bf16) and fused AdamW on CUDA. Samples/s are measured after a few warm-up steps.

    python benchmarks/pretrain.py                     # CPU, the smoke encoder
    python benchmarks/pretrain.py --model base --steps 20 --batch 16
    python benchmarks/pretrain.py --device cuda       # ours with bf16 autocast vs naive fp32

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from physio_live.trainer import (
    Corpus,
    build_cache,
    build_model,
    load_pretrain_config,
    make_mask,
    masked_mse,
    pretrain,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BASE = ["model.embed_dim=200", "model.depth=12", "model.num_heads=8", "model.mlp_dim=800"]


def naive(cfg, corpus: Corpus, steps: int, warm: int, device: torch.device) -> float:
    torch.manual_seed(cfg.run.seed)
    model, _ = build_model(cfg)
    model.to(device).train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    train, _ = corpus.split(cfg.data.val_records)
    g = torch.Generator().manual_seed(0)
    bs = cfg.optim.batch_size
    t0 = 0.0
    for step in range(steps + warm):
        if step == warm:
            t0 = time.perf_counter()
        idx = train[torch.randint(len(train), (bs,), generator=g).numpy()]
        x = torch.from_numpy(corpus.get(idx)).to(device)
        mb = make_mask(tuple(x.shape[:3]), cfg.masking, g)
        mask = mb.mask.to(device)
        loss = masked_mse(model(x, mask), x, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["smoke", "base"], default="smoke")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    warm = max(3, args.steps // 10)
    with tempfile.TemporaryDirectory() as tmp:
        over = [
            f"data.root={args.data}",
            f"data.cache_dir={tmp}/cache",
            f"run.out_dir={tmp}/run",
            f"optim.batch_size={args.batch}",
            f"optim.steps={args.steps + warm}",
            f"run.device={args.device}",
            "run.eval_every=1000000",
            "run.ckpt_every=1000000",
            "run.log_every=1000000",
            "model.drop_rate=0.0",
        ] + (BASE if args.model == "base" else [])
        cfg = load_pretrain_config(ROOT / "configs/pretrain_ecg_smoke.yaml", over)
        corpus = Corpus(build_cache(cfg.data, progress=False))
        device = torch.device("cuda" if args.device == "cuda" else "cpu")
        naive_sps = naive(cfg, corpus, args.steps, warm, device)
        res = pretrain(cfg, progress=False)  # its samples/s skip the first 3 steps
        ours_sps = res.samples_per_s
    out = {
        "benchmark": "pretrain",
        "model": args.model,
        "device": args.device,
        "precision_ours": "bf16" if args.device == "cuda" else "fp32",
        "sample_shape": list(corpus.sample_shape),
        "batch": args.batch,
        "steps": args.steps,
        "ours_samples_per_s": round(ours_sps, 1),
        "naive_samples_per_s": round(naive_sps, 1),
        "speedup": round(ours_sps / naive_sps, 3),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(out))
    print(f"{'loop':<8}{'samples/s':>12}")
    print(f"{'naive':<8}{naive_sps:>12.1f}")
    print(f"{'ours':<8}{ours_sps:>12.1f}   x{ours_sps / naive_sps:.2f}")


if __name__ == "__main__":
    main()
