"""CBraMod: a criss-cross transformer encoder for EEG (and, with its own weights, for ECG).

Paper: Wang, Zhao, Luo, Zhou, Jiang, Li, Li, Pan, "CBraMod: A Criss-Cross Brain Foundation Model for
EEG Decoding", ICLR 2025 (arXiv:2412.07236). Official code: github.com/wjq-learning/CBraMod (MIT);
official weights: ``pretrained_weights.pth`` in the Hugging Face repo ``weighting666/CBraMod``.

Input is ``(batch, channels, patches, patch_size)``: 1-s patches of 200 samples at 200 Hz, in
units of 100 uV. Each patch becomes an ``embed_dim``-vector (conv stack over time + projection of
the rFFT magnitude + a depthwise-conv positional encoding over the channel x patch grid). Every
block splits the normalised features in two halves: the first half attends across channels
(spatial), the second across patches (temporal), in parallel; the results are concatenated
(pre-norm, GELU MLP).

This is an independent implementation (``scaled_dot_product_attention``, projections applied to
views of the halves, no copy of the residual stream); :func:`checkpoint_filter_fn` maps the
official state_dict onto it and :func:`to_official_state_dict` maps it back.

Inference (eval mode without autograd: ``torch.inference_mode()`` or ``no_grad``) takes a leaner
path with the same parameters: on a CPU in float32 the linears run as oneDNN inner products on
weights reordered once (kept outside the module, remade when a weight changes), with GELU and the
residual adds fused into them; wide ones are summed in chunks of 200 inputs so that the outputs
stay as close to a float64 computation as the aten ops' are; attention is SDPA (on a CPU with
several threads: matmul + softmax + matmul, which spread better); the residual stream is updated
in place. Elsewhere (CUDA, autocast, no oneDNN) the same path runs on
the aten ops. Training, and any call that needs gradients, runs the modules as written.
``CBraMod.fast_inference = False`` turns the leaner path off.

Two facts of the official model worth knowing: the GroupNorms of the conv stack normalise each
sample over *all* its patches (so a patch embedding depends on the other patches), and pretraining
replaces masked patches by ``mask_token`` (zeros) before both the conv stack and the rFFT.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._errors import CheckpointError, ModelInputError

__all__ = [
    "CBraMod",
    "CBraModConfig",
    "cbramod_base",
    "cbramod_ecg",
    "checkpoint_filter_fn",
    "to_official_state_dict",
]

# Geometry of the first conv of the official patch embedding (time axis of one patch).
_CONV1_KERNEL, _CONV1_STRIDE, _CONV1_PADDING = 49, 25, 24
_CONV_GROUPS = 5


@dataclass(frozen=True)
class CBraModConfig:
    """Architecture of a CBraMod encoder; the defaults are the official pretrained model."""

    patch_size: int = 200
    embed_dim: int = 200
    depth: int = 12
    num_heads: int = 8
    mlp_dim: int = 800
    pos_kernel: tuple[int, int] = (19, 7)
    out_dim: int | None = 200
    """Width of the reconstruction head ``proj_out``; ``None`` builds the encoder without it."""
    drop_rate: float = 0.1
    norm_eps: float = 1e-5

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["pos_kernel"] = list(self.pos_kernel)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> CBraModConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(
                f"encoder config has unknown keys {unknown}; it was written by another version: "
                f"re-export the checkpoint with this version of physio-live"
            )
        kwargs = dict(d)
        if "pos_kernel" in kwargs:
            kwargs["pos_kernel"] = tuple(kwargs["pos_kernel"])  # type: ignore[arg-type]
        return cls(**kwargs)  # type: ignore[arg-type]


def _conv_steps(patch_size: int) -> int:
    return (patch_size + 2 * _CONV1_PADDING - _CONV1_KERNEL) // _CONV1_STRIDE + 1


# --------------------------------------------------------------------------------------------------
# Inference kernels (no autograd): oneDNN linears with fused GELU / residual add on CPU float32
# --------------------------------------------------------------------------------------------------

_onednn_ok: bool | None = None  # None: not probed yet


def _onednn_linear_available() -> bool:
    """Whether oneDNN's inner product (``torch.ops.mkldnn._linear_pointwise``) runs here (once)."""
    global _onednn_ok
    if _onednn_ok is None:
        try:
            ok = torch.backends.mkldnn.is_available()
            if ok:
                w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(3, 2), _PACK_BATCH)
                x = torch.ones(1, 2)
                y = torch.ops.mkldnn._linear_pointwise(x, w, None, "gelu", [], "none")
                z = torch.ops.mkldnn._linear_pointwise.binary(x, y, w, torch.zeros(3), "add")
                ok = bool(torch.allclose(z, y + 2.0))
        except Exception:  # an op missing from this build or refused by this CPU
            ok = False
        _onednn_ok = ok
    return _onednn_ok


def _compiling() -> bool:
    """Under ``torch.compile`` the module path is traced (the compiler fuses it itself)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling()) if is_compiling is not None else False


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def _use_onednn(x: Tensor) -> bool:
    """oneDNN linears for float32 on the CPU outside autocast (autocast needs the aten ops)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not _autocast_on("cpu")
        and _onednn_linear_available()
    )


_PACK_BATCH = 64  # row-count hint for oneDNN's blocked weight layout
# oneDNN sums each dot product in one accumulator, so its float32 error grows with the inner size
# (at 640-800 about twice MKL's, which the aten ops use): wider linears are summed in chunks of
# at most this many inputs, which keeps the outputs as close to float64 as the aten path is.
_CHUNK = 200
# Below this many multiply-adds per oneDNN call its fixed cost (~13 us) outweighs its faster
# kernels: small linears (few tokens, e.g. the 2-lead ECG encoder) use the aten op.
_ONEDNN_MIN_MACS = 1_000_000


class _Packed:
    """A linear layer's weight in oneDNN's blocked layout, cut into chunks of inputs, and which
    weight it was made from."""

    __slots__ = ("chunks", "ptr", "version", "width")

    def __init__(self, weight: Tensor) -> None:
        self.ptr, self.version = weight.data_ptr(), weight._version
        w = weight.detach()
        k = w.shape[1]
        n = -(-k // _CHUNK)
        self.width = -(-k // n)
        self.chunks = [
            torch.ops.mkldnn._reorder_linear_weight(
                w[:, i : i + self.width].contiguous(), _PACK_BATCH
            )
            for i in range(0, k, self.width)
        ]


Packs = dict[nn.Linear, _Packed] | None
"""oneDNN weights of a model's linears (``None``: the aten ops, e.g. on CUDA or under autocast)."""

# Per model, outside the module (no state_dict, deepcopy or pickle sees them). A packed weight is
# remade when its weight changes (in-place updates bump ``_version``: optimizer steps,
# load_state_dict; ``.to()`` moves the data); ``train()`` / ``eval()`` drop them all, which also
# catches updates made through ``.data``.
_PACKS: weakref.WeakKeyDictionary[nn.Module, dict[nn.Linear, _Packed]]
_PACKS = weakref.WeakKeyDictionary()


def _packs_of(model: nn.Module) -> dict[nn.Linear, _Packed]:
    packs = _PACKS.get(model)
    if packs is None:
        packs = _PACKS[model] = {}
    return packs


def _linear(
    x: Tensor, layer: nn.Linear, packs: Packs, *, gelu: bool = False, residual: Tensor | None = None
) -> Tensor:
    """``layer(x)``, then exact (erf) GELU if ``gelu``, or plus ``residual``: one op with oneDNN."""
    params = layer._parameters  # (hot path: skips nn.Module.__getattr__)
    weight, bias = params["weight"], params["bias"]
    n_out, n_in = weight.shape
    if packs is None or x.numel() // n_in * min(n_in, _CHUNK) * n_out < _ONEDNN_MIN_MACS:
        y = F.linear(x, weight, bias)
        if gelu:
            return F.gelu(y)
        return y if residual is None else y.add_(residual)
    pk = packs.get(layer)
    if pk is None or pk.version != weight._version or pk.ptr != weight.data_ptr():
        pk = packs[layer] = _Packed(weight)
    lin = torch.ops.mkldnn._linear_pointwise
    w0, rest = pk.chunks[0], pk.chunks[1:]
    if not rest:
        if gelu:
            return lin(x, w0, bias, "gelu", [], "none")
        if residual is not None:
            return lin.binary(x, residual, w0, bias, "add")
        return lin(x, w0, bias, "none", [], "")
    # the chunks are summed first and the residual added once (as in one sum): adding each
    # chunk to the (larger) residual would round at its scale every time
    n = pk.width
    y = lin(x[..., :n], w0, bias, "none", [], "")
    for i, w in enumerate(rest, 1):
        y = lin.binary(x[..., i * n : (i + 1) * n], y, w, None, "add")
    if gelu:
        return F.gelu(y)
    return y if residual is None else y.add_(residual)


def _sdpa(qkv: Tensor, batch: int, length: int, heads: int) -> Tensor:
    """``qkv`` [..., length, 3*half] (contiguous) -> self-attention output [batch, length, half]."""
    q, k, v = qkv.view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    if q.device.type == "cpu" and torch.get_num_threads() > 1:
        # With several threads the CPU SDPA kernel's per-sequence overhead dominates these short
        # sequences (4-32 tokens); matmul + softmax + matmul spread better over the threads
        # (2 threads, 12 x 200: batch 32 x 19 x 4 97 vs 125 ms, batch 1 6.9 vs 7.4 ms).
        attn = torch.matmul(q, k.transpose(-2, -1)).mul_(q.shape[-1] ** -0.5).softmax(dim=-1)
        out = torch.matmul(attn, v)
    else:
        out = F.scaled_dot_product_attention(q, k, v)  # [batch, heads, length, head_dim]
    return out.transpose(1, 2).reshape(batch, length, -1)


# --------------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Patch -> vector: conv stack over time + rFFT-magnitude projection + positional encoding.

    The conv stack sees all ``channels * patches`` patches of a sample as rows of one image, so its
    GroupNorms pool statistics over the whole sample (as the official model does).
    """

    def __init__(
        self,
        *,
        patch_size: int = 200,
        embed_dim: int = 200,
        pos_kernel: tuple[int, int] = (19, 7),
        drop_rate: float = 0.1,
    ) -> None:
        super().__init__()
        steps = _conv_steps(patch_size)
        if embed_dim % steps or (embed_dim // steps) % _CONV_GROUPS:
            raise ValueError(
                f"embed_dim={embed_dim} must be {steps} x a multiple of {_CONV_GROUPS} "
                f"for patch_size={patch_size}"
            )
        if pos_kernel[0] % 2 == 0 or pos_kernel[1] % 2 == 0:
            raise ValueError(f"pos_kernel={pos_kernel} must be odd in both axes")
        width = embed_dim // steps
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.conv1 = nn.Conv2d(
            1, width, (1, _CONV1_KERNEL), stride=(1, _CONV1_STRIDE), padding=(0, _CONV1_PADDING)
        )
        self.norm1 = nn.GroupNorm(_CONV_GROUPS, width)
        self.conv2 = nn.Conv2d(width, width, (1, 3), padding=(0, 1))
        self.norm2 = nn.GroupNorm(_CONV_GROUPS, width)
        self.conv3 = nn.Conv2d(width, width, (1, 3), padding=(0, 1))
        self.norm3 = nn.GroupNorm(_CONV_GROUPS, width)
        self.spectral = nn.Linear(patch_size // 2 + 1, embed_dim)
        self.spectral_drop = nn.Dropout(drop_rate)
        self.pos_conv = nn.Conv2d(
            embed_dim,
            embed_dim,
            pos_kernel,
            padding=(pos_kernel[0] // 2, pos_kernel[1] // 2),
            groups=embed_dim,
        )
        # The official model keeps its all-zero mask token as a frozen parameter; here a buffer.
        self.register_buffer("mask_token", torch.zeros(patch_size))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, c, p, s = x.shape
        if mask is not None:
            x = torch.where(mask.bool().unsqueeze(-1), self.mask_token.to(x.dtype), x)
        # conv stack: [B, 1, C*P, S] -> [B, W, C*P, steps]; feature index = w * steps + t
        h = F.gelu(self.norm1(self.conv1(x.reshape(b, 1, c * p, s))))
        h = F.gelu(self.norm2(self.conv2(h)))
        h = F.gelu(self.norm3(self.conv3(h)))
        h = h.permute(0, 2, 1, 3).reshape(b, c, p, self.embed_dim)
        # spectral: |rFFT| / S of each patch (bins 0..S/2)
        spec = torch.fft.rfft(x.float(), dim=-1, norm="forward").abs().to(h.dtype)
        emb = self.spectral_drop(self.spectral(spec)) + h
        # [B, C, P, D] is the channels-last layout of [B, D, C, P]: the depthwise conv needs no copy
        pos = self.pos_conv(emb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return emb + pos

    def forward_inference(self, x: Tensor, mask: Tensor | None, packs: Packs) -> Tensor:
        """``forward`` without autograd or dropout, in fewer ops."""
        b, c, p, s = x.shape
        if mask is not None:
            x = torch.where(mask.bool().unsqueeze(-1), self.mask_token.to(x.dtype), x)
        h = F.gelu(self.norm1(self.conv1(x.reshape(b, 1, c * p, s))))
        h = F.gelu(self.norm2(self.conv2(h)))
        h = F.gelu(self.norm3(self.conv3(h)))
        h = h.permute(0, 2, 1, 3).reshape(b, c, p, self.embed_dim)
        spec = torch.fft.rfft(x.float(), dim=-1, norm="forward").abs().to(h.dtype)
        emb = _linear(spec, self.spectral, packs, residual=h)
        return emb.add_(self.pos_conv(emb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class CrissCrossAttention(nn.Module):
    """Spatial attention (across channels) on the first half of the features and temporal
    attention (across patches) on the second, ``num_heads // 2`` heads each; outputs concatenated.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fused_attn: bool | None = None,
    ) -> None:
        super().__init__()
        if dim % 2 or num_heads % 2:
            raise ValueError(f"dim={dim} and num_heads={num_heads} must both be even")
        half, heads = dim // 2, num_heads // 2
        if half % heads:
            raise ValueError(f"dim/2={half} is not divisible by num_heads/2={heads}")
        self.half = half
        self.heads = heads
        self.scale = (half // heads) ** -0.5
        self.attn_drop = attn_drop
        # None: SDPA on accelerators and in training; on CPU in eval, explicit matmul + softmax,
        # which runs faster than SDPA's CPU kernels for these short sequences (4-30 tokens).
        self.fused_attn = fused_attn
        self.qkv_s = nn.Linear(half, 3 * half)
        self.proj_s = nn.Linear(half, half)
        self.qkv_t = nn.Linear(half, 3 * half)
        self.proj_t = nn.Linear(half, half)
        self.proj_drop = nn.Dropout(proj_drop)

    def _attend(self, qkv: Tensor, batch: int, length: int) -> Tensor:
        """``qkv`` [..., length, 3*half] (contiguous) -> attention output [batch, length, half]."""
        q, k, v = qkv.view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        fused = self.fused_attn
        if fused is None:
            fused = self.training or qkv.device.type != "cpu"
        if fused:
            drop = self.attn_drop if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        else:
            attn = (q @ k.transpose(-2, -1)).mul_(self.scale).softmax(dim=-1)
            if self.training and self.attn_drop:
                attn = F.dropout(attn, self.attn_drop)
            out = attn @ v
        return out.transpose(1, 2).reshape(batch, length, self.half)

    def forward(self, x: Tensor) -> Tensor:
        b, c, p, _ = x.shape
        # spatial: sequences over channels, one per (sample, patch)
        qkv = self.qkv_s(x[..., : self.half].transpose(1, 2))  # [B, P, C, 3h]
        xs = self.proj_s(self._attend(qkv, b * p, c)).view(b, p, c, self.half)
        # temporal: sequences over patches, one per (sample, channel); no transpose needed
        qkv = self.qkv_t(x[..., self.half :])  # [B, C, P, 3h]
        xt = self.proj_t(self._attend(qkv, b * c, p)).view(b, c, p, self.half)
        return self.proj_drop(torch.cat((xs.transpose(1, 2), xt), dim=-1))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, *, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop1 = nn.Dropout(drop)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop2(self.fc2(self.drop1(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm criss-cross transformer block."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        *,
        drop: float = 0.0,
        norm_eps: float = 1e-5,
        fused_attn: bool | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrissCrossAttention(
            dim, num_heads, attn_drop=drop, proj_drop=drop, fused_attn=fused_attn
        )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_dim, drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def forward_inference(self, x: Tensor, packs: Packs) -> Tensor:
        """``forward`` without autograd or dropout, in fewer ops; updates ``x`` in place."""
        b, c, p, d = x.shape
        a, n1, n2 = self.attn, self.norm1, self.norm2
        half, heads = a.half, a.heads
        h = F.layer_norm(x, (d,), n1.weight, n1.bias, n1.eps)
        # spatial: sequences over channels, tokens in (sample, patch, channel) order
        ys = _sdpa(_linear(h[..., :half].transpose(1, 2), a.qkv_s, packs), b * p, c, heads)
        ys = _linear(ys, a.proj_s, packs).view(b, p, c, half).transpose(1, 2)
        # temporal: sequences over patches, tokens in the residual stream's order
        yt = _sdpa(_linear(h[..., half:], a.qkv_t, packs), b * c, p, heads)
        yt = _linear(yt, a.proj_t, packs).view(b, c, p, half)
        x[..., :half].add_(ys)
        x[..., half:].add_(yt)
        h = _linear(
            F.layer_norm(x, (d,), n2.weight, n2.bias, n2.eps), self.mlp.fc1, packs, gelu=True
        )
        return _linear(h, self.mlp.fc2, packs, residual=x)


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


class CBraMod(nn.Module):
    """CBraMod encoder for any number of channels (or ECG leads) and patches.

    ``forward_features`` gives per-patch features ``[B, C, P, D]``; ``forward_head(..., pre_logits=
    True)`` (or ``forward_embedding``) the mean-pooled embedding ``[B, D]`` used for fusion;
    ``forward`` is the official model's output: the reconstruction head applied to every patch.
    ``fused_attn`` picks the attention kernel of the module path (``None``: automatic, see
    ``CrissCrossAttention``); the inference path picks its own (see ``_sdpa``). Both are runtime
    choices, not part of the architecture.
    """

    def __init__(
        self,
        *,
        patch_size: int = 200,
        embed_dim: int = 200,
        depth: int = 12,
        num_heads: int = 8,
        mlp_dim: int = 800,
        pos_kernel: tuple[int, int] = (19, 7),
        out_dim: int | None = 200,
        drop_rate: float = 0.1,
        norm_eps: float = 1e-5,
        fused_attn: bool | None = None,
    ) -> None:
        super().__init__()
        self.config = CBraModConfig(
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            pos_kernel=tuple(pos_kernel),
            out_dim=out_dim,
            drop_rate=drop_rate,
            norm_eps=norm_eps,
        )
        self.patch_size = patch_size
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = PatchEmbed(
            patch_size=patch_size, embed_dim=embed_dim, pos_kernel=pos_kernel, drop_rate=drop_rate
        )
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_dim,
                drop=drop_rate,
                norm_eps=norm_eps,
                fused_attn=fused_attn,
            )
            for _ in range(depth)
        )
        self.head: nn.Module = nn.Linear(embed_dim, out_dim) if out_dim else nn.Identity()
        self.fast_inference = True
        self.apply(_init_weights)

    def train(self, mode: bool = True) -> CBraMod:
        _PACKS.pop(self, None)  # the inference path repacks its weights on next use
        return super().train(mode)

    @classmethod
    def from_config(cls, config: CBraModConfig, **kwargs: object) -> CBraMod:
        return cls(**asdict(config), **kwargs)  # type: ignore[arg-type]

    def reset_head(self) -> None:
        """Drop the reconstruction head (the official fine-tuning sets ``proj_out`` to Identity)."""
        self.head = nn.Identity()
        self.config = CBraModConfig(**{**asdict(self.config), "out_dim": None})

    def check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[-1] != self.patch_size:
            raise ModelInputError(
                f"CBraMod expects (batch, channels, patches, {self.patch_size}) at 200 Hz in units "
                f"of 100 uV, got shape {tuple(x.shape)}: cut the signal into 1-s patches first"
            )

    def forward_features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` [B, C, P, patch_size] (``mask`` [B, C, P], true = masked) -> [B, C, P, D]."""
        self.check_input(x)
        if self._inference_path():
            packs = _packs_of(self) if _use_onednn(x) else None
            x = self.patch_embed.forward_inference(x, mask, packs)
            for block in self.blocks:
                x = block.forward_inference(x, packs)
            return x
        x = self.patch_embed(x, mask)
        for block in self.blocks:
            x = block(x)
        return x

    def _inference_path(self) -> bool:
        """The fast path: eval mode, no autograd (``inference_mode``, ``no_grad``), not disabled."""
        fast = getattr(self, "fast_inference", True)  # modules pickled before it existed
        return fast and not self.training and not torch.is_grad_enabled() and not _compiling()

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Features [B, C, P, D] -> pooled embedding [B, D] (``pre_logits``) or head output."""
        if pre_logits:
            return x.mean(dim=(1, 2))
        if isinstance(self.head, nn.Linear) and self._inference_path():
            return _linear(x, self.head, _packs_of(self) if _use_onednn(x) else None)
        return self.head(x)

    def forward_embedding(self, x: Tensor) -> Tensor:
        """``x`` [B, C, P, patch_size] -> mean-pooled embedding [B, D] for fusion."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(x, mask))


def _init_weights(m: nn.Module) -> None:
    # The official init: Kaiming-normal (fan_out) on Linear weights, PyTorch defaults elsewhere.
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


# --------------------------------------------------------------------------------------------------
# Official checkpoint <-> this layout
# --------------------------------------------------------------------------------------------------

_OFFICIAL_MARKER = "patch_embedding.proj_in.0.weight"
_OURS_MARKER = "patch_embed.conv1.weight"

# (official name, our name) for the fixed part; the per-layer part is handled by _LAYER_NAMES.
_FIXED_NAMES: tuple[tuple[str, str], ...] = (
    ("patch_embedding.proj_in.0", "patch_embed.conv1"),
    ("patch_embedding.proj_in.1", "patch_embed.norm1"),
    ("patch_embedding.proj_in.3", "patch_embed.conv2"),
    ("patch_embedding.proj_in.4", "patch_embed.norm2"),
    ("patch_embedding.proj_in.6", "patch_embed.conv3"),
    ("patch_embedding.proj_in.7", "patch_embed.norm3"),
    ("patch_embedding.spectral_proj.0", "patch_embed.spectral"),
    ("patch_embedding.positional_encoding.0", "patch_embed.pos_conv"),
    ("patch_embedding.mask_encoding", "patch_embed.mask_token"),
    ("proj_out.0", "head"),
)
_LAYER_NAMES: tuple[tuple[str, str], ...] = (
    ("self_attn_s.in_proj_weight", "attn.qkv_s.weight"),
    ("self_attn_s.in_proj_bias", "attn.qkv_s.bias"),
    ("self_attn_s.out_proj", "attn.proj_s"),
    ("self_attn_t.in_proj_weight", "attn.qkv_t.weight"),
    ("self_attn_t.in_proj_bias", "attn.qkv_t.bias"),
    ("self_attn_t.out_proj", "attn.proj_t"),
    ("linear1", "mlp.fc1"),
    ("linear2", "mlp.fc2"),
    ("norm1", "norm1"),
    ("norm2", "norm2"),
)
_OFFICIAL_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
_OUR_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _rename(name: str, table: tuple[tuple[str, str], ...], src: int) -> str | None:
    dst = 1 - src
    for pair in table:
        prefix = pair[src]
        if name == prefix or name.startswith(prefix + "."):
            return pair[dst] + name[len(prefix) :]
    return None


def _official_to_ours(name: str) -> str | None:
    m = _OFFICIAL_LAYER.match(name)
    if m:
        rest = _rename(m.group(2), _LAYER_NAMES, 0)
        return None if rest is None else f"blocks.{m.group(1)}.{rest}"
    return _rename(name, _FIXED_NAMES, 0)


def _ours_to_official(name: str) -> str | None:
    m = _OUR_BLOCK.match(name)
    if m:
        rest = _rename(m.group(2), _LAYER_NAMES, 1)
        return None if rest is None else f"encoder.layers.{m.group(1)}.{rest}"
    return _rename(name, _FIXED_NAMES, 1)


def _strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def checkpoint_filter_fn(
    state_dict: Mapping[str, Tensor], model: CBraMod | None = None
) -> dict[str, Tensor]:
    """Map a state_dict in the official layout (or ours) onto this module's names.

    Accepts the plain official state_dict, one saved from ``nn.DataParallel`` (``module.`` prefix),
    or one already in our layout. Keys it does not know are kept as they are, so that
    ``load_state_dict`` names them as unexpected. When ``model`` has no reconstruction head the
    official ``proj_out`` weights are dropped, as the official fine-tuning does.
    """
    sd = _strip_prefix(state_dict, "module.")
    if _OFFICIAL_MARKER in sd:
        out = {}
        for k, v in sd.items():
            new = _official_to_ours(k)
            out[new if new is not None else k] = v
    elif _OURS_MARKER in sd:
        out = dict(sd)
    else:
        some = ", ".join(sorted(sd)[:4]) or "no keys at all"
        raise CheckpointError(
            f"this is not a CBraMod state_dict (it has {len(sd)} keys, e.g. {some}; expected "
            f"'{_OFFICIAL_MARKER}'): use the official pretrained_weights.pth from "
            f"huggingface.co/weighting666/CBraMod or a checkpoint saved by physio-live"
        )
    if model is not None and isinstance(model.head, nn.Identity):
        out = {k: v for k, v in out.items() if not (k == "head" or k.startswith("head."))}
    return out


def to_official_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map one of our CBraMod state_dicts onto the official names (the inverse of the filter)."""
    out = {}
    for k, v in state_dict.items():
        new = _ours_to_official(k)
        if new is None:
            raise CheckpointError(
                f"'{k}' has no counterpart in the official CBraMod layout: only a bare CBraMod "
                f"encoder can be exported to the official format"
            )
        out[new] = v
    return out


def config_from_official(state_dict: Mapping[str, Tensor], num_heads: int = 8) -> CBraModConfig:
    """Read the architecture off an official state_dict (the head count is not stored in it)."""
    sd = checkpoint_filter_fn(state_dict)
    try:
        depth = 1 + max(int(m.group(1)) for k in sd if (m := _OUR_BLOCK.match(k)))
        embed_dim = sd["patch_embed.spectral.weight"].shape[0]
        patch_size = sd["patch_embed.mask_token"].shape[0]
        mlp_dim = sd["blocks.0.mlp.fc1.weight"].shape[0]
        pos_kernel = tuple(sd["patch_embed.pos_conv.weight"].shape[-2:])
    except (KeyError, ValueError) as e:
        raise CheckpointError(
            f"this CBraMod state_dict lacks {e}: the file is incomplete or from another model; "
            f"download pretrained_weights.pth again"
        ) from e
    head = sd.get("head.weight")
    return CBraModConfig(
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_dim=mlp_dim,
        pos_kernel=pos_kernel,  # type: ignore[arg-type]
        out_dim=None if head is None else head.shape[0],
    )


def load_cbramod_state_dict(model: CBraMod, state_dict: Mapping[str, Tensor]) -> None:
    """Load an official-layout or our-layout state_dict into ``model``, strictly.

    Raises :class:`CheckpointError` naming the missing, unexpected and mis-shaped keys.
    """
    sd = checkpoint_filter_fn(state_dict, model)
    load_strict(model, sd, what="CBraMod checkpoint")


def load_strict(model: nn.Module, state_dict: Mapping[str, Tensor], *, what: str) -> None:
    """``load_state_dict(strict=True)`` with one clear error that names the offending keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and state_dict[k].shape != v.shape
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(
            f"the {what} does not fit this model ({'; '.join(problems)}): it was saved for another "
            f"architecture; use the matching config or the right checkpoint file"
        )
    model.load_state_dict(state_dict, strict=True)


# --------------------------------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------------------------------


def cbramod_base(
    *,
    state_dict: Mapping[str, Tensor] | None = None,
    head: bool = True,
    drop_rate: float = 0.1,
    **kwargs: object,
) -> CBraMod:
    """The official CBraMod (12 x 200, 8 heads, ~4.9 M parameters).

    ``state_dict``: official or our layout (e.g. from :func:`load_official_cbramod`); ``head=False``
    drops the reconstruction head, for use as a feature extractor.
    """
    model = CBraMod(drop_rate=drop_rate, **kwargs)  # type: ignore[arg-type]
    if not head:
        model.reset_head()
    if state_dict is not None:
        load_cbramod_state_dict(model, state_dict)
    return model


def cbramod_ecg(
    *,
    init: Literal["random", "eeg"] = "random",
    eeg_state_dict: Mapping[str, Tensor] | None = None,
    head: bool = False,
    **kwargs: object,
) -> CBraMod:
    """The ECG encoder: the same architecture as the EEG one, its own weights, any lead count.

    ``init="eeg"`` starts from an EEG encoder's weights (official or our layout); nothing in the
    architecture depends on the number of leads, so 1, 2 or 12 leads all work.
    """
    if init not in ("random", "eeg"):
        raise ValueError(f"init must be 'random' or 'eeg', got {init!r}")
    if init == "eeg" and eeg_state_dict is None:
        raise ValueError("init='eeg' needs eeg_state_dict (e.g. the official CBraMod weights)")
    return cbramod_base(
        state_dict=eeg_state_dict if init == "eeg" else None,
        head=head,
        **kwargs,
    )


def num_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
