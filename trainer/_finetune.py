"""Fine-tuning and evaluation of the fused EEG + ECG emotion model (``physio-train finetune``).

Protocols (one model per fold and modality, all from the same initial weights):

- ``kfold``: subject-dependent k-fold, pooled over subjects. Each subject's trials (clip
  recordings) are dealt into k folds (``split_by: trial``; or ``split_by: clip``: the same films
  are held out for every subject), so a fold tests on clips it never trained on, from subjects it
  did see. No clip ever gives windows to both sides of a fold.
- ``loso``: leave-one-subject-out; the held-out subject is never seen in training.

Modality ablation in the same run: ``eeg`` (ECG absent), ``ecg`` (EEG absent) and ``fused``; an
absent modality goes through the model's missing-modality path (its learned "missing" embedding),
so every variant is the same :class:`~physio_live.models.FusedEmotionModel`.

Modes: ``probe`` freezes both encoders (their pooled embeddings are computed once; a linear head
with ``hidden_dims: []`` or an MLP head is trained per fold); ``finetune`` trains everything (the
encoders at ``lr x encoder_lr_scale``).

Metrics per target on held-out windows: accuracy, macro-F1 and AUROC (rank statistic), reported
as mean +/- std (ddof 0) over folds, next to a ``majority`` row (the training fold's majority
class: the chance level). Outputs in ``run.out_dir``: ``results.md``, ``results.csv`` (aggregate),
``folds.csv`` (every fold), ``summary.json``, and ``model.safetensors``: the fused model trained
on all the data with the same recipe, in the app's checkpoint format, its ``ModalityConfig`` s
recording channels, rate, patches and units exactly as trained and its provenance notes holding
the full preprocessing.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from physio_live.core import ConfigError
from physio_live.core._config import read_config_file
from physio_live.models import (
    CBraMod,
    CheckpointError,
    FusedEmotionConfig,
    FusedEmotionModel,
    Provenance,
    checkpoint_filter_fn,
    config_from_official,
    load_checkpoint,
    read_state_dict,
    save_checkpoint,
)
from physio_live.models._cbramod import load_strict

from ._config import TrainError, recipe_from_dict
from ._dreamer import FinetuneDataConfig, WindowSet, load_windows

__all__ = [
    "EncoderInit",
    "FinetuneConfig",
    "FinetuneModelConfig",
    "FinetuneTrainConfig",
    "Fold",
    "ProtocolConfig",
    "accuracy",
    "auroc",
    "binary_metrics",
    "finetune_config_from_dict",
    "kfold_splits",
    "load_finetune_config",
    "loso_splits",
    "macro_f1",
    "run_evaluate",
    "run_finetune",
]

Modality = Literal["eeg", "ecg", "fused"]


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------


@dataclass
class EncoderInit:
    """One encoder: random (architecture below) or weights from a checkpoint."""

    #: ``random``, our encoder ``.safetensors`` (e.g. from ``physio-train pretrain``) or an
    #: official CBraMod ``.pth``; a checkpoint fixes the architecture
    init: str = "random"
    embed_dim: int = 200
    depth: int = 12
    num_heads: int = 8
    mlp_dim: int = 800
    drop_rate: float = 0.1


@dataclass
class FinetuneModelConfig:
    eeg: EncoderInit = field(default_factory=EncoderInit)
    ecg: EncoderInit = field(default_factory=EncoderInit)
    pooling: Literal["mean", "flatten"] = "mean"
    #: head widths; ``[]`` is a linear head (a linear probe in ``probe`` mode)
    hidden_dims: list[int] = field(default_factory=lambda: [256])
    dropout: float = 0.1
    name: str = "cbramod-fusion"


@dataclass
class FinetuneTrainConfig:
    mode: Literal["probe", "finetune"] = "finetune"
    #: optimizer steps per model (per fold and modality, and for the final model)
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 50
    #: encoder learning rate = lr x this (``finetune`` mode)
    encoder_lr_scale: float = 0.1
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    #: weight positives by negatives/positives per target (class imbalance)
    balance: bool = True
    #: fused models: probability per window that one modality is hidden during training (trains
    #: the missing-modality path the app uses when a stream drops out)
    modality_dropout: float = 0.1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: batch size for computing embeddings and predictions
    eval_batch_size: int = 64


@dataclass
class ProtocolConfig:
    protocols: list[Literal["kfold", "loso"]] = field(default_factory=lambda: ["kfold", "loso"])
    folds: int = 5
    split_by: Literal["trial", "clip"] = "trial"
    modalities: list[Modality] = field(default_factory=lambda: ["eeg", "ecg", "fused"])
    #: run only the first this many folds of each protocol (null: all)
    max_folds: int | None = None
    #: train the fused model on all data and save it as ``model.safetensors``
    final_model: bool = True
    #: ``physio-train evaluate``: the fused checkpoint to evaluate
    checkpoint: str | None = None


@dataclass
class FinetuneRunConfig:
    out_dir: str = "runs/finetune"
    seed: int = 0
    #: torch CPU threads (null: torch's default)
    threads: int | None = None


@dataclass
class FinetuneConfig:
    """A fine-tuning / evaluation recipe (``configs/finetune_*.yaml``)."""

    data: FinetuneDataConfig
    model: FinetuneModelConfig = field(default_factory=FinetuneModelConfig)
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)
    eval: ProtocolConfig = field(default_factory=ProtocolConfig)
    run: FinetuneRunConfig = field(default_factory=FinetuneRunConfig)
    path: str = "<dict>"

    def validate(self) -> None:
        w = self.path
        self.data.validate(f"{w}: data")
        t, e = self.train, self.eval
        if t.steps < 1 or t.batch_size < 1 or t.eval_batch_size < 1 or t.warmup_steps < 0:
            raise ConfigError(f"{w}: train: steps, batch sizes must be >= 1, warmup_steps >= 0")
        if t.lr <= 0 or not 0 <= t.min_lr <= t.lr or t.encoder_lr_scale < 0:
            raise ConfigError(f"{w}: train: need lr > 0, 0 <= min_lr <= lr, encoder_lr_scale >= 0")
        if not 0 <= t.modality_dropout < 1:
            raise ConfigError(f"{w}: train.modality_dropout: must be in [0, 1)")
        if e.folds < 2:
            raise ConfigError(f"{w}: eval.folds: need at least 2 folds")
        if not e.modalities or not e.protocols:
            raise ConfigError(f"{w}: eval: list at least one protocol and one modality")
        if e.max_folds is not None and e.max_folds < 1:
            raise ConfigError(f"{w}: eval.max_folds: must be >= 1 or null")
        for name in ("eeg", "ecg"):
            enc: EncoderInit = getattr(self.model, name)
            if enc.init == "random" and (enc.embed_dim % enc.num_heads or enc.num_heads % 2):
                raise ConfigError(
                    f"{w}: model.{name}: embed_dim must divide by num_heads, and num_heads be even"
                )


def finetune_config_from_dict(data: Any, path: str = "<dict>") -> FinetuneConfig:
    """Build and validate a :class:`FinetuneConfig` from a raw mapping."""
    return recipe_from_dict(FinetuneConfig, data, path, "data:, model:, train:")


def load_finetune_config(path: str | Path, overrides: list[str] | None = None) -> FinetuneConfig:
    """Load a fine-tuning YAML (a path, or a shipped name like ``finetune_dreamer_smoke``)."""
    data, p = read_config_file(path, overrides, kind="train")
    return finetune_config_from_dict(data, str(p))


# --------------------------------------------------------------------------------------------------
# Metrics (binary, per target)
# --------------------------------------------------------------------------------------------------


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of correct 0/1 predictions."""
    y, pred = np.asarray(y), np.asarray(pred)
    return float(np.mean(y == pred)) if len(y) else math.nan


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean F1 over the classes present in ``y`` or ``pred`` (F1 of a class with no true or
    predicted member would be 0/0; such a class is left out, as scikit-learn does)."""
    y, pred = np.asarray(y), np.asarray(pred)
    scores = []
    for c in np.union1d(y, pred):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else math.nan


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann-Whitney) statistic; ties count one half.
    NaN when ``y`` holds one class only."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(y: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, macro-F1 (prediction: ``prob > threshold``) and AUROC of one target."""
    pred = (np.asarray(prob) > threshold).astype(np.int64)
    return {"accuracy": accuracy(y, pred), "f1": macro_f1(y, pred), "auroc": auroc(y, prob)}


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    protocol: str
    index: int
    name: str
    train: np.ndarray
    test: np.ndarray


def kfold_splits(
    ws: WindowSet, k: int, seed: int = 0, split_by: Literal["trial", "clip"] = "trial"
) -> list[Fold]:
    """Subject-dependent k-fold by clip: whole trials go to one fold, never split by window.

    ``trial``: each subject's trials are shuffled and dealt round-robin into the k folds (every
    subject appears in every test fold). ``clip``: clip numbers (films) are dealt into folds, the
    same for all subjects.
    """
    rng = np.random.default_rng(seed)
    fold_of_trial: dict[int, int] = {}
    if split_by == "clip":
        clips = np.unique(ws.clip)
        if len(clips) < k:
            raise TrainError(f"eval.folds = {k} but the data has only {len(clips)} clips")
        order = rng.permutation(clips)
        fold_of_clip = {int(c): i % k for i, c in enumerate(order)}
        for t in np.unique(ws.trial):
            fold_of_trial[int(t)] = fold_of_clip[int(ws.clip[ws.trial == t][0])]
    else:
        for s in np.unique(ws.subject):
            trials = np.unique(ws.trial[ws.subject == s])
            if len(trials) < k:
                raise TrainError(
                    f"eval.folds = {k} but subject {ws.subjects[s]} has {len(trials)} trials; "
                    "lower eval.folds"
                )
            offset = int(rng.integers(k))  # so small remainders do not pile into fold 0
            for i, t in enumerate(rng.permutation(trials)):
                fold_of_trial[int(t)] = (i + offset) % k
    fold = np.array([fold_of_trial[int(t)] for t in ws.trial])
    return [
        Fold("kfold", i, f"fold{i + 1}", np.flatnonzero(fold != i), np.flatnonzero(fold == i))
        for i in range(k)
    ]


def loso_splits(ws: WindowSet) -> list[Fold]:
    """Leave-one-subject-out: one fold per subject."""
    subjects = np.unique(ws.subject)
    if len(subjects) < 2:
        raise TrainError("eval.protocols: loso needs at least two subjects; use kfold")
    return [
        Fold(
            "loso",
            i,
            ws.subjects[s],
            np.flatnonzero(ws.subject != s),
            np.flatnonzero(ws.subject == s),
        )
        for i, s in enumerate(subjects)
    ]


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


def _load_encoder(init: EncoderInit, what: str) -> tuple[CBraMod, tuple[str, ...]]:
    """An encoder without its reconstruction head, and where its weights came from."""
    if init.init == "random":
        try:
            enc = CBraMod(
                embed_dim=init.embed_dim,
                depth=init.depth,
                num_heads=init.num_heads,
                mlp_dim=init.mlp_dim,
                out_dim=None,
                drop_rate=init.drop_rate,
            )
        except ValueError as exc:
            raise ConfigError(f"model.{what}: {exc}") from None
        return enc, ()
    path = Path(init.init).expanduser()
    try:
        if path.suffix == ".safetensors":
            ck = load_checkpoint(path)
            if not isinstance(ck.model, CBraMod):
                raise TrainError(f"model.{what}.init: {path} holds a {ck.kind}, not an encoder")
            conf, sd = ck.model.config, ck.model.state_dict()
        else:
            sd = read_state_dict(path)
            conf = config_from_official(sd, num_heads=init.num_heads)
        enc = CBraMod.from_config(replace(conf, drop_rate=init.drop_rate))
        load_strict(enc, checkpoint_filter_fn(sd, enc), what=str(path))
    except CheckpointError as exc:
        raise TrainError(f"model.{what}.init: {exc}") from None
    enc.reset_head()
    parent = ck.model_id if path.suffix == ".safetensors" else path.name
    return enc, (f"{what}: {parent} ({path})",)


class _Factory:
    """Builds fresh fused models, all starting from the same initial encoder weights."""

    def __init__(self, cfg: FinetuneConfig, ws: WindowSet) -> None:
        self.cfg = cfg
        self.eeg_enc, p1 = _load_encoder(cfg.model.eeg, "eeg")
        self.ecg_enc, p2 = _load_encoder(cfg.model.ecg, "ecg")
        self.parents = p1 + p2
        m = cfg.model
        self.config = FusedEmotionConfig(
            eeg=replace(ws.eeg_spec, encoder=self.eeg_enc.config),
            ecg=replace(ws.ecg_spec, encoder=self.ecg_enc.config),
            targets=ws.targets,
            label_threshold=ws.label_threshold,
            pooling=m.pooling,
            hidden_dims=tuple(m.hidden_dims),
            dropout=m.dropout,
            name=m.name,
        )

    def make(self, seed: int) -> FusedEmotionModel:
        torch.manual_seed(seed)
        return FusedEmotionModel(
            self.config,
            eeg_encoder=copy.deepcopy(self.eeg_enc),
            ecg_encoder=copy.deepcopy(self.ecg_enc),
        )


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def _lr(step: int, t: FinetuneTrainConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr`` (a pure function of the step)."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    span = max(1, t.steps - t.warmup_steps)
    frac = min(1.0, (step - t.warmup_steps) / span)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * frac))


def _device(pref: str) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise TrainError("train.device is cuda but no CUDA device is visible; use auto")
    use = pref == "cuda" or (pref == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use else "cpu")


class _Data:
    """The window arrays as tensors, and (probe mode) the frozen encoders' embeddings."""

    def __init__(self, ws: WindowSet, device: torch.device) -> None:
        self.ws = ws
        self.device = device
        self.eeg = None if ws.eeg is None else torch.from_numpy(ws.eeg)
        self.ecg = None if ws.ecg is None else torch.from_numpy(ws.ecg)
        self.y = torch.from_numpy(ws.labels.astype(np.float32))
        self.emb: dict[str, Tensor] = {}
        self.raw_emb: dict[str, Tensor] = {}

    def has(self, mod: str) -> bool:
        return getattr(self, mod) is not None

    @torch.no_grad()
    def embed(self, model: FusedEmotionModel, batch: int) -> None:
        """Pooled embeddings of both encoders (eval mode) for every window, once."""
        model.eval()
        for mod, enc in (("eeg", model.eeg_encoder), ("ecg", model.ecg_encoder)):
            x = getattr(self, mod)
            if x is None:
                continue
            out = []
            for i in range(0, len(x), batch):
                f = enc.forward_features(x[i : i + batch].to(self.device))
                out.append(f.mean(dim=(1, 2)) if model.config.pooling == "mean" else f.flatten(1))
            self.raw_emb[mod] = self.emb[mod] = torch.cat(out)

    def standardize(self, idx: np.ndarray) -> dict[str, tuple[Tensor, Tensor]]:
        """Standardize the embeddings with the mean/std of windows ``idx``; returns the stats."""
        stats = {}
        for mod, e in self.raw_emb.items():
            mu, sd = e[idx].mean(0), e[idx].std(0).clamp_min(1e-6)
            self.emb[mod] = (e - mu) / sd
            stats[mod] = (mu, sd)
        return stats


def _present(mod: Modality, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    e = torch.full((n,), mod in ("eeg", "fused"), dtype=torch.bool, device=device)
    c = torch.full((n,), mod in ("ecg", "fused"), dtype=torch.bool, device=device)
    return e, c


def _logits(
    model: FusedEmotionModel,
    data: _Data,
    idx: Tensor,
    eeg_on: Tensor,
    ecg_on: Tensor,
    probe: bool,
) -> Tensor:
    """Logits of windows ``idx`` with the given modalities present (missing path otherwise)."""
    dev = data.device
    if probe:
        parts = []
        for mod, on, missing in (
            ("eeg", eeg_on, model.eeg_missing),
            ("ecg", ecg_on, model.ecg_missing),
        ):
            if mod in data.emb:
                emb = data.emb[mod][idx.to(data.emb[mod].device)].to(dev)
                parts.append(torch.where(on[:, None], emb, missing))
            else:
                parts.append(missing.expand(len(idx), -1))
        return model.head(torch.cat(parts, dim=1))
    eeg = data.eeg[idx].to(dev) if data.eeg is not None and bool(eeg_on.any()) else None
    ecg = data.ecg[idx].to(dev) if data.ecg is not None and bool(ecg_on.any()) else None
    return model(
        eeg,
        ecg,
        eeg_present=eeg_on if eeg is not None else None,
        ecg_present=ecg_on if ecg is not None else None,
    )


def _train(
    model: FusedEmotionModel,
    data: _Data,
    train_idx: np.ndarray,
    mod: Modality,
    cfg: FinetuneConfig,
    seed: int,
) -> list[float]:
    """Train ``model`` on ``train_idx`` with modality ``mod``; returns the loss per step."""
    t = cfg.train
    probe = t.mode == "probe"
    dev = data.device
    model.to(dev).train()
    if probe:
        model.eeg_encoder.eval().requires_grad_(False)
        model.ecg_encoder.eval().requires_grad_(False)
    enc = [p for n, p in model.named_parameters() if n.startswith(("eeg_encoder", "ecg_encoder"))]
    rest = [
        p for n, p in model.named_parameters() if not n.startswith(("eeg_encoder", "ecg_encoder"))
    ]
    groups = [{"params": rest, "scale": 1.0}]
    if not probe and t.encoder_lr_scale > 0:
        groups.append({"params": enc, "scale": t.encoder_lr_scale})
    opt = torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
    y_all = data.y.to(dev)
    pos = data.y[train_idx].mean(0)
    pos_weight = ((1 - pos) / pos.clamp_min(1e-3)).clamp(0.1, 10.0) if t.balance else None
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else pos_weight.to(dev))
    g = torch.Generator().manual_seed(seed)
    tr = torch.from_numpy(train_idx)
    losses = []
    for step in range(t.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, t) * group["scale"]
        idx = tr[torch.randint(len(tr), (min(t.batch_size, len(tr)),), generator=g)]
        e_on, c_on = _present(mod, len(idx), dev)
        if mod == "fused" and t.modality_dropout > 0:
            r = torch.rand(len(idx), generator=g).to(dev)
            drop = r < t.modality_dropout
            e_on = e_on & ~(drop & (r < t.modality_dropout / 2))
            c_on = c_on & ~(drop & (r >= t.modality_dropout / 2))
        logits = _logits(model, data, idx, e_on, c_on, probe)
        loss = loss_fn(logits.float(), y_all[idx.to(dev)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def _fold_standardization(
    model: FusedEmotionModel, stats: dict[str, tuple[Tensor, Tensor]]
) -> None:
    """Fold the probe's feature standardization into the head, so the model takes raw input.

    The head saw ``(emb - mu) / sd``; its first linear layer becomes ``W / sd`` with bias
    ``b - W @ (mu / sd)``, and the missing embeddings (learned in standardized space) are mapped
    back to raw space (``m * sd + mu``).
    """
    mus, sds = [], []
    for mod, missing in (("eeg", model.eeg_missing), ("ecg", model.ecg_missing)):
        mu, sd = stats.get(mod, (torch.zeros_like(missing), torch.ones_like(missing)))
        mu, sd = mu.to(missing.device), sd.to(missing.device)
        missing.copy_(missing * sd + mu)
        mus.append(mu)
        sds.append(sd)
    mu, sd = torch.cat(mus), torch.cat(sds)
    first = model.head[0]
    assert isinstance(first, nn.Linear)
    first.bias.sub_(first.weight @ (mu / sd))
    first.weight.div_(sd[None, :])


@torch.no_grad()
def _predict(
    model: FusedEmotionModel, data: _Data, idx: np.ndarray, mod: Modality, probe: bool, batch: int
) -> np.ndarray:
    """P(high) ``[len(idx), targets]``."""
    model.eval()
    out = []
    for i in range(0, len(idx), batch):
        b = torch.from_numpy(idx[i : i + batch])
        e_on, c_on = _present(mod, len(b), data.device)
        out.append(torch.sigmoid(_logits(model, data, b, e_on, c_on, probe).float()).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(data.ws.targets)))


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

_METRICS = ("accuracy", "f1", "auroc")
_METRIC_NAMES = {"accuracy": "accuracy", "f1": "macro-F1", "auroc": "AUROC"}


def _fold_rows(
    protocol: str, fold: str, modality: str, ws: WindowSet, test: np.ndarray, prob: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    for j, target in enumerate(ws.targets):
        y = ws.labels[test, j]
        m = binary_metrics(y, prob[:, j])
        rows.append(
            {
                "protocol": protocol,
                "fold": fold,
                "modality": modality,
                "target": target,
                "n_test": len(test),
                "pos_rate": round(float(y.mean()), 4) if len(y) else math.nan,
                **m,
            }
        )
    return rows


def _aggregate(rows: list[dict[str, Any]], targets: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and std over folds per (protocol, modality, target), plus the mean over targets."""
    out = []
    keys = dict.fromkeys((r["protocol"], r["modality"]) for r in rows)
    for proto, mod in keys:
        sel = [r for r in rows if r["protocol"] == proto and r["modality"] == mod]
        for target in [*targets, "mean"]:
            rs = sel if target == "mean" else [r for r in sel if r["target"] == target]
            if target == "mean":  # average over targets within each fold first
                folds = dict.fromkeys(r["fold"] for r in rs)
                per = [
                    {k: np.nanmean([r[k] for r in rs if r["fold"] == f]) for k in _METRICS}
                    for f in folds
                ]
            else:
                per = rs
            row: dict[str, Any] = {"protocol": proto, "modality": mod, "target": target}
            for k in _METRICS:
                v = np.array([p[k] for p in per], np.float64)
                ok = v[np.isfinite(v)]
                row[f"{k}_mean"] = float(ok.mean()) if len(ok) else math.nan
                row[f"{k}_std"] = float(ok.std()) if len(ok) else math.nan
            row["folds"] = len(per)
            out.append(row)
    return out


def _fmt(m: float, s: float) -> str:
    return "n/a" if not math.isfinite(m) else f"{m:.3f} ± {s:.3f}"


def _write_tables(out: Path, folds: list[dict[str, Any]], agg: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("folds.csv", folds), ("results.csv", agg)):
        with (out / name).open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    lines = [
        "| protocol | modality | target | accuracy | macro-F1 | AUROC | folds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in agg:
        cells = [_fmt(r[f"{k}_mean"], r[f"{k}_std"]) for k in _METRICS]
        lines.append(
            f"| {r['protocol']} | {r['modality']} | {r['target']} | {' | '.join(cells)} "
            f"| {r['folds']} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def _setup(cfg: FinetuneConfig) -> tuple[Path, torch.device]:
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    out = Path(cfg.run.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    return out, _device(cfg.train.device)


def _check_modalities(ws: WindowSet, mods: Sequence[str]) -> list[Modality]:
    ok: list[Modality] = []
    for m in mods:
        need = ("eeg", "ecg") if m == "fused" else (m,)
        if all(getattr(ws, n) is not None for n in need):
            ok.append(m)  # type: ignore[arg-type]
    if not ok:
        raise TrainError(f"eval.modalities {list(mods)}: the data has none of them")
    return ok


def run_finetune(
    cfg: FinetuneConfig,
    *,
    log: Callable[[str], None] | None = None,
    windows: WindowSet | None = None,
) -> Path:
    """Run every protocol x fold x modality, write the results and the final fused checkpoint.

    ``windows``: already loaded windows to use instead of loading ``cfg.data`` (programmatic use).

    Returns the output folder (``results.md``, ``results.csv``, ``folds.csv``, ``summary.json``,
    ``model.safetensors`` when ``eval.final_model``).
    """
    say = log or (lambda _msg: None)
    t_start = time.perf_counter()
    out, dev = _setup(cfg)
    ws = windows if windows is not None else load_windows(cfg.data, out)
    say(f"finetune: {json.dumps(ws.summary())}")
    mods = _check_modalities(ws, cfg.eval.modalities)
    factory = _Factory(cfg, ws)
    data = _Data(ws, dev)
    probe = cfg.train.mode == "probe"
    if probe:
        data.embed(factory.make(cfg.run.seed).to(dev), cfg.train.eval_batch_size)
    folds: list[Fold] = []
    for proto in cfg.eval.protocols:
        if proto == "kfold":
            fs = kfold_splits(ws, cfg.eval.folds, cfg.run.seed, cfg.eval.split_by)
        else:
            fs = loso_splits(ws)
        folds += fs[: cfg.eval.max_folds] if cfg.eval.max_folds else fs
    rows: list[dict[str, Any]] = []
    for n, fold in enumerate(folds):
        overlap = np.intersect1d(ws.trial[fold.train], ws.trial[fold.test])
        assert not len(overlap), "a trial on both sides of a fold"
        y_tr = ws.labels[fold.train]
        maj = (y_tr.mean(0) > 0.5).astype(np.float64)
        prob = np.tile(np.where(maj > 0, 0.75, 0.25), (len(fold.test), 1))
        rows += _fold_rows(fold.protocol, fold.name, "majority", ws, fold.test, prob)
        if probe:
            data.standardize(fold.train)
        for mod in mods:
            seed = cfg.run.seed * 1000 + n
            model = factory.make(seed)
            _train(model, data, fold.train, mod, cfg, seed)
            p = _predict(model, data, fold.test, mod, probe, cfg.train.eval_batch_size)
            rows += _fold_rows(fold.protocol, fold.name, mod, ws, fold.test, p)
            last = rows[-len(ws.targets) :]
            accs = " ".join(f"{r['target'][:3]} {r['accuracy']:.2f}" for r in last)
            say(f"finetune: {fold.protocol} {fold.name} {mod}: accuracy {accs}")
    agg = _aggregate(rows, ws.targets)
    _write_tables(out, rows, agg)
    ckpt = None
    if cfg.eval.final_model:
        final_mod: Modality = "fused" if "fused" in mods else mods[0]
        model = factory.make(cfg.run.seed)
        stats = data.standardize(np.arange(len(ws))) if probe else {}
        _train(model, data, np.arange(len(ws)), final_mod, cfg, cfg.run.seed)
        if probe:
            _fold_standardization(model, stats)
        ckpt = _save_final(out / "model.safetensors", model, cfg, ws, factory.parents, agg)
        say(f"finetune: fused model written to {ckpt}")
    _write_json(
        out / "summary.json",
        {
            "config": dataclasses.asdict(cfg),
            "data": ws.summary(),
            "preprocessing": ws.preprocessing,
            "results": agg,
            "checkpoint": None if ckpt is None else str(ckpt),
            "seconds": round(time.perf_counter() - t_start, 2),
            "device": str(dev),
        },
    )
    return out


def _save_final(
    path: Path,
    model: FusedEmotionModel,
    cfg: FinetuneConfig,
    ws: WindowSet,
    parents: tuple[str, ...],
    agg: list[dict[str, Any]],
) -> Path:
    summary = {
        f"{r['protocol']}/{r['modality']}/{r['target']}": round(r["accuracy_mean"], 4)
        for r in agg
        if r["target"] == "mean"
    }
    notes = json.dumps(
        {
            "preprocessing": ws.preprocessing,
            "mode": cfg.train.mode,
            "mean_accuracy": summary,
        },
        default=str,
    )
    model.cpu()
    prov = Provenance(
        trained=True,
        source=f"physio-train finetune ({cfg.train.mode}, {cfg.train.steps} steps) on {ws.source}",
        parents=parents,
        datasets=(ws.source,),
        notes=notes,
    )
    save_checkpoint(path, model, provenance=prov)
    return path


def run_evaluate(cfg: FinetuneConfig, *, log: Callable[[str], None] | None = None) -> Path:
    """Evaluate the fused checkpoint ``eval.checkpoint`` on the data of ``cfg`` (no training).

    The windows are cut to the checkpoint's length and scaled by its units. Rows: ``all`` (every
    window pooled) and ``per-subject`` (mean +/- std over subjects), for each modality (an absent
    modality goes through the missing path). Returns the output folder.
    """
    say = log or (lambda _msg: None)
    if not cfg.eval.checkpoint:
        raise ConfigError(f"{cfg.path}: eval.checkpoint: give the fused model to evaluate")
    out, dev = _setup(cfg)
    try:
        ck = load_checkpoint(Path(cfg.eval.checkpoint).expanduser(), map_location=dev)
    except CheckpointError as exc:
        raise TrainError(f"eval.checkpoint: {exc}") from None
    if not isinstance(ck.model, FusedEmotionModel):
        raise TrainError(f"eval.checkpoint {ck.path} is an encoder, not a fused emotion model")
    model: FusedEmotionModel = ck.model
    mc = model.config
    data_cfg = copy.deepcopy(cfg.data)
    data_cfg.window_s = mc.eeg.n_patches
    data_cfg.targets = list(mc.targets)
    data_cfg.eeg.unit_uv = 1.0 / mc.eeg.scale
    data_cfg.ecg.unit_uv = 1.0 / mc.ecg.scale
    if data_cfg.label.mode == "threshold":
        data_cfg.label.threshold = mc.label_threshold
    ws = load_windows(data_cfg, out)
    for spec, have in ((mc.eeg, ws.eeg_spec), (mc.ecg, ws.ecg_spec)):
        if spec.channels and have.channels and tuple(spec.channels) != tuple(have.channels):
            raise TrainError(
                f"the checkpoint's {spec.name} channels {list(spec.channels)} differ from the "
                f"data's {list(have.channels)}"
            )
    data = _Data(ws, dev)
    mods = _check_modalities(ws, cfg.eval.modalities)
    rows: list[dict[str, Any]] = []
    everything = np.arange(len(ws))
    for mod in mods:
        p = _predict(model, data, everything, mod, False, cfg.train.eval_batch_size)
        rows += _fold_rows("all", "all", mod, ws, everything, p)
        for s, name in enumerate(ws.subjects):
            sel = np.flatnonzero(ws.subject == s)
            rows += _fold_rows("per-subject", name, mod, ws, sel, p[sel])
        say(f"evaluate: {mod} done")
    agg = _aggregate(rows, ws.targets)
    _write_tables(out, rows, agg)
    _write_json(
        out / "summary.json",
        {
            "checkpoint": str(ck.path),
            "model_id": ck.model_id,
            "data": ws.summary(),
            "preprocessing": ws.preprocessing,
            "results": agg,
        },
    )
    return out
