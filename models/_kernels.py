"""The encoder's inference kernels (no autograd): oneDNN linears with fused GELU / residual add on
a CPU in float32, weights packed once outside the module, and the attention kernel choice.

Used by :class:`~physio_live.models._cbramod.CBraMod` in eval mode without autograd (see its module
docstring); the module path, which training runs, does not touch them.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
