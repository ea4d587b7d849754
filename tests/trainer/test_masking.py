"""Dual masking (intra-/inter-lead), CBraMod patch masking, the masked loss and the baselines."""

from __future__ import annotations

import os

import numpy as np
import torch

from physio_live.trainer import (
    MaskBatch,
    MaskingConfig,
    baseline_interp,
    dual_mask,
    make_mask,
    masked_mse,
    patch_mask,
)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_intra_lead_exact_ratio_per_lead():
    mb = dual_mask((64, 3, 10), ratio=0.3, inter_prob=0.0, generator=_g())
    assert not mb.inter.any()
    assert (mb.mask.sum(dim=2) == 3).all()  # exactly 30 % of the patches of every lead
    # positions differ between leads and samples
    assert len({tuple(row.tolist()) for row in mb.mask.view(-1, 10)}) > 50


def test_inter_lead_hides_whole_leads():
    mb = dual_mask((64, 4, 6), inter_prob=1.0, inter_ratio=0.5, generator=_g(1))
    assert mb.inter.all()
    per_lead = mb.mask.sum(dim=2)
    assert ((per_lead == 0) | (per_lead == 6)).all()  # a lead is hidden whole or not at all
    assert (mb.mask.all(dim=2).sum(dim=1) == 2).all()  # half the leads
    # at least one lead stays visible even when asked to hide all
    mb = dual_mask((16, 2, 5), inter_prob=1.0, inter_ratio=1.0, generator=_g(2))
    assert (mb.mask.all(dim=2).sum(dim=1) == 1).all()


def test_mix_between_modes_and_single_lead():
    mb = dual_mask((4000, 2, 5), inter_prob=0.25, generator=_g(3))
    assert abs(mb.inter.float().mean().item() - 0.25) < 0.03
    intra = mb.mask[~mb.inter]
    assert (intra.sum(dim=2) == 2).all()  # round(0.5 * 5) = 2 patches per lead
    assert (mb.mask[mb.inter].all(dim=2).sum(dim=1) == 1).all()
    # a single lead cannot be masked inter-lead
    assert not dual_mask((100, 1, 5), inter_prob=1.0, generator=_g()).inter.any()


def test_time_aligned_intra_masks_hide_the_same_patches_in_every_lead():
    seed = int(torch.randint(0, 2**31, ()).item())  # fresh draw every run
    shape = (2000, 3, 5)
    mb = dual_mask(shape, inter_prob=0.3, intra_aligned=0.6, generator=_g(seed))
    intra = mb.mask[~mb.inter]
    assert (intra.sum(dim=2) == 2).all()  # still exactly m patches per lead
    aligned = (intra == intra[:, :1]).all(dim=2).all(dim=1)
    # aligned by chance when 3 leads draw the same 2 of 5: (1/10)^2 = 1 %
    expect = 0.6 + 0.4 * 0.01
    assert abs(aligned.float().mean().item() - expect) < 0.05, (seed, aligned.float().mean())
    # inter-lead samples are untouched by the option
    assert ((mb.mask[mb.inter].sum(dim=2) % 5) == 0).all()
    # the paper's masks (option 0) do not consume extra random draws: seed for seed the same
    paper = dual_mask(shape, inter_prob=0.3, generator=_g(seed))
    via_cfg = make_mask(shape, MaskingConfig(kind="dual", inter_prob=0.3), _g(seed))
    assert torch.equal(paper.mask, via_cfg.mask)
    all_aligned = dual_mask(shape, inter_prob=0.0, intra_aligned=1.0, generator=_g(seed))
    assert (all_aligned.mask == all_aligned.mask[:, :1]).all()


def test_cbramod_patch_mask_ratio_and_determinism():
    mb = patch_mask((256, 19, 30), 0.5, _g(4))
    assert abs(mb.mask.float().mean().item() - 0.5) < 0.01
    again = make_mask((256, 19, 30), MaskingConfig(kind="patch", ratio=0.5), _g(4))
    assert torch.equal(mb.mask, again.mask)


def test_loss_counts_masked_patches_only():
    x = torch.randn(4, 2, 5, 200)
    mb = dual_mask((4, 2, 5), generator=_g(5))
    pred = torch.randn_like(x, requires_grad=True)
    loss = masked_mse(pred, x, mb.mask)
    manual = ((pred - x) ** 2)[mb.mask].mean()
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert (pred.grad[~mb.mask] == 0).all() and (pred.grad[mb.mask] != 0).any()
    # whatever is predicted on visible patches does not change the loss
    other = pred.detach().clone()
    other[~mb.mask] = 1e6
    torch.testing.assert_close(masked_mse(other, x, mb.mask), loss.detach())


def test_interp_baseline():
    # a straight line is rebuilt exactly from the visible patches of the same lead
    t = torch.arange(5 * 200, dtype=torch.float32).view(1, 1, 5, 200) / 100
    x = torch.cat([t, -t], dim=1)
    mask = torch.tensor([[[False, True, True, False, False], [False, False, True, False, True]]])
    pred = baseline_interp(x, MaskBatch(mask, torch.tensor([False])))
    torch.testing.assert_close(pred[0, 0], x[0, 0])
    # after the last visible patch the value is held
    assert torch.allclose(pred[0, 1, 4], x[0, 1, 3, -1].expand(200))
    # inter-lead: a hidden lead is the mean of the visible ones
    x = torch.randn(1, 3, 2, 200)
    mask = torch.tensor([[[True, True], [False, False], [False, False]]])
    pred = baseline_interp(x, MaskBatch(mask, torch.tensor([True])))
    torch.testing.assert_close(pred[0, 0], (x[0, 1] + x[0, 2]) / 2)
    torch.testing.assert_close(pred[0, 1:], x[0, 1:])


def _ptb_limb_leads_config(data_dir, cache_dir, augment: dict) -> object:
    """A pretraining config on PTB s0010's six limb leads (4-patch samples every patch, dual
    masks) with ``augment``."""
    from physio_live.trainer import pretrain_config_from_dict

    return pretrain_config_from_dict(
        {
            "modality": "ecg",
            "data": {
                "kind": "wfdb",
                "root": str(data_dir),
                "include": ["wfdb_ptbdb_s0010_re/*"],
                "channels": ["I", "II", "III", "aVR", "aVL", "aVF"],
                "n_channels": 6,
                "sample_patches": 4,
                "hop_patches": 1,
                "cache_dir": str(cache_dir),
            },
            "masking": {"kind": "dual"},
            "augment": augment,
            "run": {"prefetch": 0},
        }
    )


def test_lead_subset_batches_keep_ordered_subsets_and_masks_fit(data_dir, tmp_path):
    """``augment.lead_subset``: some batches keep 1..C-1 leads (in order); their masks have that
    many leads; a one-lead batch is masked intra-lead only; draws are a function of the step."""
    from physio_live.trainer import Corpus, build_cache
    from physio_live.trainer._batches import BatchPlan, _lead_subset, batches
    from physio_live.trainer._loop import DistInfo

    subsets = [_lead_subset(12, 0.5, 0, s, 0, DistInfo()) for s in range(400)]
    kept = [s for s in subsets if s is not None]
    assert 0.35 < len(kept) / 400 < 0.5  # 0.5 x (11 of 12 sizes are a real subset)
    assert all(s == sorted(s) and len(set(s)) == len(s) and 1 <= len(s) <= 11 for s in kept)
    assert {len(s) for s in kept} == set(range(1, 12))
    assert subsets == [_lead_subset(12, 0.5, 0, s, 0, DistInfo()) for s in range(400)]
    cfg = _ptb_limb_leads_config(data_dir, tmp_path, {"lead_subset": 1.0})
    corpus = Corpus(build_cache(cfg.data, progress=False))
    plan = BatchPlan(np.arange(len(corpus)), 8, 1, 1, 0)
    full = torch.from_numpy(corpus.get(plan.indices(0, 0, 0)))
    seen = set()
    for step, _, x, mb in batches(corpus, plan, cfg, DistInfo(), 0, 30):
        c = x.shape[1]
        seen.add(c)
        assert mb.mask.shape == (8, c, 4)
        if c == 1:
            assert not mb.inter.any()
        if step == 0:  # the kept leads are leads of the sample, unchanged
            cols = [next(j for j in range(6) if torch.equal(x[:, i], full[:, j])) for i in range(c)]
            assert cols == sorted(cols)
    assert len(seen) >= 4 and max(seen) <= 6


def test_lead_foreign_keeps_one_lead_and_takes_the_rest_from_another_sample(data_dir, tmp_path):
    """``augment.lead_foreign``: a hit sample keeps one of its leads and takes every other lead
    from one other sample of the batch; the rest stay whole; with 0 the batches are unchanged."""
    from physio_live.trainer import Corpus, build_cache
    from physio_live.trainer._batches import BatchPlan, _foreign_leads, batches
    from physio_live.trainer._loop import DistInfo

    x = torch.randn(64, 3, 2, 200)
    g = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    y = _foreign_leads(x, 0.5, g)
    hits = 0
    for i in range(64):
        own = [c for c in range(3) if torch.equal(y[i, c], x[i, c])]
        if len(own) == 3:
            continue
        hits += 1
        assert len(own) == 1  # one lead of its own ...
        donors = {
            j for j in range(64) for c in range(3) if c not in own and torch.equal(y[i, c], x[j, c])
        }
        assert len(donors) == 1 and i not in donors  # ... the others from one other sample
    assert 16 <= hits <= 48  # 0.5 of 64, far outside chance either way
    assert torch.equal(_foreign_leads(x, 0.0, g), x)
    assert torch.equal(_foreign_leads(x[:1], 1.0, g), x[:1])  # nobody to borrow from

    cfg = _ptb_limb_leads_config(
        data_dir, tmp_path, {"lead_subset": 1.0, "lead_subset_max": 2, "lead_foreign": 1.0}
    )
    corpus = Corpus(build_cache(cfg.data, progress=False))
    plan = BatchPlan(np.arange(len(corpus)), 8, 1, 1, 0)
    plain = _ptb_limb_leads_config(data_dir, tmp_path, {"lead_subset": 1.0, "lead_subset_max": 2})
    mixed = 0
    for (_, _, x, mb), (_, _, x0, mb0) in zip(
        batches(corpus, plan, cfg, DistInfo(), 0, 20),
        batches(corpus, plan, plain, DistInfo(), 0, 20),
        strict=True,
    ):
        assert x.shape == x0.shape and torch.equal(mb.mask, mb0.mask)  # same leads, same masks
        if x.shape[1] == 2:
            assert not torch.equal(x, x0)
            mixed += 1
        else:
            assert torch.equal(x, x0)  # one lead: nothing to take from elsewhere
    assert mixed >= 3
