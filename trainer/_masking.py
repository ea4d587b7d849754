"""Masking objectives, the masked loss, and the two reference baselines.

Masks are boolean ``[B, C, P]`` (true = patch hidden); the encoder replaces hidden patches by its
mask token (zeros) before the patch embedding and the reconstruction head regresses all patches;
the loss counts the hidden ones only.

**EEG, CBraMod's recipe** (``kind: patch``): every patch of every channel is hidden independently
with probability ``ratio`` (0.5).

**ECG dual masking** (``kind: dual``; our concrete version of the idea of Ghallab et al., 2025,
whose text gives only the idea). Each sample of a batch draws one of two modes:

- *inter-lead* (probability ``inter_prob``, only when the sample has >= 2 leads):
  ``k = clamp(round(inter_ratio * C), 1, C - 1)`` leads, chosen uniformly without replacement, are
  hidden over *all* their patches; the other leads are left whole. The model must rebuild a lead
  from the others (same instants, other projections of the heart's dipole).
- *intra-lead* (otherwise): in *every* lead independently, exactly
  ``m = clamp(round(ratio * P), 1, P - 1)`` of the ``P`` patches, chosen uniformly without
  replacement, are hidden; at least one patch per lead stays visible. The model must rebuild a
  stretch of a lead from its own context (rhythm, beat morphology) and the other leads.
  With probability ``intra_aligned`` (0 by default, the paper's scheme) an intra-lead sample
  hides the same ``m`` patches in every lead instead (one draw shared by its leads): the other
  leads then show nothing of the hidden instants, so the stretch must come from the rhythm and
  beat shape of the visible seconds, which is all a record with one or two weakly related leads
  offers.

The two modes never mix within one sample, so every reported number can be split by mode.

Baselines (computed on exactly the same masks): *zeros* (predict 0; the signals are zero-mean after
the band-pass) and *interp*: for an intra-lead sample, each hidden stretch of a lead is the straight
line between the last visible value before it and the first visible value after it (held constant
at the record edges); for an inter-lead sample, each hidden lead is the mean of the visible leads
at the same instant.

All random draws come from a ``torch.Generator`` seeded by the caller (the training loop seeds it
from ``(seed, step, rank)``), so masks are a pure function of the step: resuming gives the very
same masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._config import MaskingConfig

__all__ = [
    "MaskBatch",
    "baseline_interp",
    "baseline_zeros",
    "dual_mask",
    "make_mask",
    "masked_mse",
    "patch_mask",
]


@dataclass(frozen=True)
class MaskBatch:
    """``mask [B, C, P]`` bool (true = hidden) and ``inter [B]`` bool (sample masked inter-lead)."""

    mask: Tensor
    inter: Tensor


def patch_mask(shape: tuple[int, int, int], ratio: float, generator: torch.Generator) -> MaskBatch:
    """CBraMod: each patch hidden independently with probability ``ratio``."""
    mask = torch.rand(shape, generator=generator) < ratio
    return MaskBatch(mask, torch.zeros(shape[0], dtype=torch.bool))


def _k_of_n(rows: int, n: int, k: int, generator: torch.Generator) -> Tensor:
    """``[rows, n]`` bool with exactly ``k`` true per row, positions uniform without replacement."""
    ranks = torch.rand(rows, n, generator=generator).argsort(dim=1).argsort(dim=1)
    return ranks < k


def dual_mask(
    shape: tuple[int, int, int],
    *,
    ratio: float = 0.5,
    inter_prob: float = 0.5,
    inter_ratio: float = 0.5,
    intra_aligned: float = 0.0,
    generator: torch.Generator,
) -> MaskBatch:
    """ECG dual masking (see the module docstring for the exact scheme)."""
    b, c, p = shape
    m = min(max(round(ratio * p), 1), max(p - 1, 1))
    intra = _k_of_n(b * c, p, m, generator).view(b, c, p)
    if intra_aligned > 0:  # drawn only when asked, so the paper's masks stay seed-for-seed
        aligned = torch.rand(b, generator=generator) < intra_aligned
        shared = _k_of_n(b, p, m, generator)[:, None, :].expand(b, c, p)
        intra = torch.where(aligned[:, None, None], shared, intra)
    coin = torch.rand(b, generator=generator) < inter_prob
    if c < 2:
        coin = torch.zeros(b, dtype=torch.bool)
    k = min(max(round(inter_ratio * c), 1), max(c - 1, 1))
    leads = _k_of_n(b, c, k, generator)  # [B, C]
    inter = leads[:, :, None].expand(b, c, p)
    mask = torch.where(coin[:, None, None], inter, intra)
    return MaskBatch(mask, coin)


def make_mask(
    shape: tuple[int, int, int], cfg: MaskingConfig, generator: torch.Generator
) -> MaskBatch:
    """The mask a config asks for."""
    if cfg.kind == "dual":
        return dual_mask(
            shape,
            ratio=cfg.ratio,
            inter_prob=cfg.inter_prob,
            inter_ratio=cfg.inter_ratio,
            intra_aligned=cfg.intra_aligned,
            generator=generator,
        )
    return patch_mask(shape, cfg.ratio, generator)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the hidden patches only (``pred``/``target`` ``[B, C, P, S]``)."""
    m = mask.to(pred.dtype).unsqueeze(-1)
    n = m.sum() * pred.shape[-1]
    return ((pred.float() - target.float()) ** 2 * m).sum() / n.clamp_min(1)


def baseline_zeros(x: Tensor, mask: Tensor) -> Tensor:
    """Predict zeros everywhere."""
    del mask
    return torch.zeros_like(x)


def baseline_interp(x: Tensor, batch: MaskBatch) -> Tensor:
    """Intra-lead: linear interpolation across each hidden stretch from the visible samples of the
    same lead; inter-lead: mean of the visible leads. Visible patches are returned as they are."""
    xn = x.detach().float().cpu().numpy()
    mask = batch.mask.cpu().numpy()
    inter = batch.inter.cpu().numpy()
    b, c, p, s = xn.shape
    out = xn.copy()
    t = np.arange(p * s)
    for i in range(b):
        if inter[i]:
            hidden = mask[i].all(axis=1)
            if (~hidden).any():
                out[i, hidden] = xn[i, ~hidden].mean(axis=0)
            else:
                out[i] = 0.0
            continue
        for ch in range(c):
            vis = ~np.repeat(mask[i, ch], s)
            if vis.all():
                continue
            sig = xn[i, ch].reshape(-1)
            pred = np.interp(t, t[vis], sig[vis]) if vis.any() else np.zeros_like(sig)
            out[i, ch] = np.where(vis, sig, pred).reshape(p, s)
    return torch.from_numpy(out).to(x.device)
