"""The encoder's inference path (oneDNN linears, SDPA, packed weights) against straightforward
references: the official-layout reference in float64 (random weights, fresh random draws, odd
shapes, batch > 1), the module path, the shipped checkpoints on a real recording, and the cases
where the fast path must step aside (autograd) or follow weight updates, and its bfloat16 variant
under CPU autocast."""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from physio_live.models import CBraMod, load_checkpoint, to_official_state_dict

# a small encoder whose MLP is wide enough to be summed in chunks (inner size 480 > 200)
SMALL = {"embed_dim": 40, "depth": 2, "num_heads": 4, "mlp_dim": 480, "out_dim": 40}
SMALL_REF = {"d_model": 40, "n_layer": 2, "nhead": 4, "dim_feedforward": 480, "out_dim": 40}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def _fresh_seed() -> int:
    """A new seed on every run (named in the failure message, so a failure can be replayed)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def _pair(reference: SimpleNamespace, seed: int, small: bool) -> tuple[CBraMod, torch.nn.Module]:
    """Our encoder and the float64 official-layout reference holding the same random weights."""
    ref = reference.RefCBraMod(**(SMALL_REF if small else {}))
    reference.randomize_(ref, seed=seed)
    ours = CBraMod(**(SMALL if small else {})).eval()
    ours.load_state_dict(_ours_from_official(ref.state_dict(), ours))
    return ours, ref.double().eval()


@pytest.fixture(params=["onednn", "aten"])
def linears(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each float32 CPU backend of the inference path in turn (the process's choice restored)."""
    from physio_live.models import cpu_linears, set_cpu_linears

    before = cpu_linears()
    got = set_cpu_linears(request.param)
    try:
        if got != request.param:
            pytest.skip("oneDNN's linears do not run on this CPU")
        yield got
    finally:
        set_cpu_linears(before)


def _ours_from_official(sd: dict[str, torch.Tensor], model: CBraMod) -> dict[str, torch.Tensor]:
    from physio_live.models import checkpoint_filter_fn

    return checkpoint_filter_fn(sd, model)


@pytest.mark.parametrize(
    ("batch", "channels", "patches"),
    [(1, 1, 1), (3, 2, 5), (2, 19, 4), (4, 7, 3), (1, 3, 30), (5, 1, 2)],
)
def test_fast_path_matches_float64_reference(
    reference: SimpleNamespace, linears: str, batch: int, channels: int, patches: int
) -> None:
    seed = _fresh_seed()
    torch.manual_seed(seed)
    ours, ref = _pair(reference, seed, small=True)
    x = torch.randn(batch, channels, patches, 200)
    with torch.inference_mode():
        fast = ours(x)
        want = ref(x.double())
        ours.fast_inference = False
        slow = ours(x)
    assert fast.shape == want.shape
    assert _rel(fast, want) < 1e-6, f"seed {seed}"
    assert _rel(fast, slow) < 1e-6, f"seed {seed}"


@pytest.mark.parametrize(("batch", "channels", "patches"), [(1, 19, 4), (3, 5, 7)])
def test_full_size_fast_path_matches_float64_reference(
    reference: SimpleNamespace, linears: str, batch: int, channels: int, patches: int
) -> None:
    """Full size (12 x 200): the float32 fast path stays within 2e-6 (relative to the largest
    output) of float64, as the official layout in float32 does (0.7-1.0e-6 in our draws)."""
    seed = _fresh_seed()
    torch.manual_seed(seed)
    ours, ref = _pair(reference, seed, small=False)
    x = torch.randn(batch, channels, patches, 200)
    with torch.inference_mode():
        fast = ours(x)
        want = ref(x.double())
        ref32 = copy.deepcopy(ref).float()(x)
    assert _rel(fast, want) < 2e-6, f"seed {seed}"
    assert _rel(ref32, want) < 2e-6, f"seed {seed}"


def test_fast_path_with_mask_and_under_no_grad(reference: SimpleNamespace, linears: str) -> None:
    seed = _fresh_seed()
    torch.manual_seed(seed)
    ours, ref = _pair(reference, seed, small=True)
    x = torch.randn(2, 6, 3, 200)
    mask = torch.rand(2, 6, 3) < 0.5
    with torch.no_grad():
        fast = ours(x, mask)
        want = ref(x.double(), mask)
    assert _rel(fast, want) < 1e-6, f"seed {seed}"


def test_fast_path_follows_weight_updates(linears: str) -> None:
    """Packed weights are rebuilt after an optimizer step and after load_state_dict."""
    torch.manual_seed(0)
    model = CBraMod(**SMALL)
    x = torch.randn(2, 3, 4, 200)

    def both() -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        with torch.inference_mode():
            fast = model(x)
            model.fast_inference = False
            slow = model(x)
            model.fast_inference = True
        return fast, slow

    before, _ = both()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).square().mean().backward()
    opt.step()
    fast, slow = both()
    assert _rel(fast, before) > 1e-3  # the step changed the outputs ...
    assert _rel(fast, slow) < 1e-6  # ... and the fast path saw it
    other = CBraMod(**SMALL)
    model.load_state_dict(other.state_dict())
    fast, slow = both()
    assert _rel(fast, slow) < 1e-6
    with torch.inference_mode():
        assert _rel(fast, other.eval()(x)) < 1e-6
    # a change through .data bumps no version counter: eval() (here in both()) drops the packs
    model.blocks[0].mlp.fc1.weight.data.mul_(0.5)
    fast, slow = both()
    assert _rel(fast, before) > 1e-3
    assert _rel(fast, slow) < 1e-6


def test_autograd_uses_the_module_ops_and_autocast_rounds_to_bf16() -> None:
    torch.manual_seed(0)
    model = CBraMod(**SMALL).eval()
    x = torch.randn(2, 3, 4, 200, requires_grad=True)
    model(x).square().mean().backward()  # eval with autograd: the module path, gradients flow
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.inference_mode():
        exact = model(x.detach())
        with torch.autocast("cpu", torch.bfloat16):
            approx = model(x.detach())
    assert approx.dtype == torch.bfloat16  # the linears ran in bf16 (not silently in float32)
    assert 0 < _rel(approx, exact) < 5e-2


def _bf16_native() -> bool:
    from physio_live.models._kernels import _onednn_bf16_available

    return _onednn_bf16_available()


@pytest.mark.skipif(not _bf16_native(), reason="this CPU has no native bfloat16 (AVX512-BF16/AMX)")
def test_bf16_autocast_runs_the_onednn_bfloat16_path(reference: SimpleNamespace) -> None:
    """Under bfloat16 CPU autocast the linears run on bfloat16 packs; the residual stream stays
    float32, so the output is within bfloat16's rounding of float64 (full size: 12 x 200)."""
    import physio_live.models._kernels as kernels

    seed = _fresh_seed()
    torch.manual_seed(seed)
    ours, ref = _pair(reference, seed, small=False)
    x = torch.randn(2, 19, 4, 200)
    with torch.inference_mode():
        want = ref(x.double())
        exact = ours.forward_features(x)
        with torch.autocast("cpu", torch.bfloat16):
            feats = ours.forward_features(x)
            out = ours(x)
    packs = kernels._PACKS[ours]
    assert set(packs) == {torch.float32, torch.bfloat16}
    layers = [m for m in ours.modules() if isinstance(m, torch.nn.Linear)]
    assert set(packs[torch.bfloat16]) == set(layers)  # every linear, the head included
    assert all(p.chunks[0].dtype == torch.bfloat16 for p in packs[torch.bfloat16].values())
    assert feats.dtype == torch.float32 and out.dtype == torch.bfloat16  # the head's linear
    assert 1e-4 < _rel(feats, exact) < 3e-2, f"seed {seed}"  # it did round, and not by much
    assert _rel(out, want) < 3e-2, f"seed {seed}"
    # the float32 path afterwards is untouched by the bfloat16 packs
    with torch.inference_mode():
        assert _rel(ours(x), want) < 2e-6, f"seed {seed}"


def test_bf16_autocast_without_native_bfloat16_uses_the_aten_ops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import physio_live.models._kernels as kernels

    monkeypatch.setattr(kernels, "_onednn_bf16_ok", False)
    torch.manual_seed(0)
    model = CBraMod(**SMALL).eval()
    x = torch.randn(2, 3, 4, 200)
    with torch.inference_mode():
        exact = model(x)
        with torch.autocast("cpu", torch.bfloat16):
            approx = model(x)
    assert torch.bfloat16 not in kernels._PACKS.get(model, {})
    assert approx.dtype == torch.bfloat16
    assert 0 < _rel(approx, exact) < 5e-2


def test_copy_and_pickle_after_fast_inference() -> None:
    torch.manual_seed(0)
    model = CBraMod(**SMALL).eval()
    x = torch.randn(1, 3, 4, 200)
    with torch.inference_mode():
        want = model(x)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert set(clone.state_dict()) == set(model.state_dict())
        with torch.inference_mode():
            torch.testing.assert_close(clone(x), want, rtol=0, atol=0)


def _eegmat_windows(data_dir: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` 4-s windows of a real eegmat recording at 200 Hz in model units (100 uV)."""
    from scipy.signal import resample_poly

    from physio_live.core import open_recording

    rec = open_recording(data_dir / "eeg_ecg_eegmat" / "Subject00_1.edf")
    out = {}
    for s in rec.streams:
        if s.info.role in ("eeg", "ecg"):
            sig = resample_poly(s.data[: 500 * 4 * n].astype(np.float64), 2, 5, axis=0)
            sig = (sig - sig.mean(axis=0)) / 100.0
            win = sig.reshape(n, 4, 200, -1).transpose(0, 3, 1, 2)  # [n, C, 4 patches, 200]
            out[s.info.role] = torch.from_numpy(np.ascontiguousarray(win, dtype=np.float32))
    return out["eeg"], out["ecg"]


def test_shipped_checkpoints_give_the_module_path_outputs(data_dir: Path) -> None:
    """eegmat-fused (EEG + ECG encoders), ecg-ludb and ecg-anylead on a real recording: fast ==
    module path within 1e-6 relative, at batch 1 and batch 3."""
    eeg, ecg = _eegmat_windows(data_dir, 3)
    fused = load_checkpoint("eegmat-fused").model
    ecg_enc = load_checkpoint("ecg-ludb").model
    cases = [
        (fused.eeg_encoder, eeg),
        (fused.ecg_encoder, ecg),
        (ecg_enc, ecg),
        (load_checkpoint("ecg-anylead").model, ecg),
    ]
    for enc, x in cases:
        for batch in (x[:1], x):
            with torch.inference_mode():
                fast = enc.forward_features(batch)
                enc.fast_inference = False
                slow = enc.forward_features(batch)
                enc.fast_inference = True
            assert _rel(fast, slow) < 1e-6
    with torch.inference_mode():
        fast = fused(eeg, ecg)
        for enc in (fused.eeg_encoder, fused.ecg_encoder):
            enc.fast_inference = False
        slow = fused(eeg, ecg)
    assert _rel(fast, slow) < 1e-6


def test_official_layout_round_trip_keeps_names() -> None:
    """The fast path changes no parameter: the official state_dict round-trips unchanged."""
    torch.manual_seed(0)
    model = CBraMod().eval()
    before = to_official_state_dict(model.state_dict())
    with torch.inference_mode():
        model(torch.randn(1, 2, 4, 200))
    after = to_official_state_dict(model.state_dict())
    assert list(before) == list(after)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_aten_inference_path_matches_float64_reference(
    reference: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where oneDNN is missing (other CPUs, CUDA) the inference path runs on the aten ops."""
    import physio_live.models._kernels as kernels

    monkeypatch.setattr(kernels, "_onednn_ok", False)
    seed = _fresh_seed()
    torch.manual_seed(seed)
    ours, ref = _pair(reference, seed, small=True)
    x = torch.randn(3, 5, 4, 200)
    with torch.inference_mode():
        fast = ours(x)
        want = ref(x.double())
    assert kernels._PACKS.get(ours) is None  # nothing was packed for oneDNN
    assert _rel(fast, want) < 1e-6, f"seed {seed}"


@pytest.mark.parametrize("threads", [1, 2])
def test_both_attention_kernels_match_float64_reference(
    reference: SimpleNamespace, threads: int
) -> None:
    """One CPU thread: SDPA; several: matmul + softmax + matmul. Both agree with float64."""
    before = torch.get_num_threads()
    seed = _fresh_seed()
    torch.manual_seed(seed)
    ours, ref = _pair(reference, seed, small=True)
    x = torch.randn(3, 6, 5, 200)
    try:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            fast = ours(x)
    finally:
        torch.set_num_threads(before)
    with torch.inference_mode():
        want = ref(x.double())
    assert _rel(fast, want) < 1e-6, f"seed {seed}"


def test_cpu_linears_choice_follows_the_cpu_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """auto: oneDNN on AVX-512 CPUs, aten elsewhere; the environment variable overrides it; a
    wrong value names the variable and the values it takes."""
    import physio_live.models._kernels as kernels
    from physio_live.core import ConfigError
    from physio_live.models import CPU_LINEARS_ENV, cpu_linears, set_cpu_linears

    before = cpu_linears()
    try:
        monkeypatch.delenv(CPU_LINEARS_ENV, raising=False)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
        assert set_cpu_linears("auto") == "aten"
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
        want = "onednn" if kernels._onednn_linear_available() else "aten"
        assert set_cpu_linears(None) == want
        assert cpu_linears() == want
        monkeypatch.setenv(CPU_LINEARS_ENV, "aten")
        assert set_cpu_linears("auto") == "aten"
        assert set_cpu_linears("onednn") == want  # an explicit choice beats the variable
        monkeypatch.setenv(CPU_LINEARS_ENV, "fastest")
        with pytest.raises(ConfigError, match=CPU_LINEARS_ENV) as err:
            set_cpu_linears(None)
        assert "onednn" in str(err.value) and "aten" in str(err.value)
    finally:
        set_cpu_linears(before)


def test_aten_choice_packs_nothing_and_onednn_choice_packs(linears: str) -> None:
    """The choice is what runs: aten packs no weight for oneDNN, oneDNN packs the MLP's linears
    (large enough here to be worth oneDNN's fixed cost)."""
    import physio_live.models._kernels as kernels

    torch.manual_seed(_fresh_seed())
    model = CBraMod(**SMALL).eval()
    with torch.inference_mode():
        model(torch.randn(16, 19, 4, 200))
    packs = kernels._PACKS.get(model, {}).get(torch.float32)
    if linears == "aten":
        assert not packs
    else:
        mlps = {b.mlp.fc1 for b in model.blocks} | {b.mlp.fc2 for b in model.blocks}
        assert packs is not None and mlps <= set(packs)
