"""Checkpoints: our format round-trips, writes are atomic, bad files are refused clearly, and the
official weights go from a hub-layout folder (or a stand-in download) into our format."""

from __future__ import annotations

import json
import os
import struct
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch

from physio_live.core import PhysioLiveError
from physio_live.models import (
    CBRAMOD_URL,
    CBraMod,
    CBraModConfig,
    CheckpointError,
    FusedEmotionConfig,
    FusedEmotionModel,
    ModalityConfig,
    Provenance,
    describe_checkpoint,
    format_checkpoint_info,
    hf_hub_cache_dir,
    load_checkpoint,
    locate_official_cbramod,
    pull_cbramod,
    read_state_dict,
    resolve_hub_file,
    save_checkpoint,
)
from physio_live.models import _checkpoint as checkpoint_module
from physio_live.models import _hub as hub_module

SMALL_ENC = CBraModConfig(embed_dim=40, depth=2, num_heads=4, mlp_dim=80, out_dim=None)


def _fused() -> FusedEmotionModel:
    torch.manual_seed(0)
    cfg = FusedEmotionConfig(
        eeg=ModalityConfig(name="eeg", channels=("Fz", "Cz", "Pz"), n_patches=2, encoder=SMALL_ENC),
        ecg=ModalityConfig(name="ecg", channels=("ECG1",), n_patches=2, encoder=SMALL_ENC),
        hidden_dims=(16,),
        label_threshold=3.5,
        name="test-fusion",
    )
    prov = Provenance(trained=True, source="unit test", datasets=("DREAMER",), notes="n/a")
    return FusedEmotionModel(cfg, provenance=prov).eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 3, 2, 200), torch.randn(2, 1, 2, 200)


# -- our format ------------------------------------------------------------------------------------


def test_fused_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _fused()
    path = save_checkpoint(tmp_path / "fused.safetensors", model)
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "fused_emotion"
    assert ckpt.config == model.config
    assert ckpt.provenance.datasets == ("DREAMER",) and ckpt.provenance.trained
    assert ckpt.provenance.created and "physio-live" in ckpt.provenance.software
    assert ckpt.model_id == model.model_id == ckpt.model.model_id  # type: ignore[union-attr]
    assert not ckpt.model.training
    eeg, ecg = _inputs()
    with torch.inference_mode():
        assert torch.equal(ckpt.model(eeg, ecg), model(eeg, ecg))
    assert [p.name for p in tmp_path.iterdir()] == ["fused.safetensors"]  # no temp file left


def test_config_records_what_the_app_needs(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", _fused())
    with safetensors.safe_open(path, framework="pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    assert config["eeg"]["channels"] == ["Fz", "Cz", "Pz"]
    for key in ("sampling_rate", "patch_size", "units", "scale", "n_patches", "encoder"):
        assert key in config["eeg"]
    assert config["targets"] == ["valence", "arousal", "dominance"]
    assert config["label_threshold"] == 3.5
    assert json.loads(meta["provenance"])["source"] == "unit test"


def test_encoder_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc = CBraMod.from_config(SMALL_ENC).eval()
    modality = ModalityConfig(name="ecg", channels=(), n_patches=10)
    path = save_checkpoint(tmp_path / "ecg.safetensors", enc, modality=modality)
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "cbramod_encoder"
    assert ckpt.config == ModalityConfig(name="ecg", channels=(), n_patches=10, encoder=SMALL_ENC)
    assert not ckpt.provenance.trained
    x = torch.randn(1, 12, 3, 200)
    with torch.inference_mode():
        assert torch.equal(ckpt.model(x), enc(x))
    with pytest.raises(ValueError, match="modality"):
        save_checkpoint(tmp_path / "x.safetensors", enc)


def test_save_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.safetensors"
    first = _fused()
    save_checkpoint(path, first)
    before = path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _fused())
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # and no temp file is left


def test_describe_and_format_info(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", _fused())
    info = describe_checkpoint(path)
    model = _fused()
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["targets"] == ["valence", "arousal", "dominance"]
    text = format_checkpoint_info(info)
    for needle in ("fused_emotion", "Fz, Cz, Pz", "ECG1", "200 Hz", "valence", "unit test"):
        assert needle in text
    assert "late fusion" not in text and "features measured" not in text  # defaults say nothing
    assert "linear term" not in text
    untrained = FusedEmotionModel(model.config)
    text = format_checkpoint_info(describe_checkpoint(save_checkpoint(path, untrained)))
    assert "UNTRAINED" in text
    late = FusedEmotionModel(
        replace(
            model.config,
            fusion="late",
            ecg_features=("heart_rate",),
            eeg_features=("band_powers",),
            feature_skip=True,
        )
    )
    info = describe_checkpoint(save_checkpoint(tmp_path / "late.safetensors", late))
    assert info["fusion"] == "late" and info["ecg_features"] == ["heart_rate"]
    assert info["eeg_features"] == ["band_powers"]
    text = format_checkpoint_info(info)
    assert "late fusion" in text and "ECG features measured on the window: heart_rate" in text
    assert "EEG features measured on the window: band_powers" in text
    assert info["feature_skip"] and "plus a linear term on those features" in text


# -- refusals --------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this would call print: a stand-in for arbitrary code."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("payload ran",))


def test_pickle_payload_is_refused_and_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pretrained_weights.pth"
    torch.save({"state_dict": CBraMod().state_dict(), "extra": _Payload()}, path)
    with pytest.raises(CheckpointError, match="pickle payload") as info:
        read_state_dict(path)
    assert "torch.save(model.state_dict(), path)" in str(info.value)
    assert "payload ran" not in capsys.readouterr().out
    assert isinstance(info.value, PhysioLiveError)


def test_wrapped_state_dict_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pth"
    sd = {"a.weight": torch.ones(2)}
    torch.save({"state_dict": sd, "epoch": 3}, path)
    assert read_state_dict(path).keys() == sd.keys()


def _write_truncated_pth(path: Path) -> None:
    torch.save(CBraMod().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("writer", "message"),
    [
        (_write_truncated_pth, "corrupt or truncated"),
        (lambda p: p.write_text("definitely not weights"), "unknown header"),
        (lambda p: p.write_bytes(b""), "unknown header"),
        (lambda p: torch.save([torch.zeros(2)], p), "holds a list, not a state_dict"),
        (lambda p: torch.save({"x": 1}, p), "not a state_dict"),
    ],
)
def test_bad_pth_files(tmp_path: Path, writer: object, message: str) -> None:
    path = tmp_path / "pretrained_weights.pth"
    writer(path)  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=message):
        read_state_dict(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_state_dict(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", _fused())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_foreign_safetensors_and_pth_are_not_our_checkpoints(tmp_path: Path) -> None:
    foreign = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a physio-live checkpoint"):
        load_checkpoint(foreign)
    pth = tmp_path / "pretrained_weights.pth"
    torch.save(CBraMod().state_dict(), pth)
    with pytest.raises(CheckpointError, match="models pull cbramod --from"):
        load_checkpoint(pth)


def _rewrite(path: Path, **changes: str) -> None:
    """Rewrite a checkpoint's header metadata, keeping its tensors."""
    with safetensors.safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(changes)
    safetensors.torch.save_file(tensors, path, metadata=meta)


def test_checkpoint_for_another_architecture_names_keys(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", _fused())
    with safetensors.safe_open(path, framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    config["eeg"]["encoder"]["depth"] = 3
    config["ecg"]["channels"] = ["ECG1", "ECG2"]
    _rewrite(path, config=json.dumps(config))
    with pytest.raises(CheckpointError, match=r"missing: eeg_encoder\.blocks\.2\.") as info:
        load_checkpoint(path)
    assert "another architecture" in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": "{not json"}, "damaged config"),
        ({"config": json.dumps({"pooling": "mean", "colour": "red"})}, "unknown keys"),
        ({"kind": "diffusion"}, "kind 'diffusion'"),
        ({"format_version": "99"}, "format version '99'"),
    ],
)
def test_damaged_headers(tmp_path: Path, change: dict[str, str], message: str) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", _fused())
    _rewrite(path, **change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_foreign_state_dict_is_not_cbramod(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"not a CBraMod state_dict.*conv1\.weight"):
        pull_cbramod(tmp_path / "out.safetensors", source=path)


def test_safetensors_header_sniffing(tmp_path: Path) -> None:
    # 8-byte length then '{', but the length points past the end: not a safetensors file
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(CheckpointError, match="unknown header"):
        read_state_dict(path)


# -- official weights and the hub ------------------------------------------------------------------


def test_resolve_from_hub_cache_layout(hub_cache: Path, reference: SimpleNamespace) -> None:
    found = resolve_hub_file("weighting666/CBraMod", "pretrained_weights.pth", cache_dir=hub_cache)
    assert found is not None and found.is_symlink()
    assert found.parent.name == reference.HUB_REVISION
    by_commit = resolve_hub_file(
        "weighting666/CBraMod",
        "pretrained_weights.pth",
        revision=reference.HUB_REVISION,
        cache_dir=hub_cache,
    )
    assert by_commit == found
    assert resolve_hub_file("weighting666/CBraMod", "pretrained_weights.pth",
                            revision="v9", cache_dir=hub_cache) is None  # fmt: skip
    # --from accepts the file, a folder holding it, or a cache folder
    assert locate_official_cbramod(found) == found
    assert locate_official_cbramod(found.parent) == found.parent / "pretrained_weights.pth"
    assert locate_official_cbramod(hub_cache) == found


def test_hub_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_hub_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hf_hub_cache_dir() == tmp_path / "cache"


def test_pull_converts_the_official_file(
    tmp_path: Path, hub_cache: Path, official_model: torch.nn.Module, reference: SimpleNamespace
) -> None:
    out = pull_cbramod(tmp_path / "cbramod.safetensors", cache_dir=hub_cache, download=False)
    ckpt = load_checkpoint(out)
    assert ckpt.kind == "cbramod_encoder" and ckpt.provenance.trained
    (parent,) = ckpt.provenance.parents
    assert parent.startswith(f"hf://weighting666/CBraMod@{reference.HUB_REVISION}/")
    assert "sha256:" in parent
    x = torch.randn(2, 19, 4, 200)
    with torch.inference_mode():
        assert (ckpt.model(x) - official_model(x)).abs().max().item() <= 1e-5
    assert "official CBraMod" in format_checkpoint_info(describe_checkpoint(out))


def test_pull_offline_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache") as info:
        pull_cbramod(tmp_path / "o.safetensors", cache_dir=tmp_path / "empty", download=False)
    assert CBRAMOD_URL in str(info.value) and "--from PATH" in str(info.value)
    with pytest.raises(CheckpointError, match=r"neither pretrained_weights\.pth nor a folder"):
        locate_official_cbramod(tmp_path / "nowhere")


def test_pull_without_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(CheckpointError, match="pip install huggingface_hub") as info:
        pull_cbramod(tmp_path / "o.safetensors", cache_dir=tmp_path / "empty")
    assert CBRAMOD_URL in str(info.value)


def test_pull_downloads_into_the_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    official_model: torch.nn.Module,
    reference: SimpleNamespace,
) -> None:
    """The download itself is the only stand-in: it lays the file out as huggingface_hub does."""
    calls = []

    def fake_download(repo_id: str, filename: str, revision: str, cache_dir: Path) -> Path:
        calls.append((repo_id, filename, revision))
        return reference.write_hub_snapshot(
            cache_dir, official_model.state_dict(), reference.HUB_REVISION
        )

    monkeypatch.setattr(hub_module, "_hf_hub_download", fake_download)
    cache = tmp_path / "cache"
    out = pull_cbramod(tmp_path / "c.safetensors", cache_dir=cache)
    assert calls == [("weighting666/CBraMod", "pretrained_weights.pth", "main")]
    # the second pull finds the cached file and downloads nothing
    pull_cbramod(tmp_path / "c2.safetensors", cache_dir=cache)
    assert len(calls) == 1
    assert load_checkpoint(out).provenance.parents[0].startswith("hf://weighting666/CBraMod@")


def test_describe_official_file(hub_cache: Path) -> None:
    info = describe_checkpoint(locate_official_cbramod(cache_dir=hub_cache))
    assert info["kind"] == "official_cbramod_state_dict"
    assert info["keys"] == 211 and info["parameters"] == 4_923_800
    assert "models pull cbramod" in format_checkpoint_info(info)


def test_safetensors_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """A valid file whose 8-byte header length begins with byte 0x80 still loads."""
    from physio_live.models._checkpoint import _sniff

    path = tmp_path / "x.safetensors"
    header = b'{"__metadata__":{"a":"' + b"b" * (0x80 - 25) + b'"}}'
    header += b" " * (-len(header) % 8)
    assert len(header) % 256 == 0x80
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    assert _sniff(path) == "safetensors"


# -- shipped checkpoints by name -------------------------------------------------------------------


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """A stand-in for the package's weights folder holding one real checkpoint, ``tiny-test``."""
    folder = tmp_path / "weights"
    model = _fused()
    model.provenance = Provenance(
        trained=True,
        source="unit test",
        notes=json.dumps(  # as physio-train finetune writes them
            {"chosen": {"test_metrics": {"auroc": 0.8125, "accuracy": 0.75}, "hop_s": 2.0}}
        ),
    )
    save_checkpoint(folder / "tiny-test.safetensors", model)
    monkeypatch.setattr(checkpoint_module, "WEIGHTS_DIR", folder)
    return folder


def test_resolve_checkpoint_finds_a_shipped_name_and_keeps_paths(weights_dir, tmp_path):
    from physio_live.models import resolve_checkpoint, shipped_checkpoints

    assert shipped_checkpoints() == {"tiny-test": weights_dir / "tiny-test.safetensors"}
    assert resolve_checkpoint("tiny-test") == weights_dir / "tiny-test.safetensors"
    assert resolve_checkpoint("tiny-test.safetensors") == weights_dir / "tiny-test.safetensors"
    own = save_checkpoint(tmp_path / "mine.safetensors", _fused())
    assert resolve_checkpoint(own) == own
    assert resolve_checkpoint(str(own)) == own
    # load and describe take the name too
    assert load_checkpoint("tiny-test").model.config.name == "test-fusion"
    assert describe_checkpoint("tiny-test")["path"] == str(weights_dir / "tiny-test.safetensors")


def test_resolve_checkpoint_names_the_shipped_ones_for_an_unknown_name(weights_dir, tmp_path):
    from physio_live.models import resolve_checkpoint

    with pytest.raises(CheckpointError, match=r"shipped: tiny-test\)") as e:
        resolve_checkpoint("eegmat-fussed")
    assert isinstance(e.value, PhysioLiveError) and "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="neither a checkpoint file"):
        resolve_checkpoint(tmp_path / "nowhere" / "tiny-test")  # a path is never a name
    with pytest.raises(CheckpointError, match="is a folder"):
        resolve_checkpoint(tmp_path)


def test_models_list_and_info_show_targets_and_test_metrics(weights_dir, capsys):
    from physio_live.app.cli import main

    assert main(["models", "list"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("tiny-test") and "fused_emotion" in line
    assert "valence, arousal, dominance" in line and "test auroc 0.812" in line
    assert "hop_s 2.000" in line
    assert main(["models", "info", "tiny-test"]) == 0
    out = capsys.readouterr().out
    assert "metrics: test auroc 0.812, accuracy 0.750, hop_s 2.000" in out
    assert '"test_metrics": {"auroc": 0.8125' in out
    assert main(["models", "info", "no-such-model"]) == 1
    assert "shipped: tiny-test" in capsys.readouterr().err


def test_models_list_shows_an_encoders_test_split_scores(tmp_path, monkeypatch, capsys):
    from physio_live.app.cli import main

    folder = tmp_path / "weights"
    enc = CBraMod.from_config(SMALL_ENC)
    notes = {  # as physio-train pretrain + score write them: per split, per mask kind
        "metrics (masked MSE)": {
            "ludb_train": {"records": 160, "all": {"model": 1.2, "zeros": 4.4}},
            "ludb_test": {"records": 20, "intra": {"model": 0.7}, "all": {"model": 0.775}},
        }
    }
    save_checkpoint(
        folder / "enc-test.safetensors",
        enc,
        provenance=Provenance(trained=True, source="unit test", notes=json.dumps(notes)),
        modality=ModalityConfig(name="ecg", channels=("I", "II"), encoder=SMALL_ENC),
    )
    monkeypatch.setattr(checkpoint_module, "WEIGHTS_DIR", folder)
    assert main(["models", "list"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("enc-test") and "cbramod_encoder" in line and "ecg encoder" in line
    assert line.endswith("test ludb_test: model 0.775, records 20")
