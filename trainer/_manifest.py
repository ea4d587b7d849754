"""Labelled recordings (``data.kind: manifest``) cut into windows by the app's own aligner path.

Every recording listed in the manifest (XDF, EDF/BDF, WFDB: whatever ``physio-live --replay``
reads) goes through exactly what a replay does: :func:`~physio_live.core.open_recording` (channel
roles as the replay decides them: ``EEG A2-A1`` is a reference, not EEG; ``ECG ECG`` is ECG), its
Chunks in time order into a :class:`~physio_live.core.Aligner` with an
:class:`~physio_live.core.AlignerConfig` built from the recipe (the same causal filters, the same
200 Hz grid, window and hop), so a model trained on these windows sees what the app feeds it.

The windows of each recording are cached as ``.npz`` (no pickle) under ``manifest.cache_dir``,
keyed by the file (path, size, modification time) and every parameter that shapes them.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from physio_live.core import (
    Aligner,
    AlignerConfig,
    ConfigError,
    PhysioLiveError,
    open_recording,
)
from physio_live.core import ModalityConfig as AlignerModality

from ._config import TrainError
from ._data import MODEL_RATE, PATCH, FinetuneDataConfig, WindowSet, _spec, binarize

__all__ = [
    "ManifestRow",
    "aligner_config",
    "build_manifest",
    "load_manifest",
    "recording_windows",
]

#: bump when the windowing code changes what it writes (invalidates the caches)
_CACHE_VERSION = 1


class ManifestRow(dict):
    """One recording: ``path`` (absolute), ``subject`` and one value per target."""


def aligner_config(cfg: FinetuneDataConfig) -> AlignerConfig:
    """The app's aligner settings that cut this data (window, hop, filters, units)."""

    def mod(sig) -> AlignerModality:
        return AlignerModality(
            bandpass=list(sig.bandpass),
            notch=sig.notch,
            notch_q=sig.notch_q,
            order=sig.order,
            unit_uv=sig.unit_uv,
        )

    acfg = AlignerConfig(
        rate=MODEL_RATE,
        window=float(cfg.window_s),
        hop=float(cfg.hop_s),
        eeg=mod(cfg.eeg),
        ecg=mod(cfg.ecg),
    )
    acfg.validate("data")
    return acfg


def build_manifest(cfg: FinetuneDataConfig) -> list[ManifestRow]:
    """The rows of ``manifest.csv``, or of the folder rules when there is no CSV."""
    root = Path(cfg.root or ".").expanduser()
    if not root.is_dir():
        raise TrainError(
            f"data.root: {root} is not a folder; point data.root at the recordings (e.g. "
            "--set data.root=../shared/datasets/eegmat)"
        )
    m = cfg.manifest
    targets = list(cfg.targets)
    rows: list[ManifestRow] = []
    if m.csv:
        path = Path(m.csv).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise TrainError(f"data.manifest.csv: {path} does not exist; give the manifest CSV")
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            need = {"path", "subject", *targets}
            have = set(reader.fieldnames or [])
            if not need <= have:
                raise TrainError(
                    f"{path}: lacks columns {sorted(need - have)}; the header must be "
                    f"path,subject,{','.join(targets)}"
                )
            for i, r in enumerate(reader, start=2):
                row = ManifestRow(path=str(root / r["path"]), subject=r["subject"].strip())
                for t in targets:
                    try:
                        row[t] = float(r[t])
                    except (TypeError, ValueError):
                        raise TrainError(f"{path}:{i}: {t}={r[t]!r} is not a number") from None
                rows.append(row)
    else:
        try:
            subj_re = re.compile(m.subject_regex)
            label_re = {t: re.compile(m.labels[t]) for t in targets}
        except re.error as exc:
            raise ConfigError(f"data.manifest: a regex does not compile ({exc})") from None
        files = sorted(
            p for p in root.rglob("*") if p.is_file() and fnmatch.fnmatch(p.name, m.files)
        )
        for p in files:
            hit = subj_re.search(p.name)
            if hit is None:
                raise TrainError(
                    f"data.manifest.subject_regex {m.subject_regex!r} does not match {p.name}; "
                    "fix the regex or narrow manifest.files"
                )
            row = ManifestRow(path=str(p), subject=hit.group(1) if hit.groups() else hit.group(0))
            for t in targets:
                row[t] = 1.0 if label_re[t].search(p.name) else 0.0
            rows.append(row)
    if not rows:
        raise TrainError(
            f"data.root: no recordings in {root} (manifest.files {m.files!r}); check the folder "
            "and the pattern"
        )
    return rows


def _code_fingerprint() -> str:
    """SHA-256 of the core modules that shape the windows (reader, filters, resampling, aligner),
    so a cache never outlives a change of the app's own path."""
    import physio_live.core as core

    h = hashlib.sha256()
    for f in sorted(Path(core.__file__).parent.glob("_*.py")):
        if f.stem in ("_aligner", "_filters", "_recordings", "_resample", "_types"):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _cache_key(path: Path, acfg: AlignerConfig, cfg: FinetuneDataConfig) -> str:
    st = path.stat()
    blob = json.dumps(
        {
            "v": _CACHE_VERSION,
            "code": _code_fingerprint(),
            "file": [str(path.resolve()), st.st_size, st.st_mtime_ns],
            "aligner": asdict(acfg),
            "roles": cfg.manifest.roles,
            "chunk_seconds": cfg.manifest.chunk_seconds,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def recording_windows(
    path: str | Path,
    acfg: AlignerConfig,
    *,
    roles: dict[str, str] | None = None,
    chunk_seconds: float = 0.1,
) -> dict[str, Any]:
    """Replay one recording through the app's aligner: ``eeg``/``ecg`` ``[N, C, T]`` float32
    (model units; absent modality: None), ``t_end`` [N], ``eeg_channels``/``ecg_channels``,
    ``bad`` [N] (a window with gaps, NaN, flat or saturated channels)."""
    try:
        rec = open_recording(path, roles)
    except PhysioLiveError as exc:
        raise TrainError(f"data: {exc}") from None
    aligner = Aligner(acfg, rec.infos)
    wins = []
    for chunk in rec.chunks(chunk_seconds):
        aligner.push(chunk)
        wins += aligner.pop_windows()
    wins += aligner.pop_windows()
    out: dict[str, Any] = {"t_end": np.array([w.t_end for w in wins], np.float64)}
    for mod in ("eeg", "ecg"):
        labels = aligner.labels[mod]
        out[f"{mod}_channels"] = list(labels)
        if not labels or not wins:
            out[mod] = None
            continue
        out[mod] = np.stack([getattr(w, mod) for w in wins]).astype(np.float32)
    bad = np.zeros(len(wins), bool)
    for i, w in enumerate(wins):
        for q in w.quality.per_modality.values():
            bad[i] |= bool(
                q.gap_fraction > 0 or q.nan_channels or q.flat_channels or q.saturated_channels
            )
    out["bad"] = bad
    return out


def _cached_windows(path: Path, acfg: AlignerConfig, cfg: FinetuneDataConfig) -> dict[str, Any]:
    cache = Path(cfg.manifest.cache_dir).expanduser()
    f = cache / f"{path.stem}-{_cache_key(path, acfg, cfg)}.npz"
    if f.is_file():
        try:
            with np.load(f, allow_pickle=False) as z:
                d: dict[str, Any] = {k: z[k] for k in z.files}
            for mod in ("eeg", "ecg"):
                d[f"{mod}_channels"] = [str(s) for s in d[f"{mod}_channels"]]
                d.setdefault(mod, None)
            return d
        except (OSError, ValueError, KeyError):
            pass  # damaged cache file: rebuild it
    d = recording_windows(
        path, acfg, roles=cfg.manifest.roles, chunk_seconds=cfg.manifest.chunk_seconds
    )
    cache.mkdir(parents=True, exist_ok=True)
    arrays = {k: v for k, v in d.items() if v is not None and not k.endswith("_channels")}
    for mod in ("eeg", "ecg"):
        arrays[f"{mod}_channels"] = np.array(d[f"{mod}_channels"], dtype=str)
    tmp = f.with_name(f"{f.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(f)
    return d


def load_manifest(cfg: FinetuneDataConfig, log=None) -> WindowSet:
    """Every recording of the manifest through the app's aligner -> labelled windows.

    One trial (the unit no split cuts) per recording; windows ending before ``settle_s`` are
    dropped (0 keeps all, as a replay does).
    """
    rows = build_manifest(cfg)
    acfg = aligner_config(cfg)
    targets = tuple(cfg.targets)
    subjects = sorted({r["subject"] for r in rows})
    chans: dict[str, list[str] | None] = {}
    eeg_l, ecg_l, rat, subj, trial, t_ends, rec_i = [], [], [], [], [], [], []
    n_bad = 0
    for i, row in enumerate(rows):
        path = Path(row["path"])
        d = _cached_windows(path, acfg, cfg)
        for mod in ("eeg", "ecg"):
            names = d[f"{mod}_channels"] if d[mod] is not None else None
            if mod in chans and chans[mod] != names:
                raise TrainError(
                    f"{path}: {mod} channels {names} differ from those of the other recordings "
                    f"{chans[mod]}; use recordings of one montage (or set manifest.roles)"
                )
            chans[mod] = names
        keep = d["t_end"] >= cfg.settle_s + cfg.window_s - 1e-9
        k = int(keep.sum())
        if k == 0:
            continue
        n_bad += int(d["bad"][keep].sum())
        for mod, dest in (("eeg", eeg_l), ("ecg", ecg_l)):
            if d[mod] is not None:
                x = d[mod][keep]
                dest.append(x.reshape(k, x.shape[1], cfg.window_s, PATCH))
        rat.append(np.tile([row[t] for t in targets], (k, 1)))
        subj += [subjects.index(row["subject"])] * k
        trial += [i] * k
        t_ends.append(d["t_end"][keep])
        rec_i += [i] * k
        if log is not None:
            log(f"manifest: {path.name}: {k} windows")
    if not subj:
        raise TrainError(
            f"data: no {cfg.window_s}-s window fits in any recording; lower data.window_s"
        )
    subject = np.asarray(subj, np.int64)
    ratings = np.concatenate(rat).astype(np.float32)
    labels, thr = binarize(ratings, subject, cfg.label)
    prep = {
        "kind": "manifest",
        "root": str(cfg.root),
        "recordings": len(rows),
        "aligner": asdict(acfg),
        "rate": MODEL_RATE,
        "patch_size": PATCH,
        "window_s": cfg.window_s,
        "hop_s": cfg.hop_s,
        "settle_s": cfg.settle_s,
        "filters": "the app's Aligner: causal Butterworth SOS (+ notch) at the native rate, "
        "linear interpolation onto the 200 Hz LSL-clock grid",
        "roles": cfg.manifest.roles,
        "label": asdict(cfg.label),
        "windows_with_quality_flags": n_bad,
    }
    return WindowSet(
        eeg=np.concatenate(eeg_l) if eeg_l else None,
        ecg=np.concatenate(ecg_l) if ecg_l else None,
        ratings=ratings,
        labels=labels,
        subject=subject,
        trial=np.asarray(trial, np.int64),
        clip=np.asarray(trial, np.int64),
        subjects=subjects,
        targets=targets,
        eeg_spec=_spec("eeg", tuple(chans.get("eeg") or ()), cfg.window_s, cfg.eeg.unit_uv),
        ecg_spec=_spec("ecg", tuple(chans.get("ecg") or ()), cfg.window_s, cfg.ecg.unit_uv),
        label_threshold=thr,
        preprocessing=prep,
        source=f"manifest: {len(rows)} recordings under {cfg.root}",
        t_end=np.concatenate(t_ends),
        recording=np.asarray(rec_i, np.int64),
        recordings=[str(r["path"]) for r in rows],
    )
