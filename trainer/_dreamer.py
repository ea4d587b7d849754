"""Fine-tuning data: DREAMER (``DREAMER.mat``) and a lab's own exported windows, as model inputs.

DREAMER (Katsigiannis & Ramzan, IEEE JBHI 2018): 23 subjects x 18 film clips, 14-ch Emotiv EEG at
128 Hz, 2-lead ECG at 256 Hz, a ``baseline`` and a ``stimuli`` recording per clip, self-ratings of
valence / arousal / dominance on 1-5. The file is MATLAB v5; read with :func:`scipy.io.loadmat` it
looks like ``mat["DREAMER"][0, 0]["Data"][0, s]["EEG"][0, 0]["stimuli"][0, 0][clip, 0]``
(``[samples, 14]``), ``...["ScoreValence"][0, 0][clip, 0]``, plus ``EEG_SamplingRate``,
``ECG_SamplingRate`` and ``EEG_Electrodes`` at the top level.

Preprocessing (both modalities, per recording, as the app's aligner does live): raw values x unit
factor -> microvolts -> model units (/ ``unit_uv``), causal Butterworth band-pass (+ notch) at the
native rate (:func:`physio_live.core.design_sos`), linear interpolation onto the 200 Hz
grid, the first ``settle_s`` seconds dropped (filter settling). Optional baseline correction
(``subtract``: the mean 1-s patch of the clip's baseline recording is subtracted from every 1-s
patch of the stimulus, Yang et al. 2018; the live app has no baseline, so models meant for the app
should keep ``none``). Windows of ``window_s`` whole seconds (1-s patches of 200 samples) every
``hop_s`` seconds.

Labels: a rating above ``label.threshold`` (default 3, i.e. 4 and 5 are "high" on DREAMER's 1-5
scale) is the positive class; ``label.mode: median`` splits each subject's ratings at that
subject's median instead (rating > median is high).

Own data: ``.npz`` files written by ``physio-live --replay REC --export-windows OUT.npz`` (windows
already at 200 Hz in model units) with a labels CSV per file, see :func:`load_exported_windows`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_live.core import ConfigError, StreamingFilter, design_sos, unit_scale_uv

from ._config import TrainError
from ._data import (
    DREAMER_TARGETS,
    MODEL_RATE,
    PATCH,
    FinetuneDataConfig,
    LabelConfig,
    SessionConfig,
    SignalConfig,
    SyntheticConfig,
    WindowSet,
    _spec,
    binarize,
    load_windows,
)

__all__ = [
    "DREAMER_TARGETS",
    "FinetuneDataConfig",
    "LabelConfig",
    "SessionConfig",
    "SignalConfig",
    "SyntheticConfig",
    "WindowSet",
    "binarize",
    "load_dreamer",
    "load_exported_windows",
    "load_windows",
    "preprocess_signal",
    "read_dreamer",
    "write_synthetic_dreamer",
]

_SCORE_FIELDS = {
    "valence": "ScoreValence",
    "arousal": "ScoreArousal",
    "dominance": "ScoreDominance",
}
DREAMER_ELECTRODES = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip
ECG_LEADS = ("ECG1", "ECG2")


# --------------------------------------------------------------------------------------------------
# Signal preprocessing
# --------------------------------------------------------------------------------------------------


def preprocess_signal(x: np.ndarray, fs: float, sig: SignalConfig, settle_s: float) -> np.ndarray:
    """Raw ``[samples, C]`` at ``fs`` -> ``[C, samples at 200 Hz]`` float32 in model units."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise TrainError(f"expected a [samples, channels] recording, got shape {x.shape}")
    if not np.isfinite(x).all():
        x = np.where(np.isfinite(x), x, 0.0)
    scale = unit_scale_uv(sig.raw_unit) or 1.0
    x = x * (scale / sig.unit_uv)
    sos = design_sos(fs, sig.bandpass, sig.notch, order=sig.order, notch_q=sig.notch_q)
    y = StreamingFilter(sos, x.shape[1])(x)
    n_out = math.floor((len(y) - 1) / fs * MODEL_RATE) + 1 if len(y) else 0
    pos = np.arange(n_out) * (fs / MODEL_RATE)
    i0 = np.minimum(pos.astype(np.int64), max(len(y) - 2, 0))
    frac = (pos - i0)[:, None]
    if len(y) >= 2:
        z = y[i0] * (1.0 - frac) + y[i0 + 1] * frac
    else:
        z = y[:n_out]
    z = z[round(settle_s * MODEL_RATE) :]
    return np.ascontiguousarray(z.T, dtype=np.float32)


def _cut(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    """``[C, T]`` -> ``[n, C, size // 200, 200]`` windows every ``hop`` samples."""
    n = (x.shape[1] - size) // hop + 1
    if n <= 0:
        return np.zeros((0, x.shape[0], size // PATCH, PATCH), np.float32)
    idx = np.arange(n)[:, None] * hop + np.arange(size)[None, :]
    w = x[:, idx].transpose(1, 0, 2)  # [n, C, size]
    return np.ascontiguousarray(w.reshape(n, x.shape[0], size // PATCH, PATCH), dtype=np.float32)


def _baseline_patch(b: np.ndarray) -> np.ndarray:
    """Mean 1-s patch ``[C, 200]`` of a preprocessed baseline ``[C, T]``."""
    n = b.shape[1] // PATCH
    if n == 0:
        return np.zeros((b.shape[0], PATCH), np.float32)
    return b[:, : n * PATCH].reshape(b.shape[0], n, PATCH).mean(axis=1)


# --------------------------------------------------------------------------------------------------
# DREAMER
# --------------------------------------------------------------------------------------------------


@dataclass
class DreamerRecording:
    """One subject's raw DREAMER data (lists over clips, ``[samples, channels]`` arrays)."""

    eeg_stimuli: list[np.ndarray]
    eeg_baseline: list[np.ndarray]
    ecg_stimuli: list[np.ndarray]
    ecg_baseline: list[np.ndarray]
    scores: dict[str, np.ndarray]


@dataclass
class DreamerFile:
    eeg_rate: float
    ecg_rate: float
    electrodes: tuple[str, ...]
    subjects: list[DreamerRecording]


def _layout_error(path: Path, what: str) -> TrainError:
    return TrainError(
        f"{path} does not have DREAMER's layout ({what}); expected the original DREAMER.mat "
        "(struct DREAMER with Data{subject}.EEG.stimuli{clip}, .ECG..., .ScoreValence ...)"
    )


def _unwrap(x: Any) -> Any:
    """Strip the 1x1 object/struct wrappers scipy puts around MATLAB cells and structs."""
    while isinstance(x, np.ndarray) and x.size == 1 and (x.dtype == object or x.dtype.names):
        x = x.reshape(-1)[0]
    return x


def _get(node: Any, name: str, path: Path, where: str) -> Any:
    node = _unwrap(node)
    names = getattr(getattr(node, "dtype", None), "names", None) or ()
    if name not in names:
        raise _layout_error(path, f"{where} has no field {name!r}")
    return node[name]


def _cells(x: Any, path: Path, where: str) -> list[Any]:
    x = _unwrap(x)
    if not isinstance(x, np.ndarray) or x.dtype != object:
        raise _layout_error(path, f"{where} is not a cell array")
    return [x.reshape(-1, order="F")[i] for i in range(x.size)]


def _matrix(x: Any, n_ch: int, path: Path, where: str) -> np.ndarray:
    x = _unwrap(x)
    if not isinstance(x, np.ndarray) or x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise _layout_error(path, f"{where} is not a numeric [samples x channels] matrix")
    if x.shape[1] != n_ch and x.shape[0] == n_ch:
        x = x.T
    if x.shape[1] != n_ch:
        raise _layout_error(path, f"{where} has shape {x.shape}, expected [samples x {n_ch}]")
    return x


def _scalar(x: Any) -> float:
    return float(np.asarray(_unwrap(x), np.float64).reshape(-1)[0])


def read_dreamer(path: str | Path, subjects: list[int] | None = None) -> DreamerFile:
    """Read ``DREAMER.mat`` (MATLAB v5) into plain arrays; one clear error for anything else."""
    import scipy.io

    path = Path(path).expanduser()
    if not path.is_file():
        raise TrainError(f"{path}: no such file; set data.file to your DREAMER.mat")
    with path.open("rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB 7.3") or head[:8] == b"\x89HDF\r\n\x1a\n":
        raise TrainError(
            f"{path} is a MATLAB v7.3 (HDF5) file; this reader needs MATLAB v5/v7: in MATLAB run "
            "load('DREAMER.mat'); save('DREAMER_v7.mat', 'DREAMER', '-v7') and use that file"
        )
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError as exc:  # scipy's answer to v7.3
        raise TrainError(f"{path}: {exc}; save it again from MATLAB with -v7") from None
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError on damaged files
        raise TrainError(
            f"{path} is not a readable MATLAB v5 file ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:160]}); check that the download is complete"
        ) from None
    if "DREAMER" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise _layout_error(path, f"no variable 'DREAMER', found {keys}")
    top = mat["DREAMER"]
    try:
        eeg_rate = _scalar(_get(top, "EEG_SamplingRate", path, "DREAMER"))
        ecg_rate = _scalar(_get(top, "ECG_SamplingRate", path, "DREAMER"))
    except (TypeError, ValueError, IndexError):
        raise _layout_error(path, "the sampling rates are not numbers") from None
    try:
        elec_cells = _cells(_get(top, "EEG_Electrodes", path, "DREAMER"), path, "EEG_Electrodes")
        electrodes = tuple(str(np.asarray(_unwrap(e)).reshape(-1)[0]) for e in elec_cells)
    except (IndexError, TypeError):
        raise _layout_error(path, "EEG_Electrodes is not a cell array of names") from None
    data = _cells(_get(top, "Data", path, "DREAMER"), path, "DREAMER.Data")
    chosen = subjects or list(range(1, len(data) + 1))
    bad = [s for s in chosen if not 1 <= s <= len(data)]
    if bad:
        raise TrainError(f"data.subjects: {bad} out of range; the file has subjects 1..{len(data)}")
    out = []
    for s in chosen:
        subj, w = data[s - 1], f"Data{{{s}}}"
        parts: dict[str, list[np.ndarray]] = {}
        for mod, n_ch in (("EEG", len(electrodes)), ("ECG", 2)):
            node = _get(subj, mod, path, w)
            for kind in ("stimuli", "baseline"):
                cells = _cells(_get(node, kind, path, f"{w}.{mod}"), path, f"{w}.{mod}.{kind}")
                parts[f"{mod}.{kind}"] = [
                    _matrix(c, n_ch, path, f"{w}.{mod}.{kind}{{{i + 1}}}")
                    for i, c in enumerate(cells)
                ]
        n_clips = len(parts["EEG.stimuli"])
        if any(len(v) != n_clips for v in parts.values()):
            raise _layout_error(path, f"{w} has different clip counts for EEG/ECG stimuli/baseline")
        scores = {}
        for target, fname in _SCORE_FIELDS.items():
            sc = np.asarray(_unwrap(_get(subj, fname, path, w)), np.float64).reshape(-1)
            if len(sc) != n_clips:
                raise _layout_error(path, f"{w}.{fname} has {len(sc)} ratings for {n_clips} clips")
            scores[target] = sc
        out.append(
            DreamerRecording(
                parts["EEG.stimuli"],
                parts["EEG.baseline"],
                parts["ECG.stimuli"],
                parts["ECG.baseline"],
                scores,
            )
        )
    return DreamerFile(eeg_rate, ecg_rate, electrodes, out)


def load_dreamer(cfg: FinetuneDataConfig, file: str | Path | None = None) -> WindowSet:
    """DREAMER (or a file in its layout) -> labelled windows of both modalities."""
    path = Path(file or cfg.file or "").expanduser()
    unknown = [t for t in cfg.targets if t not in _SCORE_FIELDS]
    if unknown:
        raise ConfigError(f"data.targets: {unknown} unknown; DREAMER has {list(DREAMER_TARGETS)}")
    raw = read_dreamer(path, cfg.subjects)
    size, hop = cfg.window_s * PATCH, round(cfg.hop_s * MODEL_RATE)
    eeg_w, ecg_w, rat, subj, trial, clip = [], [], [], [], [], []
    subject_ids = cfg.subjects or list(range(1, len(raw.subjects) + 1))
    n_trial = 0
    for si, rec in enumerate(raw.subjects):
        for c in range(len(rec.eeg_stimuli)):
            e = preprocess_signal(rec.eeg_stimuli[c], raw.eeg_rate, cfg.eeg, cfg.settle_s)
            g = preprocess_signal(rec.ecg_stimuli[c], raw.ecg_rate, cfg.ecg, cfg.settle_s)
            n = min(e.shape[1], g.shape[1])
            if cfg.stimulus_s is not None:
                n_keep = round(cfg.stimulus_s * MODEL_RATE)
                e, g = e[:, n - min(n, n_keep) : n], g[:, n - min(n, n_keep) : n]
            else:
                e, g = e[:, :n], g[:, :n]
            if cfg.baseline == "subtract":
                for x, base, fs, sig in (
                    (e, rec.eeg_baseline[c], raw.eeg_rate, cfg.eeg),
                    (g, rec.ecg_baseline[c], raw.ecg_rate, cfg.ecg),
                ):
                    bp = _baseline_patch(preprocess_signal(base, fs, sig, cfg.settle_s))
                    m = x.shape[1] // PATCH * PATCH
                    x[:, :m] -= np.tile(bp, (1, m // PATCH))
            we, wg = _cut(e, size, hop), _cut(g, size, hop)
            k = len(we)
            eeg_w.append(we)
            ecg_w.append(wg)
            rat.append(np.tile([rec.scores[t][c] for t in cfg.targets], (k, 1)))
            subj += [si] * k
            trial += [n_trial] * k
            clip += [c] * k
            n_trial += 1
    if not subj:
        raise TrainError(
            f"{path}: no {cfg.window_s}-s window fits in any clip; lower data.window_s or "
            "data.settle_s"
        )
    subject = np.asarray(subj, np.int64)
    ratings = np.concatenate(rat).astype(np.float32)
    labels, thr = binarize(ratings, subject, cfg.label)
    prep = preprocessing_record(cfg, raw.eeg_rate, raw.ecg_rate)
    return WindowSet(
        eeg=np.concatenate(eeg_w),
        ecg=np.concatenate(ecg_w),
        ratings=ratings,
        labels=labels,
        subject=subject,
        trial=np.asarray(trial, np.int64),
        clip=np.asarray(clip, np.int64),
        subjects=[f"S{s:02d}" for s in subject_ids],
        targets=tuple(cfg.targets),
        eeg_spec=_spec("eeg", raw.electrodes, cfg.window_s, cfg.eeg.unit_uv),
        ecg_spec=_spec("ecg", ECG_LEADS, cfg.window_s, cfg.ecg.unit_uv),
        label_threshold=thr,
        preprocessing=prep,
        source=f"DREAMER layout: {path.name} ({path.stat().st_size} bytes)",
    )


def preprocessing_record(
    cfg: FinetuneDataConfig, eeg_rate: float | None, ecg_rate: float | None
) -> dict[str, Any]:
    """What was done to the signals, as recorded in the checkpoint and the results."""
    return {
        "kind": cfg.kind,
        "native_rate": {"eeg": eeg_rate, "ecg": ecg_rate},
        "rate": MODEL_RATE,
        "patch_size": PATCH,
        "window_s": cfg.window_s,
        "hop_s": cfg.hop_s,
        "filters": "causal Butterworth SOS at the native rate, then linear interpolation",
        "eeg": asdict(cfg.eeg),
        "ecg": asdict(cfg.ecg),
        "settle_s": cfg.settle_s,
        "stimulus_s": cfg.stimulus_s,
        "baseline": cfg.baseline,
        "label": asdict(cfg.label),
    }


# --------------------------------------------------------------------------------------------------
# Own data: exported windows + labels CSV
# --------------------------------------------------------------------------------------------------


def _read_labels(path: Path, targets: tuple[str, ...]) -> list[dict[str, float]]:
    if not path.is_file():
        raise TrainError(f"{path}: no such labels file; see the labels CSV format in the docs")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        need = {"t_start", "t_end", *targets}
        if not need <= cols:
            raise TrainError(
                f"{path}: labels CSV lacks columns {sorted(need - cols)}; it needs a header "
                f"t_start,t_end,{','.join(targets)} (one row per labelled segment)"
            )
        rows = []
        for i, row in enumerate(reader, start=2):
            try:
                rows.append({k: float(row[k]) for k in need})
            except (TypeError, ValueError):
                raise TrainError(f"{path}:{i}: a value is not a number ({row})") from None
            if rows[-1]["t_end"] <= rows[-1]["t_start"]:
                raise TrainError(f"{path}:{i}: t_end must be after t_start")
    if not rows:
        raise TrainError(f"{path}: no labelled segments")
    return rows


def _npz_str(z: Any, key: str) -> list[str]:
    return [str(s) for s in np.asarray(z[key]).reshape(-1)] if key in z else []


def load_exported_windows(cfg: FinetuneDataConfig) -> WindowSet:
    """Windows exported by ``physio-live --replay ... --export-windows`` + a labels CSV each.

    Labels CSV: header ``t_start,t_end,<target>...`` (e.g. ``t_start,t_end,valence,arousal,
    dominance``), one row per labelled segment (a clip, a condition block) with its ratings. A
    window is used when it lies wholly inside a segment (``t_end - window <= ...``); each row is
    one trial for the splits. Times are on the npz ``t_end`` clock (``times: relative``: seconds
    from the start of the first window). Windows with NaN are dropped.
    """
    targets = tuple(cfg.targets)
    eeg_l, ecg_l, rat, subj, trial, clip = [], [], [], [], [], []
    subjects: list[str] = []
    chans: dict[str, list[str] | None] = {}
    has: dict[str, bool] = {}
    pre_json: dict[str, Any] = {}
    n_trial, T = 0, None
    for sess in cfg.sessions:
        wpath = Path(sess.windows).expanduser()
        if not wpath.is_file():
            raise TrainError(f"{wpath}: no such windows file; export one with physio-live --replay")
        try:
            z = np.load(wpath, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise TrainError(f"{wpath}: not a readable .npz ({exc})") from None
        rate = float(z["rate"]) if "rate" in z else MODEL_RATE
        if abs(rate - MODEL_RATE) > 1e-9 or "t_end" not in z:
            raise TrainError(f"{wpath}: expected windows at 200 Hz with t_end (an export file)")
        mods = {m: np.asarray(z[m], np.float32) for m in ("eeg", "ecg") if m in z}
        if not mods:
            raise TrainError(f"{wpath}: holds neither eeg nor ecg windows")
        for m in ("eeg", "ecg"):
            if m in has and has[m] != (m in mods):
                raise TrainError(f"{wpath}: sessions differ in whether they have {m}")
            has[m] = m in mods
            names = _npz_str(z, f"{m}_channels") if m in mods else None
            if m in chans and chans[m] != names:
                raise TrainError(f"{wpath}: {m} channels {names} differ from {chans[m]}")
            chans[m] = names
        t = next(iter(mods.values())).shape[-1]
        if t % PATCH or (T is not None and t != T):
            raise TrainError(f"{wpath}: windows of {t} samples; need equal whole 1-s patches")
        T = t
        if "preprocessing" in z:
            pre_json = json.loads(str(z["preprocessing"]))
        t_end = np.asarray(z["t_end"], np.float64)
        win_s = t / MODEL_RATE
        t0 = t_end - win_s
        off = t0[0] if (sess.times == "relative" and len(t0)) else 0.0
        sid = sess.subject or wpath.stem
        if sid not in subjects:
            subjects.append(sid)
        finite = np.ones(len(t_end), bool)
        for x in mods.values():
            finite &= np.isfinite(x).all(axis=(1, 2))
        for ci, row in enumerate(_read_labels(Path(sess.labels).expanduser(), targets)):
            sel = np.flatnonzero(
                (t0 >= row["t_start"] + off - 1e-6) & (t_end <= row["t_end"] + off + 1e-6) & finite
            )
            if not len(sel):
                continue
            for m, dest in (("eeg", eeg_l), ("ecg", ecg_l)):
                if m in mods:
                    x = mods[m][sel]
                    dest.append(x.reshape(len(sel), x.shape[1], t // PATCH, PATCH))
            rat.append(np.tile([row[k] for k in targets], (len(sel), 1)))
            subj += [subjects.index(sid)] * len(sel)
            trial += [n_trial] * len(sel)
            clip += [ci] * len(sel)
            n_trial += 1
    if not subj:
        raise TrainError(
            "no exported window lies inside a labelled segment: check that the labels CSV times "
            "use the npz t_end clock (or set times: relative)"
        )
    assert T is not None
    subject = np.asarray(subj, np.int64)
    ratings = np.concatenate(rat).astype(np.float32)
    labels, thr = binarize(ratings, subject, cfg.label)
    units = {m: float(pre_json.get(m, {}).get("unit_uv", 100.0)) for m in ("eeg", "ecg")}
    prep = preprocessing_record(cfg, None, None)
    prep.update(window_s=T / MODEL_RATE, hop_s=None, exported=pre_json, baseline="none")
    return WindowSet(
        eeg=np.concatenate(eeg_l) if has.get("eeg") else None,
        ecg=np.concatenate(ecg_l) if has.get("ecg") else None,
        ratings=ratings,
        labels=labels,
        subject=subject,
        trial=np.asarray(trial, np.int64),
        clip=np.asarray(clip, np.int64),
        subjects=subjects,
        targets=targets,
        eeg_spec=_spec("eeg", tuple(chans.get("eeg") or ()), T // PATCH, units["eeg"]),
        ecg_spec=_spec("ecg", tuple(chans.get("ecg") or ()), T // PATCH, units["ecg"]),
        label_threshold=thr,
        preprocessing=prep,
        source=f"exported windows: {len(cfg.sessions)} session(s)",
    )


# --------------------------------------------------------------------------------------------------
# A synthetic file in DREAMER's exact layout, with planted effects
# --------------------------------------------------------------------------------------------------


def _cell(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty((len(items), 1), dtype=object)
    for i, x in enumerate(items):
        out[i, 0] = x
    return out


def _ecg(n: int, fs: float, hr: float, rng: np.random.Generator) -> np.ndarray:
    """Two leads of a simple ECG (P, QRS, T Gaussians) at ``hr`` bpm, in microvolts."""
    t = np.arange(n) / fs
    sig = np.zeros(n)
    beat = rng.uniform(0, 60 / hr)
    waves = ((-0.2, 0.025, 120.0), (0.0, 0.012, 1100.0), (0.03, 0.01, -200.0), (0.25, 0.05, 300.0))
    while beat < t[-1] + 1:
        for dt, width, amp in waves:
            c = beat + dt
            lo, hi = np.searchsorted(t, [c - 5 * width, c + 5 * width])
            sig[lo:hi] += amp * np.exp(-0.5 * ((t[lo:hi] - c) / width) ** 2)
        beat += 60 / hr * rng.uniform(0.95, 1.05)
    wander = 150 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6.3))
    leads = np.stack([sig, 0.6 * sig], axis=1) + wander[:, None]
    return leads + rng.normal(0, 15, leads.shape)


def _eeg(n: int, fs: float, alpha_uv: float, rng: np.random.Generator) -> np.ndarray:
    """14 channels of 1/f-ish noise + a 9-11 Hz alpha rhythm + DC offset, in microvolts."""
    t = np.arange(n) / fs
    white = rng.normal(0, 1, (n, 14))
    spec = np.fft.rfft(white, axis=0)
    f = np.fft.rfftfreq(n, 1 / fs)
    spec /= np.sqrt(np.maximum(f, 1.0))[:, None]
    noise = np.fft.irfft(spec, n, axis=0)
    noise *= 8.0 / noise.std()
    freq = rng.uniform(9.0, 11.0)
    gain = rng.uniform(0.7, 1.3, 14)
    alpha = alpha_uv * np.sin(2 * np.pi * freq * t[:, None] + rng.uniform(0, 6.3, 14)) * gain
    return 4200.0 + noise + alpha + 2.0 * np.sin(2 * np.pi * 50 * t)[:, None]


def write_synthetic_dreamer(
    path: str | Path,
    *,
    n_subjects: int = 4,
    n_clips: int = 6,
    stimulus_s: float = 20.0,
    baseline_s: float = 4.0,
    seed: int | None = None,
    eeg_rate: float = 128.0,
    ecg_rate: float = 256.0,
) -> dict[str, np.ndarray]:
    """Write a small file in DREAMER's exact MATLAB v5 layout whose ratings are learnable.

    Planted effects per (subject, clip): valence high <=> strong alpha (25 vs 4 uV) in the EEG;
    arousal high <=> fast heart rate (120 vs 54 bpm) in the ECG; dominance high <=> valence and
    arousal agree (needs both modalities). High ratings are 4-5, low 1-3; each subject has half
    its clips high per target. Returns the ratings ``{target: [subjects, clips]}``.
    """
    import scipy.io

    rng = np.random.default_rng(seed)
    half = np.array([1] * (n_clips // 2) + [0] * (n_clips - n_clips // 2))
    truth = {t: np.zeros((n_subjects, n_clips)) for t in DREAMER_TARGETS}
    data = np.empty((1, n_subjects), dtype=object)
    n_e, n_g = round(stimulus_s * eeg_rate), round(stimulus_s * ecg_rate)
    b_e, b_g = round(baseline_s * eeg_rate), round(baseline_s * ecg_rate)
    for s in range(n_subjects):
        v, a = rng.permutation(half), rng.permutation(half)
        d = (v == a).astype(int)
        eeg_s, eeg_b, ecg_s, ecg_b = [], [], [], []
        for c in range(n_clips):
            eeg_s.append(_eeg(n_e, eeg_rate, 25.0 if v[c] else 4.0, rng))
            eeg_b.append(_eeg(b_e, eeg_rate, 8.0, rng))
            ecg_s.append(_ecg(n_g, ecg_rate, 120.0 if a[c] else 54.0, rng))
            ecg_b.append(_ecg(b_g, ecg_rate, 70.0, rng))
        scores = {}
        for t, hi in zip(DREAMER_TARGETS, (v, a, d), strict=True):
            r = np.where(hi == 1, rng.integers(4, 6, n_clips), rng.integers(1, 4, n_clips))
            truth[t][s] = r
            scores[_SCORE_FIELDS[t]] = r.astype(np.float64).reshape(-1, 1)
        data[0, s] = {
            "Age": str(rng.integers(22, 34)),
            "Gender": "female" if s % 2 else "male",
            "EEG": {"baseline": _cell(eeg_b), "stimuli": _cell(eeg_s)},
            "ECG": {"baseline": _cell(ecg_b), "stimuli": _cell(ecg_s)},
            **scores,
        }
    electrodes = np.empty((1, 14), dtype=object)
    for i, name in enumerate(DREAMER_ELECTRODES):
        electrodes[0, i] = name
    dreamer = {
        "Data": data,
        "EEG_SamplingRate": float(eeg_rate),
        "ECG_SamplingRate": float(ecg_rate),
        "EEG_Electrodes": electrodes,
        "noOfSubjects": float(n_subjects),
        "noOfVideoSequences": float(n_clips),
        "Disclaimer": "synthetic test data in the DREAMER layout",
        "Provider": "physio-live tests",
        "Version": "synthetic",
        "Acknowledgement": "none",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"DREAMER": dreamer}, format="5", do_compression=True)
    return truth
