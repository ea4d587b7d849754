"""Pretraining batches: which samples a rank sees at each step (a pure function of the step, so
resuming gives the very same batches), record balancing, augmentation (amplitude, sign, lead
order, time scaling, lead subsets), the masks of each batch, and read-ahead in a background
thread."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ._config import AugmentConfig, DataConfig, MaskingConfig, PretrainConfig, TrainError
from ._corpus import Corpus
from ._masking import MaskBatch, make_mask

if TYPE_CHECKING:
    from ._loop import DistInfo

__all__ = ["BatchPlan", "MixSource", "batches", "record_weights", "source_of_step"]


class BatchPlan:
    """Which samples a rank sees at (step, micro-batch): a pure function of the step.

    Without ``weights``, each epoch is a fresh permutation of the train indices (seeded by
    ``(seed, epoch)``), cut into global steps of ``batch x world x accum`` samples (the remainder
    is dropped). With ``weights`` (one per train index, e.g. to balance records), every global
    step draws its samples with replacement in proportion to the weights, seeded by
    ``(seed, step)``; an "epoch" is then ``len(train_idx)`` samples drawn.
    """

    def __init__(
        self,
        train_idx: np.ndarray,
        batch: int,
        world: int,
        accum: int,
        seed: int,
        weights: np.ndarray | None = None,
    ) -> None:
        self.idx = train_idx
        self.batch, self.world, self.accum, self.seed = batch, world, accum, seed
        self.per_step = batch * world * accum
        self.steps_per_epoch = len(train_idx) // self.per_step
        if self.steps_per_epoch < 1:
            raise TrainError(
                f"the training split has {len(train_idx)} samples, fewer than one global batch "
                f"({batch} x {world} processes x {accum} accumulation steps): lower "
                "optim.batch_size or add data"
            )
        self.weights: Tensor | None = None
        if weights is not None:
            w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
            if w.shape != (len(train_idx),) or not bool((w >= 0).all()) or w.sum() <= 0:
                raise ValueError("weights: one non-negative number per train index, not all 0")
            self.weights = w / w.sum()
        self._perm: tuple[int, np.ndarray] | None = None

    def epoch(self, step: int) -> int:
        return step // self.steps_per_epoch

    def indices(self, step: int, micro: int, rank: int) -> np.ndarray:
        off = (micro * self.world + rank) * self.batch
        if self.weights is not None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7 * step + 1)
            block = torch.multinomial(self.weights, self.per_step, True, generator=g).numpy()
            return self.idx[block[off : off + self.batch]]
        epoch, pos = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(len(self.idx), generator=g).numpy())
        block = self._perm[1][pos * self.per_step : (pos + 1) * self.per_step]
        return self.idx[block[off : off + self.batch]]


@dataclass
class MixSource:
    """A ``mix`` corpus of a run: its share of the steps, samples, plan, validation samples and
    sections (see :class:`~physio_live.trainer.MixConfig`)."""

    share: float
    corpus: Corpus
    plan: BatchPlan
    val_idx: np.ndarray
    data: DataConfig
    masking: MaskingConfig
    augment: AugmentConfig


def source_of_step(seed: int, step: int, shares: Sequence[float]) -> int:
    """Which corpus a step's batch comes from: 0 for the recipe's own, ``i`` for ``mix`` item
    ``i - 1``, drawn with probabilities ``shares`` from ``(seed, step)`` alone (every rank and
    micro-batch of a step, and a resumed run, agree)."""
    if not shares:
        return 0
    g = torch.Generator().manual_seed(seed * 1_000_003 + 31 * step + 17)
    u = float(torch.rand((), generator=g))
    edge = 0.0
    for i, share in enumerate(shares, start=1):
        edge += share
        if u < edge:
            return i
    return 0


def record_weights(corpus: Corpus, train_idx: np.ndarray, balance: float) -> np.ndarray | None:
    """Sampling weight of each train index so that a record's share of the batches is
    proportional to its sample count to the power ``1 - balance`` (None when ``balance`` is 0)."""
    if balance <= 0 or not len(train_idx):
        return None
    rec = corpus.record_of(train_idx)
    _, inverse, counts = np.unique(rec, return_inverse=True, return_counts=True)
    n = counts[inverse].astype(np.float64)
    return n ** (1.0 - balance) / n


def _mask_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(
        (seed * 0x9E3779B1 + step * 65_537 + micro * 257 + rank) % (2**63)
    )


def _augment(x: Tensor, cfg: AugmentConfig, g: torch.Generator) -> Tensor:
    """Amplitude scaling and sign flips per sample (every lead alike) and per lead, then a
    random lead order (see :class:`AugmentConfig`)."""
    b, c = x.shape[0], x.shape[1]
    factor = torch.ones(b, 1)
    changed = False
    if cfg.scale is not None:
        lo, hi = math.log(cfg.scale[0]), math.log(cfg.scale[1])
        factor = factor * torch.exp(lo + (hi - lo) * torch.rand(b, 1, generator=g))
        changed = True
    if cfg.flip > 0:
        factor = torch.where(torch.rand(b, 1, generator=g) < cfg.flip, -factor, factor)
        changed = True
    if cfg.lead_scale is not None:
        lo, hi = math.log(cfg.lead_scale[0]), math.log(cfg.lead_scale[1])
        factor = factor * torch.exp(lo + (hi - lo) * torch.rand(b, c, generator=g))
        changed = True
    if cfg.lead_flip > 0:
        factor = torch.where(torch.rand(b, c, generator=g) < cfg.lead_flip, -factor, factor)
        changed = True
    if changed:
        x = x * factor.expand(b, c).reshape(b, c, 1, 1)
    if cfg.lead_shuffle > 0 and c > 1:
        order = torch.rand(b, c, generator=g).argsort(dim=1)
        keep = torch.rand(b, generator=g) >= cfg.lead_shuffle
        order[keep] = torch.arange(c)
        x = torch.take_along_dim(x, order.view(b, c, 1, 1), dim=1)
    return x


def _foreign_leads(x: Tensor, prob: float, g: torch.Generator) -> Tensor:
    """``augment.lead_foreign``: with probability ``prob`` per sample, every lead but one (drawn
    at random) comes from another sample of the batch (drawn at random, never itself)."""
    b, c = x.shape[0], x.shape[1]
    if prob <= 0 or b < 2 or c < 2:
        return x
    hit = torch.rand(b, generator=g) < prob
    donor = (torch.arange(b) + torch.randint(1, b, (b,), generator=g)) % b  # never i itself
    own = torch.randint(0, c, (b,), generator=g)  # the lead each sample keeps
    take = hit[:, None] & (torch.arange(c)[None, :] != own[:, None])  # [b, c]
    return torch.where(take[:, :, None, None], x[donor], x)


def _next_samples(
    corpus: Corpus, idx: np.ndarray, x: Tensor, hop: int
) -> tuple[Tensor, Tensor, int]:
    """The sample after each of ``idx``, whether it continues it without a break (same record
    and the overlapping patches equal; without overlap this cannot be checked and counts as a
    break), and the hop in patches."""
    p = x.shape[2]
    nxt_idx = np.minimum(idx + 1, len(corpus) - 1)
    nxt = torch.from_numpy(corpus.get(nxt_idx))
    if hop >= p:
        return nxt, torch.zeros(len(idx), dtype=torch.bool), hop
    same = torch.from_numpy((corpus.record_of(idx) == corpus.record_of(nxt_idx)) & (nxt_idx != idx))
    overlap = (x[:, :, hop:] == nxt[:, :, : p - hop]).flatten(1).all(dim=1)
    return nxt, same & overlap, hop


def _time_augment(
    x: Tensor, nxt: Tensor, contiguous: Tensor, hop: int, scale: list[float], g: torch.Generator
) -> Tensor:
    """Resample every sample by a factor in ``scale`` from a random start (see
    :class:`AugmentConfig`); ``nxt`` is the following sample of the corpus, usable where
    ``contiguous`` (its first ``P - hop`` patches are the last ones of ``x``)."""
    b, c, p, s = x.shape
    n = p * s
    long = torch.cat([x.reshape(b, c, n), nxt[:, :, p - hop :].reshape(b, c, hop * s)], dim=2)
    avail = torch.where(contiguous, float(n + hop * s), float(n))
    lo, hi = math.log(scale[0]), math.log(scale[1])
    f = torch.exp(lo + (hi - lo) * torch.rand(b, generator=g))
    f = torch.minimum(f, (avail - 1) / (n - 1))
    span = (n - 1) * f
    t0 = torch.rand(b, generator=g) * (avail - 1 - span)
    pos = t0[:, None] + torch.arange(n, dtype=torch.float32)[None, :] * f[:, None]
    i0 = pos.floor().long().clamp(0, long.shape[2] - 2)
    w = (pos - i0).clamp(0, 1)[:, None, :]
    i0 = i0[:, None, :].expand(b, c, n)
    out = long.gather(2, i0) * (1 - w) + long.gather(2, i0 + 1) * w
    return out.reshape(b, c, p, s)


def _lead_subset(
    c: int,
    prob: float,
    seed: int,
    step: int,
    micro: int,
    info: DistInfo,
    most: int | None = None,
) -> list[int] | None:
    """The leads a batch keeps (``augment.lead_subset``, at most ``most``), or None for all;
    its own generator, so the masks and other augmentations of a run without it stay as they
    were."""
    if prob <= 0 or c < 2:
        return None
    g = _mask_generator(seed + 104_729, step, micro, info.rank)
    if float(torch.rand((), generator=g)) >= prob:
        return None
    k = int(torch.randint(1, min(c, most) + 1 if most else c + 1, (), generator=g))
    if k == c:
        return None
    return sorted(torch.randperm(c, generator=g)[:k].tolist())


def batches(
    corpus: Corpus,
    plan: BatchPlan,
    cfg: PretrainConfig,
    info: DistInfo,
    start: int,
    stop: int,
    mixes: Sequence[MixSource] = (),
) -> Iterator[tuple[int, int, Tensor, MaskBatch]]:
    """(step, micro, x, mask) from ``start`` to ``stop``, read ahead by a background thread.
    With ``mixes``, each step's batch comes from the corpus :func:`source_of_step` names."""
    sources = [(corpus, plan, cfg.data, cfg.masking, cfg.augment)]
    sources += [(m.corpus, m.plan, m.data, m.masking, m.augment) for m in mixes]
    shares = [m.share for m in mixes]

    def load(step: int, micro: int) -> tuple[int, int, Tensor, MaskBatch]:
        src, plan_, data, masking, a = sources[source_of_step(cfg.run.seed, step, shares)]
        hop = min(data.hop_patches or data.sample_patches, data.sample_patches)
        idx = plan_.indices(step, micro, info.rank)
        x = torch.from_numpy(src.get(idx))
        leads = _lead_subset(
            x.shape[1], a.lead_subset, cfg.run.seed, step, micro, info, a.lead_subset_max
        )
        shape = (x.shape[0], len(leads) if leads is not None else x.shape[1], x.shape[2])
        g = _mask_generator(cfg.run.seed, step, micro, info.rank)
        mb = make_mask(shape, masking, g)
        if a.time_scale is not None:
            x = _time_augment(x, *_next_samples(src, idx, x, hop), a.time_scale, g)
        x = _augment(x, a, g)
        if leads is not None:
            x = x[:, leads].contiguous()
        if a.lead_foreign > 0:
            x = _foreign_leads(x, a.lead_foreign, g)
        if info.device.type == "cuda":
            x = x.pin_memory()
        return step, micro, x, mb

    keys = ((s, m) for s in range(start, stop) for m in range(cfg.optim.accum_steps))
    ahead = max(0, cfg.run.prefetch)
    if ahead == 0:
        for s, m in keys:
            yield load(s, m)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="physio-train-data") as ex:
        queue = []
        for key in keys:
            queue.append(ex.submit(load, *key))
            if len(queue) > ahead:
                yield queue.pop(0).result()
        for fut in queue:
            yield fut.result()
