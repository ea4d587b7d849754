"""The pretraining loop: masked reconstruction with a CBraMod encoder, single process or torchrun.

- **Distributed**: under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the loop wraps the model in
  DDP (NCCL on CUDA, gloo on CPU); rank 0 alone logs, evaluates into files and saves. The global
  batch is ``batch_size x world_size x accum_steps``.
- **Determinism**: the batch order, the masks and the learning rate are pure functions of the step
  (seeded generators, no iterator state), and the checkpoint holds every rank's RNG state for
  dropout, so ``--resume`` continues exactly where the interrupted run was.
- **Checkpoints** (``<out_dir>/checkpoint.pt``): model (uncompiled, unwrapped), optimizer, grad
  scaler, step, every rank's RNG state; written to a temp file, fsynced and ``os.replace``d; read
  with ``torch.load(weights_only=True)``.
- **Outputs**: ``train.csv`` and ``eval.csv`` (TensorBoard too when installed), a progress line,
  and at the end ``encoder.safetensors`` in the app's checkpoint format
  (:func:`physio_live.models.save_checkpoint`) plus ``summary.json``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from physio_live.models import (
    CBraMod,
    CheckpointError,
    ModalityConfig,
    Provenance,
    checkpoint_filter_fn,
    config_from_official,
    load_checkpoint,
    load_strict,
    read_state_dict,
    resolve_checkpoint,
    save_checkpoint,
)

from ._batches import BatchPlan, MixSource, batches, record_weights
from ._config import DataConfig, OptimConfig, PretrainConfig, TrainError
from ._corpus import Corpus, build_cache, cache_path
from ._masking import MaskBatch, baseline_interp, make_mask, masked_mse
from ._progress import Progress, format_seconds
from ._schedule import pick_train_device, warmup_cosine_lr

__all__ = [
    "BatchPlan",
    "DistInfo",
    "PretrainResult",
    "build_model",
    "evaluate",
    "lr_at",
    "prepare_corpus",
    "pretrain",
]

STATE_FORMAT = "physio-train-state"
_TRAIN_COLS = ["step", "epoch", "lr", "loss", "grad_norm", "samples_per_s", "elapsed_s"]
_EVAL_COLS = ["step", "n_samples"] + [
    f"{what}{part}" for part in ("", "_intra", "_inter") for what in ("mse", "zeros", "interp")
]


def lr_at(step: int, cfg: OptimConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to
    ``min_lr`` at ``cfg.steps``."""
    return warmup_cosine_lr(
        step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps, steps=cfg.steps
    )


# --------------------------------------------------------------------------------------------------
# Processes and devices
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _setup_distributed(device_pref: str) -> tuple[DistInfo, bool]:
    """Read torchrun's environment; start the process group. Returns (info, we_started_it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = pick_train_device(device_pref, "run.device")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    started = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        started = True
    return DistInfo(rank, world, local, device), started


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


def build_model(cfg: PretrainConfig) -> tuple[CBraMod, tuple[str, ...]]:
    """The encoder with its reconstruction head; returns (model, parent checkpoints)."""
    m = cfg.model
    if m.init == "random":
        try:
            model = CBraMod(
                patch_size=cfg.data.patch_size,
                embed_dim=m.embed_dim,
                depth=m.depth,
                num_heads=m.num_heads,
                mlp_dim=m.mlp_dim,
                pos_kernel=tuple(m.pos_kernel),  # type: ignore[arg-type]
                out_dim=cfg.data.patch_size,
                drop_rate=m.drop_rate,
            )
        except ValueError as exc:
            raise TrainError(f"model: {exc}") from None
        return model, ()
    try:
        path = resolve_checkpoint(m.init)  # a file, or a shipped name such as ``ecg-ludb``
        if path.suffix == ".safetensors":
            ck = load_checkpoint(path)
            if not isinstance(ck.model, CBraMod):
                raise TrainError(f"model.init {path} holds a {ck.kind}, not a CBraMod encoder")
            sd = ck.model.state_dict()
            conf = ck.model.config
        else:
            sd = read_state_dict(path)
            conf = config_from_official(sd, num_heads=m.num_heads)
        if conf.out_dim != cfg.data.patch_size:
            raise TrainError(
                f"model.init {path} has no reconstruction head (proj_out) of width "
                f"{cfg.data.patch_size}; start from a checkpoint saved with its head"
            )
        model = CBraMod.from_config(replace(conf, drop_rate=m.drop_rate))
        load_strict(model, checkpoint_filter_fn(sd, model), what=str(path))
    except CheckpointError as exc:
        raise TrainError(f"model.init: {exc}") from None
    return model, (str(path),)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def _amp(cfg: PretrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    prec = cfg.run.precision
    if prec == "auto":
        prec = "bf16" if device.type == "cuda" else "fp32"
    if prec == "fp16" and device.type != "cuda":
        raise TrainError("run.precision fp16 needs CUDA; use fp32 (or bf16) on CPU")
    return prec != "fp32", {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec, torch.float32)


def _autocast(device: torch.device, amp: bool, dtype: torch.dtype) -> Any:
    """Autocast when mixed precision is on; nothing at all otherwise (fp32)."""
    return torch.autocast(device.type, dtype=dtype) if amp else contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    corpus: Corpus,
    val_idx: np.ndarray,
    cfg: PretrainConfig,
    info: DistInfo | None = None,
) -> dict[str, float]:
    """Masked MSE of the model and of the two baselines on the validation split.

    Masks come from a fixed seed, so every evaluation (and every baseline) sees the same masks.
    Work is spread over ranks and summed. Keys: ``mse``, ``zeros``, ``interp`` and the same with
    ``_intra``/``_inter`` suffixes (NaN when no sample of that mode), ``n_samples``.
    """
    info = info or DistInfo()
    was_training = model.training
    model.eval()
    amp, dtype = _amp(cfg, info.device)
    bs = cfg.optim.batch_size
    n_batches = math.ceil(len(val_idx) / bs)
    if cfg.run.eval_batches:
        n_batches = min(n_batches, cfg.run.eval_batches)
    # sums[mode][what] = (squared error, count); mode 0 intra, 1 inter
    sums = torch.zeros(2, 3, 2, dtype=torch.float64)
    n = 0
    masking = replace(cfg.masking, intra_aligned=0.0)  # the paper's masks, always
    for j in range(info.rank, n_batches, info.world):
        idx = val_idx[j * bs : (j + 1) * bs]
        x = torch.from_numpy(corpus.get(idx))
        g = torch.Generator().manual_seed(cfg.run.seed + 7919 * (j + 1))
        mb = make_mask((x.shape[0], x.shape[1], x.shape[2]), masking, g)
        sums += masked_error_sums(model, x, mb, info.device, amp, dtype)
        n += len(idx)
    if info.distributed:
        t = torch.cat([sums.flatten(), torch.tensor([float(n)], dtype=torch.float64)])
        t = t.to(info.device) if info.device.type == "cuda" else t
        dist.all_reduce(t)
        t = t.cpu()
        sums, n = t[:-1].view(2, 3, 2), int(t[-1].item())
    model.train(was_training)
    return {"n_samples": float(n), **error_sums_to_mse(sums)}


def masked_error_sums(
    model: nn.Module,
    x: Tensor,
    mb: MaskBatch,
    device: torch.device,
    amp: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Squared errors and counts over the hidden samples of one batch, for the model, zeros
    and interp: ``[mode (0 intra, 1 inter), what (model, zeros, interp), (sum, count)]``."""
    sums = torch.zeros(2, 3, 2, dtype=torch.float64)
    xd, md = x.to(device), mb.mask.to(device)
    with _autocast(device, amp, dtype):
        pred = model(xd, md)
    preds = [pred.float().cpu(), torch.zeros_like(x), baseline_interp(x, mb)]
    m = mb.mask.unsqueeze(-1).double()
    cnt = m.sum(dim=(1, 2, 3)) * x.shape[-1]
    for w, p in enumerate(preds):
        se = (((p.double() - x.double()) ** 2) * m).sum(dim=(1, 2, 3))
        for mode in (0, 1):
            sel = mb.inter == bool(mode)
            sums[mode, w, 0] += se[sel].sum()
            sums[mode, w, 1] += cnt[sel].sum()
    return sums


def error_sums_to_mse(sums: Tensor) -> dict[str, float]:
    """``mse``, ``zeros``, ``interp`` and the same with ``_intra``/``_inter`` (NaN when no
    sample of that mode) from :func:`masked_error_sums` totals."""
    out: dict[str, float] = {}
    for w, what in enumerate(("mse", "zeros", "interp")):
        tot = sums[:, w].sum(dim=0)
        out[what] = float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")
        for mode, part in ((0, "_intra"), (1, "_inter")):
            se, c = sums[mode, w]
            out[f"{what}{part}"] = float(se / c) if c > 0 else float("nan")
    return out


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def _gather_rng(info: DistInfo) -> list[Tensor]:
    state = torch.get_rng_state()
    if not info.distributed:
        return [state]
    states: list[Any] = [None] * info.world
    dist.all_gather_object(states, state)
    return states


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or foreign file
        raise TrainError(
            f"{path}: cannot read the training checkpoint ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:160]}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainError(f"{path} is not a physio-train checkpoint; delete it or pick another")
    return state


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


class _Metrics:
    """CSV files (and TensorBoard when available) written by the master process."""

    def __init__(
        self, out: Path, mode: str, resume_step: int | None, enabled: bool, n_mix: int = 0
    ) -> None:
        self.enabled = enabled
        self.files = {"train": out / "train.csv", "eval": out / "eval.csv"}
        mix_cols = [f"mix{i}_{c}" for i in range(1, n_mix + 1) for c in _EVAL_COLS[1:]]
        self.cols = {"train": _TRAIN_COLS, "eval": _EVAL_COLS + mix_cols}
        self.tb: Any = None
        if not enabled:
            return
        for name, f in self.files.items():
            rows: list[dict[str, str]] = []
            if resume_step is not None and f.is_file():
                with f.open(newline="") as fh:
                    rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
            with f.open("w", newline="") as fh:
                w = csv.DictWriter(fh, self.cols[name])
                w.writeheader()
                w.writerows(rows)
        if mode != "off":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                if mode == "on":
                    raise TrainError(
                        "run.tensorboard is on but tensorboard is not installed: "
                        "pip install tensorboard, or set run.tensorboard=auto"
                    ) from None
            else:
                self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step)

    def write(self, name: str, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.files[name].open("a", newline="") as fh:
            csv.DictWriter(fh, self.cols[name]).writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"{name}/{k}", v, int(row["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


@dataclass
class PretrainResult:
    """What a run did: steps, final validation numbers, throughput, where the files are."""

    out_dir: Path
    step: int
    finished: bool
    encoder: Path | None
    eval: dict[str, float]
    samples_per_s: float
    train_seconds: float
    cache: Path


def prepare_corpus(
    cfg: PretrainConfig, info: DistInfo, log: Any, data: DataConfig | None = None
) -> Corpus:
    """Build the cache of ``data`` (the recipe's by default) on local rank 0 of each node, or
    wait for it (the other ranks)."""
    data = data or cfg.data
    if info.local_rank == 0:
        path = build_cache(data, progress=info.master, log=log)
    else:
        path = cache_path(data)
        while not (path / "manifest.json").is_file():
            time.sleep(1.0)
    return Corpus(path)


def _source(
    cfg: PretrainConfig, info: DistInfo, log: Any, data: DataConfig, seed: int
) -> tuple[Corpus, np.ndarray, np.ndarray, BatchPlan]:
    """One corpus of a run (the recipe's ``data`` or a ``mix`` item's): its cache, train and
    validation samples, and the plan of its batches."""
    corpus = prepare_corpus(cfg, info, log, data)
    train_idx, val_idx = corpus.split(
        data.val_records, data.val_fraction, data.patient_regex, data.split
    )
    o = cfg.optim
    weights = record_weights(corpus, train_idx, data.balance)
    plan = BatchPlan(train_idx, o.batch_size, info.world, o.accum_steps, seed, weights)
    return corpus, train_idx, val_idx, plan


def _log(info: DistInfo, quiet: bool):
    def log(msg: str) -> None:
        if info.master and not quiet:
            print(msg, file=sys.stderr, flush=True)

    return log


def pretrain(cfg: PretrainConfig, *, resume: bool = False, progress: bool = True) -> PretrainResult:
    """Run (or resume) the pretraining that ``cfg`` describes; see the module docstring."""
    info, started = _setup_distributed(cfg.run.device)
    try:
        result = _pretrain(cfg, info, resume=resume, progress=progress)
        if started:
            # Rank 0 is still exporting when the others finish; a rank that tears its gloo
            # group down while a peer is busy can abort at exit, so all ranks leave together.
            dist.barrier()
        return result
    finally:
        if started:
            dist.destroy_process_group()


def _pretrain(
    cfg: PretrainConfig, info: DistInfo, *, resume: bool, progress: bool
) -> PretrainResult:
    log = _log(info, quiet=not progress)
    out = Path(cfg.run.out_dir).expanduser()
    ckpt_path = out / "checkpoint.pt"
    if info.master:
        out.mkdir(parents=True, exist_ok=True)
    corpus, train_idx, val_idx, plan = _source(cfg, info, log, cfg.data, cfg.run.seed)
    o = cfg.optim
    log(
        f"pretrain {cfg.modality}: {len(train_idx)} train / {len(val_idx)} validation samples "
        f"of shape {corpus.sample_shape}; {info.world} process(es) on {info.device}; global "
        f"batch {plan.per_step}; {o.steps} steps ({o.steps / plan.steps_per_epoch:.1f} epochs)"
    )
    mixes: list[MixSource] = []
    for i, (share, data, masking, augment) in enumerate(cfg.mixed(), start=1):
        try:
            c, tr, va, p = _source(cfg, info, log, data, cfg.run.seed + 7 * i)
        except TrainError as exc:
            raise TrainError(f"mix[{i - 1}] ({data.root}): {exc}") from None
        mixes.append(MixSource(share, c, p, va, data, masking, augment))
        log(
            f"mix{i}: {len(tr)} train / {len(va)} validation samples of shape {c.sample_shape} "
            f"from {data.root}; {share:.0%} of the steps"
        )

    torch.manual_seed(cfg.run.seed)
    raw, parents = build_model(cfg)
    raw.to(info.device)
    decay = [p for p in raw.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in raw.parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": o.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=o.lr,
        betas=(o.betas[0], o.betas[1]),
        fused=info.device.type == "cuda",
    )
    amp, amp_dtype = _amp(cfg, info.device)
    scaler = torch.amp.GradScaler(info.device.type, enabled=amp and amp_dtype == torch.float16)
    step = 0
    torch.manual_seed(cfg.run.seed + 1 + info.rank)  # dropout streams differ between ranks
    if resume:
        if not ckpt_path.is_file():
            raise TrainError(f"--resume: no checkpoint at {ckpt_path}; run without --resume")
        state = _load_state(ckpt_path)
        try:
            load_strict(raw, state["model"], what=str(ckpt_path))
        except CheckpointError as exc:
            raise TrainError(f"--resume: {exc}") from None
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        rngs = state["rng"]
        if len(rngs) == info.world:
            torch.set_rng_state(rngs[info.rank])
        else:
            log(f"resume: saved with {len(rngs)} processes, now {info.world}: dropout reseeded")
            torch.manual_seed(cfg.run.seed + 1 + info.rank + 1_000 * step)
        if info.device.type == "cuda" and state.get("cuda_rng") is not None:
            cuda_rngs = state["cuda_rng"]
            if len(cuda_rngs) == info.world:
                torch.cuda.set_rng_state(cuda_rngs[info.rank])
        log(f"resume: continuing from step {step} ({ckpt_path})")
        if step >= o.steps:
            log(f"resume: the run already reached optim.steps={o.steps}")

    model: nn.Module = torch.compile(raw) if cfg.run.compile else raw
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None
        )
    metrics = _Metrics(
        out, cfg.run.tensorboard, step if resume else None, info.master, n_mix=len(mixes)
    )
    if info.master:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    def save(at: int) -> None:
        rng = _gather_rng(info)
        cuda_rng = None
        if info.device.type == "cuda":
            cuda_state = torch.cuda.get_rng_state()
            if info.distributed:
                cuda_rng = [None] * info.world
                dist.all_gather_object(cuda_rng, cuda_state)
            else:
                cuda_rng = [cuda_state]
        if info.master:
            _save_state(
                ckpt_path,
                {
                    "format": STATE_FORMAT,
                    "version": 1,
                    "step": at,
                    "model": raw.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng,
                    "cuda_rng": cuda_rng,
                    "world_size": info.world,
                    "config": json.dumps(cfg.to_dict()),
                },
            )

    stop = o.steps
    if cfg.run.stop_after is not None:
        stop = min(stop, step + cfg.run.stop_after)
    bar = Progress(o.steps, "pretrain", "steps", start=step, enabled=info.master and progress)
    model.train()
    last_eval: dict[str, float] = {}
    t_start = time.perf_counter()
    t_window, n_window, loss_acc, loss_n = time.perf_counter(), 0, torch.zeros(()), 0
    timed_samples, timed_seconds = 0, 0.0
    warm_steps = min(3, max(0, (stop - step) // 5))
    gn = torch.zeros(())
    n_done = step
    t_step = time.perf_counter()
    for s, micro, x, mb in batches(corpus, plan, cfg, info, step, stop, mixes):
        if micro == 0:
            for g in opt.param_groups:
                g["lr"] = lr_at(s, o)
        x = x.to(info.device, non_blocking=True)
        mask = mb.mask.to(info.device, non_blocking=True)
        last = micro == o.accum_steps - 1
        sync = model.no_sync() if info.distributed and not last else contextlib.nullcontext()
        with sync:
            with _autocast(info.device, amp, amp_dtype):
                pred = model(x, mask)
            loss = masked_mse(pred, x, mask) / o.accum_steps
            scaler.scale(loss).backward()
        loss_acc = loss_acc + loss.detach().float().cpu()
        if not last:
            continue
        scaler.unscale_(opt)
        if o.grad_clip > 0:
            gn = nn.utils.clip_grad_norm_(raw.parameters(), o.grad_clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        n_done = s + 1
        loss_n += 1
        n_window += plan.per_step
        now_step = time.perf_counter()
        if n_done - step > warm_steps:  # wall clock between step ends: data waits included
            timed_samples += plan.per_step
            timed_seconds += now_step - t_step
        t_step = now_step
        if n_done % cfg.run.log_every == 0 or n_done == stop:
            mean_loss = loss_acc / max(loss_n, 1)
            if info.distributed:
                dist.all_reduce(mean_loss)
                mean_loss /= info.world
            now = time.perf_counter()
            sps = n_window / max(now - t_window, 1e-9)
            row = {
                "step": n_done,
                "epoch": plan.epoch(s),
                "lr": lr_at(s, o),
                "loss": float(mean_loss),
                "grad_norm": float(gn),
                "samples_per_s": sps,
                "elapsed_s": now - t_start,
            }
            metrics.write("train", row)
            bar.update(
                n_done - bar.done,
                f"loss {row['loss']:.4g} | lr {row['lr']:.2e} | {sps:.1f} samples/s",
                force=n_done == stop,
            )
            t_window, n_window, loss_acc, loss_n = now, 0, torch.zeros(()), 0
        want_eval = n_done % cfg.run.eval_every == 0 or n_done == o.steps
        if want_eval and len(val_idx):
            last_eval = evaluate(raw, corpus, val_idx, cfg, info)
            msg = (
                f"\neval step {n_done}: masked MSE {last_eval['mse']:.4g} | zeros "
                f"{last_eval['zeros']:.4g} | interp {last_eval['interp']:.4g}"
            )
            for i, m in enumerate(mixes, start=1):
                if len(m.val_idx):
                    r = evaluate(raw, m.corpus, m.val_idx, replace(cfg, masking=m.masking), info)
                    last_eval.update({f"mix{i}_{k}": v for k, v in r.items()})
                    msg += f" || mix{i}: {r['mse']:.4g} | zeros {r['zeros']:.4g}"
            metrics.write("eval", {"step": n_done, **last_eval})
            log(msg)
        if n_done % cfg.run.ckpt_every == 0 or n_done == stop:
            save(n_done)
    bar.close()
    metrics.close()
    finished = n_done >= o.steps
    encoder = None
    if finished and info.master:
        sources = [(cfg.data, corpus), *((m.data, m.corpus) for m in mixes)]
        encoder = _export(cfg, raw, sources, parents, out, n_done, last_eval)
    sps = timed_samples / timed_seconds if timed_seconds > 0 else float("nan")
    if info.master:
        summary = {
            "step": n_done,
            "finished": finished,
            "steps_per_s": sps / plan.per_step if sps == sps else None,
            "samples_per_s": sps,
            "train_seconds": time.perf_counter() - t_start,
            "eval": last_eval,
            "encoder": str(encoder) if encoder else None,
            "cache": str(corpus.path),
            "world_size": info.world,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        took = format_seconds(time.perf_counter() - t_start)
        log(f"pretrain: {'done' if finished else 'stopped'} at step {n_done} in {took}")
    return PretrainResult(
        out, n_done, finished, encoder, last_eval, sps, time.perf_counter() - t_start, corpus.path
    )


def _export(
    cfg: PretrainConfig,
    raw: CBraMod,
    sources: list[tuple[DataConfig, Corpus]],
    parents: tuple[str, ...],
    out: Path,
    step: int,
    last_eval: dict[str, float],
) -> Path:
    """The encoder in the app's checkpoint format (with its reconstruction head)."""
    channels: tuple[str, ...] = tuple(cfg.data.channels or ())
    if cfg.data.channels and len(cfg.data.channels) != cfg.data.n_channels:
        channels = ()  # a priority list: the order differs between records
    modality = ModalityConfig(
        name=cfg.modality,
        channels=channels,
        n_patches=cfg.data.sample_patches,
        sampling_rate=cfg.data.rate,
        patch_size=cfg.data.patch_size,
        units="uV",
        scale=1.0 / cfg.data.unit_uv,
        encoder=raw.config,
    )
    objective = (
        "ECG dual masking (intra-/inter-lead)"
        if cfg.masking.kind == "dual"
        else "CBraMod masked-patch reconstruction"
    )
    notes = (
        f"{step} steps; validation masked MSE {last_eval.get('mse', float('nan')):.4g}; model "
        f"input = microvolts x {1 / cfg.data.unit_uv:g} ({cfg.data.unit_uv:g} uV per unit)"
    )
    prov = Provenance(
        trained=True,
        source=f"physio-train self-supervised pretraining: {objective}",
        parents=parents,
        datasets=tuple(
            item
            for data, c in sources  # the recipe's corpus, then each mix item's
            for item in (str(Path(data.root).expanduser().resolve()), f"cache {c.path.name}")
        ),
        notes=notes,
    )
    raw = raw.to("cpu")
    return save_checkpoint(out / "encoder.safetensors", raw, provenance=prov, modality=modality)
