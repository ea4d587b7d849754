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

import heapq
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import SourceError
from ._types import Chunk, StreamInfo

__all__ = ["Recording", "ReplayStream", "open_recording"]

#: WFDB / EDF lead names that are ECG (lower case); anything containing "ecg"/"ekg" is too.
_ECG_LEADS = {
    "i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "mli", "mlii",
    "mliii", "mv1", "mv2", "v", "ecg", "ekg", "lead i", "lead ii", "lead iii",
}  # fmt: skip
#: reference electrodes and derivations between them: recorded, but not EEG channels
_REFERENCE = re.compile(r"^(a1|a2|m1|m2)(-(a1|a2|m1|m2))?$", re.IGNORECASE)


@dataclass
class ReplayStream:
    """One stream of a recording: what it is, its samples and their timestamps."""

    info: StreamInfo
    data: np.ndarray  # [n, channels]; float32 for signals, object (str) for markers
    timestamps: np.ndarray  # [n] float64, seconds


@dataclass
class Recording:
    """A recording's streams (those with a role; others are listed in ``skipped``)."""

    path: Path
    streams: list[ReplayStream]
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
                f"({self.t_last - self.t_first:.1f} s long)"
            )
        out = []
        for s in self.streams:
            keep = (s.timestamps >= t0) & (s.timestamps < t1)
            out.append(ReplayStream(s.info, s.data[keep], s.timestamps[keep]))
        return Recording(self.path, out, self.skipped, self.warnings, self.ours)

    def chunks(self, chunk_seconds: float = 0.1) -> Iterator[Chunk]:
        """Chunks of every stream, merged in the order of their last timestamp."""

        def one(idx: int, s: ReplayStream) -> Iterator[tuple[float, int, Chunk]]:
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
        raise SourceError(f"{path}: not an XDF file (no 'XDF:' magic); check the file")
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
            f"{path}: unreadable XDF ({type(exc).__name__}: {exc}); the file is damaged before "
            "its first stream header"
        ) from None
    finally:
        logger.removeHandler(catcher)
    warnings = []
    damaged = [m for m in catcher.messages if "corrupt" in m.lower()]
    out: list[ReplayStream] = []
    skipped: list[str] = []
    for s in streams:
        info = s["info"]
        name = info["name"][0]
        stype = info["type"][0] if info.get("type") else ""
        fmt = info["channel_format"][0]
        n_ch = int(info["channel_count"][0])
        srate = float(info["nominal_srate"][0])
        sid = info["source_id"][0] if info.get("source_id") else ""
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
                ReplayStream(
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
                f"{path}: stream {name!r} ({role}) has no nominal sampling rate; EEG/ECG "
                "streams must be regular"
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
            out.append(ReplayStream(sinfo, np.ascontiguousarray(x[:, idx]), ts))
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


def _read_edf(path: Path, roles: dict[str, str]) -> Recording:
    import pyedflib

    try:
        f = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise SourceError(
            f"{path}: unreadable EDF/BDF ({exc}); the file is damaged or not EDF"
        ) from None
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
            out.append(ReplayStream(info, x, np.arange(n) / fs))
        onsets, _durations, texts = f.readAnnotations()
        if len(onsets):
            info = StreamInfo(
                f"{stem}-annotations", "Markers", "markers", ("annotation",), ("",), 0.0,
                f"{path.name}-annotations", "string",
            )  # fmt: skip
            data = np.array([[str(t)] for t in texts], dtype=object)
            out.append(ReplayStream(info, data, np.asarray(onsets, np.float64)))
    finally:
        f.close()
    return Recording(path, out, skipped, [])


# ------------------------------------------------------------------------------------------
# WFDB


def _read_wfdb(path: Path, roles: dict[str, str]) -> Recording:
    import wfdb

    base = path.with_suffix("") if path.suffix in (".hea", ".dat") else path
    try:
        # frames may hold several samples of a fast signal (ECG at 4x the frame rate): read
        # every signal at its own rate rather than averaging within frames
        rec = wfdb.rdrecord(str(base), physical=True, m2s=True, smooth_frames=False)
    except Exception as exc:  # wfdb raises a variety
        raise SourceError(
            f"{path}: unreadable WFDB record ({type(exc).__name__}: {exc}); check that the "
            ".hea file and its signal files are complete and side by side"
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
        return Recording(path, [], skipped, [])
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
    return Recording(path, [ReplayStream(info, data, np.arange(len(data)) / fs)], skipped, [])


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
        raise SourceError(f"{p}: the EEG/ECG streams hold no samples; nothing to replay")
    rec.streams = [s for s in rec.streams if len(s.timestamps) > 0 or s.info.role == "markers"]
    return rec
