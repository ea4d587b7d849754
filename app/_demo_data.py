"""The recording the built-in demo plays: a held-out eegmat subject, rest then mental arithmetic.

The bundle (``app/data/NAME.npz``, package data) holds the last minute of one subject's rest
recording followed by the whole arithmetic recording of PhysioNet's "EEG During Mental Arithmetic
Tasks" (Zyma et al. 2019, ODC-By 1.0; ``app/data/README.md``): 19 EEG channels (microvolts) and
one ECG lead (millivolts) at 500 Hz, stored as the EDF files' own 16-bit samples with each file's
per-channel gain and offset, so the demo plays the very numbers the EDF reader gives.

Build it again with::

    python -m physio_live.app._demo_data ../shared/datasets/eegmat 34 --out app/data/eegmat-s34.npz
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physio_live.core import SourceError

__all__ = ["DemoRecording", "build_demo_recording", "demo_recording_path", "load_demo_recording"]

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class DemoRecording:
    """One demo recording, ready to push on outlets: physical units, one rate for all channels."""

    name: str
    rate: float
    eeg: np.ndarray  # [n, C_eeg] float32, microvolts
    ecg: np.ndarray  # [n, C_ecg] float32, millivolts
    eeg_labels: tuple[str, ...]
    ecg_labels: tuple[str, ...]
    #: (sample index, label) of each segment's start: ``(0, "rest"), (k, "arithmetic")``
    segments: tuple[tuple[int, str], ...]
    source: str

    @property
    def n_samples(self) -> int:
        return len(self.eeg)

    def segment_at(self, index: int) -> str:
        """The segment label sample ``index`` lies in."""
        label = self.segments[0][1]
        for start, name in self.segments:
            if index >= start:
                label = name
        return label


def demo_recording_path(spec: str | Path) -> Path:
    """A bundled demo recording by name (``eegmat-s34``) or the path of an ``.npz``."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    bundled = {p.stem: p for p in sorted(DATA_DIR.glob("*.npz"))}
    name = str(spec).removesuffix(".npz")
    if name in bundled:
        return bundled[name]
    raise SourceError(
        f"demo.recording: {spec} is neither a file nor a bundled demo recording (bundled: "
        f"{', '.join(bundled) or 'none'}); give one of those names or an .npz path"
    )


def load_demo_recording(spec: str | Path) -> DemoRecording:
    """Read a bundle written by :func:`build_demo_recording`."""
    path = demo_recording_path(spec)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            digital = z["digital"]
            gain, offset = z["gain"], z["offset"]
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(
            f"{path}: not a physio-live demo recording ({type(exc).__name__}: {exc}); build one "
            "with python -m physio_live.app._demo_data"
        ) from None
    segments = tuple((int(i), str(s)) for i, s in meta["segments"])
    phys = np.empty(digital.shape, np.float32)
    bounds = [i for i, _ in segments] + [len(digital)]
    for k in range(len(segments)):  # each segment with its own EDF header's gain and offset
        a, b = bounds[k], bounds[k + 1]
        phys[a:b] = (digital[a:b].astype(np.float64) + offset[k]) * gain[k]
    n_eeg = len(meta["eeg_labels"])
    return DemoRecording(
        name=path.stem,
        rate=float(meta["rate"]),
        eeg=np.ascontiguousarray(phys[:, :n_eeg]),
        ecg=np.ascontiguousarray(phys[:, n_eeg:]),
        eeg_labels=tuple(meta["eeg_labels"]),
        ecg_labels=tuple(meta["ecg_labels"]),
        segments=segments,
        source=str(meta["source"]),
    )


def _edf_digital(path: Path) -> tuple[list[str], float, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, rate, int16 samples [n, C], gain and offset of an EDF's EEG + ECG channels
    (physical = (digital + offset) * gain, as pyedflib computes it)."""
    import pyedflib

    f = pyedflib.EdfReader(str(path))
    try:
        labels = f.getSignalLabels()
        keep = [i for i, lab in enumerate(labels) if "A2-A1" not in lab]  # reference pair
        rates = {float(f.getSampleFrequency(i)) for i in keep}
        if len(rates) != 1:
            raise SourceError(f"{path}: channels at several rates {sorted(rates)}")
        n = min(int(f.getNSamples()[i]) for i in keep)
        dig = np.stack([f.readSignal(i, digital=True)[:n] for i in keep], axis=1)
        gain = np.array(
            [
                (f.getPhysicalMaximum(i) - f.getPhysicalMinimum(i))
                / (f.getDigitalMaximum(i) - f.getDigitalMinimum(i))
                for i in keep
            ]
        )
        offset = np.array(
            [f.getPhysicalMaximum(i) / gain[k] - f.getDigitalMaximum(i) for k, i in enumerate(keep)]
        )
        names = [labels[i].replace("EEG ", "").replace("ECG ECG", "ECG").strip() for i in keep]
        return names, rates.pop(), dig.astype(np.int16), gain, offset
    finally:
        f.close()


def _without_held_tail(digital: np.ndarray, rate: float) -> np.ndarray:
    """``digital`` without its held tail: from the first run of >= 0.1 s in which every channel
    holds its value (the eegmat files end in zeros, then one constant) within its last 5 s."""
    held = np.r_[False, np.all(np.diff(digital, axis=0) == 0, axis=1)]
    tail0 = max(0, len(digital) - round(5 * rate))
    run, need = 0, round(0.1 * rate)
    for i in range(tail0, len(digital)):
        run = run + 1 if held[i] else 0
        if run >= need:
            return digital[: i - run]
    return digital


def build_demo_recording(
    root: str | Path,
    subject: int,
    out: str | Path,
    *,
    rest_seconds: float = 60.0,
    task_seconds: float | None = None,
) -> Path:
    """Bundle the last ``rest_seconds`` of ``SubjectNN_1.edf`` and all of ``SubjectNN_2.edf``
    (its first ``task_seconds`` if given), each without the held samples at its end."""
    root = Path(root)
    rest_path, task_path = (root / f"Subject{subject:02d}_{k}.edf" for k in (1, 2))
    labels, rate, rest, g1, o1 = _edf_digital(rest_path)
    labels2, rate2, task, g2, o2 = _edf_digital(task_path)
    if labels != labels2 or rate != rate2:
        raise SourceError(f"{rest_path} and {task_path} differ in channels or rate")
    # each file ends in ~1 s of held samples (every channel constant): the demo would show a
    # flat stretch (withheld windows) where rest turns into the task, so it is left out
    rest, task = _without_held_tail(rest, rate), _without_held_tail(task, rate)
    n_rest = round(rest_seconds * rate)
    if task_seconds is not None:
        task = task[: round(task_seconds * rate)]
    digital = np.concatenate([rest[-n_rest:], task], axis=0)
    ecg = [lab for lab in labels if lab.upper().startswith("ECG")]
    eeg = [lab for lab in labels if lab not in ecg]
    order = [labels.index(lab) for lab in (*eeg, *ecg)]
    meta = {
        "rate": rate,
        "eeg_labels": eeg,
        "ecg_labels": ecg,
        "segments": [[0, "rest"], [n_rest, "arithmetic"]],
        "source": (
            f"PhysioNet eegmat 1.0.0 (Zyma et al. 2019, ODC-By 1.0), held end samples cut: "
            f"last {rest_seconds:g} s of "
            f"{rest_path.name} + "
            + (f"the first {task_seconds:g} s" if task_seconds is not None else "all")
            + f" of {task_path.name}"
        ),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        digital=digital[:, order],
        gain=np.stack([g1[order], g2[order]]),  # one row per segment (each EDF's header)
        offset=np.stack([o1[order], o2[order]]),
        meta=np.array(json.dumps(meta)),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Bundle an eegmat subject for the built-in demo.")
    p.add_argument("root", help="the eegmat folder (SubjectNN_1.edf, SubjectNN_2.edf)")
    p.add_argument("subject", type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--rest-seconds", type=float, default=60.0)
    args = p.parse_args(argv)
    out = build_demo_recording(args.root, args.subject, args.out, rest_seconds=args.rest_seconds)
    print(f"{out}: {out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
