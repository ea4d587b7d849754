"""The built-in demo plays a real eegmat subject (rest, then mental arithmetic) on real LSL outlets,
and every part of the app shows the targets the checkpoint has (one "arithmetic" target here;
valence / arousal / dominance for a DREAMER-style model, with the valence-arousal plane)."""

from __future__ import annotations

import contextlib
import csv
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from physio_live.app._demo_data import (
    DATA_DIR,
    build_demo_recording,
    load_demo_recording,
)
from physio_live.app._session import Session
from physio_live.core import load_config, open_recording
from physio_live.models import (
    CBraModConfig,
    FusedEmotionConfig,
    FusedEmotionModel,
    ModalityConfig,
    Provenance,
    save_checkpoint,
)

TESTS = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("PHYSIO_LIVE_DATASETS", TESTS.parents[1] / "shared" / "datasets"))
EEGMAT_EEG = tuple("Fp1 Fp2 F3 F4 F7 F8 T3 T4 C3 C4 T5 T6 P3 P4 O1 O2 Fz Cz Pz".split())
DREAMER_EEG = tuple("AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4".split())
DEMO = "demo"  # the built-in default config
QUIET = ["model.device=cpu", "recording.enabled=false", "outlet.enabled=false"]


@pytest.fixture(scope="module")
def eegmat_dir() -> Path:
    """The whole eegmat database (``../shared/datasets/eegmat``; CI has it)."""
    root = DATASETS / "eegmat"
    if not root.is_dir():
        pytest.skip(f"eegmat not found at {root}; set PHYSIO_LIVE_DATASETS")
    return root


def _tiny(targets, eeg, ecg, name) -> FusedEmotionModel:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    enc = CBraModConfig(embed_dim=40, depth=1, num_heads=4, mlp_dim=80, out_dim=None)
    cfg = FusedEmotionConfig(
        eeg=ModalityConfig(name="eeg", channels=eeg, n_patches=4, encoder=enc),
        ecg=ModalityConfig(name="ecg", channels=ecg, n_patches=4, encoder=enc),
        targets=targets,
        label_threshold=0.5 if targets == ("arithmetic",) else 3.0,
        hidden_dims=(16,),
        name=name,
    )
    return FusedEmotionModel(cfg, provenance=Provenance(trained=True, source="unit test"))


@pytest.fixture(scope="module")
def arithmetic_ckpt(tmp_path_factory) -> Path:
    """A small trained-flagged fused model shaped like eegmat-fused: 19 EEG + 1 ECG, one target."""
    path = tmp_path_factory.mktemp("ckpt") / "arith.safetensors"
    model = _tiny(("arithmetic",), EEGMAT_EEG, ("ECG",), "test-arith")
    return save_checkpoint(path, model)


@pytest.fixture(scope="module")
def vad_ckpt(tmp_path_factory) -> Path:
    """A DREAMER-style model (valence, arousal, dominance) for the synthetic demo's montage."""
    path = tmp_path_factory.mktemp("ckpt") / "vad.safetensors"
    model = _tiny(("valence", "arousal", "dominance"), DREAMER_EEG, ("ECG1", "ECG2"), "test-vad")
    return save_checkpoint(path, model)


# -- the bundle ------------------------------------------------------------------------------------


def _held(x: np.ndarray) -> bool:
    """Every channel holds one value throughout ``x``."""
    return len(x) > 0 and bool(np.all(np.ptp(x, axis=0) == 0))


def test_bundle_holds_exactly_the_edf_samples_without_their_held_ends(eegmat_dir, tmp_path):
    out = build_demo_recording(eegmat_dir, 33, tmp_path / "s33.npz", rest_seconds=12)
    rec = load_demo_recording(out)
    assert rec.rate == 500.0 and rec.eeg_labels == EEGMAT_EEG and rec.ecg_labels == ("ECG",)
    assert rec.segments == ((0, "rest"), (6000, "arithmetic"))
    assert rec.segment_at(5999) == "rest" and rec.segment_at(6000) == "arithmetic"
    assert not _held(rec.eeg[5900:6100])  # no flat stretch where the task begins
    edf = {k: {s.info.role: s for s in open_recording(eegmat_dir / f"Subject33_{k}.edf").streams}
           for k in (1, 2)}  # fmt: skip
    assert edf[1]["eeg"].info.channel_labels == rec.eeg_labels
    # the rest part: 12 s that end where the rest file stops changing (~1 s before its end)
    eeg1 = edf[1]["eeg"].data
    (end,) = [
        j for j in range(len(eeg1) - 1500, len(eeg1)) if np.array_equal(eeg1[j - 1], rec.eeg[5999])
    ]
    assert _held(eeg1[end : end + 50]) and not _held(eeg1[end - 50 : end])
    np.testing.assert_array_equal(rec.eeg[:6000], eeg1[end - 6000 : end])
    np.testing.assert_array_equal(rec.ecg[:6000], edf[1]["ecg"].data[end - 6000 : end])
    # the task part: the task file from its start up to its held end
    m = rec.n_samples - 6000
    eeg2 = edf[2]["eeg"].data
    assert len(eeg2) - 1500 < m < len(eeg2) and _held(eeg2[m : m + 50])
    np.testing.assert_array_equal(rec.eeg[6000:], eeg2[:m])
    np.testing.assert_array_equal(rec.ecg[6000:], edf[2]["ecg"].data[:m])


def test_shipped_bundles_are_the_test_subjects_files(eegmat_dir):
    bundles = sorted(DATA_DIR.glob("eegmat-s*.npz"))
    assert bundles, "the built-in demo needs its recording (app/data/eegmat-sNN.npz)"
    for path in bundles:
        assert path.stat().st_size < 5e6
        rec = load_demo_recording(path.stem)
        subject = int(path.stem.removeprefix("eegmat-s"))
        assert 32 <= subject <= 35, "only held-out test subjects may be shipped"
        n_rest = rec.segments[1][0]
        edf = open_recording(eegmat_dir / f"Subject{subject:02d}_2.edf")
        task = {s.info.role: s.data for s in edf.streams}
        m = rec.n_samples - n_rest
        assert m > 55 * rec.rate
        np.testing.assert_array_equal(rec.eeg[n_rest:], task["eeg"][:m])
        np.testing.assert_array_equal(rec.ecg[n_rest:], task["ecg"][:m])
        assert (DATA_DIR / "README.md").read_text().count("ODC-By") >= 1


# -- the demo on LSL, and targets everywhere -------------------------------------------------------


def _collect(session: Session):
    got: dict[str, list] = {"markers": [], "estimates": []}
    lock = threading.Lock()

    def on_window(w):
        with lock:
            got["markers"] += [m for _, m in w.markers]

    def on_estimate(e):
        with lock:
            got["estimates"].append(e)

    session.pipeline.on_window(on_window)
    session.on_estimate(on_estimate)
    return got


@pytest.mark.slow
def test_demo_plays_rest_then_arithmetic_with_the_models_targets(arithmetic_ckpt, tmp_path):
    import pylsl

    # 2 s of rest left when it starts: the task's marker comes ~2 s in
    overrides = ["model.device=cpu", "recording.enabled=false", f"outlet.name=est-{os.getpid()}",
                 f"model.checkpoint={arithmetic_ckpt}", "demo.start=58"]  # fmt: skip
    cfg = load_config(DEMO, overrides)
    assert cfg.demo.play == "recording"
    session = Session(cfg)
    session.open()
    try:
        infos = {s.role: s for s in session.pipeline.streams}
        assert infos["eeg"].channel_labels == EEGMAT_EEG and infos["eeg"].nominal_srate == 500
        assert infos["ecg"].channel_labels == ("ECG",)
        assert session.outlet.info.channel_labels == ("arithmetic",)
        got = _collect(session)
        session.start()
        (found,) = pylsl.resolve_byprop("name", f"est-{os.getpid()}", 1, 5)
        inlet = pylsl.StreamInlet(found)
        ch = inlet.info(5).desc().child("channels").child("channel")
        assert ch.child_value("label") == "arithmetic" and ch.next_sibling().empty()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(got["estimates"]) < 6:
            time.sleep(0.2)
    finally:
        session.close()
    assert "demo/arithmetic" in got["markers"]
    ests = got["estimates"]
    from physio_live.app.cli import _status_line

    assert f"arithmetic={ests[-1].probabilities[0]:.2f}" in _status_line(session.status(), ests[-1])
    assert len(ests) >= 6 and all(e.targets == ("arithmetic",) for e in ests)
    assert not any(e.untrained for e in ests)
    ok = [e for e in ests if not e.withheld]
    assert len(ok) >= len(ests) - 1, [e.reason for e in ests]  # real EEG passes the quality gate


@pytest.mark.slow
def test_replay_csv_names_the_models_target(eegmat_dir, arithmetic_ckpt, tmp_path):
    from physio_live.app.cli import main

    edf = eegmat_dir / "Subject34_2.edf"
    argv = ["--stream", "--replay", str(edf), "--checkpoint", str(arithmetic_ckpt), "--speed",
            "max", "--duration", "9", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    with (tmp_path / "Subject34_2.estimates.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["t_end", "window", "arithmetic", "quality"]
    assert len(rows) > 5 and all(0.0 <= float(r[2]) <= 1.0 for r in rows[1:])


@contextlib.contextmanager
def _dashboard_on(qtbot, cfg):
    """A started Session on ``cfg`` in a shown Dashboard, once it has drawn two estimates."""
    from physio_live.app._dashboard import Dashboard

    session = Session(cfg)
    session.open()
    try:
        session.start()
        win = Dashboard(session)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitUntil(lambda: win.estimates.count >= 2, timeout=20_000)
        yield win
    finally:
        session.close()


@pytest.mark.slow
@pytest.mark.qt
def test_dashboard_shows_one_arithmetic_curve_and_no_affect_plane(qtbot, arithmetic_ckpt):
    pytest.importorskip("pyqtgraph")
    cfg = load_config(DEMO, [*QUIET, f"model.checkpoint={arithmetic_ckpt}", "demo.start=50"])
    with _dashboard_on(qtbot, cfg) as win:
        panel = win.estimates
        assert panel.targets == ("arithmetic",) and len(panel.curves) == 1
        assert [lab.text().split("\n")[0] for lab in panel.value_labels] == ["arithmetic"]
        assert not panel.plane.isVisibleTo(win) and panel.isVisibleTo(win)
        assert not panel.banner.isVisibleTo(win)  # a trained model: no untrained banner
        qtbot.waitUntil(lambda: panel.curves[0].getData()[0] is not None, timeout=5_000)
        assert "P(arithmetic)" in panel.time_plot.getPlotItem().getAxis("left").labelText
        assert len(win.eeg_plot.labels) == 19 and win.ecg_plot.labels == ["ECG"]


@pytest.mark.slow
@pytest.mark.qt
def test_dashboard_shows_the_affect_plane_for_a_valence_arousal_model(qtbot, vad_ckpt):
    pytest.importorskip("pyqtgraph")
    cfg = load_config("demo_synthetic", [*QUIET, f"model.checkpoint={vad_ckpt}"])
    with _dashboard_on(qtbot, cfg) as win:
        panel = win.estimates
        assert panel.targets == ("valence", "arousal", "dominance") and len(panel.curves) == 3
        assert panel.plane.isVisibleTo(win)
        pp = panel.plane.getPlotItem()
        assert pp.getAxis("bottom").labelText == "valence"
        assert pp.getAxis("left").labelText == "arousal"
        qtbot.waitUntil(lambda: len(panel.current.data) == 1, timeout=5_000)
        assert panel.time_plot.getPlotItem().getAxis("left").labelText == "P(high)"


def test_demo_outlets_play_from_start_then_the_whole_recording_again(eegmat_dir, tmp_path):
    import pylsl

    from physio_live.app._demo import DemoOutlets
    from physio_live.core import DemoConfig

    path = build_demo_recording(eegmat_dir, 32, tmp_path / "s32.npz", rest_seconds=1.0,
                                task_seconds=1.5)  # fmt: skip
    rec = load_demo_recording(path)
    cfg = DemoConfig(enabled=True, play="recording", recording=str(path), start=0.5,
                     name_prefix=f"demo-loop-{os.getpid()}")  # fmt: skip
    demo = DemoOutlets(cfg)
    demo.start()
    try:
        inlets = {}
        for role in ("eeg", "markers"):
            (info,) = pylsl.resolve_byprop("source_id", demo.source_ids[role], 1, 5)
            inlets[role] = pylsl.StreamInlet(info, max_buflen=30)
            inlets[role].open_stream(5)
        time.sleep(5.5)
        eeg, ts = inlets["eeg"].pull_chunk(timeout=1.0, max_samples=100_000)
        marks, stamps = inlets["markers"].pull_chunk(timeout=1.0)
    finally:
        demo.stop()
    assert demo.error is None
    eeg = np.asarray(eeg, np.float32)
    # sample k after t0: 0.5 s of rest + 1.5 s of task from start=0.5 s, then the whole 2.5 s
    k = np.round((np.asarray(ts) - demo._t0) * 500).astype(int)
    assert len(k) > 1500 and k[-1] > 2500 and np.all(np.diff(k) == 1)
    index = np.where(k < 1000, 250 + k, (k - 1000) % 1250)
    np.testing.assert_array_equal(eeg, rec.eeg[index])
    labels = [m[0] for m in marks]
    # (markers pushed before the inlet connected are not seen: from the loop on)
    expect = {2.0: "demo/rest", 3.0: "demo/arithmetic", 4.5: "demo/rest"}
    got = {round(t - demo._t0, 3): m for t, m in zip(stamps, labels, strict=True)}
    assert {t: m for t, m in got.items() if t in expect} == expect, got


@pytest.mark.slow
def test_shipped_model_rises_during_the_task_of_the_bundled_recording():
    """The built-in demo's data through the demo's config and model (``eegmat-fused``), replayed
    at full speed: P(arithmetic) is clearly higher in the task than in the rest before it."""
    from physio_live.core import RecordedStream, Recording, StreamInfo

    cfg = load_config(DEMO, ["model.device=cpu", "recording.enabled=false", "outlet.enabled=false"])
    assert cfg.model.checkpoint == "eegmat-fused"
    rec = load_demo_recording(cfg.demo.recording)
    t = np.arange(rec.n_samples) / rec.rate

    def stream(role, labels, data, unit):
        info = StreamInfo(f"demo-{role}", role.upper(), role, labels, (unit,) * len(labels),
                          rec.rate, f"demo-{role}")  # fmt: skip
        return RecordedStream(info, data, t)

    streams = [stream("eeg", rec.eeg_labels, rec.eeg, "uV"),
               stream("ecg", rec.ecg_labels, rec.ecg, "mV")]  # fmt: skip
    session = Session(cfg, recording=Recording(Path("demo"), streams, [], []), speed=None)
    session.open()
    got = []
    session.on_estimate(lambda e: got.append((e.t_end, e.withheld, e.probabilities[0])))
    try:
        session.start()
        assert session.finished.wait(120)
    finally:
        session.close()
    t_end, withheld, p = (np.array(x) for x in zip(*sorted(got), strict=True))
    onset = rec.segments[1][0] / rec.rate
    assert not withheld.any()
    rest = p[t_end <= onset]
    task = p[t_end - cfg.aligner.window >= onset]
    assert len(rest) > 100 and len(task) > 100  # a window every 0.5 s
    assert task.mean() - rest.mean() > 0.2, (rest.mean(), task.mean())
