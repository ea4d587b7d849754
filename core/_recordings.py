"""Recordings read back as the Chunks a live session would have seen.

Readers turn a file into :class:`Recording`: per stream a :class:`StreamInfo` (role decided from
the stream type, the channel type, the label prefix, or the config's ``replay.roles``), its samples
and timestamps. :meth:`Recording.chunks` then yields Chunks of every stream merged in time order,
with the recorded timestamps (clock offsets applied), so they go through the very same buffers,
aligner, worker and sinks as live data.

Supported inputs:

- **XDF** (ours, LabRecorder's, any writer; read with pyxdf). Our own files carry
  ``<writer>physio-live</writer>`` in the file header and already hold dejittered LSL-clock
  timestamps: they are replayed exactly as recorded (no dejitter), which is what makes a replay
  reproduce the live estimates. Other recorders' files are clock-synchronised and dejittered by
  pyxdf, as LSL's own post-processing would have done live. A damaged file is read up to the
  damage and the message says so.
- **EDF/EDF+/BDF** (pyedflib): channels grouped by role and sampling rate; EDF+ annotations become a
  marker stream. Timestamps start at 0 s.
- **WFDB** (``.hea`` + signal files, single- or multi-segment; wfdb): ECG leads picked by name,
  other signals (ABP, PLETH, RESP ...) left out. Timestamps start at 0 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import SourceError
from ._types import Chunk, StreamInfo

__all__ = ["RecordedStream", "Recording", "file_sha256", "open_recording"]

#: WFDB / EDF lead names that are ECG (lower case); anything containing "ecg"/"ekg" is too.
_ECG_LEADS = {
    "i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "mli", "mlii",
    "mliii", "mv1", "mv2", "v", "ecg", "ekg", "lead i", "lead ii", "lead iii",
}  # fmt: skip
#: reference electrodes and derivations between them: recorded, but not EEG channels
_REFERENCE = re.compile(r"^(a1|a2|m1|m2)(-(a1|a2|m1|m2))?$", re.IGNORECASE)


@dataclass
class RecordedStream:
    """One stream of a recording: what it is, its samples and their timestamps."""

    info: StreamInfo
    data: np.ndarray  # [n, channels]; float32 for signals, object (str) for markers
    timestamps: np.ndarray  # [n] float64, seconds


@dataclass
class Recording:
    """A recording's streams (those with a role; others are listed in ``skipped``)."""

    path: Path
    streams: list[RecordedStream]
    skipped: list[str]
    warnings: list[str]
    ours: bool = False

    @property
    def infos(self) -> list[StreamInfo]:
        return [s.info for s in self.streams]

    @property
    def t_first(self) -> float:
        starts = [s.timestamps[0] for s in self.streams if len(s.timestamps)]
        return float(min(starts)) if starts else 0.0

    @property
    def t_last(self) -> float:
        ends = [s.timestamps[-1] for s in self.streams if len(s.timestamps)]
        return float(max(ends)) if ends else 0.0

    def select(self, start: float | None = None, duration: float | None = None) -> Recording:
        """The part from ``start`` s after the first sample, ``duration`` s long."""
        if start is None and duration is None:
            return self
        t0 = self.t_first + (start or 0.0)
        t1 = t0 + duration if duration is not None else np.inf
        if start is not None and t0 > self.t_last:
            raise SourceError(
                f"{self.path}: --start {start} s is past the end of the recording "
                f"({self.t_last - self.t_first:.1f} s long); give a --start below "
                f"{self.t_last - self.t_first:.1f}"
            )
        out = []
        for s in self.streams:
            keep = (s.timestamps >= t0) & (s.timestamps < t1)
            out.append(RecordedStream(s.info, s.data[keep], s.timestamps[keep]))
        return Recording(self.path, out, self.skipped, self.warnings, self.ours)

    def chunks(self, chunk_seconds: float = 0.1) -> Iterator[Chunk]:
        """Chunks of every stream, merged in the order of their last timestamp."""

        def one(idx: int, s: RecordedStream) -> Iterator[tuple[float, int, Chunk]]:
            ts = s.timestamps
            if len(ts) == 0:
                return
            if s.info.is_regular:
                step = max(1, round(chunk_seconds * s.info.nominal_srate))
                bounds = range(0, len(ts), step)
                for a in bounds:
                    b = min(a + step, len(ts))
                    yield float(ts[b - 1]), idx, Chunk(s.info, s.data[a:b], ts[a:b])
            else:  # irregular: group samples falling into the same chunk period
                edges = np.flatnonzero(np.diff(np.floor(ts / chunk_seconds))) + 1
                for a, b in zip(
                    np.concatenate(([0], edges)), np.concatenate((edges, [len(ts)])), strict=True
                ):
                    yield float(ts[b - 1]), idx, Chunk(s.info, s.data[a:b], ts[a:b])

        gens = [one(i, s) for i, s in enumerate(self.streams)]
        for _, _, chunk in heapq.merge(*gens, key=lambda x: (x[0], x[1])):
            yield chunk


# ------------------------------------------------------------------------------------------
# role decisions


def _role_from_type(stream_type: str, fmt: str) -> str:
    t = stream_type.strip().lower()
    if t in ("eeg",):
        return "eeg"
    if t in ("ecg", "ekg"):
        return "ecg"
    if "marker" in t or t in ("events", "event", "stim"):
        return "markers"
    if fmt == "string":
        return "markers"
    return "misc"


def _role_from_label(label: str) -> str:
    low = label.strip().lower()
    for prefix, role in (("eeg ", "eeg"), ("ecg ", "ecg"), ("ekg ", "ecg")):
        if low.startswith(prefix):
            rest = low[len(prefix) :].strip()
            if role == "eeg" and _REFERENCE.match(rest):
                return "misc"
            return role
    if "ecg" in low or "ekg" in low or low in _ECG_LEADS or re.fullmatch(r"mcl\d", low):
        return "ecg"
    return "misc"


def _clean_label(label: str) -> str:
    low = label.strip()
    for prefix in ("EEG ", "ECG ", "EKG "):
        if low.upper().startswith(prefix):
            return low[len(prefix) :].strip()
    return low


# ------------------------------------------------------------------------------------------
# XDF


class _LogCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _xdf_desc_channels(info: dict) -> list[dict[str, str]]:
    desc = info.get("desc") or [None]
    d = desc[0] if desc else None
    if not isinstance(d, dict):
        return []
    try:
        chans = d["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        return []
    out = []
    for ch in chans:
        out.append({k: (v[0] if isinstance(v, list) and v else "") for k, v in ch.items()})
    return out


def _read_xdf(path: Path, roles: dict[str, str]) -> Recording:
    import pyxdf

    # is it ours? (our timestamps are final: no dejitter)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head.startswith(b"XDF:"):
        raise SourceError(
            f"{path}: not an XDF file (no 'XDF:' magic at its start); check that it is the "
            "recording itself, or copy it again"
        )
    ours = b"<writer>physio-live</writer>" in head
    catcher = _LogCatcher()
    logger = logging.getLogger("pyxdf")
    logger.addHandler(catcher)
    try:
        streams, _header = pyxdf.load_xdf(
            str(path), synchronize_clocks=True, dejitter_timestamps=not ours, verbose=False
        )
    except Exception as exc:  # pyxdf raises many kinds on damage
        raise SourceError(
            f"{path}: unreadable XDF ({_short(exc)}); the file is damaged before its first "
            "stream header, so nothing can be replayed: copy it again from its source"
        ) from None
    finally:
        logger.removeHandler(catcher)
    warnings = []
    damaged = [m for m in catcher.messages if "corrupt" in m.lower()]
    out: list[RecordedStream] = []
    skipped: list[str] = []
    for s in streams:
        info = s["info"]
        name = info["name"][0]
        stype = (info.get("type") or [""])[0] or ""
        fmt = info["channel_format"][0]
        n_ch = int(info["channel_count"][0])
        srate = float(info["nominal_srate"][0])
        sid = (info.get("source_id") or [""])[0] or ""  # pyxdf gives None for an empty tag
        ts = np.asarray(s["time_stamps"], np.float64)
        chans = _xdf_desc_channels(info)
        labels = [c.get("label", "") for c in chans] if len(chans) == n_ch else [""] * n_ch
        labels = [lab or f"ch{i + 1}" for i, lab in enumerate(labels)]
        units = [c.get("unit", "") for c in chans] if len(chans) == n_ch else [""] * n_ch
        ctypes = [c.get("type", "") for c in chans] if len(chans) == n_ch else [""] * n_ch
        role = roles.get(name) or _role_from_type(stype, fmt)
        if role == "misc":
            skipped.append(f"{name} (type {stype or '?'})")
            continue
        if role == "markers":
            data = np.array(
                [[str(v) for v in row] for row in s["time_series"]], dtype=object
            ).reshape(len(ts), n_ch)
            if n_ch > 1:
                data = data[:, :1]
            out.append(
                RecordedStream(
                    StreamInfo(name, stype, "markers", (labels[0],), ("",), 0.0, sid, "string"),
                    data,
                    ts,
                )
            )
            continue
        if fmt == "string":
            raise SourceError(
                f"{path}: stream {name!r} holds strings but its role is {role}; set "
                f"replay.roles: {{'{name}': markers}} or pick another stream"
            )
        if srate <= 0:
            raise SourceError(
                f"{path}: stream {name!r} ({role}) has an irregular rate (nominal_srate 0) but "
                f"EEG/ECG must be regularly sampled; set replay.roles: {{'{name}': misc}} to "
                "leave it out"
            )
        x = np.asarray(s["time_series"], np.float32).reshape(len(ts), n_ch)
        # channels may say they are ECG inside an EEG stream (and vice versa): split them
        ch_roles = []
        for lab, ct in zip(labels, ctypes, strict=True):
            r = roles.get(lab)
            if r is None:
                ctl = ct.strip().lower()
                r = {"eeg": "eeg", "ecg": "ecg", "ekg": "ecg"}.get(ctl, role)
            ch_roles.append(r)
        for r in ("eeg", "ecg"):
            idx = [i for i, cr in enumerate(ch_roles) if cr == r]
            if not idx:
                continue
            split = len(idx) < n_ch
            sinfo = StreamInfo(
                name=f"{name}-{r}" if split else name,
                type=stype,
                role=r,
                channel_labels=tuple(labels[i] for i in idx),
                channel_units=tuple(units[i] or "uV" for i in idx),
                nominal_srate=srate,
                source_id=sid,
                channel_format="float32",
                channel_types=tuple(ctypes[i] for i in idx),
            )
            out.append(RecordedStream(sinfo, np.ascontiguousarray(x[:, idx]), ts))
    if damaged:
        last = max((float(s.timestamps[-1]) for s in out if len(s.timestamps)), default=0.0)
        first = min((float(s.timestamps[0]) for s in out if len(s.timestamps)), default=0.0)
        warnings.append(
            f"{path}: the file is damaged ({damaged[0]}); the readable data stops "
            f"{last - first:.1f} s into the recording: replaying what could be read"
        )
    return Recording(path, out, skipped, warnings, ours)


# ------------------------------------------------------------------------------------------
# EDF / BDF


@contextlib.contextmanager
def _quiet_c_output() -> Iterator[None]:
    """Silence what C libraries print on file descriptors 1 and 2 (our messages say it better)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no real descriptors (embedded): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _edf_complete_records(path: Path) -> tuple[Path, str] | None:
    """A truncated EDF/BDF (its last data records cut off, e.g. a copy or a recorder that died):
    a temporary copy holding only the complete records, with the record count in its header
    fixed, and the warning to show; None when the file is complete or not EDF at all."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(256)
            if len(head) < 256:
                return None
            n_bytes = int(head[184:192].strip())
            n_records = int(head[236:244].strip())
            duration = float(head[244:252].strip())
            ns = int(head[252:256].strip())
            rest = f.read(n_bytes - 256)
    except (OSError, ValueError):
        return None  # the reader gives the clear message
    if ns <= 0 or len(rest) != n_bytes - 256 or n_bytes != 256 * (ns + 1):
        return None
    at = ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
    try:
        spr = [int(rest[at + 8 * i : at + 8 * (i + 1)].strip()) for i in range(ns)]
    except ValueError:
        return None
    record_bytes = sum(spr) * (3 if head[:1] == b"\xff" else 2)
    if record_bytes <= 0:
        return None
    complete = (size - n_bytes) // record_bytes
    if complete <= 0 or (n_records >= 0 and complete >= n_records):
        return None
    if n_records < 0 and (size - n_bytes) % record_bytes == 0:
        return None  # record count unknown (-1) and the file ends on a record boundary
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, prefix=".physio-live-repaired-")
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            out.write(head[:236] + f"{complete:<8d}".encode("ascii") + head[244:] + rest)
            left = complete * record_bytes
            src.seek(n_bytes)
            while left > 0:
                block = src.read(min(left, 1 << 22))
                if not block:
                    break
                out.write(block)
                left -= len(block)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return None
    said = f"{n_records}" if n_records >= 0 else "more"
    note = (
        f"{path}: the file is truncated (its header says {said} data records, it holds "
        f"{complete} complete ones); replaying the first {complete * duration:g} s that could "
        "be read"
    )
    return Path(tmp), note


def _read_edf(path: Path, roles: dict[str, str]) -> Recording:
    import pyedflib

    warnings: list[str] = []
    repaired = _edf_complete_records(path)
    if repaired is not None:
        readable, note = repaired
        warnings.append(note)
    else:
        readable = path
    try:
        with _quiet_c_output():  # edflib prints its complaints on the process's stdout
            f = pyedflib.EdfReader(str(readable))
    except OSError as exc:
        why = str(exc).replace(f"{readable}: ", "").strip() or "read error"
        raise SourceError(
            f"{path}: unreadable EDF/BDF ({why}); the file is damaged or not EDF/BDF: copy it "
            "again from its source (or check it in EDFbrowser)"
        ) from None
    finally:
        if repaired is not None:
            repaired[0].unlink(missing_ok=True)
    try:
        labels = f.getSignalLabels()
        groups: dict[tuple[str, float], list[int]] = {}
        skipped = []
        for i, lab in enumerate(labels):
            role = roles.get(lab) or roles.get(_clean_label(lab)) or _role_from_label(lab)
            if role not in ("eeg", "ecg"):
                skipped.append(lab)
                continue
            groups.setdefault((role, float(f.getSampleFrequency(i))), []).append(i)
        out = []
        stem = path.stem
        for (role, fs), idx in sorted(groups.items()):
            n = min(int(f.getNSamples()[i]) for i in idx)
            x = np.stack([f.readSignal(i)[:n] for i in idx], axis=1).astype(np.float32)
            name = (
                f"{stem}-{role}"
                if len({k[1] for k in groups if k[0] == role}) == 1
                else (f"{stem}-{role}-{fs:g}Hz")
            )
            info = StreamInfo(
                name=name,
                type=role.upper(),
                role=role,
                channel_labels=tuple(_clean_label(labels[i]) for i in idx),
                channel_units=tuple(f.getPhysicalDimension(i) or "uV" for i in idx),
                nominal_srate=fs,
                source_id=f"{path.name}-{role}-{fs:g}",
            )
            out.append(RecordedStream(info, x, np.arange(n) / fs))
        onsets, _durations, texts = f.readAnnotations()
        if len(onsets):
            info = StreamInfo(
                f"{stem}-annotations", "Markers", "markers", ("annotation",), ("",), 0.0,
                f"{path.name}-annotations", "string",
            )  # fmt: skip
            data = np.array([[str(t)] for t in texts], dtype=object)
            out.append(RecordedStream(info, data, np.asarray(onsets, np.float64)))
    finally:
        f.close()
    return Recording(path, out, skipped, warnings)


# ------------------------------------------------------------------------------------------
# WFDB


def _read_wfdb(path: Path, roles: dict[str, str]) -> Recording:
    import wfdb

    base = path.with_suffix("") if path.suffix in (".hea", ".dat") else path
    hea = base.with_suffix(".hea")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises a variety on a damaged header
        raise SourceError(
            f"{hea}: unreadable WFDB record: not a valid WFDB header ({_short(exc)}); the .hea "
            "file is damaged or of another kind: copy the record again from its source"
        ) from None
    sampto, warnings = _wfdb_readable_frames(hea, header)
    try:
        # frames may hold several samples of a fast signal (ECG at 4x the frame rate): read
        # every signal at its own rate rather than averaging within frames
        rec = wfdb.rdrecord(str(base), sampto=sampto, physical=True, m2s=True, smooth_frames=False)
    except Exception as exc:  # wfdb raises a variety
        raise SourceError(
            f"{path}: unreadable WFDB record ({_short(exc)}); check that the .hea file and its "
            "signal files are complete and side by side (copy the record again)"
        ) from None
    names = list(rec.sig_name or [])
    units = list(rec.units or [""] * len(names))
    spf = list(rec.samps_per_frame or [1] * len(names))
    idx, skipped = [], []
    for i, name in enumerate(names):
        role = roles.get(name) or _role_from_label(name)
        if role == "ecg":
            idx.append(i)
        else:
            skipped.append(name)
    # one stream per distinct rate among the ECG leads
    rates = sorted({spf[i] for i in idx})
    if len(rates) > 1:
        keep = [i for i in idx if spf[i] == rates[-1]]
        skipped += [names[i] for i in idx if spf[i] != rates[-1]]
        idx = keep
    if not idx:
        return Recording(path, [], skipped, warnings)
    fs = float(rec.fs) * spf[idx[0]]
    info = StreamInfo(
        name=f"{base.name}-ecg",
        type="ECG",
        role="ecg",
        channel_labels=tuple(names[i] for i in idx),
        channel_units=tuple(units[i] or "mV" for i in idx),
        nominal_srate=fs,
        source_id=f"{base.name}-ecg",
    )
    n = min(len(rec.e_p_signal[i]) for i in idx)
    data = np.ascontiguousarray(
        np.stack([np.asarray(rec.e_p_signal[i][:n]) for i in idx], axis=1), dtype=np.float32
    )
    streams = [RecordedStream(info, data, np.arange(len(data)) / fs)]
    return Recording(path, streams, skipped, warnings)


#: bytes per sample of the WFDB storage formats
_WFDB_BYTES = {
    "8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5,
    "310": 4 / 3, "311": 4 / 3,
}  # fmt: skip


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {text[:limit]}"


def _wfdb_readable_frames(hea: Path, header) -> tuple[int | None, list[str]]:
    """How many frames the signal files of a single-segment record really hold.

    A missing or empty signal file is an error; a truncated one (shorter than the header's
    ``sig_len``) gives the frames that can be read and a warning, so the record is replayed up
    to the damage like a truncated XDF or EDF."""
    files = list(getattr(header, "file_name", None) or [])
    sig_len = getattr(header, "sig_len", None)
    if not files or not sig_len or getattr(header, "seg_name", None):
        return None, []  # multi-segment or no signals: wfdb checks the segments itself
    fmts = list(header.fmt or [])
    spf = list(header.samps_per_frame or [1] * len(files))
    offsets = list(header.byte_offset or [None] * len(files))
    readable = sig_len
    short: list[str] = []
    for name in dict.fromkeys(files):
        f = hea.parent / name
        if not f.is_file():
            raise SourceError(
                f"{hea}: unreadable WFDB record: its signal file {name} is missing; put it "
                "beside the .hea file (copy the whole record)"
            )
        idx = [i for i, n in enumerate(files) if n == name]
        per_frame = sum(spf[i] * _WFDB_BYTES.get(str(fmts[i]), 0.0) for i in idx)
        if per_frame <= 0:
            continue  # a format we cannot size: let wfdb decide
        start = offsets[idx[0]] or 0
        frames = int(max(0, f.stat().st_size - start) // per_frame)
        if frames == 0:
            raise SourceError(
                f"{hea}: unreadable WFDB record: its signal file {name} holds no samples; "
                "copy the record again"
            )
        if frames < sig_len:
            short.append(f"{name} holds {frames} of {sig_len} samples")
            readable = min(readable, frames)
    if not short:
        return None, []
    fs = float(getattr(header, "fs", 0) or 0)
    span = f" ({readable / fs:.1f} s)" if fs > 0 else ""
    return readable, [
        f"{hea}: the record is truncated ({'; '.join(short)}); replaying the first "
        f"{readable} samples{span} that could be read"
    ]


# ------------------------------------------------------------------------------------------


def open_recording(path: str | Path, roles: dict[str, str] | None = None) -> Recording:
    """Read a recording (XDF, EDF/BDF, WFDB) into streams with roles.

    Raises :class:`SourceError` with the fix in the text for a missing, unsupported, damaged or
    empty file, or one with neither EEG nor ECG.
    """
    p = Path(path).expanduser()
    roles = dict(roles or {})
    suffix = p.suffix.lower()
    if not p.exists() and not (p.with_suffix(".hea").exists() and suffix in ("", ".dat")):
        raise SourceError(f"{p}: no such file; give the path of an XDF, EDF/BDF or WFDB record")
    if p.is_file() and p.stat().st_size == 0:
        raise SourceError(
            f"{p}: the file is empty (0 bytes); nothing was written to it: replay another copy"
        )
    if suffix == ".xdf" or suffix == ".xdfz":
        if suffix == ".xdfz":
            raise SourceError(f"{p}: compressed XDF is not supported; decompress it first")
        rec = _read_xdf(p, roles)
    elif suffix in (".edf", ".bdf", ".rec"):
        rec = _read_edf(p, roles)
    elif suffix in (".hea", ".dat", "") and p.with_suffix(".hea").exists():
        rec = _read_wfdb(p, roles)
    else:
        raise SourceError(
            f"{p}: unsupported format {suffix or '(no extension)'!r}; physio-live replays XDF "
            "(.xdf), EDF/BDF (.edf, .bdf) and WFDB records (.hea)"
        )
    signals = [s for s in rec.streams if s.info.role in ("eeg", "ecg")]
    if not signals:
        what = ", ".join(rec.skipped) or "no streams"
        raise SourceError(
            f"{p}: no EEG or ECG stream found (found: {what}); name the roles in the config, "
            "e.g. --set \"replay.roles={'StreamName': eeg}\""
        )
    if all(len(s.timestamps) == 0 for s in signals):
        raise SourceError(
            f"{p}: the EEG/ECG streams hold no samples (only their headers were recorded); "
            "replay a recording that holds data"
        )
    rec.streams = [s for s in rec.streams if len(s.timestamps) > 0 or s.info.role == "markers"]
    return rec


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1-MiB blocks: the provenance of recordings,
    corpora and checkpoints."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
