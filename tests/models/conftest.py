"""An independent reference CBraMod in the official module tree, and helpers for the model tests.

The reference mirrors the official repository (wjq-learning/CBraMod, ``models/cbramod.py`` and
``models/criss_cross_transformer.py``) name for name, so its ``state_dict`` is a file the official
code would write, but it is written straight from the equations: attention is spelled out with
matmul + softmax; the branches use the official reshapes (``transpose``, ``contiguous``, ``view``).
It shares no code with ``physio_live.models``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

OFFICIAL_KEY_COUNT = 211  # 17 (patch embedding) + 12 x 16 (layers) + 2 (proj_out)
HUB_REPO = "weighting666/CBraMod"
HUB_FILENAME = "pretrained_weights.pth"
HUB_REVISION = "500543c7e30bda1b22bfd51a49301b238dee21fd"  # a published commit of the hub repo


class RefMultiheadAttention(nn.Module):
    """Parameters named as ``nn.MultiheadAttention``'s; self-attention computed explicitly."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.normal_(self.in_proj_bias, std=0.02)

    def forward(self, x: Tensor) -> Tensor:  # x [N, L, E]
        n, seq, e = x.shape
        hd = e // self.num_heads
        q, k, v = (x @ self.in_proj_weight.T + self.in_proj_bias).split(e, dim=-1)

        def heads(t: Tensor) -> Tensor:
            return t.reshape(n, seq, self.num_heads, hd).permute(0, 2, 1, 3)

        scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(hd)
        out = torch.softmax(scores, dim=-1) @ heads(v)
        return self.out_proj(out.permute(0, 2, 1, 3).reshape(n, seq, e))


class RefLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int) -> None:
        super().__init__()
        self.self_attn_s = RefMultiheadAttention(d_model // 2, nhead // 2)
        self.self_attn_t = RefMultiheadAttention(d_model // 2, nhead // 2)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-5)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        b, c, p, d = y.shape
        h = d // 2
        ys = y[..., :h].transpose(1, 2).contiguous().view(b * p, c, h)
        yt = y[..., h:].contiguous().view(b * c, p, h)
        ys = self.self_attn_s(ys).view(b, p, c, h).transpose(1, 2)
        yt = self.self_attn_t(yt).view(b, c, p, h)
        x = x + torch.cat((ys, yt), dim=3)
        ff = self.linear2(nn.functional.gelu(self.linear1(self.norm2(x))))
        return x + ff


class RefEncoder(nn.Module):
    def __init__(self, n_layer: int, d_model: int, nhead: int, dim_feedforward: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            RefLayer(d_model, nhead, dim_feedforward) for _ in range(n_layer)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class RefPatchEmbedding(nn.Module):
    def __init__(self, in_dim: int, d_model: int) -> None:
        super().__init__()
        width = d_model // 8
        self.d_model = d_model
        self.positional_encoding = nn.Sequential(
            nn.Conv2d(d_model, d_model, (19, 7), padding=(9, 3), groups=d_model)
        )
        self.mask_encoding = nn.Parameter(torch.zeros(in_dim), requires_grad=False)
        self.proj_in = nn.Sequential(
            nn.Conv2d(1, width, (1, 49), stride=(1, 25), padding=(0, 24)),
            nn.GroupNorm(5, width),
            nn.GELU(),
            nn.Conv2d(width, width, (1, 3), padding=(0, 1)),
            nn.GroupNorm(5, width),
            nn.GELU(),
            nn.Conv2d(width, width, (1, 3), padding=(0, 1)),
            nn.GroupNorm(5, width),
            nn.GELU(),
        )
        self.spectral_proj = nn.Sequential(nn.Linear(in_dim // 2 + 1, d_model), nn.Dropout(0.1))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, c, p, s = x.shape
        if mask is not None:
            x = x.clone()
            x[mask == 1] = self.mask_encoding
        x = x.contiguous().view(b, 1, c * p, s)
        emb = self.proj_in(x).permute(0, 2, 1, 3).contiguous().view(b, c, p, self.d_model)
        spectral = torch.fft.rfft(x.view(b * c * p, s), dim=-1, norm="forward").abs()
        emb = emb + self.spectral_proj(spectral.view(b, c, p, s // 2 + 1))
        pos = self.positional_encoding(emb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return emb + pos


class RefCBraMod(nn.Module):
    """Official module tree: ``patch_embedding``, ``encoder.layers.N``, ``proj_out.0``."""

    def __init__(
        self,
        in_dim: int = 200,
        out_dim: int = 200,
        d_model: int = 200,
        dim_feedforward: int = 800,
        n_layer: int = 12,
        nhead: int = 8,
    ) -> None:
        super().__init__()
        self.patch_embedding = RefPatchEmbedding(in_dim, d_model)
        self.encoder = RefEncoder(n_layer, d_model, nhead, dim_feedforward)
        self.proj_out = nn.Sequential(nn.Linear(d_model, out_dim))

    def forward_features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.encoder(self.patch_embedding(x, mask))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.proj_out(self.forward_features(x, mask))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter (norms and biases too) random values of a sane scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mask_encoding"):
                continue
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(0.5 * torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
    return model.eval()


def write_hub_snapshot(cache_dir: Path, state_dict: dict[str, Tensor], revision: str) -> Path:
    """Lay ``state_dict`` out the way ``huggingface_hub`` caches ``pretrained_weights.pth``.

    ``<cache>/models--weighting666--CBraMod/{blobs/<hash>, refs/main, snapshots/<rev>/<file>}``,
    with the snapshot file a relative symlink to its blob. Returns the snapshot file.
    """
    repo_dir = cache_dir / ("models--" + HUB_REPO.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    snap = repo_dir / "snapshots" / revision
    snap.mkdir(parents=True)
    blob = repo_dir / "blobs" / "0123abcd"
    torch.save(state_dict, blob)
    (repo_dir / "refs" / "main").write_text(revision)
    target = snap / HUB_FILENAME
    os.symlink(os.path.relpath(blob, snap), target)
    return target


@pytest.fixture(scope="session")
def reference() -> SimpleNamespace:
    """The reference classes and helpers, for tests (importing from conftest is fragile)."""
    return SimpleNamespace(
        OFFICIAL_KEY_COUNT=OFFICIAL_KEY_COUNT,
        HUB_REVISION=HUB_REVISION,
        RefCBraMod=RefCBraMod,
        RefMultiheadAttention=RefMultiheadAttention,
        randomize_=randomize_,
        write_hub_snapshot=write_hub_snapshot,
    )


@pytest.fixture
def official_model() -> RefCBraMod:
    """The full-size official-layout reference with random weights (eval mode)."""
    torch.manual_seed(0)
    return randomize_(RefCBraMod(), seed=1)


@pytest.fixture
def hub_cache(tmp_path: Path, official_model: RefCBraMod) -> Path:
    """A Hugging Face cache folder holding the reference's state_dict as the official file."""
    cache = tmp_path / "hf-cache"
    write_hub_snapshot(cache, official_model.state_dict(), HUB_REVISION)
    return cache
