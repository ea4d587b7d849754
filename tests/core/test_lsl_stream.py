"""Real LSL outlets in another process -> LSLSource -> ring buffers -> aligner."""

from __future__ import annotations

import time

import numpy as np
import pytest

from physio_live.core import (
    ChannelMismatchError,
    Chunk,
    LSLSource,
    LSLSourceConfig,
    Pipeline,
    StreamNotFoundError,
    config_from_dict,
)

pytestmark = pytest.mark.slow


def _cfg(eeg_name: str, ecg_name: str, **aligner) -> dict:
    return {
        "sources": [
            {"kind": "lsl", "role": "eeg", "name": eeg_name, "channels": 16, "timeout": 5},
            {"kind": "lsl", "role": "ecg", "name": ecg_name, "channels": 2, "timeout": 5},
        ],
        "aligner": {
            "window": 2.0,
            "hop": 0.5,
            # same band for both modalities so both see the same filter delay
            "eeg": {"bandpass": [0.5, 40.0], "notch": None},
            "ecg": {"bandpass": [0.5, 40.0], "notch": None, "unit_uv": 100.0},
            "quality": {"saturation_uv": None},
        },
        "buffer_seconds": 30,
    }


def buf_key(pipe: Pipeline, name: str) -> str:
    return next(k for k in pipe.buffers if k.startswith(name))


def test_no_sample_lost_windows_shaped_and_events_aligned(lsl_outlets):
    outlets = lsl_outlets(
        [
            {"name": "EEG", "type": "EEG", "n_ch": 16, "srate": 256.0},
            {"name": "ECG", "type": "ECG", "n_ch": 2, "srate": 500.0},
        ],
        event_period=1.3,
        event_offset=1.0,
    )
    eeg_name, ecg_name = (s["name"] for s in outlets.spec["streams"])
    cfg = config_from_dict(_cfg(eeg_name, ecg_name))
    seen: dict[str, list[Chunk]] = {eeg_name: [], ecg_name: []}
    windows = []
    pipe = Pipeline(cfg)
    pipe.on_chunk(lambda c: seen[c.info.name].append(c))
    pipe.on_window(windows.append)
    with pipe:
        time.sleep(7.0)
    # 1. every sample exactly once, in order, through source and buffer
    for name, rate in ((eeg_name, 256.0), (ecg_name, 500.0)):
        idx = np.concatenate([c.data[:, 0] for c in seen[name]])
        assert len(idx) > 5 * rate
        np.testing.assert_array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))
        buf = pipe.buffers[buf_key(pipe, name)]
        data, _, _, lost = buf.read_from(0)
        assert lost == 0
        np.testing.assert_array_equal(data[:, 0], idx)
        # clocksync + dejitter keep the outlet's own stamps (same machine): within 1 ms
        stamps = np.concatenate([c.timestamps for c in seen[name]])
        # float64: a float32 index would round the expected stamps to float32 (2 ms steps once
        # the LSL clock, i.e. the machine's uptime, passes 16384 s)
        expected = outlets.t0 + idx.astype(np.float64) / rate
        assert np.max(np.abs(stamps - expected)) < 1e-3
        assert pipe.stats[buf_key(pipe, name)].lost_in_buffer == 0
    # 2. windows of the configured shape, hop apart
    assert len(windows) >= 6
    for w in windows:
        assert w.eeg.shape == (16, 400) and w.ecg.shape == (2, 400)
        assert w.eeg.dtype == np.float32
    ends = np.array([w.t_end for w in windows])
    np.testing.assert_allclose(np.diff(ends), 0.5, atol=1e-9)
    # 3. each common event lands on the same 200 Hz sample (+/-1) in both modalities
    checked = 0
    for w in windows:
        times = w.times
        for te in outlets.event_times(w.t_end):
            if not times[0] + 0.4 < te < times[-1] - 0.4:
                continue
            sl = slice(*np.searchsorted(times, [te - 0.2, te + 0.2]))
            pe = sl.start + int(np.argmax(np.abs(w.eeg[1, sl])))
            pc = sl.start + int(np.argmax(np.abs(w.ecg[1, sl])))
            assert abs(pe - pc) <= 1, (te, pe, pc)
            # and near the event itself (the filter delays both alike, by a few ms)
            assert abs(times[pe] - te) < 0.03
            checked += 1
    assert checked >= 3


def test_channel_labels_units_from_desc(lsl_outlets):
    outlets = lsl_outlets([{"name": "EEGd", "type": "EEG", "n_ch": 4, "srate": 100.0}])
    name = outlets.spec["streams"][0]["name"]
    src = LSLSource(LSLSourceConfig(kind="lsl", role="eeg", name=name, timeout=5))
    with src:
        info = src.info
        assert info.channel_labels == ("index", "EEG1", "EEG2", "EEG3")
        assert info.channel_units == ("microvolts",) * 4
        assert info.nominal_srate == 100.0 and info.source_id == f"{name}-sid"
        chunks = []
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            chunks.extend(src.read(0.1))
        assert sum(len(c) for c in chunks) > 50


def test_wrong_channel_count_is_refused(lsl_outlets):
    outlets = lsl_outlets([{"name": "EEGw", "type": "EEG", "n_ch": 8, "srate": 100.0}])
    name = outlets.spec["streams"][0]["name"]
    src = LSLSource(LSLSourceConfig(kind="lsl", role="eeg", name=name, channels=16, timeout=5))
    with pytest.raises(ChannelMismatchError, match="has 8 channels but the config expects"):
        src.open()


def test_missing_stream_times_out_with_clear_error():
    src = LSLSource(LSLSourceConfig(kind="lsl", role="eeg", name="no-such-stream-xyz", timeout=0.5))
    t = time.monotonic()
    with pytest.raises(StreamNotFoundError, match=r"no LSL stream matched .*no-such-stream-xyz"):
        src.open()
    # liblsl itself sometimes takes ~5 s more right after an outlet vanished
    assert time.monotonic() - t < 12


def test_resolve_by_predicate(lsl_outlets):
    outlets = lsl_outlets([{"name": "EEGp", "type": "EEG", "n_ch": 3, "srate": 128.0}])
    name = outlets.spec["streams"][0]["name"]
    cfg = LSLSourceConfig(
        kind="lsl",
        role="eeg",
        predicate=f"starts-with(name,'{name}') and nominal_srate>100",
        timeout=5,
    )
    with LSLSource(cfg) as src:
        assert src.info.name == name


def test_outlet_that_dies_and_returns_is_recovered(lsl_outlets):
    import uuid

    name = f"EEGr-{uuid.uuid4().hex[:8]}"
    spec = {"name": name, "type": "EEG", "n_ch": 4, "srate": 200.0, "source_id": f"{name}-sid"}
    first = lsl_outlets([dict(spec)], unique=False)
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": name, "timeout": 5}],
            "aligner": {"window": 1.0, "hop": 0.5},
        }
    )
    chunks = []
    pipe = Pipeline(cfg)
    pipe.on_chunk(chunks.append)
    with pipe:
        time.sleep(2.0)
        first.stop()
        n_before = len(chunks)
        time.sleep(1.0)
        second = lsl_outlets([dict(spec)], unique=False)
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            after = [c for c in chunks[n_before:] if c.timestamps[-1] > second.t0]
            if sum(len(c) for c in after) > 200:
                break
            time.sleep(0.2)
    assert n_before > 0
    after = [c for c in chunks[n_before:] if c.timestamps[-1] > second.t0]
    assert sum(len(c) for c in after) > 200, "no data after the outlet came back"
    # the new outlet restarts its sample index at 0
    first_after = np.concatenate([c.data[:, 0] for c in after])
    assert first_after.min() < 400
