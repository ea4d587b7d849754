"""Fine-tuning and evaluation of the fused EEG + ECG emotion model (``physio-train finetune``).

Protocols (one model per fold and modality, all from the same initial weights):

- ``kfold``: subject-dependent k-fold, pooled over subjects. Each subject's trials (clip
  recordings) are dealt into k folds (``split_by: trial``; or ``split_by: clip``: the same films
  are held out for every subject), so a fold tests on clips it never trained on, from subjects it
  did see. No clip ever gives windows to both sides of a fold.
- ``loso``: leave-one-subject-out; the held-out subject is never seen in training.
- ``split``: fixed train / validation / test subject lists (eegmat's published split), ``seeds``
  trainings per modality; ``cv``: subject-wise cross-validation (test group k, validation k-1).
  With validation subjects, each training keeps the weights of its best validation AUROC
  (checked every ``train.eval_every`` steps). Splits: :mod:`physio_live.trainer._splits`.

Modality ablation in the same run: ``eeg`` (ECG absent), ``ecg`` (EEG absent) and ``fused``; an
absent modality goes through the model's missing-modality path (its learned "missing" embedding),
so every variant is the same :class:`~physio_live.models.FusedEmotionModel`.

Modes: ``probe`` freezes both encoders (their pooled embeddings are computed once; a linear head
with ``hidden_dims: []`` or an MLP head is trained per fold); ``finetune`` trains everything (the
encoders at ``lr x encoder_lr_scale``).

Metrics per target on held-out windows (:mod:`physio_live.trainer._metrics`): balanced
accuracy, AUC-PR, AUROC, accuracy and macro-F1, reported as mean +/- std (ddof 0) over folds (over
seeds for a single ``split``), next to a ``majority`` row (the chance level) and, with
``eval.baselines``, classical rows (:mod:`physio_live.trainer._baselines`). Outputs in
``run.out_dir``: ``results.md``, ``results.csv`` (aggregate), ``folds.csv`` (every fold and seed),
``summary.json``, and ``model.safetensors``: with a ``split``, the fused model of the seed with the
best validation AUROC (its test metrics, split and hop in the provenance; its per-window test
predictions in ``test_predictions.csv``), else the fused model trained on all the data; in the
app's checkpoint format, its ``ModalityConfig`` s recording channels, rate, patches and units
exactly as trained and its provenance notes holding the full preprocessing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from physio_live.core import ConfigError
from physio_live.models import (
    CBraMod,
    CheckpointError,
    FeatureSkipHead,
    FusedEmotionConfig,
    FusedEmotionModel,
    LateFusionHead,
    Provenance,
    checkpoint_filter_fn,
    config_from_official,
    ecg_feature_values,
    eeg_feature_values,
    load_checkpoint,
    load_strict,
    pool_features,
    read_state_dict,
    resolve_checkpoint,
    save_checkpoint,
)

from ._baselines import fit_on_validation
from ._config import TrainError
from ._data import WindowSet, load_windows
from ._finetune_config import (
    EncoderInit,
    FinetuneConfig,
    FinetuneModelConfig,
    FinetuneTrainConfig,
    Modality,
    ProtocolConfig,
    finetune_config_from_dict,
    load_finetune_config,
)
from ._metrics import accuracy, auroc, binary_metrics, macro_f1, nanmean
from ._results import (
    METRICS,
    aggregate,
    fold_rows,
    write_json,
    write_predictions,
    write_tables,
)
from ._schedule import pick_train_device, warmup_cosine_lr
from ._splits import (
    Fold,
    kfold_splits,
    loso_splits,
    subject_cv_splits,
    subject_split,
)

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
                spectrum=init.spectrum,
            )
        except ValueError as exc:
            raise ConfigError(f"model.{what}: {exc}") from None
        return enc, ()
    try:
        # a shipped name (e.g. ``ecg-ludb``) or a path
        path = resolve_checkpoint(init.init)
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
        torch.manual_seed(cfg.run.seed)  # random encoders: the same for the same recipe
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
            fusion=m.fusion,
            ecg_features=tuple(m.ecg_features),
            eeg_features=tuple(m.eeg_features),
            feature_skip=m.feature_skip,
        )

    def make(self, seed: int, fresh: bool = False) -> FusedEmotionModel:
        """A new model; ``fresh``: randomly initialised encoders drawn anew from ``seed`` (so
        seeds differ in their initialisation too), else copies of the shared ones."""
        torch.manual_seed(seed)
        encs = []
        for init, enc in ((self.cfg.model.eeg, self.eeg_enc), (self.cfg.model.ecg, self.ecg_enc)):
            encs.append(_load_encoder(init, "")[0] if fresh and init.init == "random" else None)
            if encs[-1] is None:
                encs[-1] = copy.deepcopy(enc)
        return FusedEmotionModel(self.config, eeg_encoder=encs[0], ecg_encoder=encs[1])


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def _lr(step: int, t: FinetuneTrainConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr`` (a pure function of the step)."""
    return warmup_cosine_lr(
        step, lr=t.lr, min_lr=t.min_lr, warmup_steps=t.warmup_steps, steps=t.steps
    )


def _device(pref: str) -> torch.device:
    return torch.device("cuda" if pick_train_device(pref, "train.device") else "cpu")


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
        #: the raw ``model.eeg_features`` / ``ecg_features`` of every window by modality,
        #: computed once (:meth:`measure`)
        self.extra: dict[str, Tensor] = {}

    def measure(self, ecg_names: Sequence[str], eeg_names: Sequence[str] = ()) -> None:
        """Compute the ECG and EEG features every model of the run takes (the same functions the
        model runs on its input in the app), once for all windows."""
        if ecg_names and self.ecg is not None:
            self.extra["ecg"] = ecg_feature_values(self.ecg, ecg_names)
        if eeg_names and self.eeg is not None:
            self.extra["eeg"] = eeg_feature_values(self.eeg, eeg_names)

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
                out.append(pool_features(f, model.config.pooling))
            # the measured features, as the model's _embed appends them
            emb = model.append_features(mod, torch.cat(out), x, self.extra.get(mod))
            self.raw_emb[mod] = self.emb[mod] = emb

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
    # cached measured features of the modalities given (the model ignores those it does not take)
    extra = {m: data.extra[m][idx].to(dev) for m, x in (("eeg", eeg), ("ecg", ecg))
             if x is not None and m in data.extra}  # fmt: skip
    return model(
        eeg,
        ecg,
        eeg_present=eeg_on if eeg is not None else None,
        ecg_present=ecg_on if ecg is not None else None,
        ecg_extra=extra.get("ecg"),
        eeg_extra=extra.get("eeg"),
    )


def _train(
    model: FusedEmotionModel,
    data: _Data,
    train_idx: np.ndarray,
    mod: Modality,
    cfg: FinetuneConfig,
    seed: int,
    val_idx: np.ndarray | None = None,
) -> tuple[list[float], float, int]:
    """Train ``model`` on ``train_idx`` with modality ``mod``.

    With ``val_idx``: validation AUROC (mean over targets) every ``train.eval_every`` steps and
    at the end; the model keeps the weights of the best check. Returns the loss per step, the
    chosen validation AUROC (NaN without validation) and the chosen step.
    """
    t = cfg.train
    probe = t.mode == "probe"
    dev = data.device

    def to_train() -> None:
        model.to(dev).train()
        if probe:
            model.eeg_encoder.eval().requires_grad_(False)
            model.ecg_encoder.eval().requires_grad_(False)

    if model.config.eeg_features and "eeg" in data.extra:
        model.set_eeg_feature_stats(data.extra["eeg"][torch.from_numpy(train_idx)])
    skip = isinstance(model.head, FeatureSkipHead)
    if skip:
        _start_feature_skip(model, data, train_idx, val_idx, mod)
    to_train()
    use_val = val_idx is not None and len(val_idx) > 0
    best_auc, best_step, best_state = -math.inf, t.steps, None

    def check(step: int) -> None:
        nonlocal best_auc, best_step, best_state
        assert val_idx is not None
        p = _predict(model, data, val_idx, mod, probe, t.eval_batch_size)
        aucs = [auroc(data.ws.labels[val_idx, j], p[:, j]) for j in range(p.shape[1])]
        auc = nanmean(aucs) if np.isfinite(aucs).any() else -math.inf
        if auc > best_auc:
            best_auc, best_step = auc, step
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        to_train()

    if use_val and skip:  # the regression alone is a candidate too
        check(0)
    ecg_scale = t.encoder_lr_scale if t.ecg_encoder_lr_scale is None else t.ecg_encoder_lr_scale
    scales = {"eeg_encoder": t.encoder_lr_scale, "ecg_encoder": ecg_scale}
    if skip:
        scales["head.skip"] = t.skip_lr_scale
    rest = [p for n, p in model.named_parameters() if not n.startswith(tuple(scales))]
    groups = [{"params": rest, "scale": 1.0}]
    for name, scale in scales.items():
        if not probe and scale > 0:
            params = [p for n, p in model.named_parameters() if n.startswith(name)]
            groups.append({"params": params, "scale": scale})
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
        last = step + 1 == t.steps
        if use_val and (last or (t.eval_every and (step + 1) % t.eval_every == 0)):
            check(step + 1)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return losses, (best_auc if use_val and math.isfinite(best_auc) else math.nan), best_step


def _logit_layers(model: FusedEmotionModel) -> list[nn.Linear]:
    """The linear layers whose outputs add up to the logits: the head's last layer (one per
    modality for a late-fusion head), then the feature skip's, if any."""
    head, skip = model.head, None
    if isinstance(head, FeatureSkipHead):
        head, skip = head.head, head.skip
    heads = [head.eeg, head.ecg] if isinstance(head, LateFusionHead) else [head]
    lasts = [h[-1] for h in heads] + ([skip] if skip is not None else [])
    assert all(isinstance(last, nn.Linear) for last in lasts)
    return lasts  # type: ignore[return-value]


@torch.no_grad()
def _start_feature_skip(
    model: FusedEmotionModel,
    data: _Data,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    mod: Modality,
) -> list[float]:
    """``model.feature_skip``: set the skip to each target's class-balanced L2 logistic regression
    on the measured features of the modalities ``mod`` has, as the model sees them (fitted on
    ``train_idx``, L2 chosen on the AUROC of ``val_idx``: the classical rows' fit), and the head's
    last layer to zero, so the model starts as that regression. Returns the L2 per target."""
    assert isinstance(model.head, FeatureSkipHead)
    skip = model.head.skip
    for last in _logit_layers(model):  # the skip is the last of them
        last.weight.zero_()
        last.bias.zero_()
    mods = [m for m in ("eeg", "ecg") if m in data.extra and mod in (m, "fused")]
    if not mods:  # nothing measured for this modality: the model starts at logit 0
        return [math.nan] * skip.out_features
    empty = torch.zeros(len(data.y), 0)
    x = [model.append_features(m, empty, None, data.extra[m]) for m in mods]  # type: ignore[arg-type]
    feats = torch.cat(x, 1).double().numpy()
    # the skip's inputs are the EEG features, then the ECG ones
    n_eeg = len(model.feature_columns("eeg"))
    slots = {"eeg": range(n_eeg), "ecg": range(n_eeg, skip.in_features)}
    where = [i for m in mods for i in slots[m]]
    val = np.zeros(0, int) if val_idx is None else val_idx
    l2s = []
    for j in range(skip.out_features):
        lr, l2, _ = fit_on_validation(feats, data.ws.labels[:, j] > 0.5, train_idx, val)
        w = lr.beta[:-1] / lr.sd
        skip.weight[j, where] = torch.from_numpy(w).float()
        skip.bias[j] = float(lr.beta[-1] - (w * lr.mu).sum())
        l2s.append(l2)
    return l2s


@torch.no_grad()
def _recalibrate(
    model: FusedEmotionModel,
    data: _Data,
    val_idx: np.ndarray,
    mod: Modality,
    probe: bool,
    batch: int,
) -> list[tuple[float, float]]:
    """:func:`balanced_platt` of each target's logit on the validation windows, folded into the
    head: its last linear layer becomes ``a W, a c + b``. Returns ``(a, b)`` per target."""
    z = _predict(model, data, val_idx, mod, probe, batch, logits=True).astype(np.float64)
    lasts = _logit_layers(model)
    out = []
    for j in range(z.shape[1]):
        a, b = balanced_platt(z[:, j], data.ws.labels[val_idx, j] > 0.5)
        for k, last in enumerate(lasts):
            last.weight[j].mul_(a)
            last.bias[j].mul_(a).add_(b if k == 0 else 0.0)
        out.append((a, b))
    return out


# A trained model's validation logits span units and its Platt slope is near 1; a slope of 1000
# stretches logits that span a few thousandths, and float32 keeps only ~7 digits of them.
MAX_PLATT_SLOPE = 1e3


def balanced_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Class-balanced Platt scaling: ``(a, b)`` with ``sigmoid(a z + b)`` fitted to the labels
    ``y`` (each class weighted equally, as training weights them; ``a > 0``, so the ranking stays
    the logits' own). Where no such fit exists, because the classes are perfectly separated
    (no finite maximum) or ranked backwards (``a <= 0``), or where it is steeper than
    :data:`MAX_PLATT_SLOPE` (the logits barely vary, as from a model that learnt nothing: such a
    slope fits float32 rounding and, folded into the head, turns it into visible noise), only the
    offset moves: ``a = 1`` and ``b`` gives the classes equal mean error, the condition the full
    fit meets too. ``(1, 0)`` when ``y`` holds one class."""
    from ._baselines import LogisticRegression

    y = np.asarray(y, bool)
    if not 0 < y.mean() < 1:
        return 1.0, 0.0
    if auroc(y, z) < 1.0:
        lr = LogisticRegression(l2=0.0).fit(z[:, None], y)
        a = float(lr.beta[0] / lr.sd[0])
        b = float(lr.beta[1] - a * lr.mu[0])
        if 0 < a <= MAX_PLATT_SLOPE and math.isfinite(b):
            return a, b
    return 1.0, _balancing_offset(z[y], z[~y])


def _balancing_offset(z_pos: np.ndarray, z_neg: np.ndarray) -> float:
    """The ``b`` with mean sigmoid(z_pos + b) + mean sigmoid(z_neg + b) = 1 (bisection; the left
    side grows with ``b``)."""

    def excess(b: float) -> float:
        sig = lambda v: 0.5 * (1.0 + np.tanh(0.5 * (v + b)))  # noqa: E731 (overflow-free)
        return float(sig(z_pos).mean() + sig(z_neg).mean() - 1.0)

    lo, hi = -1.0, 1.0
    while excess(lo) > 0:
        lo *= 2
    while excess(hi) < 0:
        hi *= 2
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


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
    if isinstance(model.head, LateFusionHead):  # each branch sees its own part of the embedding
        parts = [(model.head.eeg[0], mus[0], sds[0]), (model.head.ecg[0], mus[1], sds[1])]
    else:
        parts = [(model.head[0], torch.cat(mus), torch.cat(sds))]
    for first, mu, sd in parts:
        assert isinstance(first, nn.Linear)
        first.bias.sub_(first.weight @ (mu / sd))
        first.weight.div_(sd[None, :])


@torch.no_grad()
def _predict(
    model: FusedEmotionModel,
    data: _Data,
    idx: np.ndarray,
    mod: Modality,
    probe: bool,
    batch: int,
    *,
    logits: bool = False,
) -> np.ndarray:
    """P(high) ``[len(idx), targets]`` (with ``logits``: the logits)."""
    model.eval()
    out = []
    for i in range(0, len(idx), batch):
        b = torch.from_numpy(idx[i : i + batch])
        e_on, c_on = _present(mod, len(b), data.device)
        z = _logits(model, data, b, e_on, c_on, probe).float()
        out.append((z if logits else torch.sigmoid(z)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(data.ws.targets)))


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

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


def make_folds(cfg: FinetuneConfig, ws: WindowSet) -> list[Fold]:
    """The folds of every protocol of ``cfg.eval`` (``max_folds`` applied)."""
    e = cfg.eval
    folds: list[Fold] = []
    for proto in e.protocols:
        if proto == "kfold":
            fs = kfold_splits(ws, e.folds, cfg.run.seed, e.split_by)
        elif proto == "loso":
            fs = loso_splits(ws)
        elif proto == "split":
            fs = [subject_split(ws, e.split.train, e.split.val, e.split.test)]
        else:
            fs = subject_cv_splits(ws, e.cv_folds)
        folds += fs[: e.max_folds] if e.max_folds else fs
    return folds


@dataclass
class _Chosen:
    """The fused model of the ``split`` protocol with the best validation AUROC so far."""

    val_auroc: float
    seed: int
    model: FusedEmotionModel
    test: dict[str, float]
    fold: Fold
    prob: np.ndarray
    step: int
    stats: dict[str, tuple[Tensor, Tensor]]


def run_finetune(
    cfg: FinetuneConfig,
    *,
    log: Callable[[str], None] | None = None,
    windows: WindowSet | None = None,
) -> Path:
    """Run every protocol x fold x modality x seed, write the results and a fused checkpoint.

    ``windows``: already loaded windows to use instead of loading ``cfg.data`` (programmatic use).

    Returns the output folder (``results.md``, ``results.csv``, ``folds.csv``, ``summary.json``,
    ``model.safetensors`` when ``eval.final_model``, ``test_predictions.csv`` for a model chosen
    on a ``split``).
    """
    say = log or (lambda _msg: None)
    t_start = time.perf_counter()
    out, dev = _setup(cfg)
    ws = windows if windows is not None else load_windows(cfg.data, out)
    say(f"finetune: {json.dumps(ws.summary())} ({time.perf_counter() - t_start:.0f} s)")
    mods = _check_modalities(ws, cfg.eval.modalities)
    factory = _Factory(cfg, ws)
    data = _Data(ws, dev)
    data.measure(cfg.model.ecg_features, cfg.model.eeg_features)
    probe = cfg.train.mode == "probe"
    if probe:
        data.embed(factory.make(cfg.run.seed).to(dev), cfg.train.eval_batch_size)
        say(f"finetune: embeddings computed ({time.perf_counter() - t_start:.0f} s)")
    folds = make_folds(cfg, ws)
    rows: list[dict[str, Any]] = []
    chosen: _Chosen | None = None
    for n, fold in enumerate(folds):
        for a, b in ((fold.train, fold.test), (fold.train, fold.val), (fold.val, fold.test)):
            assert not len(np.intersect1d(ws.trial[a], ws.trial[b])), "a trial in two parts"
        y_tr = ws.labels[fold.train]
        maj = (y_tr.mean(0) > 0.5).astype(np.float64)
        prob = np.tile(np.where(maj > 0, 0.75, 0.25), (len(fold.test), 1))
        rows += fold_rows(fold.protocol, fold.name, "majority", ws, fold.test, prob)
        if cfg.eval.baselines:
            from ._baselines import baseline_predictions

            for name, (p, vauc) in baseline_predictions(ws, fold).items():
                rows += fold_rows(fold.protocol, fold.name, name, ws, fold.test, p, "", vauc)
        stats = data.standardize(fold.train) if probe else {}
        n_seeds = cfg.eval.seeds if fold.protocol == "split" else cfg.eval.cv_seeds
        for mod in mods:
            for k in range(n_seeds):
                seed = cfg.run.seed + k if fold.protocol == "split" else cfg.run.seed * 1000 + n
                seed += 0 if fold.protocol == "split" else 100 * k
                model = factory.make(seed, fresh=not probe)
                _, vauc, step = _train(model, data, fold.train, mod, cfg, seed, fold.val)
                raw = None
                if cfg.train.recalibrate and len(fold.val):
                    bs = cfg.train.eval_batch_size
                    raw = _predict(model, data, fold.test, mod, probe, bs)  # kept beside
                    _recalibrate(model, data, fold.val, mod, probe, bs)
                p = _predict(model, data, fold.test, mod, probe, cfg.train.eval_batch_size)
                rows += fold_rows(
                    fold.protocol, fold.name, mod, ws, fold.test, p, seed, vauc, raw_prob=raw
                )
                last = rows[-len(ws.targets) :]
                txt = " ".join(
                    f"{r['target'][:5]} bacc {r['balanced_accuracy']:.3f} auroc {r['auroc']:.3f}"
                    for r in last
                )
                say(
                    f"finetune: {fold.protocol} {fold.name} {mod} seed {seed}: {txt} (val auroc "
                    f"{vauc:.3f} at step {step}; {time.perf_counter() - t_start:.0f} s)"
                )
                if (
                    fold.protocol == "split"
                    and mod == "fused"
                    and (chosen is None or vauc > chosen.val_auroc)
                ):
                    metrics = {k2: nanmean([r[k2] for r in last]) for k2 in METRICS}
                    chosen = _Chosen(vauc, seed, model, metrics, fold, p, step, stats)
    agg = aggregate(rows, ws.targets)
    write_tables(out, rows, agg)
    ckpt = None
    if cfg.eval.final_model:
        if chosen is not None:
            model = chosen.model
            if probe:
                _fold_standardization(model, chosen.stats)
            write_predictions(out / "test_predictions.csv", ws, chosen.fold.test, chosen.prob)
        else:
            final_mod: Modality = "fused" if "fused" in mods else mods[0]
            model = factory.make(cfg.run.seed)
            stats = data.standardize(np.arange(len(ws))) if probe else {}
            _train(model, data, np.arange(len(ws)), final_mod, cfg, cfg.run.seed)
            if probe:
                _fold_standardization(model, stats)
        ckpt = _save_final(out / "model.safetensors", model, cfg, ws, factory.parents, agg, chosen)
        say(f"finetune: fused model written to {ckpt}")
        if cfg.eval.export:
            dest = Path(cfg.eval.export).expanduser()
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            tmp.write_bytes(ckpt.read_bytes())
            tmp.replace(dest)
            say(f"finetune: exported to {dest}")
    write_json(
        out / "summary.json",
        {
            "config": dataclasses.asdict(cfg),
            "data": ws.summary(),
            "preprocessing": ws.preprocessing,
            "results": agg,
            "checkpoint": None if ckpt is None else str(ckpt),
            "seconds": round(time.perf_counter() - t_start, 2),
            "device": str(dev),
            "threads": torch.get_num_threads(),
        },
    )
    return out


def _command(cfg: FinetuneConfig) -> str:
    """The command line that ran this recipe (``physio-train ...``), else the config's path."""
    argv = sys.argv
    if argv and ("trainer" in argv[0] or argv[0].endswith("physio-train")) and len(argv) > 1:
        return "physio-train " + " ".join(shlex.quote(a) for a in argv[1:])
    return f"physio-train finetune --config {cfg.path}"


def _save_final(
    path: Path,
    model: FusedEmotionModel,
    cfg: FinetuneConfig,
    ws: WindowSet,
    parents: tuple[str, ...],
    agg: list[dict[str, Any]],
    chosen: _Chosen | None = None,
) -> Path:
    summary = {
        f"{r['protocol']}/{r['modality']}/{r['target']}": {
            k: round(r[f"{k}_mean"], 4) for k in ("accuracy", "balanced_accuracy", "auroc")
        }
        for r in agg
        if r["target"] == "mean"
    }
    notes: dict[str, Any] = {
        "preprocessing": ws.preprocessing,
        "mode": cfg.train.mode,
        "results": summary,
        "mean_accuracy": {k: v["accuracy"] for k, v in summary.items()},
        "command": _command(cfg),
        "data": {**ws.summary(), "root": cfg.data.root, "subjects": ws.subjects},
    }
    if chosen is not None:
        e = cfg.eval
        names = lambda idx: sorted({ws.subjects[s] for s in ws.subject[idx]})  # noqa: E731
        notes["chosen"] = {
            "how": "fused model of the seed with the best validation AUROC (checkpoint chosen "
            "over training steps on validation AUROC)",
            "seed": chosen.seed,
            "step": chosen.step,
            "val_auroc": round(chosen.val_auroc, 4),
            "split": {
                "train": names(chosen.fold.train),
                "val": names(chosen.fold.val),
                "test": names(chosen.fold.test),
                "config": dataclasses.asdict(e.split),
            },
            "test_metrics": {k: round(v, 4) for k, v in chosen.test.items()},
            "test_windows": len(chosen.fold.test),
            "window_s": ws.n_patches,
            "hop_s": ws.preprocessing.get("hop_s"),
            "test_note": "metrics over every window the app's aligner cuts from the test "
            "recordings at this window and hop (settle_s dropped), none withheld by the gate",
        }
    model.cpu()
    what = f"{cfg.train.mode}, {cfg.train.steps} steps"
    if chosen is not None:
        what += f", seed {chosen.seed} chosen on validation AUROC"
    prov = Provenance(
        trained=True,
        source=f"physio-train finetune ({what}) on {ws.source}",
        parents=parents,
        datasets=(ws.source,),
        notes=json.dumps(notes, default=str),
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
    from physio_live.models import ReadoutModel

    readout = isinstance(ck.model, ReadoutModel)
    if not isinstance(ck.model, FusedEmotionModel) and not readout:
        raise TrainError(f"eval.checkpoint {ck.path} is an encoder, not a fused emotion model")
    model = ck.model
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
    rows: list[dict[str, Any]] = []
    everything = np.arange(len(ws))
    if readout:  # one session per subject, recordings in order: its resting baseline first
        from ._readout_fit import score_like_app

        preds = {"readouts": lambda: score_like_app(model, ws, everything)[:, None]}
    else:
        data = _Data(ws, dev)
        preds = {
            mod: lambda mod=mod: _predict(
                model, data, everything, mod, False, cfg.train.eval_batch_size
            )
            for mod in _check_modalities(ws, cfg.eval.modalities)
        }
    for mod, predict in preds.items():
        p = predict()
        rows += fold_rows("all", "all", mod, ws, everything, p)
        for s, name in enumerate(ws.subjects):
            sel = np.flatnonzero(ws.subject == s)
            rows += fold_rows("per-subject", name, mod, ws, sel, p[sel])
        say(f"evaluate: {mod} done")
    agg = aggregate(rows, ws.targets)
    write_tables(out, rows, agg)
    write_json(
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
