"""The live path and the training path agree: the app's replay of the four held-out eegmat test
subjects, through the same Session the live app runs, scores the shipped model as its trainer did.

``physio-train finetune`` cuts the recordings with the app's replay + aligner path and records the
test AUROC (and the window hop it used) in the checkpoint's provenance; here the app replays the
eight test files with that hop, and the AUROC of its per-window estimates (rest vs arithmetic,
every window of the four subjects pooled) must be within 0.02 of the recorded one.

The same for the shipped readout model (``eegmat-readouts``), which calibrates on a person's first
60 s of rest: each subject's rest file is replayed first, its session's baseline saved, and the
arithmetic file replayed in a second session that loads it (``model.baseline``), as a lab records a
resting baseline apart from the task. The estimates must equal, window by window, the trainer's
own scoring of its windows (``score_like_app``), and their AUROC the recorded test AUROC.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from physio_live.app._session import Session
from physio_live.core import load_config, open_recording
from physio_live.models import checkpoint_test_metrics, describe_checkpoint
from physio_live.trainer import auroc  # the trainer's own metric: the same definition on both sides

TESTS = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("PHYSIO_LIVE_DATASETS", TESTS.parents[1] / "shared" / "datasets"))
TEST_SUBJECTS = (32, 33, 34, 35)  # the published split's test subjects
CHECKPOINT = "eegmat-fused"  # the shipped model
CONFIG = "demo"  # the built-in demo's aligner settings are the model's


def _replay(
    path: Path, hop: float, checkpoint: str = CHECKPOINT, extra: tuple[str, ...] = (), keep=None
) -> np.ndarray:
    """P(arithmetic) of every window the app cuts from ``path`` (withheld ones are NaN);
    ``keep(session)`` sees the session after it closed."""
    cfg = load_config(
        CONFIG,
        [f"aligner.hop={hop}", f"model.checkpoint={checkpoint}", "model.device=cpu",
         "recording.enabled=false", "outlet.enabled=false", *extra],
    )  # fmt: skip
    session = Session(cfg, recording=open_recording(path), speed=None)
    session.open()
    got: list[tuple[float, float]] = []
    lock = threading.Lock()

    def on_estimate(e):
        with lock:
            got.append((e.t_end, float("nan") if e.withheld else float(e.probabilities[0])))

    session.on_estimate(on_estimate)
    try:
        session.start()
        assert session.finished.wait(120), f"replay of {path.name} did not finish"
    finally:
        session.close()
    if keep is not None:
        keep(session)
    got.sort()
    return np.array([p for _, p in got])


@pytest.mark.slow
def test_replayed_test_subjects_give_the_trainers_test_auroc():
    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    info = describe_checkpoint(CHECKPOINT)
    assert info["targets"] == ["arithmetic"]
    notes = json.loads(info["provenance"]["notes"])  # type: ignore[index]
    recorded = checkpoint_test_metrics(notes)
    hop = float(recorded["hop_s"])
    ys, ps = [], []
    for s in TEST_SUBJECTS:
        for k, label in ((1, 0), (2, 1)):
            p = _replay(root / f"Subject{s:02d}_{k}.edf", hop)
            assert len(p) > 0.8 * (182 if k == 1 else 62) / hop  # a window every hop
            ys.append(np.full(len(p), label))
            ps.append(p)
    y, p = np.concatenate(ys), np.concatenate(ps)
    ok = np.isfinite(p)
    assert ok.mean() > 0.95, f"{(~ok).sum()} of {len(p)} windows withheld"
    ours = auroc(y[ok], p[ok])
    print(
        f"app replay AUROC {ours:.4f} over {ok.sum()} windows (hop {hop:g} s); trainer's "
        f"test AUROC {recorded['auroc']} over {recorded.get('test_windows')} windows"
    )
    assert abs(ours - float(recorded["auroc"])) <= 0.02


@pytest.mark.slow
def test_readout_model_replayed_with_a_saved_baseline_matches_the_trainer(tmp_path):
    import torch

    from physio_live.app._session import save_baseline
    from physio_live.models import load_checkpoint
    from physio_live.trainer import load_finetune_config, load_windows, score_like_app

    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    checkpoint = "eegmat-readouts"
    notes = json.loads(describe_checkpoint(checkpoint)["provenance"]["notes"])  # type: ignore[index]
    recorded = checkpoint_test_metrics(notes)
    hop = float(recorded["hop_s"])
    # the trainer's windows of two test subjects, cut by the same app path (its recipe)
    subjects = (32, 35)
    cfg = load_finetune_config(
        TESTS.parent / "configs" / "finetune_eegmat.yaml",
        [f"data.root={root}", "data.manifest.files=Subject3[25]_*.edf",
         f"data.manifest.cache_dir={tmp_path / 'cache'}"],
    )  # fmt: skip
    ws = load_windows(cfg.data)
    torch.set_num_threads(1)
    model = load_checkpoint(checkpoint).model
    offline = score_like_app(model, ws, np.arange(len(ws)))
    ys, ps = [], []
    for s in TEST_SUBJECTS:
        saved: list[Path | None] = []
        rest = _replay(
            root / f"Subject{s:02d}_1.edf", hop, checkpoint,
            keep=lambda ses, s=s, saved=saved: saved.append(
                save_baseline(ses.model, tmp_path / f"s{s}.baseline.json")
            ),
        )  # fmt: skip
        assert saved[0] is not None and saved[0].is_file()
        task = _replay(
            root / f"Subject{s:02d}_2.edf", hop, checkpoint, (f"model.baseline={saved[0]}",)
        )
        if s in subjects:
            k = ws.subjects.index(f"{s:02d}")
            for r, got in ((0, rest), (1, task)):
                rows = np.flatnonzero((ws.subject == k) & (ws.labels[:, 0] == r))
                rows = rows[np.argsort(ws.t_end[rows])]
                assert len(rows) == len(got)
                # the same windows, features and baseline; the worker hands on float32
                np.testing.assert_allclose(got, offline[rows], rtol=1e-6, atol=1e-9)
        ys += [np.zeros(len(rest)), np.ones(len(task))]
        ps += [rest, task]
    y, p = np.concatenate(ys), np.concatenate(ps)
    ok = np.isfinite(p)
    assert ok.mean() > 0.95, f"{(~ok).sum()} of {len(p)} windows withheld"
    ours = auroc(y[ok], p[ok])
    print(f"readout model: app replay AUROC {ours:.4f}, trainer's {recorded['auroc']}")
    assert abs(ours - float(recorded["auroc"])) <= 0.02
