"""Checkpoints: safe loading of official CBraMod weights, our own format, the Hugging Face hub.

Our format is one ``.safetensors`` file: the weights, and in its header metadata a JSON config with
everything needed to rebuild and feed the model (architecture, channel names and order, sampling
rate, patch size, units and scale, window length, targets, label threshold) and the provenance of
the weights. One file cannot lose its config, and it is written atomically (temp file, ``fsync``,
``os.replace``), so a crash never leaves a half-written checkpoint under the real name.

Official ``.pth`` files are read with ``torch.load(..., weights_only=True)``: a file that carries a
pickle payload (code) is refused, never executed. Every failure is a :class:`CheckpointError` whose
text says how to fix it.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn

from ._cbramod import CBraMod
from ._errors import CheckpointError
from ._fused import FusedEmotionConfig, FusedEmotionModel, ModalityConfig, Provenance
from ._official import config_from_official, load_strict
from ._readout import ReadoutModel, ReadoutModelConfig

__all__ = [
    "Checkpoint",
    "checkpoint_summary",
    "checkpoint_test_metrics",
    "describe_checkpoint",
    "format_checkpoint_info",
    "load_checkpoint",
    "read_state_dict",
    "resolve_checkpoint",
    "save_checkpoint",
    "shipped_checkpoints",
]

FORMAT = "physio-live-checkpoint"
FORMAT_VERSION = "1"

Kind = Literal["fused_emotion", "cbramod_encoder", "readout_lr"]
PathLike = str | os.PathLike[str]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Where the shipped checkpoints live: ``NAME.safetensors`` files, package data of
``physio_live.models``."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (eval mode) and what the file says about it."""

    kind: Kind
    model: nn.Module
    config: FusedEmotionConfig | ModalityConfig | ReadoutModelConfig
    provenance: Provenance
    model_id: str
    path: Path


# --------------------------------------------------------------------------------------------------
# Shipped checkpoints (names) and paths
# --------------------------------------------------------------------------------------------------


def shipped_checkpoints() -> dict[str, Path]:
    """The checkpoints that ship with physio-live, by name (``NAME.safetensors`` in the package)."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors")) if p.is_file()}


def resolve_checkpoint(spec: PathLike) -> Path:
    """A shipped checkpoint's name (e.g. ``eegmat-fused``) or a path -> the file's path.

    An existing file wins over a name; a spec that is neither raises one :class:`CheckpointError`
    listing the shipped names.
    """
    text = os.fspath(spec).strip()
    path = Path(text).expanduser()
    if path.is_file():
        return path
    shipped = shipped_checkpoints()
    name = text[: -len(".safetensors")] if text.endswith(".safetensors") else text
    if name in shipped and not any(sep in text for sep in ("/", os.sep)):
        return shipped[name]
    names = ", ".join(shipped) or "none are installed"
    if path.exists():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file: give the .safetensors")
    raise CheckpointError(
        f"{text!r} is neither a checkpoint file nor a shipped checkpoint name (shipped: {names}): "
        f"give a shipped name (see `physio-live models list`) or the path of a .safetensors file"
    )


# --------------------------------------------------------------------------------------------------
# Reading state_dicts safely
# --------------------------------------------------------------------------------------------------


def _one_line(e: BaseException, limit: int = 160) -> str:
    """An exception as one short line, for messages the CLI prints in one line."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}"


def _sniff(path: Path) -> Literal["torch", "safetensors"] | None:
    with path.open("rb") as f:
        head = f.read(9)
    # safetensors first: its 8-byte header length may start with 0x80 like a pickle does
    if len(head) == 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 0 < n < path.stat().st_size:
            return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch zip / legacy pickle
        return "torch"
    return None


def _as_state_dict(obj: object, path: Path) -> dict[str, Tensor]:
    def is_sd(o: object) -> bool:
        return isinstance(o, Mapping) and all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in o.items()
        )

    if is_sd(obj):
        return dict(obj)  # type: ignore[call-overload]
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if is_sd(obj.get(key)):
                return dict(obj[key])
    raise CheckpointError(
        f"{path} holds a {type(obj).__name__}, not a state_dict of tensors: save the weights "
        f"with torch.save(model.state_dict(), path)"
    )


def read_state_dict(path: PathLike) -> dict[str, Tensor]:
    """Read a state_dict from a ``.pth``/``.pt`` (``weights_only``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; check the path")
    kind = _sniff(path)
    if kind is None:
        raise CheckpointError(
            f"{path} is neither a PyTorch (.pth) nor a safetensors checkpoint (unknown header): "
            "point to the weights file itself, e.g. pretrained_weights.pth"
        )
    if kind == "safetensors":
        try:
            return safetensors.torch.load_file(path)
        except (safetensors.SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(
                f"{path} is a corrupt or truncated safetensors file ({_one_line(e)}): "
                f"copy or save it again"
            ) from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise CheckpointError(
                f"{path} carries a pickle payload (Python objects beyond tensors), which could run "
                f"code, so it is refused: load it only if you trust it and re-save just the "
                f"weights with torch.save(model.state_dict(), path)"
            ) from e
        raise CheckpointError(
            f"{path} is corrupt ({_one_line(e)}): download or save it again"
        ) from e
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError) as e:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({_one_line(e)}): download or save it again"
        ) from e
    return _as_state_dict(obj, path)


# --------------------------------------------------------------------------------------------------
# Our format
# --------------------------------------------------------------------------------------------------


def _fill_provenance(p: Provenance) -> Provenance:
    from physio_live import __version__

    return replace(
        p,
        created=p.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        software=p.software or f"physio-live {__version__}, torch {torch.__version__}",
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: PathLike,
    model: FusedEmotionModel | CBraMod | ReadoutModel,
    *,
    provenance: Provenance | None = None,
    modality: ModalityConfig | None = None,
) -> Path:
    """Write ``model`` in our format, atomically; returns the path.

    A bare encoder needs ``modality`` (what it takes as input); a fused model carries its config.
    ``provenance`` defaults to the model's own (fused) or "random initialisation".
    """
    from ._fused import weights_fingerprint

    path = Path(path)
    if isinstance(model, ReadoutModel):
        kind: Kind = "readout_lr"
        config: dict[str, object] = model.config.to_dict()
        provenance = provenance or model.provenance
        name = model.config.name
    elif isinstance(model, FusedEmotionModel):
        kind = "fused_emotion"
        config = model.config.to_dict()
        provenance = provenance or model.provenance
        name = model.config.name
    elif isinstance(model, CBraMod):
        if modality is None:
            raise ValueError("saving a bare encoder needs modality=ModalityConfig(...)")
        kind = "cbramod_encoder"
        config = replace(modality, encoder=model.config).to_dict()
        provenance = provenance or Provenance()
        name = f"cbramod-{modality.name}"
    else:
        raise TypeError(f"cannot save a {type(model).__name__}; expected a physio-live model")
    provenance = _fill_provenance(provenance)
    model_id = f"{name}-{weights_fingerprint(model)[:12]}"
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_id": model_id,
        "config": json.dumps(config),
        "provenance": json.dumps(provenance.to_dict()),
    }
    _write_atomic(path, safetensors.torch.save(tensors, metadata=metadata))
    if isinstance(model, (FusedEmotionModel, ReadoutModel)):
        model.provenance = provenance
        model._model_id = model_id
    return path


def _read_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; check the path")
    kind = _sniff(path)
    if kind == "torch":
        # what is it? read_state_dict never unpickles objects: a payload is refused with its
        # own message, a foreign model's weights are named as such
        sd = read_state_dict(path)
        try:
            config_from_official(sd)  # CBraMod weights (official names or ours)?
        except CheckpointError:
            keys = list(sd)
            shown = ", ".join(keys[:3]) or "none"
            raise CheckpointError(
                f"{path} holds the weights of another model ({len(keys)} tensors, e.g. {shown}), "
                f"not a physio-live checkpoint: give a fused model written by `physio-train "
                f"finetune` (model.safetensors), or leave model.checkpoint empty"
            ) from None
    if kind != "safetensors":
        raise CheckpointError(
            f"{path} is not a physio-live checkpoint (.safetensors): convert official CBraMod "
            f"weights with `physio-live models pull cbramod --from {path}`"
        )
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except (safetensors.SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({_one_line(e)}): copy or save it again"
        ) from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a physio-live checkpoint (no '{FORMAT}' "
            f"header): save models with physio_live.models.save_checkpoint"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {meta.get('format_version')!r}, this "
            f"physio-live reads {FORMAT_VERSION!r}: upgrade physio-live or re-export the model"
        )
    return meta


def _parse(meta: dict[str, str], path: Path) -> tuple[Kind, object, Provenance]:
    kind = meta.get("kind")
    try:
        config = json.loads(meta["config"])
        prov = Provenance.from_dict(json.loads(meta.get("provenance", "{}")))
        if kind == "fused_emotion":
            return kind, FusedEmotionConfig.from_dict(config), prov
        if kind == "cbramod_encoder":
            return kind, ModalityConfig.from_dict(config), prov
        if kind == "readout_lr":
            return kind, ReadoutModelConfig.from_dict(config), prov
    except (KeyError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has a damaged config ({_one_line(e)}): save it again") from e
    raise CheckpointError(
        f"{path} holds a model of kind {kind!r}, which this physio-live cannot build: "
        f"upgrade physio-live"
    )


def _shipped_or_path(spec: PathLike) -> Path:
    """A shipped name (no folder part, no such file here) as its path; anything else unchanged."""
    path = Path(spec)
    if not path.exists() and len(path.parts) == 1:
        name = path.name.removesuffix(".safetensors")
        return shipped_checkpoints().get(name, path)
    return path


def load_checkpoint(path: PathLike, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild a model from one of our checkpoints (a path or a shipped name); returns it in eval
    mode with its config."""
    path = _shipped_or_path(path)
    meta = _read_metadata(path)
    kind, config, provenance = _parse(meta, path)
    model: nn.Module
    if isinstance(config, FusedEmotionConfig):
        model = FusedEmotionModel(config, provenance=provenance)
        what = "fused model checkpoint"
    elif isinstance(config, ReadoutModelConfig):
        model = ReadoutModel(config, provenance=provenance)
        what = "readout model checkpoint"
    else:
        assert isinstance(config, ModalityConfig)
        model = CBraMod.from_config(config.encoder)
        what = "encoder checkpoint"
    try:
        tensors = safetensors.torch.load_file(path)
    except (safetensors.SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({_one_line(e)}): copy or save it again"
        ) from e
    try:
        load_strict(model, tensors, what=what)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    model_id = meta.get("model_id") or path.stem
    if isinstance(model, (FusedEmotionModel, ReadoutModel)):
        model._model_id = model_id
    model.to(map_location).eval()
    return Checkpoint(kind, model, config, provenance, model_id, path)  # type: ignore[arg-type]


def describe_checkpoint(path: PathLike) -> dict[str, object]:
    """What ``physio-live models info PATH`` shows, read from the header without loading weights.

    Official ``.pth`` files are described too (and point to ``models pull``). ``path`` may be a
    shipped name.
    """
    path = _shipped_or_path(path)
    if path.is_file() and _sniff(path) == "torch":
        sd = read_state_dict(path)
        cfg = config_from_official(sd)
        return {
            "path": str(path),
            "kind": "official_cbramod_state_dict",
            "keys": len(sd),
            "parameters": sum(v.numel() for k, v in sd.items() if not k.endswith("mask_encoding")),
            "architecture": cfg.to_dict(),
            "hint": f"convert with `physio-live models pull cbramod --from {path}`",
        }
    meta = _read_metadata(path)
    kind, config, provenance = _parse(meta, path)
    with safetensors.safe_open(path, framework="pt") as f:
        n_params = 0
        for k in f.keys():
            if not k.endswith("mask_token"):
                shape = f.get_slice(k).get_shape()
                n_params += int(torch.Size(shape).numel())
    info: dict[str, object] = {
        "path": str(path),
        "kind": kind,
        "model_id": meta.get("model_id"),
        "parameters": n_params,
        "provenance": provenance.to_dict(),
    }
    if isinstance(config, FusedEmotionConfig):
        info["targets"] = list(config.targets)
        info["label_threshold"] = config.label_threshold
        info["pooling"] = config.pooling
        info["hidden_dims"] = list(config.hidden_dims)
        info["fusion"] = config.fusion
        info["ecg_features"] = list(config.ecg_features)
        info["eeg_features"] = list(config.eeg_features)
        info["feature_skip"] = config.feature_skip
        info["modalities"] = {m.name: m.to_dict() for m in (config.eeg, config.ecg)}
    elif isinstance(config, ReadoutModelConfig):
        info["targets"] = list(config.targets)
        info["label_threshold"] = config.label_threshold
        info["readouts"] = {
            "features": f"log10 band powers of {len(config.eeg.channels)} EEG channels x 5 bands "
            "+ heart rate",
            "calibrate_s": config.calibrate_s,
        }
        info["modalities"] = {m.name: m.to_dict() for m in (config.eeg, config.ecg)}
    else:
        assert isinstance(config, ModalityConfig)
        info["modalities"] = {config.name: config.to_dict()}
    return info


def format_checkpoint_info(info: Mapping[str, object]) -> str:
    """A short human-readable text of :func:`describe_checkpoint`'s answer."""
    lines = [f"{info['path']}", f"  kind: {info['kind']}"]
    if "model_id" in info:
        lines.append(f"  model id: {info['model_id']}")
    lines.append(f"  parameters: {info['parameters']:,}")
    if "architecture" in info:
        lines.append(f"  architecture: {json.dumps(info['architecture'])}")
    for name, m in dict(info.get("modalities", {})).items():  # type: ignore[call-overload]
        enc = m["encoder"]
        chans = ", ".join(m["channels"]) or "any"
        n_ch = len(m["channels"]) or "any"
        encoder = (
            ""
            if "readouts" in info
            else (f"; encoder depth {enc['depth']}, width {enc['embed_dim']}")
        )
        lines.append(
            f"  {name}: {n_ch} channels ({chans}), {m['sampling_rate']:g} Hz,"
            f" {m['n_patches']} x {m['patch_size']}-sample patches, input = {m['units']} x "
            f"{m['scale']:g}{encoder}"
        )
    if "readouts" in info:
        r = dict(info["readouts"])  # type: ignore[call-overload]
        lines.append(
            f"  readouts: {r['features']}; logistic regression; calibrated against the first "
            f"{r['calibrate_s']:g} s of a session (a resting baseline)"
        )
        lines.append(f"  targets: {', '.join(info['targets'])}")  # type: ignore[arg-type]
    elif "targets" in info:
        lines.append(
            f"  targets: {', '.join(info['targets'])} (high = rating > "  # type: ignore[arg-type]
            f"{info['label_threshold']}), pooling {info['pooling']}, head {info['hidden_dims']}"
            + (f", {info['fusion']} fusion" if info.get("fusion", "concat") != "concat" else "")
            + (
                f", ECG features measured on the window: {', '.join(info['ecg_features'])}"  # type: ignore[arg-type]
                if info.get("ecg_features")
                else ""
            )
            + (
                f", EEG features measured on the window: {', '.join(info['eeg_features'])}"  # type: ignore[arg-type]
                if info.get("eeg_features")
                else ""
            )
            + (", plus a linear term on those features" if info.get("feature_skip") else "")
        )
    if "provenance" in info:
        p = dict(info["provenance"])  # type: ignore[call-overload]
        state = "trained" if p["trained"] else "UNTRAINED (estimates are meaningless)"
        lines.append(f"  provenance: {state}; {p['source']}")
        for parent in p["parents"]:
            lines.append(f"    from {parent}")
        if p["datasets"]:
            lines.append(f"    data: {', '.join(p['datasets'])}")
        lines.append(f"    created {p['created']} with {p['software']}")
        notes = _parse_notes(str(p.get("notes") or ""))
        if isinstance(notes, dict):
            if summary := _metrics_summary(notes):
                lines.append(f"  metrics: {summary}")
            for key, value in notes.items():
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                lines.append(f"    {key}: {text}")
        elif notes:
            lines.append(f"    notes: {notes}")
    if "hint" in info:
        lines.append(f"  {info['hint']}")
    return "\n".join(lines)


def _parse_notes(notes: str) -> dict[str, object] | str:
    """Provenance notes: the trainer writes a JSON object (metrics, preprocessing), else text."""
    try:
        parsed = json.loads(notes)
    except (json.JSONDecodeError, TypeError):
        return notes.strip()
    return parsed if isinstance(parsed, dict) else notes.strip()


def _fmt_num(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def checkpoint_test_metrics(notes: Mapping[str, object]) -> dict[str, object]:
    """The test metrics in a checkpoint's JSON notes: ``test_metrics`` (or ``test``) at the top or
    one level down (the trainer writes ``chosen.test_metrics`` beside ``chosen.hop_s``), with the
    ``hop_s`` and ``window_s`` they were measured at when recorded; empty when there are none."""
    for where in (notes, *(v for v in notes.values() if isinstance(v, Mapping))):
        for key in ("test_metrics", "test"):
            m = where.get(key)
            if isinstance(m, Mapping) and m:
                out = {k: v for k, v in m.items() if isinstance(v, (int, float, str))}
                for extra in ("window_s", "hop_s", "test_windows"):
                    if isinstance(where.get(extra), (int, float)):
                        out[extra] = where[extra]
                return out
    # scores of a pretrained encoder: the first mapping whose key names a test split (the ECG
    # encoder writes ``metrics.ludb_test.{intra,inter,all}``), its ``all`` part when it has one
    stack: list[tuple[str, Mapping[str, object]]] = [("", notes)]
    while stack:
        prefix, d = stack.pop(0)
        for key, value in d.items():
            if not isinstance(value, Mapping):
                continue
            name = f"{prefix}{key}"
            if "test" in key.lower():
                part = value.get("all") if isinstance(value.get("all"), Mapping) else value
                nums = {k: v for k, v in part.items() if isinstance(v, (int, float))}  # type: ignore[union-attr]
                counts = {k: value[k] for k in ("records", "windows") if k in value}
                if nums:
                    return {"split": key, **nums, **counts}
            stack.append((f"{name}.", value))
    return {}


def _metrics_summary(notes: dict[str, object]) -> str:
    """One line of test metrics from JSON notes, else every top-level number."""
    m = checkpoint_test_metrics(notes)
    if m:
        head = f"test {m.pop('split')}:" if "split" in m else "test"
        return head + " " + ", ".join(f"{k} {_fmt_num(v)}" for k, v in m.items())
    flat = {k: v for k, v in notes.items() if isinstance(v, (int, float))}
    return ", ".join(f"{k} {_fmt_num(v)}" for k, v in flat.items())


def checkpoint_summary(name: str, path: PathLike) -> str:
    """One line for ``physio-live models list``: name, kind, targets, size, test metrics."""
    path = Path(path)
    meta = _read_metadata(path)
    kind, config, provenance = _parse(meta, path)
    n_bytes = path.stat().st_size
    size = f"{n_bytes / 1e6:6.1f} MB" if n_bytes >= 100_000 else f"{n_bytes / 1e3:6.1f} kB"
    if isinstance(config, (FusedEmotionConfig, ReadoutModelConfig)):
        what = f"targets {', '.join(config.targets)}"
    else:
        assert isinstance(config, ModalityConfig)
        what = f"{config.name} encoder"
    notes = _parse_notes(provenance.notes)
    extra = _metrics_summary(notes) if isinstance(notes, dict) else notes.splitlines()[0:1]
    if isinstance(extra, list):
        extra = extra[0] if extra else ""
    if not extra:
        extra = provenance.source if provenance.trained else "UNTRAINED"
    if len(extra) > 110:
        extra = extra[:107] + "..."
    return f"{name:<16} {kind:<16} {what:<34} {size}  {extra}"
