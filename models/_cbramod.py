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
views of the halves, no copy of the residual stream); ``checkpoint_filter_fn`` in
:mod:`._official` maps the official state_dict onto it and ``to_official_state_dict`` maps it
back.

Inference (eval mode without autograd: ``torch.inference_mode()`` or ``no_grad``) takes a leaner
path with the same parameters: on a CPU in float32 the linears run as oneDNN inner products on
weights reordered once (kept outside the module, remade when a weight changes), with GELU and the
residual adds fused into them, where :func:`._kernels.cpu_linears` says so (CPUs with AVX-512;
elsewhere oneDNN's float32 products were slower than the aten ops, which then run); wide ones
are summed in chunks of 200 inputs so that the outputs stay as close to a float64 computation as
the aten ops' are; attention is SDPA (on a CPU with several threads: matmul + softmax + matmul,
which spread better); the residual stream is updated in place. Under bfloat16 CPU autocast, on
CPUs that run bfloat16 natively (AVX512-BF16, AMX), the linears run as oneDNN bfloat16 products
on weights packed in bfloat16, while attention, the conv stack, norms and the residual stream
stay float32. Elsewhere (CUDA, other autocast, no oneDNN) the same path runs on the aten ops (the
kernels live in :mod:`._kernels`). Training, and any call that needs gradients, runs the modules
as written.
``CBraMod.fast_inference = False`` turns the leaner path off.

Two facts of the official model worth knowing: the GroupNorms of the conv stack normalise each
sample over *all* its patches (so a patch embedding depends on the other patches), and pretraining
replaces masked patches by ``mask_token`` (zeros) before both the conv stack and the rFFT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._errors import CheckpointError, ModelInputError
from ._kernels import _PACKS, Packs, _compiling, _linear, _sdpa, packs_for, to_compute

__all__ = ["CBraMod", "CBraModConfig", "num_params"]

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
    spectrum: str = "linear"
    """What the patch embedding's spectral branch sees: ``linear``, each patch's |rFFT| (the
    official model), or ``log``, its natural log over a floor of ``LOG_SPECTRUM_FLOOR`` (log band
    power, which survives the conv stack's per-sample GroupNorm and differs between people by
    an offset rather than a factor)."""

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
# Blocks
# --------------------------------------------------------------------------------------------------


SPECTRA = ("linear", "log")
#: floor of the ``log`` spectrum, in model units (1e-4 = 0.01 uV at 100 uV per unit)
LOG_SPECTRUM_FLOOR = 1e-4


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
        spectrum: str = "linear",
    ) -> None:
        super().__init__()
        if spectrum not in SPECTRA:
            raise ValueError(f"spectrum={spectrum!r} must be one of {list(SPECTRA)}")
        self.log_spectrum = spectrum == "log"
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

    def _conv_and_spectrum(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """The conv stack's features ``[B, C, P, D]`` and each patch's |rFFT| / S (bins
        0..S/2), after hidden patches were replaced by the mask token."""
        b, c, p, s = x.shape
        if mask is not None:
            x = torch.where(mask.bool().unsqueeze(-1), self.mask_token.to(x.dtype), x)
        # conv stack: [B, 1, C*P, S] -> [B, W, C*P, steps]; feature index = w * steps + t
        h = F.gelu(self.norm1(self.conv1(x.reshape(b, 1, c * p, s))))
        h = F.gelu(self.norm2(self.conv2(h)))
        h = F.gelu(self.norm3(self.conv3(h)))
        h = h.permute(0, 2, 1, 3).reshape(b, c, p, self.embed_dim)
        spec = torch.fft.rfft(x.float(), dim=-1, norm="forward").abs()
        if self.log_spectrum:
            spec = spec.clamp_min_(LOG_SPECTRUM_FLOOR).log_()
        return h, spec.to(h.dtype)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h, spec = self._conv_and_spectrum(x, mask)
        emb = self.spectral_drop(self.spectral(spec)) + h
        # [B, C, P, D] is the channels-last layout of [B, D, C, P]: the depthwise conv needs no copy
        pos = self.pos_conv(emb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return emb + pos

    def forward_inference(self, x: Tensor, mask: Tensor | None, packs: Packs) -> Tensor:
        """``forward`` without autograd or dropout, in fewer ops."""
        h, spec = self._conv_and_spectrum(x, mask)
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
        h = to_compute(F.layer_norm(x, (d,), n1.weight, n1.bias, n1.eps), packs)
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
        spectrum: str = "linear",
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
            spectrum=spectrum,
        )
        self.patch_size = patch_size
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = PatchEmbed(
            patch_size=patch_size,
            embed_dim=embed_dim,
            pos_kernel=pos_kernel,
            drop_rate=drop_rate,
            spectrum=spectrum,
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
            packs = packs_for(self, x)
            # bfloat16 packs (under CPU autocast): the linears and attention run in bfloat16, the
            # conv stack, norms and residual stream stay float32 (autocast off for the rest)
            bf16 = packs is not None and packs.dtype == torch.bfloat16
            with torch.autocast("cpu", enabled=False) if bf16 else contextlib.nullcontext():
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
            return _linear(x, self.head, packs_for(self, x))
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


def num_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
