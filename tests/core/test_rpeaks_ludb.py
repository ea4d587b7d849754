"""R peaks on LUDB: the streaming detector against cardiologists' QRS marks, 200 patients.

LUDB (Kalyakulina et al., IEEE Access 8:186181, 2020; ``../shared/datasets/ludb``) holds one
10-s, 12-lead, 500 Hz ECG per patient, with P, QRS and T waves marked per lead. The reference is
the QRS peaks marked on lead ii: every ``N`` annotation of ``N.ii`` (in LUDB ``N`` is the QRS
peak, bracketed by its onset ``(`` and offset ``)``; ``p`` and ``t`` are the P and T waves).

The detector sees what the app gives it on ``--replay N.hea``: the WFDB reader's ECG stream (all
12 leads, mV), cut into the replay's chunks, fed to a detector built as ``HeartMonitor`` builds
it (the stream's rate and labels, the lead picked by the detector). A second test holds it to
lead ii, the annotated lead.

Scoring rule (decided before looking at failures, stated in every message):

- every reference beat counts; none is trimmed. No warm-up is excluded: the detector keeps the
  samples of its 2-s learning period and runs them through once it has learned, so beats inside
  that period are reported too (late, not lost). The first marked R peak is at 0.61 s at the
  earliest and the last at 9.59 s at the latest; the record's end is treated as the end of the
  stream (``flush()``), so the last beats are decided as they would be once the next 0.45 s
  arrived live.
- the cardiologists did not mark the first and last beats of many records, so outside the marked
  span of lead ii (its first to last annotation of any kind) nothing can be judged: a detection
  there counts only when it matches a reference beat. Inside the span every detection counts.
- detections and reference peaks are matched one to one within 150 ms (closest pairs first).
  Sensitivity = matched / reference beats, PPV = matched / counted detections, pooled over all
  200 records.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from physio_live.core import Recording, ReplayConfig, StreamingRPeakDetector, open_recording

with warnings.catch_warnings():  # wfdb 4.x and pandas >= 3.1: see test_readouts.py
    warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
    import wfdb

TOL = 0.150  # s
MIN_SE = MIN_PPV = 0.99
N_RECORDS = 200
DATASETS = Path(
    os.environ.get(
        "PHYSIO_LIVE_DATASETS", Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    )
)


@dataclass
class Record:
    number: int
    recording: Recording  # as the app's replay reads it
    ref: np.ndarray  # lead-ii QRS peak times, s from the record's start
    span: tuple[float, float]  # first and last lead-ii annotation, s


@pytest.fixture(scope="module")
def ludb() -> list[Record]:
    """The 200 records of ``../shared/datasets/ludb/data`` (skip when absent; CI has them)."""
    d = DATASETS / "ludb" / "data"
    if not (d / "1.hea").is_file():
        pytest.skip(f"LUDB not found at {d}; set PHYSIO_LIVE_DATASETS")
    out = []
    for r in range(1, N_RECORDS + 1):
        ref, first, last = reference(d / str(r))
        out.append(Record(r, open_recording(d / f"{r}.hea"), ref, (first, last)))
    return out


@dataclass
class Scored:
    record: int
    lead: str
    n_ref: int
    n_det: int  # counted detections
    tp: int
    missed: list[float]
    extra: list[float]
    errors: list[float]  # detection - reference, matched pairs, s


def match(ref: np.ndarray, det: np.ndarray, tol: float = TOL) -> list[tuple[int, int]]:
    """One-to-one pairs ``(i_ref, i_det)`` within ``tol``, closest pairs first."""
    cand = sorted(
        (abs(d - r), i, j)
        for i, r in enumerate(ref)
        for j in np.flatnonzero(np.abs(det - r) <= tol)
        for d in (det[j],)
    )
    used_r, used_d, pairs = set(), set(), []
    for _, i, j in cand:
        if i not in used_r and j not in used_d:
            used_r.add(i)
            used_d.add(int(j))
            pairs.append((i, int(j)))
    return pairs


def reference(base: Path) -> tuple[np.ndarray, float, float]:
    """Lead-ii QRS peak times and the marked span (first, last annotation), s."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
        ann = wfdb.rdann(str(base), "ii")
    sym = np.asarray(ann.symbol)
    t = np.asarray(ann.sample) / float(ann.fs)
    assert set(sym) <= set("()Npt"), f"{base}.ii: unexpected symbols {set(sym)}"
    return t[sym == "N"], float(t[0]), float(t[-1])


def detect(rec: Recording, lead: str | None) -> tuple[np.ndarray, str]:
    """R-peak times through the app's replay path; returns them and the lead used."""
    (stream,) = (s for s in rec.streams if s.info.role == "ecg")
    info = stream.info
    det = StreamingRPeakDetector(info.nominal_srate, lead=lead, labels=info.channel_labels)
    for chunk in rec.chunks(ReplayConfig().chunk_seconds):
        if chunk.info.key == info.key:
            det.push_chunk(chunk)
    det.flush()
    t0 = float(stream.timestamps[0])  # the reader starts the record at t = 0
    assert det.lead is not None
    return np.asarray(det.peak_times) - t0, info.channel_labels[det.lead]


def score(record: int, ref: np.ndarray, span: tuple[float, float], found: np.ndarray, lead: str):
    pairs = match(ref, found)
    hit_r = {i for i, _ in pairs}
    hit_d = {j for _, j in pairs}
    inside = (found >= span[0]) & (found <= span[1])
    counted = [j for j in range(len(found)) if inside[j] or j in hit_d]
    return Scored(
        record,
        lead,
        len(ref),
        len(counted),
        len(pairs),
        [round(float(r), 3) for i, r in enumerate(ref) if i not in hit_r],
        [round(float(found[j]), 3) for j in counted if j not in hit_d],
        [float(found[j] - ref[i]) for i, j in pairs],
    )


def run_all(ludb: list[Record], lead: str | None) -> tuple[list[Scored], str]:
    """Score every record; the report has the pooled figures and every record with an error."""
    rows = []
    for rec in ludb:
        found, used = detect(rec.recording, lead)
        rows.append(score(rec.number, rec.ref, rec.span, found, used))
    tp = sum(s.tp for s in rows)
    n_ref = sum(s.n_ref for s in rows)
    n_det = sum(s.n_det for s in rows)
    err = np.abs(np.concatenate([s.errors for s in rows]))
    summary = (
        f"LUDB lead ii marks, {len(rows)} records, lead {lead or 'picked by the detector'}: "
        f"Se={tp / n_ref:.4%} ({tp}/{n_ref}) PPV={tp / n_det:.4%} ({tp}/{n_det}); "
        f"|timing error| median {1e3 * np.median(err):.1f} ms, p95 "
        f"{1e3 * np.percentile(err, 95):.1f} ms"
    )
    bad = [s for s in rows if s.missed or s.extra]
    lines = [summary, f"{len(bad)} records with a miss or an extra detection:"]
    lines += [
        f"  {s.record:3d} lead {s.lead:3s} ref {s.n_ref:2d} counted {s.n_det:2d} "
        f"missed {s.missed} extra {s.extra}"
        for s in sorted(bad, key=lambda s: -(len(s.missed) + len(s.extra)))
    ]
    report = "\n".join(lines)
    print(report)
    return rows, report


def _check(rows: list[Scored], report: str) -> None:
    assert len(rows) == N_RECORDS
    tp = sum(s.tp for s in rows)
    assert tp / sum(s.n_ref for s in rows) >= MIN_SE, report
    assert tp / sum(s.n_det for s in rows) >= MIN_PPV, report


@pytest.mark.slow
def test_ludb_app_path_lead_picked_by_detector(ludb):
    """All 12 leads offered, as a replay gives them: Se and PPV >= 99 % at 150 ms."""
    rows, report = run_all(ludb, None)
    _check(rows, report)


@pytest.mark.slow
def test_ludb_lead_ii(ludb):
    """The annotated lead only: Se and PPV >= 99 % at 150 ms, peaks on the marked R wave."""
    rows, report = run_all(ludb, "ii")
    _check(rows, report)
    # times sit on the marked R wave (the median; where the S wave is the larger deflection the
    # refinement takes it, tens of ms off the mark, so the upper percentiles are only reported)
    err = np.concatenate([s.errors for s in rows])
    assert np.median(np.abs(err)) < 0.010, report


def test_scoring_rule_counts_misses_and_extras():
    """The matcher is one to one and the span rule counts extras inside the span only."""
    ref = np.array([1.0, 2.0, 3.0])
    found = np.array([0.2, 1.01, 1.05, 2.2, 3.12, 9.0])
    s = score(0, ref, (0.9, 3.1), found, "ii")
    # 1.01 matches 1.0 (1.05 is then an extra), 2.2 is 200 ms off: a miss and an extra; 3.12 is
    # outside the span but matches 3.0 within 150 ms; 0.2 and 9.0 lie outside and match nothing
    assert (s.tp, s.n_ref, s.n_det) == (2, 3, 4)
    assert s.missed == [2.0] and s.extra == [1.05, 2.2]
