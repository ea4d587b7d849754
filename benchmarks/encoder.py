"""CBraMod encoder speed: ours vs a plain implementation in the official module structure.

The reference here follows the official code's structure (``nn.MultiheadAttention`` per branch,
``transpose().contiguous().view()`` reshapes, ``torch.concat``) and holds the same weights, loaded
through ``to_official_state_dict``. Both run under ``torch.inference_mode()`` in eval mode, in the
same process, interleaved. Prints one JSON line of figures, then a short table.

Also reported: the largest difference relative to the largest output, and each model's error
against the same official-layout model run in float64; and, on a GPU or a CPU with native
bfloat16 (AVX512-BF16/AMX), both under bfloat16 autocast (``model.bf16``: ours runs its linears in
bfloat16 on oneDNN), with our bfloat16 error against float64 (its cost on real windows:
``benchmarks/bf16_cost.py``).

``--compile`` also times ``torch.compile`` (inductor, CPU) of our module path (``fast_inference``
off: the compiler fuses it itself), with its error against float64; it needs a C++ compiler and
about 10 s of compiling per shape.

Our CPU float32 linears follow ``physio_live.models.cpu_linears()`` (oneDNN on CPUs with AVX-512,
aten elsewhere; ``--linears`` forces one); the other one is timed beside it (``ours_*_linears_ms``).

    python benchmarks/encoder.py [--threads 2] [--repeats 7] [--rounds 3] [--quick] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physio_live.models import (
    CBraMod,
    cpu_bf16_native,
    cpu_linears,
    set_cpu_linears,
    to_official_state_dict,
)
from physio_live.models._kernels import _onednn_linear_available


class _OfficialLayer(nn.Module):
    def __init__(self, d: int = 200, nhead: int = 8, ff: int = 800) -> None:
        super().__init__()
        self.self_attn_s = nn.MultiheadAttention(d // 2, nhead // 2, dropout=0.1, batch_first=True)
        self.self_attn_t = nn.MultiheadAttention(d // 2, nhead // 2, dropout=0.1, batch_first=True)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout = nn.Dropout(0.1)
        self.dropout1 = nn.Dropout(0.1)
        self.dropout2 = nn.Dropout(0.1)

    def _sa_block(self, x: Tensor) -> Tensor:
        b, c, p, d = x.shape
        xs = x[..., : d // 2].transpose(1, 2).contiguous().view(b * p, c, d // 2)
        xt = x[..., d // 2 :].contiguous().view(b * c, p, d // 2)
        xs = self.self_attn_s(xs, xs, xs, need_weights=False)[0]
        xs = xs.contiguous().view(b, p, c, d // 2).transpose(1, 2)
        xt = self.self_attn_t(xt, xt, xt, need_weights=False)[0]
        xt = xt.contiguous().view(b, c, p, d // 2)
        return self.dropout1(torch.concat((xs, xt), dim=3))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self._sa_block(self.norm1(x))
        ff = self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x)))))
        return x + self.dropout2(ff)


class _OfficialEncoder(nn.Module):
    def __init__(self, n_layer: int = 12) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_OfficialLayer() for _ in range(n_layer))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class _OfficialPatchEmbedding(nn.Module):
    def __init__(self, d: int = 200) -> None:
        super().__init__()
        self.d_model = d
        self.positional_encoding = nn.Sequential(nn.Conv2d(d, d, (19, 7), padding=(9, 3), groups=d))
        self.mask_encoding = nn.Parameter(torch.zeros(200), requires_grad=False)
        self.proj_in = nn.Sequential(
            nn.Conv2d(1, 25, (1, 49), stride=(1, 25), padding=(0, 24)),
            nn.GroupNorm(5, 25),
            nn.GELU(),
            nn.Conv2d(25, 25, (1, 3), padding=(0, 1)),
            nn.GroupNorm(5, 25),
            nn.GELU(),
            nn.Conv2d(25, 25, (1, 3), padding=(0, 1)),
            nn.GroupNorm(5, 25),
            nn.GELU(),
        )
        self.spectral_proj = nn.Sequential(nn.Linear(101, d), nn.Dropout(0.1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, p, s = x.shape
        x = x.contiguous().view(b, 1, c * p, s)
        emb = self.proj_in(x).permute(0, 2, 1, 3).contiguous().view(b, c, p, self.d_model)
        x = x.contiguous().view(b * c * p, s)
        spectral = torch.abs(torch.fft.rfft(x, dim=-1, norm="forward")).contiguous()
        emb = emb + self.spectral_proj(spectral.view(b, c, p, 101))
        pos = self.positional_encoding(emb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return emb + pos


class OfficialCBraMod(nn.Module):
    """The official module tree (``patch_embedding``, ``encoder.layers.N``, ``proj_out.0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embedding = _OfficialPatchEmbedding()
        self.encoder = _OfficialEncoder()
        self.proj_out = nn.Sequential(nn.Linear(200, 200))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_out(self.encoder(self.patch_embedding(x)))


def _time_ms(fn: Callable[[], Tensor], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _run_case(
    ours: nn.Module,
    ref: nn.Module,
    ref64: nn.Module | None,
    shape: tuple[int, int, int],
    repeats: int,
    rounds: int,
    device: str,
    compiled: nn.Module | None = None,
) -> dict[str, object]:
    batch, ch, patches = shape
    x = torch.randn(batch, ch, patches, 200, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run(model: nn.Module, bf16: bool = False) -> Callable[[], Tensor]:
        def go() -> Tensor:
            with torch.inference_mode(), torch.autocast(device, torch.bfloat16, enabled=bf16):
                out = model(x)
            sync()
            return out

        return go

    with torch.inference_mode():
        expected = ref(x)
        got = ours(x)
        diff = (got - expected).abs().max().item()
        scale = expected.abs().max().item()
        if ref64 is not None:  # both against the same computation in float64
            truth = ref64(x.double())
            t_scale = truth.abs().max().item()
            ours_f64 = (got.double() - truth).abs().max().item() / t_scale
            ref_f64 = (expected.double() - truth).abs().max().item() / t_scale
    ours_ms, ref_ms, alt_ms = [], [], []
    chosen = cpu_linears()
    # the other float32 linears of our CPU path, timed beside the choice (the evidence for it)
    alt = {"onednn": "aten", "aten": "onednn"}[chosen]
    if device != "cpu" or not _onednn_linear_available():
        alt = None
    for _ in range(rounds):  # interleaved, to spread drift and load over all
        ref_ms.append(_time_ms(run(ref), repeats))
        ours_ms.append(_time_ms(run(ours), repeats))
        if alt is not None:
            set_cpu_linears(alt)
            try:
                alt_ms.append(_time_ms(run(ours), repeats))
            finally:
                set_cpu_linears(chosen)
    row: dict[str, object] = {
        "device": device,
        "batch": batch,
        "channels": ch,
        "patches": patches,
        "ours_ms": round(min(ours_ms), 2),
        "reference_ms": round(min(ref_ms), 2),
        "speedup": round(min(ref_ms) / min(ours_ms), 2),
        "max_abs_diff": diff,
        "max_abs_output": round(scale, 2),
        "max_rel_diff": float(f"{diff / scale:.3g}"),
    }
    if device == "cpu":
        row["linears"] = chosen
    if alt is not None:
        row[f"ours_{alt}_linears_ms"] = round(min(alt_ms), 2)
    if ref64 is not None:
        row["ours_rel_err_vs_float64"] = float(f"{ours_f64:.3g}")
        row["reference_rel_err_vs_float64"] = float(f"{ref_f64:.3g}")
    if compiled is not None and device == "cpu":
        with torch.inference_mode():
            approx = compiled(x)  # compiles for this shape
        comp_ms = [_time_ms(run(compiled), repeats) for _ in range(rounds)]
        row["compiled_ms"] = round(min(comp_ms), 2)
        row["compiled_speedup"] = round(min(ref_ms) / min(comp_ms), 2)
        if ref64 is not None:
            row["compiled_rel_err_vs_float64"] = float(
                f"{(approx.double() - truth).abs().max().item() / t_scale:.3g}"
            )
    if device == "cuda" or cpu_bf16_native():
        # the approximate option (model.bf16): on a CPU with AVX512-BF16/AMX our linears run in
        # bfloat16 on oneDNN, the reference under plain bf16 autocast
        ours16, ref16 = [], []
        for _ in range(rounds):
            ref16.append(_time_ms(run(ref, bf16=True), repeats))
            ours16.append(_time_ms(run(ours, bf16=True), repeats))
        row["ours_bf16_ms"] = round(min(ours16), 2)
        row["reference_bf16_ms"] = round(min(ref16), 2)
        row["bf16_speedup_vs_reference_fp32"] = round(min(ref_ms) / min(ours16), 2)
        if ref64 is not None:
            approx = run(ours, bf16=True)()
            row["ours_bf16_rel_err_vs_float64"] = float(
                f"{(approx.double() - truth).abs().max().item() / t_scale:.3g}"
            )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per round (median)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best median)")
    ap.add_argument("--quick", action="store_true", help="batch 1 and 8 only, fewer shapes")
    ap.add_argument(
        "--compile", action="store_true", help="also torch.compile of our module path (CPU)"
    )
    ap.add_argument(
        "--linears",
        default="auto",
        choices=["auto", "onednn", "aten"],
        help="our CPU float32 linears (auto: by CPU; the other one is timed beside it)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    set_cpu_linears(args.linears)
    torch.manual_seed(0)

    ours = CBraMod().eval()
    ref = OfficialCBraMod().eval()
    ref.load_state_dict(to_official_state_dict(ours.state_dict()), strict=True)
    ref64 = copy.deepcopy(ref).double()
    compiled = None
    if args.compile:
        plain = copy.deepcopy(ours)
        plain.fast_inference = False
        compiled = torch.compile(plain, dynamic=False)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    # batch 1: the live path (19- and 32-channel EEG, the 2-lead ECG encoder, a long window);
    # batch 32: replays and training-time embedding
    if args.quick:
        shapes = [(1, 19, 4), (1, 32, 4), (1, 2, 4), (8, 19, 4)]
    else:
        shapes = [(1, 19, 4), (1, 32, 4), (1, 2, 4), (1, 14, 30), (32, 19, 4), (32, 32, 4)]
    rows = []
    for device in devices:
        ours.to(device)
        ref.to(device)
        ref64.to(device)
        for shape in shapes:
            rows.append(
                _run_case(ours, ref, ref64, shape, args.repeats, args.rounds, device, compiled)
            )

    summary = {
        "benchmark": "cbramod_encoder_forward",
        "torch": torch.__version__,
        "cpu_threads": args.threads,
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_linears": cpu_linears(),
        "cases": rows,
    }
    print(json.dumps(summary))
    print()
    print(
        f"{'dev':<5}{'batch':>6}{'C x P':>9}{'ours ms':>11}{'ref ms':>11}{'speedup':>9}"
        f"{'rel diff':>10}"
    )
    for r in rows:
        cp = f"{r['channels']}x{r['patches']}"
        bf = (
            f"   bf16: ours {r['ours_bf16_ms']:.2f} ms ({r['bf16_speedup_vs_reference_fp32']:.2f}x"
            f" the reference's fp32), reference {r['reference_bf16_ms']:.2f} ms"
            if "ours_bf16_ms" in r
            else ""
        )
        other = [k for k in r if k.endswith("_linears_ms")]
        if other:
            name = other[0].removeprefix("ours_").removesuffix("_linears_ms")
            bf += f"   ours with {name} linears {r[other[0]]:.2f} ms"
        if "compiled_ms" in r:
            bf += f"   compiled {r['compiled_ms']:.2f} ms ({r['compiled_speedup']:.2f}x)"
        print(
            f"{r['device']:<5}{r['batch']:>6}{cp:>9}{r['ours_ms']:>11.2f}"
            f"{r['reference_ms']:>11.2f}{r['speedup']:>8.2f}x{r['max_rel_diff']:>10.1e}{bf}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
