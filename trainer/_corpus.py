"""Pretraining corpora: WFDB ECG or EDF/BDF EEG folders -> a cache of memory-mapped shards.

Preprocessing, per record (in parallel over records, once):

1. read with the replay readers of :mod:`physio_live.core._recordings` (WFDB: single/multi-segment,
   formats 16/212/..., every signal at its own rate, ECG leads picked by name, other signals left
   out; EDF/BDF: EEG channels by label, references and non-EEG left out);
2. pick ``n_channels`` channels (by name when ``channels`` is given, else the first ones);
3. NaN runs up to ``max_gap_s`` are interpolated linearly; longer runs split the record into
   segments that are processed separately;
4. exactly the live aligner's path (:func:`to_model_grid`): causal Butterworth band-pass + notch
   at the native rate (:func:`~physio_live.core.design_sos` + :class:`~physio_live.core.
   StreamingFilter`, the app's defaults), then linear interpolation onto the global grid
   ``k / rate`` (:func:`~physio_live.core.resample_to_grid`, the very function the aligner
   calls), so the encoder sees the samples it will see live; the first ``settle_s`` seconds of
   each segment are dropped (filter settling); scaling to model units (``unit_uv`` microvolts
   per unit);
5. cut into samples ``(channels, sample_patches, 200)`` at a hop of ``hop_patches``; samples with
   ``|x| >= max_abs_uv`` anywhere or a flat channel (< 1 uV peak to peak) are dropped.

The cache lives in ``<cache_dir>/<kind>-<key>/`` where the key hashes the preprocessing parameters
and the list of records (path, size, mtime of each header/EDF file): same parameters and files ->
the cache is reused. It holds ``shard_NNNNN.npy`` files (``[n, C, P, 200]``, memory-mapped when
read) and ``manifest.json`` (source files with sizes and SHA-256, parameters, per-record counts,
skip reasons, shard hashes, timing). It is written into a temporary folder and renamed into place,
so an interrupted run never leaves a half-built cache under the real name.

The train/validation(/test) split is made *by record* (by patient when ``patient_regex`` is
given; a fixed list of records per part with ``data.split``), never by sample, when the cache is
opened: changing the split does not redo the preprocessing.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from physio_live.core import (
    SourceError,
    StreamingFilter,
    design_sos,
    file_sha256,
    open_recording,
    resample_to_grid,
    unit_scale_uv,
)

from ._config import DataConfig, SplitConfig, TrainError, expand_record_pattern
from ._progress import Progress

__all__ = [
    "CACHE_FORMAT",
    "Corpus",
    "build_cache",
    "cache_key",
    "cache_path",
    "find_records",
    "normalize_channel_name",
    "preprocess_record",
    "record_matches",
    "to_model_grid",
]

CACHE_FORMAT = "physio-live-pretrain-cache"
#: 2: resampling by the aligner's linear interpolation on the global grid (was polyphase)
CACHE_VERSION = 2
#: DataConfig fields that do not change the preprocessed samples (not part of the cache key)
_NOT_IN_KEY = (
    "cache_dir",
    "val_records",
    "val_fraction",
    "split",
    "patient_regex",
    "workers",
    "balance",
)
_ALIASES = {"mlii": "ii", "mli": "i", "mliii": "iii"}
_PREFIX = re.compile(r"^(eeg|ecg|ekg|lead)[\s_-]+", re.IGNORECASE)
_SUFFIX = re.compile(r"[-_](ref|le|avg|ar)$", re.IGNORECASE)


def normalize_channel_name(name: str) -> str:
    """``"EEG Fp1-REF"`` -> ``"fp1"``, ``"MLII"`` -> ``"ii"``, ``"Lead I"`` -> ``"i"``."""
    low = _SUFFIX.sub("", _PREFIX.sub("", name.strip())).strip().lower()
    return _ALIASES.get(low, low)


# --------------------------------------------------------------------------------------------------
# Finding records
# --------------------------------------------------------------------------------------------------


def _wfdb_segment_headers(hea: Path) -> list[str]:
    """Segment record names listed by a multi-segment master header (empty for a plain one)."""
    lines = [
        ln.split("#", 1)[0].strip()
        for ln in hea.read_text(encoding="latin-1", errors="replace").splitlines()
    ]
    lines = [ln for ln in lines if ln]
    if not lines or "/" not in lines[0].split()[0]:
        return []
    return [ln.split()[0] for ln in lines[1:] if ln.split()[0] != "~"]


def find_records(cfg: DataConfig) -> list[Path]:
    """Records under ``cfg.root`` (recursively), sorted: ``.hea`` files that are not segments or
    layouts of a multi-segment record (``wfdb``), or ``.edf``/``.bdf`` files (``edf``)."""
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise TrainError(
            f"data.root {root} is not a folder; point data.root at the corpus "
            "(e.g. --set data.root=/data/ptb-xl)"
        )
    if cfg.kind == "wfdb":
        heads = sorted(root.rglob("*.hea"))
        segments: set[Path] = set()
        for h in heads:
            try:
                segments.update(h.parent / f"{s}.hea" for s in _wfdb_segment_headers(h))
            except OSError:
                continue
        found = [h for h in heads if h not in segments and not h.stem.endswith("_layout")]
    else:
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".edf", ".bdf"))
    if cfg.include:
        found = [
            p
            for p in found
            if any(fnmatch.fnmatch(p.relative_to(root).as_posix(), pat) for pat in cfg.include)
        ]
    if not found:
        what = "WFDB records (.hea)" if cfg.kind == "wfdb" else "EDF/BDF files"
        inc = f" matching {cfg.include}" if cfg.include else ""
        raise TrainError(f"no {what}{inc} under {root}; check data.root and data.include")
    return found


def record_matches(record: str, patterns: list[str]) -> bool:
    """Whether a record name (relative to the root, no extension) matches any pattern: an exact
    name, a glob, or a numeric range ``{a..b}`` (see :class:`SplitConfig`)."""
    for pat in patterns:
        for p in expand_record_pattern(pat):
            if record == p or fnmatch.fnmatch(record, p):
                return True
    return False


def _key_params(cfg: DataConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    for k in _NOT_IN_KEY:
        d.pop(k)
    d["root"] = str(Path(cfg.root).expanduser().resolve())
    return d


def cache_key(cfg: DataConfig, records: list[Path]) -> str:
    """SHA-256 over the preprocessing parameters and (path, size, mtime) of every record file."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, **_key_params(cfg)}, sort_keys=True).encode())
    for p in records:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# One record
# --------------------------------------------------------------------------------------------------


def _source_files(path: Path) -> list[Path]:
    """Every file a record reads (WFDB: header, segment headers, signal files)."""
    if path.suffix.lower() != ".hea":
        return [path]
    out = [path]
    segs = _wfdb_segment_headers(path)
    if segs:
        for s in segs:
            out += _source_files(path.parent / f"{s}.hea")
        return list(dict.fromkeys(out))
    for ln in path.read_text(encoding="latin-1", errors="replace").splitlines()[1:]:
        ln = ln.split("#", 1)[0].strip()
        if ln:
            f = path.parent / ln.split()[0]
            if f.is_file():
                out.append(f)
    return list(dict.fromkeys(out))


def _pick_channels(labels: list[str], cfg: DataConfig) -> list[int] | None:
    norm = [normalize_channel_name(x) for x in labels]
    if cfg.channels is None:
        return list(range(cfg.n_channels)) if len(labels) >= cfg.n_channels else None
    idx = []
    for want in cfg.channels:
        w = normalize_channel_name(want)
        if w in norm and norm.index(w) not in idx:
            idx.append(norm.index(w))
        if len(idx) == cfg.n_channels:
            return idx
    return None


def _fill_gaps(x: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Interpolate NaN runs up to ``max_gap`` samples in place; return the finite segments."""
    bad = ~np.isfinite(x).all(axis=1)
    if not bad.any():
        return [(0, len(x))]
    edges = np.flatnonzero(np.diff(np.concatenate(([0], bad.view(np.int8), [0]))))
    starts, ends = edges[::2], edges[1::2]
    good = np.flatnonzero(~bad)
    if len(good) >= 2:
        for s, e in zip(starts, ends, strict=True):
            if e - s <= max_gap and s > 0 and e < len(x):
                for c in range(x.shape[1]):
                    col = x[:, c]
                    ok = np.isfinite(col)
                    col[s:e] = np.interp(np.arange(s, e), np.flatnonzero(ok), col[ok])
    bad = ~np.isfinite(x).all(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate(([1], bad.view(np.int8), [1]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _header_gains(path: Path) -> dict[str, tuple[float, str]] | None:
    """``{label: (gain, unit)}`` (counts per unit) of a single-segment WFDB header; None for
    anything else."""
    if path.suffix.lower() != ".hea" or _wfdb_segment_headers(path):
        return None
    out: dict[str, tuple[float, str]] = {}
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(errors="replace").splitlines()]
    for ln in [x for x in lines if x][1:]:
        parts = ln.split()
        if len(parts) < 3:
            continue
        m = re.match(r"^([-+0-9.eE]+)(?:\([-+0-9]+\))?(?:/(\S+))?$", parts[2])
        if m is None:
            continue
        label = " ".join(parts[8:]) if len(parts) > 8 else ""
        gain = float(m.group(1)) or 200.0  # WFDB: a gain of 0 means 200
        out[label] = (gain, m.group(2) or "mV")
    return out


def to_model_grid(x: np.ndarray, fs: float, cfg: DataConfig) -> np.ndarray:
    """One gap-free segment ``x [n, C]`` sampled at ``fs`` (any unit; linear steps) -> the
    model grid, as the live aligner does it: causal band-pass + notch at ``fs`` with the state
    starting at the first sample, then linear interpolation at the instants ``k / cfg.rate``
    (the segment starts at t = 0, so grid sample ``k`` is at ``k / rate`` seconds). float64."""
    sos = design_sos(fs, tuple(cfg.bandpass), cfg.notch, cfg.order, cfg.notch_q)
    y = StreamingFilter(sos, x.shape[1])(np.asarray(x, np.float64))
    if abs(fs - cfg.rate) < 1e-9:
        return y
    return resample_to_grid(np.arange(len(y)) / fs, y, cfg.rate, 0).values


def preprocess_record(path: str | Path, cfg: DataConfig) -> dict[str, Any]:
    """Preprocess one record; returns ``{"samples": array [n, C, P, 200] or None, ...info}``.

    Never raises for a bad record: the reason goes to ``info["skipped"]``.
    """
    t0 = time.perf_counter()
    path = Path(path)
    root = Path(cfg.root).expanduser()
    try:
        rid = path.relative_to(root).with_suffix("").as_posix()
    except ValueError:
        rid = path.with_suffix("").name
    info: dict[str, Any] = {"record": rid, "path": str(path), "n_samples": 0, "skipped": None}

    def done(reason: str | None, samples: np.ndarray | None = None) -> dict[str, Any]:
        info["skipped"] = reason
        info["samples"] = samples
        info["n_samples"] = 0 if samples is None else len(samples)
        try:
            info["files"] = [
                {"path": str(f), "bytes": f.stat().st_size, "sha256": file_sha256(f)}
                for f in _source_files(path)
            ]
        except OSError as exc:
            info["files"] = []
            info["skipped"] = info["skipped"] or f"cannot read source files ({exc})"
        info["seconds"] = time.perf_counter() - t0
        return info

    role = cfg.signal or ("ecg" if cfg.kind == "wfdb" else "eeg")
    try:
        rec = open_recording(path)
    except SourceError as exc:
        return done(f"unreadable: {' '.join(str(exc).split())[:200]}")
    except Exception as exc:  # third-party readers raise many kinds on damaged files
        return done(f"unreadable: {type(exc).__name__}: {str(exc)[:200]}")
    streams = [s for s in rec.streams if s.info.role == role]
    chosen = None
    for s in sorted(streams, key=lambda s: (-len(s.info.channel_labels), -s.info.nominal_srate)):
        idx = _pick_channels(list(s.info.channel_labels), cfg)
        if idx is not None:
            chosen = (s, idx)
            break
    if chosen is None:
        have = sorted({lab for s in streams for lab in s.info.channel_labels})
        want = cfg.channels or f"{cfg.n_channels} channels"
        return done(f"needs {want} of type {role}, has {have or 'none'}")
    stream, idx = chosen
    info["channels"] = [stream.info.channel_labels[i] for i in idx]
    fs = float(stream.info.nominal_srate)
    info["fs"] = fs
    scales = []
    for i in idx:
        unit = stream.info.channel_units[i] if stream.info.channel_units else ""
        sc = unit_scale_uv(unit or ("mV" if role == "ecg" else "uV"), default=None)
        if sc is None:
            return done(f"channel {stream.info.channel_labels[i]!r} has unknown unit {unit!r}")
        scales.append(sc)
    if cfg.wfdb_gain is not None:
        gains = _header_gains(path)
        labels = [stream.info.channel_labels[i] for i in idx]
        if gains is None or any(lab not in gains for lab in labels):
            return done("data.wfdb_gain needs a single-segment WFDB header naming every channel")
        # the reader gives digital / header gain: back to counts, then the common gain (per mV)
        scales = [gains[lab][0] / cfg.wfdb_gain * 1e3 for lab in labels]
        info["gain_fixed"] = {lab: gains[lab][0] for lab in labels}
    x = stream.data[:, idx].astype(np.float64) * np.asarray(scales) / cfg.unit_uv
    info["seconds_of_signal"] = len(x) / fs
    segments = _fill_gaps(x, round(cfg.max_gap_s * fs))
    size = cfg.sample_patches * cfg.patch_size
    hop = (cfg.hop_patches or cfg.sample_patches) * cfg.patch_size
    settle = round(cfg.settle_s * cfg.rate)
    out, dropped_amp, dropped_flat = [], 0, 0
    max_abs = None if cfg.max_abs_uv is None else cfg.max_abs_uv / cfg.unit_uv
    for a, b in segments:
        if (b - a) / fs * cfg.rate < settle + size:
            continue
        y = to_model_grid(x[a:b], fs, cfg)[settle:]
        n = (len(y) - size) // hop + 1
        if n <= 0:
            continue
        starts = np.arange(n) * hop
        win = np.stack([y[s : s + size] for s in starts])  # [n, size, C]
        win = win.transpose(0, 2, 1).reshape(n, len(idx), cfg.sample_patches, cfg.patch_size)
        keep = np.ones(n, bool)
        if max_abs is not None:
            amp_bad = np.abs(win).max(axis=(1, 2, 3)) >= max_abs
            dropped_amp += int((amp_bad & keep).sum())
            keep &= ~amp_bad
        flat = (np.ptp(win.reshape(n, len(idx), -1), axis=-1) < 1.0 / cfg.unit_uv).any(axis=1)
        dropped_flat += int((flat & keep).sum())
        keep &= ~flat
        out.append(win[keep].astype(cfg.dtype))
    info["dropped_amplitude"], info["dropped_flat"] = dropped_amp, dropped_flat
    info["segments"] = len(segments)
    samples = np.concatenate(out) if out else None
    if samples is None or not len(samples):
        return done("no sample survived (too short, gaps, amplitude or flat-line limits)")
    return done(None, samples)


def _work(args: tuple[str, DataConfig]) -> dict[str, Any]:
    return preprocess_record(args[0], args[1])


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------


def _results(paths: list[Path], cfg: DataConfig) -> Iterator[dict[str, Any]]:
    jobs = [(str(p), cfg) for p in paths]
    if cfg.workers <= 0:
        yield from map(_work, jobs)
        return
    chunk = max(1, min(64, len(jobs) // (cfg.workers * 8) or 1))
    with ProcessPoolExecutor(cfg.workers) as ex:
        yield from ex.map(_work, jobs, chunksize=chunk)


def cache_path(cfg: DataConfig, records: list[Path] | None = None) -> Path:
    """The cache folder for ``cfg`` (whether it exists yet or not)."""
    records = find_records(cfg) if records is None else records
    key = cache_key(cfg, records)
    return Path(cfg.cache_dir).expanduser() / f"{cfg.kind}-{key[:16]}"


def build_cache(cfg: DataConfig, *, progress: bool = True, log: Any = print) -> Path:
    """Preprocess the corpus into the cache unless an identical one exists; returns its folder."""
    records = find_records(cfg)
    out = cache_path(cfg, records)
    base = out.parent
    key = cache_key(cfg, records)
    if (out / "manifest.json").is_file():
        if progress:
            log(f"preprocess: reusing cache {out} ({len(records)} records)")
        return out
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.perf_counter()
    bar = Progress(len(records), "preprocess", "records", enabled=progress)
    entries: list[dict[str, Any]] = []
    shards: list[dict[str, Any]] = []
    pending: list[np.ndarray] = []
    n_pending = 0
    total = 0

    def flush() -> None:
        nonlocal pending, n_pending
        if not n_pending:
            return
        arr = np.concatenate(pending)
        name = f"shard_{len(shards):05d}.npy"
        np.save(tmp / name, arr)
        start = shards[-1]["start"] + shards[-1]["n"] if shards else 0
        digest = file_sha256(tmp / name)
        shards.append({"file": name, "start": start, "n": len(arr), "sha256": digest})
        pending, n_pending = [], 0

    try:
        for res in _results(records, cfg):
            samples = res.pop("samples")
            res["start"] = total
            if samples is not None:
                while len(samples):
                    take = min(len(samples), cfg.shard_samples - n_pending)
                    pending.append(samples[:take])
                    n_pending += take
                    total += take
                    samples = samples[take:]
                    if n_pending >= cfg.shard_samples:
                        flush()
            entries.append(res)
            bar.update(1, f"{total} samples")
        flush()
        bar.close(f"{total} samples")
        used = [e for e in entries if not e["skipped"]]
        if not total:
            reasons = "; ".join(f"{e['record']}: {e['skipped']}" for e in entries[:3])
            raise TrainError(
                f"no usable samples in {len(records)} records under {cfg.root} ({reasons}); check "
                "data.kind, data.channels/n_channels and data.sample_patches"
            )
        shape = [cfg.n_channels, cfg.sample_patches, cfg.patch_size]
        elapsed = time.perf_counter() - t0
        manifest = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "key": key,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "params": _key_params(cfg),
            "sample_shape": shape,
            "dtype": cfg.dtype,
            "counts": {
                "records": len(records),
                "records_used": len(used),
                "records_skipped": len(entries) - len(used),
                "samples": total,
                "hours": total * cfg.sample_patches * cfg.patch_size / cfg.rate / 3600,
                "dropped_amplitude": sum(e.get("dropped_amplitude", 0) for e in entries),
                "dropped_flat": sum(e.get("dropped_flat", 0) for e in entries),
                "source_bytes": sum(f["bytes"] for e in entries for f in e.get("files", [])),
                "cache_bytes": sum((tmp / s["file"]).stat().st_size for s in shards),
            },
            "timing": {
                "elapsed_s": elapsed,
                "workers": cfg.workers,
                "cpu_seconds_per_record": sum(e["seconds"] for e in entries) / len(entries),
            },
            "shards": shards,
            "records": entries,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished the same cache first: use theirs
            if not (out / "manifest.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        c = manifest["counts"]
        log(
            f"preprocess: {c['records_used']}/{c['records']} records -> {c['samples']} samples "
            f"({c['hours']:.2f} h) in {elapsed:.1f} s; cache {out}"
        )
    return out


# --------------------------------------------------------------------------------------------------
# Reading the cache
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shard:
    start: int
    data: np.ndarray  # memory-mapped [n, C, P, S]


class Corpus:
    """A preprocessed cache: samples by global index, records, the split by record."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        mf = self.path / "manifest.json"
        try:
            self.manifest: dict[str, Any] = json.loads(mf.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TrainError(
                f"{mf}: missing or damaged cache manifest ({exc}); delete {self.path} and "
                "preprocess again"
            ) from None
        if self.manifest.get("format") != CACHE_FORMAT:
            raise TrainError(f"{mf} is not a physio-train cache manifest; delete {self.path}")
        self.shards = [
            _Shard(s["start"], np.load(self.path / s["file"], mmap_mode="r"))
            for s in self.manifest["shards"]
        ]
        self._starts = np.array([s.start for s in self.shards], dtype=np.int64)
        self.sample_shape = tuple(self.manifest["sample_shape"])
        self.records: list[dict[str, Any]] = self.manifest["records"]

    def __len__(self) -> int:
        return int(self.manifest["counts"]["samples"])

    def get(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """Samples ``[len(indices), C, P, S]`` as float32, in the order given."""
        idx = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(idx), *self.sample_shape), np.float32)
        which = np.searchsorted(self._starts, idx, side="right") - 1
        for k in np.unique(which):
            sel = np.flatnonzero(which == k)
            local = idx[sel] - self.shards[k].start
            order = np.argsort(local)
            out[sel[order]] = self.shards[k].data[local[order]]
        return out

    def record_ranges(self) -> list[tuple[dict[str, Any], int, int]]:
        return [
            (r, r["start"], r["start"] + r["n_samples"]) for r in self.records if r["n_samples"]
        ]

    def record_of(self, indices: np.ndarray) -> np.ndarray:
        """Position in :attr:`records` of the record each sample index comes from."""
        ranges = [(i, r["start"]) for i, r in enumerate(self.records) if r["n_samples"]]
        pos = np.array([i for i, _ in ranges], dtype=np.int64)
        starts = np.array([a for _, a in ranges], dtype=np.int64)
        return pos[np.searchsorted(starts, np.asarray(indices), side="right") - 1]

    def split_parts(self, split: SplitConfig) -> dict[str, np.ndarray]:
        """Sample indices of ``train``, ``val`` and ``test`` of a fixed split by record name."""
        parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for rec, a, b in self.record_ranges():
            rid = rec["record"]
            hits = [n for n in parts if record_matches(rid, getattr(split, n))]
            if len(hits) > 1:
                raise TrainError(
                    f"data.split: record {rid} is in both {hits[0]} and {hits[1]}; a record "
                    "(patient) must be in one part only"
                )
            if hits:
                parts[hits[0]].append(np.arange(a, b))
        return {n: np.concatenate(v) if v else np.zeros(0, np.int64) for n, v in parts.items()}

    def split(
        self,
        val_records: list[str] | None = None,
        val_fraction: float = 0.1,
        patient_regex: str | None = None,
        fixed: SplitConfig | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation sample indices, split by record (patient when known); a
        ``fixed`` split (when active) wins over the other arguments."""
        if fixed is not None and fixed.active:
            parts = self.split_parts(fixed)
            return parts["train"], parts["val"]
        pat = re.compile(patient_regex) if patient_regex else None
        train, val = [], []
        for rec, a, b in self.record_ranges():
            rid = rec["record"]
            if val_records:
                is_val = any(fnmatch.fnmatch(rid, p) or fnmatch.fnmatch(rid + ".hea", p)
                             for p in val_records)  # fmt: skip
            else:
                patient = rid
                if pat is not None and (m := pat.search(rid)):
                    patient = m.group(1) if m.groups() else m.group(0)
                u = int(hashlib.sha256(patient.encode()).hexdigest()[:8], 16) / 2**32
                is_val = u < val_fraction
            (val if is_val else train).append(np.arange(a, b))
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
        return cat(train), cat(val)
