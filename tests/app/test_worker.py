"""The inference worker with a real (small) fused model: batching, live drops, replay order."""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from physio_live.app._worker import InferenceWorker, in_own_thread
from physio_live.core import ChannelQuality, Quality, Window
from physio_live.models import CBraModConfig, FusedEmotionConfig, FusedEmotionModel, ModalityConfig


def _model(
    ecg_features: tuple[str, ...] = (),
    eeg_features: tuple[str, ...] = (),
    feature_skip: bool = False,
) -> FusedEmotionModel:
    enc = CBraModConfig(depth=1, out_dim=None)
    return FusedEmotionModel(
        FusedEmotionConfig(
            eeg=ModalityConfig(name="eeg", channels=("a", "b", "c"), n_patches=2, encoder=enc),
            ecg=ModalityConfig(name="ecg", channels=("x",), n_patches=2, encoder=enc),
            ecg_features=ecg_features,
            eeg_features=eeg_features,
            feature_skip=feature_skip,
        )
    ).eval()


class SlowModel(FusedEmotionModel):
    """The same real model, made artificially slow (a consumer that falls behind)."""

    delay = 0.2

    def predict(self, *a, **kw):
        time.sleep(self.delay)
        return super().predict(*a, **kw)


def _windows(n: int, rng, ecg: bool = True) -> list[Window]:
    q = Quality({"eeg": ChannelQuality()})
    return [
        Window(
            t_end=100.0 + 0.5 * i,
            rate=200.0,
            eeg=rng.normal(size=(3, 400)).astype(np.float32),
            ecg=rng.normal(size=(1, 400)).astype(np.float32) if ecg else None,
            quality=q,
            index=i,
        )
        for i in range(n)
    ]


def test_replay_mode_keeps_every_window_in_order_and_matches_direct_calls():
    rng = np.random.default_rng()
    model = _model()
    wins = _windows(23, rng)
    got = []
    w = InferenceWorker(model, device="cpu", mode="replay", max_queue=4, max_batch=5,
                        clock=lambda: 1000.0)  # fmt: skip
    w.on_estimate(got.append)
    w.start()
    for win in wins:
        w.submit(win)
    w.stop(drain=True)
    assert [e.window_index for e in got] == list(range(23))
    assert w.stats.dropped == 0 and w.stats.processed == 23
    assert w.stats.batches < 23  # it did batch
    with torch.inference_mode():
        eeg = torch.from_numpy(np.stack([x.eeg for x in wins])).view(23, 3, 2, 200)
        ecg = torch.from_numpy(np.stack([x.ecg for x in wins])).view(23, 1, 2, 200)
        ref = torch.sigmoid(model(eeg, ecg)).numpy()
    np.testing.assert_allclose(np.array([e.probabilities for e in got]), ref, atol=1e-5)
    e0 = got[0]
    assert e0.targets == ("valence", "arousal", "dominance")
    assert e0.untrained and e0.model_id == model.model_id
    assert e0.latency == pytest.approx(1000.0 - e0.t_end)
    # window end -> queued, per window in submission order (the worker's clock)
    assert list(w.stats.handoff) == pytest.approx([1000.0 - x.t_end for x in wins])


def _full_batch_worker(queue: int, batch: int) -> tuple[InferenceWorker, list[int], list]:
    """A started replay worker with full batches; the sizes of the batches it runs and the
    estimates it emits, as they happen."""
    w = InferenceWorker(_model(), device="cpu", mode="replay", max_queue=queue, max_batch=batch,
                        full_batches=True, clock=lambda: 1000.0)  # fmt: skip
    sizes: list[int] = []
    run = w._run
    w._run = lambda b: (sizes.append(len(b)), run(b))  # type: ignore[method-assign]
    got: list = []
    w.on_estimate(got.append)
    w.start()
    return w, sizes, got


def test_full_batches_wait_for_max_batch_windows_until_drained():
    """A replay at full speed: every batch holds max_batch windows, except the last, which runs
    when the producer drains the worker (wait_idle / stop)."""
    rng = np.random.default_rng()
    n, size = int(rng.integers(13, 40)), int(rng.integers(2, 6))
    w, sizes, got = _full_batch_worker(2 * size, size)
    wins = _windows(n, rng)
    for win in wins[: size - 1]:
        w.submit(win)
    time.sleep(0.3)
    assert sizes == [] and w.pending == size - 1  # a part batch waits for more windows
    for win in wins[size - 1 :]:
        w.submit(win)
    assert w.wait_idle(30)
    assert sizes == [size] * (n // size) + ([n % size] if n % size else []), (n, size)
    assert [e.window_index for e in got] == list(range(n))
    w.stop()


def test_full_batches_with_a_queue_shorter_than_max_batch_do_not_stall():
    """max_batch 16 with the default queue of 8: batches hold what the queue can (8), and the
    producer, which waits for room, never waits on a worker that waits for more windows."""
    rng = np.random.default_rng()
    n = int(rng.integers(20, 40))
    w, sizes, got = _full_batch_worker(8, 16)
    done = threading.Event()

    def produce() -> None:
        for win in _windows(n, rng):
            w.submit(win)
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert done.wait(30), "the producer stalled"
    assert w.wait_idle(30)
    assert [e.window_index for e in got] == list(range(n))
    assert sizes[:-1] == [8] * (len(sizes) - 1) and 0 < sizes[-1] <= 8, sizes
    w.stop()


def test_live_mode_drops_oldest_and_never_blocks_acquisition():
    rng = np.random.default_rng()
    model = SlowModel(_model().config)
    got = []
    w = InferenceWorker(model.eval(), device="cpu", mode="live", max_queue=3, max_batch=2)
    w.on_estimate(got.append)
    w.start()
    wins = _windows(40, rng)
    t = time.monotonic()
    for win in wins:
        w.submit(win)  # 40 windows faster than the worker can take them
    assert time.monotonic() - t < 0.5, "submit blocked acquisition"
    w.stop(drain=True)
    idx = [e.window_index for e in got]
    assert w.stats.dropped > 0
    assert len(idx) + w.stats.dropped == 40
    assert idx == sorted(idx) and idx[-1] == 39  # the newest window is always served


def test_missing_modality_is_flagged():
    rng = np.random.default_rng()
    got = []
    w = InferenceWorker(_model(), device="cpu", mode="replay")
    w.on_estimate(got.append)
    w.start()
    for win in _windows(3, rng, ecg=False):
        w.submit(win)
    w.stop()
    assert len(got) == 3 and all(e.ecg_missing and not e.eeg_missing for e in got)
    assert all(np.isfinite(e.probabilities).all() for e in got)


def test_inference_error_is_reported_and_worker_goes_on():
    rng = np.random.default_rng()
    got = []
    w = InferenceWorker(_model(), device="cpu", mode="replay", max_batch=1)
    w.on_estimate(got.append)
    w.start()
    bad = _windows(1, rng)[0]
    bad = Window(t_end=1.0, rate=200.0, eeg=np.zeros((5, 400), np.float32), ecg=bad.ecg,
                 quality=bad.quality, index=99)  # fmt: skip
    w.submit(bad)  # 5 channels for a 3-channel model
    for win in _windows(2, rng):
        w.submit(win)
    w.stop()
    assert [e.window_index for e in got] == [0, 1]
    assert len(w.errors) == 1 and "expects" in w.errors[0]


def test_cuda_request_without_gpu_is_a_clear_error():
    from physio_live.app._worker import pick_device
    from physio_live.core import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"


@pytest.mark.gpu
def test_cuda_worker_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng()
    wins = _windows(8, rng)
    model = _model()
    outs = {}
    for dev in ("cpu", "cuda"):
        got = []
        w = InferenceWorker(model, device=dev, mode="replay", clock=time.monotonic)
        w.on_estimate(got.append)
        w.start()
        for win in wins:
            w.submit(win)
        w.stop()
        outs[dev] = np.array([e.probabilities for e in got])
    np.testing.assert_allclose(outs["cpu"], outs["cuda"], atol=1e-4)


@pytest.mark.gpu
def test_cuda_bf16_worker_close_to_float32_with_the_shipped_model():
    """bf16 autocast on CUDA with the shipped eegmat model: probabilities near the CPU float32."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from physio_live.models import load_checkpoint, resolve_checkpoint

    model = load_checkpoint(resolve_checkpoint("eegmat-fused")).model
    cfg = model.config
    rng = np.random.default_rng()
    t = cfg.eeg.n_patches * cfg.eeg.patch_size
    q = Quality({"eeg": ChannelQuality()})
    wins = [
        Window(
            t_end=10.0 + i,
            rate=200.0,
            quality=q,
            index=i,
            eeg=(0.3 * rng.standard_normal((len(cfg.eeg.channels), t))).astype(np.float32),
            ecg=(0.3 * rng.standard_normal((len(cfg.ecg.channels), t))).astype(np.float32),
        )
        for i in range(24)
    ]
    outs = {}
    for dev, bf16 in (("cpu", False), ("cuda", False), ("cuda", True)):
        _, got = _replay_through(model, wins, device=dev, bf16=bf16)
        outs[dev, bf16] = np.array([e.probabilities for e in got])
    np.testing.assert_allclose(outs["cuda", False], outs["cpu", False], atol=1e-4)
    assert np.abs(outs["cuda", True] - outs["cpu", False]).max() < 0.05


def _replay_through(model, wins, **kw):
    """(worker, estimates) of ``wins`` through a replay-mode worker built with ``kw``."""
    got = []
    w = InferenceWorker(model, mode="replay", clock=time.monotonic, **kw)
    w.on_estimate(got.append)
    w.start()
    for win in wins:
        w.submit(win)
    w.stop()
    assert not w.errors, w.errors
    return w, got


def test_cuda_graphs_stay_off_on_the_cpu_and_buckets_are_powers_of_two():
    from physio_live.app._cuda_graphs import CudaGraphForward

    w = InferenceWorker(_model(), device="cpu", cuda_graphs=True, clock=time.monotonic)
    assert w.graphs is None
    sizes = [CudaGraphForward.bucket(b) for b in range(1, 18)]
    assert sizes == [1, 2, 4, 4, *[8] * 4, *[16] * 8, 32]


@pytest.mark.parametrize("feature_skip", [False, True])
def test_a_model_that_measures_its_inputs_runs_in_the_worker_as_called_directly(feature_skip):
    """A model with measured features (heart rate, band powers; with or without the linear term
    on them) needs nothing from the worker: its estimates are the model's own predictions on the
    same windows, windows without ECG included."""
    rng = np.random.default_rng()
    model = _model(("heart_rate",), ("band_powers",), feature_skip)
    model.set_eeg_feature_stats(torch.from_numpy(rng.normal(-2.0, 1.0, (20, 15))))
    wins = _windows(7, rng)
    wins[3] = dataclasses.replace(wins[3], ecg=None)
    _, got = _replay_through(model, wins, device="cpu", max_batch=1)
    for w, e in zip(wins, got, strict=True):
        eeg = torch.from_numpy(w.eeg).view(1, 3, 2, 200)
        ecg = None if w.ecg is None else torch.from_numpy(w.ecg).view(1, 1, 2, 200)
        want = model.predict(eeg, ecg).probabilities[0].numpy()
        np.testing.assert_allclose(e.probabilities, want, rtol=1e-5, atol=1e-6)
        assert e.ecg_missing == (w.ecg is None)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "features",
    [((), ()), (("heart_rate",), ()), ((), ("band_powers",)),
     (("heart_rate",), ("band_powers",), True)],
)  # fmt: skip
def test_cuda_graphs_match_the_eager_worker_and_fall_back_for_missing_ecg(features):
    """Graph replay gives the eager probabilities at every batch size, reuses its captures, and
    windows without ECG take the eager missing-modality path; a model's measured ECG or EEG
    features (heart rate, band powers: on the CPU) enter the graph as one more input."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng()
    model = _model(*features)
    wins = _windows(23, rng)
    wins[17] = dataclasses.replace(wins[17], ecg=None)
    outs = {}
    for graphs in (False, True):
        for batch in (1, 3, 8):
            w, got = _replay_through(model, wins, device="cuda", max_batch=batch,
                                     full_batches=True, cuda_graphs=graphs)  # fmt: skip
            assert (w.graphs is not None) == graphs
            outs[graphs, batch] = np.array([e.probabilities for e in got])
            assert [e.ecg_missing for e in got] == [i == 17 for i in range(len(wins))]
            if graphs:
                assert {k[0] for k in w.graphs.captured} <= {1, 2, 4, 8}
                assert len(w.graphs.captured) <= 4
    for batch in (1, 3, 8):
        np.testing.assert_allclose(outs[True, batch], outs[False, batch], atol=1e-5)
        np.testing.assert_allclose(outs[True, batch], outs[False, 1], atol=1e-4)


@pytest.mark.gpu
def test_cuda_graphs_under_bf16_match_eager_bf16():
    """bf16 autocast inside the captured graphs (weight-cast cache off) gives the eager bf16
    probabilities up to bf16 rounding, across batch sizes that share one memory pool."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng()
    model = _model()
    wins = _windows(21, rng)
    outs = {}
    for graphs in (False, True):
        for batch in (1, 4):
            _, got = _replay_through(model, wins, device="cuda", bf16=True, max_batch=batch,
                                     full_batches=True, cuda_graphs=graphs)  # fmt: skip
            outs[graphs, batch] = np.array([e.probabilities for e in got])
    for batch in (1, 4):
        np.testing.assert_allclose(outs[True, batch], outs[False, batch], atol=2e-2)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _settled(want_at_most: int, timeout: float = 5.0) -> int:
    """The process's OS thread count once it has dropped to ``want_at_most`` (or the timeout):
    a team's threads leave shortly after the thread that owned it."""
    deadline = time.monotonic() + timeout
    n = _os_threads()
    while n > want_at_most and time.monotonic() < deadline:
        time.sleep(0.02)
        n = _os_threads()
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_work_in_its_own_thread_leaves_no_openmp_team_behind():
    """A parallel torch op gives its thread an OpenMP team of worker threads for as long as that
    thread lives (the control: a thread that stays); run through in_own_thread, the team ends
    with it, so the inference thread's stays the only one (see in_own_thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:

        def parallel_op() -> float:
            x = torch.randn(4_000_000)
            return float(x.add_(1.0).sum())

        baseline = _os_threads()

        def count_while_alive(body: Callable[[], float]) -> tuple[int, float]:
            """OS threads while a thread that ran ``body`` is still alive (from the baseline:
            whatever earlier threads left has gone first)."""
            assert _settled(baseline) <= baseline
            done, leave = threading.Event(), threading.Event()
            got: list[float] = []

            def run() -> None:
                got.append(body())
                done.set()
                leave.wait(30)

            t = threading.Thread(target=run)
            t.start()
            assert done.wait(30)
            during = _settled(baseline + 1, timeout=1.0)
            leave.set()
            t.join()
            return during, got[0]

        # control: a thread that ran the op itself keeps its team's worker while it lives
        during, _ = count_while_alive(parallel_op)
        assert during >= baseline + 2
        # the same thread handing the op to in_own_thread holds no team: only itself is added
        during, value = count_while_alive(lambda: in_own_thread(parallel_op))
        assert during <= baseline + 1
        assert math.isfinite(value) and value != 0.0
    finally:
        torch.set_num_threads(threads)


def test_in_own_thread_returns_the_value_and_raises_the_error_on_the_callers_thread():
    caller = threading.current_thread()
    seen: list[threading.Thread] = []

    def work() -> int:
        seen.append(threading.current_thread())
        return 41 + 1

    assert in_own_thread(work) == 42
    assert seen and seen[0] is not caller and not seen[0].is_alive()

    def fails() -> None:
        raise ValueError("a checkpoint that does not fit")

    with pytest.raises(ValueError, match="does not fit"):
        in_own_thread(fails)


def test_the_session_builds_its_model_off_the_calling_thread(data_dir, monkeypatch):
    """Session.open loads the model through in_own_thread: the thread that opens a session
    (the main thread, the dashboard's) is left without an OpenMP team."""
    from physio_live.app import _session
    from physio_live.core import config_from_dict, open_recording

    built_on: list[threading.Thread] = []
    real = _session.build_model

    def spy(*a, **kw):
        built_on.append(threading.current_thread())
        return real(*a, **kw)

    monkeypatch.setattr(_session, "build_model", spy)
    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(10.0, 6.0)
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "model": {"checkpoint": "eegmat-fused", "device": "cpu"},
            "recording": {"enabled": False},
            "outlet": {"enabled": False},
        }
    )
    session = _session.Session(cfg, recording=rec, speed=None)
    session.open()
    try:
        assert len(built_on) == 1
        assert built_on[0] is not threading.current_thread()
        assert session.model is not None and session.model.model_id.startswith("eegmat-fused")
        session.start()
        assert session.finished.wait(60)
    finally:
        session.close()
    assert session.worker.stats.processed > 0
