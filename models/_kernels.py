"""The encoder's inference kernels (no autograd): oneDNN linears with fused GELU / residual add on
a CPU (float32, or bfloat16 under CPU autocast), weights packed once outside the module, and the
attention kernel choice.

Used by :class:`~physio_live.models._cbramod.CBraMod` in eval mode without autograd (see its module
docstring); the module path, which training runs, does not touch them.
"""

from __future__ import annotations

import os
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physio_live.core import ConfigError

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


_onednn_bf16_ok: bool | None = None


def _onednn_bf16_available() -> bool:
    """Whether oneDNN runs bfloat16 linears natively here (AVX512-BF16 or AMX; probed once)."""
    global _onednn_bf16_ok
    if _onednn_bf16_ok is None:
        try:
            ok = _onednn_linear_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
            if ok:
                w = torch.ops.mkldnn._reorder_linear_weight(
                    torch.ones(3, 2, dtype=torch.bfloat16), _PACK_BATCH
                )
                y = torch.ops.mkldnn._linear_pointwise(
                    torch.ones(1, 2, dtype=torch.bfloat16), w, torch.zeros(3), "none", [], ""
                )
                ok = y.dtype == torch.bfloat16 and bool((y == 2).all())
        except Exception:
            ok = False
        _onednn_bf16_ok = ok
    return _onednn_bf16_ok


def cpu_bf16_native() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX, through oneDNN). Without it,
    ``model.bf16`` on the CPU is emulated by autocast and slower than float32 (a 1-h replay at
    ``max_batch`` 16 on an AVX2-only EPYC: 11.1x real time against 82.8x, 2026-11-30)."""
    return _onednn_bf16_available()


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


def _autocast_dtype(device_type: str) -> torch.dtype:
    get = getattr(torch, "get_autocast_dtype", None)
    if get is not None:
        return get(device_type)
    return torch.get_autocast_cpu_dtype()  # torch < 2.4


#: Environment variable that picks the CPU float32 linears: ``onednn``, ``aten`` or ``auto``.
CPU_LINEARS_ENV = "PHYSIO_LIVE_CPU_LINEARS"
CPU_LINEARS = ("auto", "onednn", "aten")
_cpu_linears: str | None = None  # the choice in force ("onednn" / "aten"); None: not made yet


def set_cpu_linears(kind: str | None) -> str:
    """Choose the float32 linears of the CPU inference path for this process; returns the choice.

    ``"onednn"``: oneDNN on weights packed once, GELU and residual adds fused in (where oneDNN
    runs); ``"aten"``: ``F.linear`` (MKL); ``"auto"`` or ``None``: ``$PHYSIO_LIVE_CPU_LINEARS``
    if set, else oneDNN on CPUs with AVX-512 and aten elsewhere. On an AVX2-only CPU (AMD EPYC,
    Zen 2) oneDNN's float32 linears made the CBraMod-size encoder slower than the official module
    layout (batch 1, 32 x 4 patches: 34-48 against 24-28 ms with aten, 2026-11-30), while on an
    AVX-512 CPU (Zen 4) they made it faster; the rule follows those two measurements. Both are
    checked against float64 (``tests/models/test_fast_inference.py``). The choice is fixed per
    process, so a live run and its replay on one machine compute alike. bfloat16 autocast is not
    affected (it runs on oneDNN where the CPU has native bfloat16).
    """
    global _cpu_linears
    want, source = (kind or "auto").strip().lower(), f"CPU linears {kind!r}"
    if want == "auto" and os.environ.get(CPU_LINEARS_ENV):
        want = os.environ[CPU_LINEARS_ENV].strip().lower()
        source = f"{CPU_LINEARS_ENV}={os.environ[CPU_LINEARS_ENV]!r}"
    if want not in CPU_LINEARS:
        raise ConfigError(f"{source}: use one of {', '.join(CPU_LINEARS)} (auto: by CPU)")
    if want == "auto":
        avx512 = torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512")
        want = "onednn" if avx512 else "aten"
    if want == "onednn" and not _onednn_linear_available():
        want = "aten"
    _cpu_linears = want
    return want


def cpu_linears() -> str:
    """The float32 linears the CPU inference path runs (``"onednn"`` or ``"aten"``): the choice of
    :func:`set_cpu_linears`, made on first use."""
    return _cpu_linears if _cpu_linears is not None else set_cpu_linears(None)


def _onednn_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype of the oneDNN linears for a float32 input on the CPU: float32 outside autocast
    where :func:`cpu_linears` is oneDNN, bfloat16 under bfloat16 CPU autocast where the CPU runs
    it natively; ``None`` (the aten ops) elsewhere: CUDA, other autocast dtypes, no oneDNN."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or not _onednn_linear_available():
        return None
    if not _autocast_on("cpu"):
        return torch.float32 if cpu_linears() == "onednn" else None
    if _autocast_dtype("cpu") == torch.bfloat16 and _onednn_bf16_available():
        return torch.bfloat16
    return None


_PACK_BATCH = 64  # row-count hint for oneDNN's blocked weight layout
# oneDNN sums each dot product in one accumulator, so its float32 error grows with the inner size
# (at 640-800 about twice MKL's, which the aten ops use): wider linears are summed in chunks of
# at most this many inputs, which keeps the outputs as close to float64 as the aten path is.
_CHUNK = 200
# Below this many multiply-adds per oneDNN call its fixed cost (~13 us) outweighs its faster
# kernels: small linears (few tokens, e.g. the 2-lead ECG encoder) use the aten op.
_ONEDNN_MIN_MACS = 1_000_000


class _Packed:
    """A linear layer's weight in oneDNN's blocked layout (float32: cut into chunks of inputs; in
    bfloat16 one piece, its rounding dwarfs the summation's), and which weight it was made from."""

    __slots__ = ("chunks", "ptr", "version", "width")

    def __init__(self, weight: Tensor, dtype: torch.dtype = torch.float32) -> None:
        self.ptr, self.version = weight.data_ptr(), weight._version
        w = weight.detach().to(dtype)
        k = w.shape[1]
        n = -(-k // _CHUNK) if dtype == torch.float32 else 1
        self.width = -(-k // n)
        self.chunks = [
            torch.ops.mkldnn._reorder_linear_weight(
                w[:, i : i + self.width].contiguous(), _PACK_BATCH
            )
            for i in range(0, k, self.width)
        ]


class PackSet(dict[nn.Linear, _Packed]):
    """A model's packed linears of one dtype (the dtype the linears compute in)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype


Packs = PackSet | None
"""oneDNN weights of a model's linears (``None``: the aten ops, e.g. on CUDA)."""

# Per model and dtype, outside the module (no state_dict, deepcopy or pickle sees them). A packed
# weight is remade when its weight changes (in-place updates bump ``_version``: optimizer steps,
# load_state_dict; ``.to()`` moves the data); ``train()`` / ``eval()`` drop them all, which also
# catches updates made through ``.data``.
_PACKS: weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, PackSet]]
_PACKS = weakref.WeakKeyDictionary()


def packs_for(model: nn.Module, x: Tensor) -> Packs:
    """The packed weights the inference path of ``model`` uses on input ``x`` (None: aten)."""
    dtype = _onednn_dtype(x)
    if dtype is None:
        return None
    by_dtype = _PACKS.get(model)
    if by_dtype is None:
        by_dtype = _PACKS[model] = {}
    packs = by_dtype.get(dtype)
    if packs is None:
        packs = by_dtype[dtype] = PackSet(dtype)
    return packs


def to_compute(x: Tensor, packs: Packs) -> Tensor:
    """``x`` in the dtype the packed linears take (a no-op for float32 and the aten ops)."""
    if packs is None or packs.dtype == x.dtype:
        return x
    return x.to(packs.dtype)


def _linear(
    x: Tensor, layer: nn.Linear, packs: Packs, *, gelu: bool = False, residual: Tensor | None = None
) -> Tensor:
    """``layer(x)``, then exact (erf) GELU if ``gelu``, or plus ``residual``: one op with oneDNN.

    With bfloat16 packs the product runs in bfloat16 (``x`` is cast if it is not already) and
    its output stays bfloat16, except that ``residual`` is added in its own (float32) dtype.
    """
    params = layer._parameters  # (hot path: skips nn.Module.__getattr__)
    weight, bias = params["weight"], params["bias"]
    n_out, n_in = weight.shape
    if packs is None or (
        packs.dtype == torch.float32
        and x.numel() // n_in * min(n_in, _CHUNK) * n_out < _ONEDNN_MIN_MACS
    ):
        y = F.linear(x, weight, bias)
        if gelu:
            return F.gelu(y)
        return y if residual is None else y.add_(residual)
    pk = packs.get(layer)
    if pk is None or pk.version != weight._version or pk.ptr != weight.data_ptr():
        pk = packs[layer] = _Packed(weight, packs.dtype)
    lin = torch.ops.mkldnn._linear_pointwise
    if packs.dtype != torch.float32:
        xc = to_compute(x, packs)
        if gelu:
            return lin(xc, pk.chunks[0], bias, "gelu", [], "none")
        y = lin(xc, pk.chunks[0], bias, "none", [], "")
        return y if residual is None else residual + y
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
    """``qkv`` [..., length, 3*half] (contiguous) -> self-attention output [batch, length, half].

    bfloat16 inputs are attended in float32: for these tiny products the bfloat16 kernels are
    slower, and the softmax keeps float32's precision."""
    if qkv.dtype == torch.bfloat16:
        qkv = qkv.float()
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
