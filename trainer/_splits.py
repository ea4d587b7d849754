"""Splits of labelled windows into train / (validation) / test, never cutting a recording.

- ``kfold``: subject-dependent k-fold by trial or clip (DREAMER-style).
- ``loso``: leave-one-subject-out.
- ``split``: a fixed split by subject lists (e.g. eegmat's published 00-27 / 28-31 / 32-35).
- ``cv``: subject-wise cross-validation: the subjects (sorted) are cut into ``folds`` consecutive
  groups; fold k tests on group k and validates on group k-1 (so with eegmat's 36 subjects in 9
  folds of 4, the last fold is exactly the published split).

A fold with a validation part lets the trainer choose its checkpoint on validation AUROC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._config import TrainError
from ._dreamer import WindowSet

__all__ = [
    "Fold",
    "expand_subjects",
    "kfold_splits",
    "loso_splits",
    "subject_cv_splits",
    "subject_split",
]


@dataclass(frozen=True)
class Fold:
    """Window indices of one fold; ``val`` is empty for protocols without validation."""

    protocol: str
    index: int
    name: str
    train: np.ndarray
    test: np.ndarray
    val: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def expand_subjects(items: Sequence[str | int]) -> list[str]:
    """``["00-03", "07"]`` -> ``["00", "01", "02", "03", "07"]`` (ranges keep the zero padding
    of their first bound); other strings pass through unchanged."""
    out: list[str] = []
    for it in items:
        s = str(it)
        m = re.fullmatch(r"(\d+)-(\d+)", s)
        if m:
            a, b = m.group(1), m.group(2)
            out += [str(i).zfill(len(a)) for i in range(int(a), int(b) + 1)]
        else:
            out.append(s)
    return out


def kfold_splits(
    ws: WindowSet, k: int, seed: int = 0, split_by: Literal["trial", "clip"] = "trial"
) -> list[Fold]:
    """Subject-dependent k-fold by clip: whole trials go to one fold, never split by window.

    ``trial``: each subject's trials are shuffled and dealt round-robin into the k folds (every
    subject appears in every test fold). ``clip``: clip numbers (films) are dealt into folds, the
    same for all subjects.
    """
    rng = np.random.default_rng(seed)
    fold_of_trial: dict[int, int] = {}
    if split_by == "clip":
        clips = np.unique(ws.clip)
        if len(clips) < k:
            raise TrainError(f"eval.folds = {k} but the data has only {len(clips)} clips")
        order = rng.permutation(clips)
        fold_of_clip = {int(c): i % k for i, c in enumerate(order)}
        for t in np.unique(ws.trial):
            fold_of_trial[int(t)] = fold_of_clip[int(ws.clip[ws.trial == t][0])]
    else:
        for s in np.unique(ws.subject):
            trials = np.unique(ws.trial[ws.subject == s])
            if len(trials) < k:
                raise TrainError(
                    f"eval.folds = {k} but subject {ws.subjects[s]} has {len(trials)} trials; "
                    "lower eval.folds"
                )
            offset = int(rng.integers(k))  # so small remainders do not pile into fold 0
            for i, t in enumerate(rng.permutation(trials)):
                fold_of_trial[int(t)] = (i + offset) % k
    fold = np.array([fold_of_trial[int(t)] for t in ws.trial])
    return [
        Fold("kfold", i, f"fold{i + 1}", np.flatnonzero(fold != i), np.flatnonzero(fold == i))
        for i in range(k)
    ]


def loso_splits(ws: WindowSet) -> list[Fold]:
    """Leave-one-subject-out: one fold per subject."""
    subjects = np.unique(ws.subject)
    if len(subjects) < 2:
        raise TrainError("eval.protocols: loso needs at least two subjects; use kfold")
    return [
        Fold(
            "loso",
            i,
            ws.subjects[s],
            np.flatnonzero(ws.subject != s),
            np.flatnonzero(ws.subject == s),
        )
        for i, s in enumerate(subjects)
    ]


def _rows_of(ws: WindowSet, names: Sequence[str], what: str) -> np.ndarray:
    index = {s: i for i, s in enumerate(ws.subjects)}
    missing = [s for s in names if s not in index]
    if missing:
        raise TrainError(
            f"eval.split.{what}: subjects {missing[:5]} are not in the data (it has "
            f"{ws.subjects[:6]}{' ...' if len(ws.subjects) > 6 else ''}); fix the subject lists"
        )
    return np.flatnonzero(np.isin(ws.subject, [index[s] for s in names]))


def subject_split(
    ws: WindowSet,
    train: Sequence[str | int],
    val: Sequence[str | int],
    test: Sequence[str | int],
) -> Fold:
    """The fixed split ``train`` / ``val`` / ``test`` by subject names (ranges like ``00-27``
    allowed); an empty ``train`` means every subject not in ``val`` or ``test``."""
    va, te = expand_subjects(val), expand_subjects(test)
    tr = expand_subjects(train) or [s for s in ws.subjects if s not in set(va) | set(te)]
    for a, b, na, nb in (
        (tr, va, "train", "val"),
        (tr, te, "train", "test"),
        (va, te, "val", "test"),
    ):
        both = sorted(set(a) & set(b))
        if both:
            raise TrainError(f"eval.split: subjects {both} are in both {na} and {nb}")
    if not te or not tr:
        raise TrainError("eval.split: give the test subjects (and train, or leave it empty)")
    return Fold(
        "split", 0, "published", _rows_of(ws, tr, "train"), _rows_of(ws, te, "test"),
        _rows_of(ws, va, "val") if va else np.zeros(0, np.int64),
    )  # fmt: skip


def subject_cv_splits(ws: WindowSet, folds: int) -> list[Fold]:
    """Subject-wise CV: sorted subjects in ``folds`` consecutive groups; fold k tests on group k,
    validates on group k-1 and trains on the rest."""
    names = sorted(ws.subjects)
    if len(names) < 3 or folds < 3 or folds > len(names):
        raise TrainError(
            f"eval.cv_folds = {folds} with {len(names)} subjects: need 3 <= folds <= subjects "
            "(train, validation and test groups)"
        )
    groups = [list(g) for g in np.array_split(np.array(names, dtype=object), folds)]
    out = []
    for k in range(folds):
        te, va = groups[k], groups[k - 1]
        tr = [s for s in names if s not in set(te) | set(va)]
        out.append(
            Fold(
                "cv",
                k,
                f"cv{k + 1}",
                _rows_of(ws, tr, "train"),
                _rows_of(ws, te, "test"),
                _rows_of(ws, va, "val"),
            )
        )
    return out
