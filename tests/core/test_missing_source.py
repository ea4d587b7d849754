"""A source that is not there at start: fail at once, or wait for it (``on_missing: wait``)."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

from physio_live.core import (
    BrainFlowSource,
    BrainFlowSourceConfig,
    BrainFlowStreamConfig,
    ConfigError,
    LSLSource,
    LSLSourceConfig,
    Pipeline,
    SourceError,
    StoppedWaitingError,
    StreamNotFoundError,
    config_from_dict,
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Opener:
    """``Pipeline.open`` in a thread, as the app does it, keeping its notes and its outcome."""

    def __init__(self, pipe: Pipeline):
        self.pipe = pipe
        self.stop = threading.Event()
        self.notes: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.pipe.open(self.stop, self.notes.append)
        except BaseException as exc:
            self.error = exc


def _waiting_cfg(name: str, **src) -> dict:
    return {
        "sources": [
            {"kind": "lsl", "role": "eeg", "name": name, "on_missing": "wait", "timeout": 0.5} | src
        ],
        "aligner": {"window": 1.0, "hop": 0.5},
    }


def test_fail_names_the_query_within_the_timeout():
    name = _name("absent")
    src = LSLSource(LSLSourceConfig(kind="lsl", role="eeg", name=name, timeout=1.0))
    t = time.monotonic()
    with pytest.raises(StreamNotFoundError) as info:
        src.open()
    msg = str(info.value)
    assert f"no LSL stream matched [name='{name}'] within 1.0 s" in msg
    assert "start the stream's outlet" in msg and "on_missing: wait" in msg
    assert "\n" not in msg
    # liblsl itself sometimes takes ~5 s more right after an outlet vanished
    assert time.monotonic() - t < 8


def test_wait_until_the_outlet_appears_then_samples_flow(lsl_outlets):
    name = _name("late-EEG")
    pipe = Pipeline(config_from_dict(_waiting_cfg(name)))
    chunks = []
    pipe.on_chunk(chunks.append)
    opener = Opener(pipe)
    try:
        time.sleep(2.5)
        assert opener.thread.is_alive(), f"open() did not wait: {opener.error!r}"
        spec = {"name": name, "type": "EEG", "n_ch": 4, "srate": 200.0, "source_id": f"{name}-s"}
        lsl_outlets([spec], unique=False)
        opener.thread.join(10)
        assert not opener.thread.is_alive() and opener.error is None, opener.error
        with pipe:
            deadline = time.monotonic() + 10
            while sum(len(c) for c in chunks) < 300 and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        opener.stop.set()
    # one line per attempt, every `timeout` seconds, naming the query and the fix
    assert 2 <= len(opener.notes) <= 8, opener.notes
    assert opener.notes[0].startswith(f"waiting for LSL stream [name='{name}'] (")
    assert opener.notes[-1].endswith("start its outlet")
    idx = np.concatenate([c.data[:, 0] for c in chunks])
    assert len(idx) >= 300
    np.testing.assert_array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))
    assert pipe.errors == []


def test_wait_max_gives_up_saying_it_waited():
    name = _name("never")
    pipe = Pipeline(config_from_dict(_waiting_cfg(name, wait_max=1.5)))
    t = time.monotonic()
    with pytest.raises(StreamNotFoundError) as info:
        pipe.open(on_wait=lambda msg: None)
    msg = str(info.value)
    assert f"no LSL stream matched [name='{name}'] after waiting 1.5 s" in msg
    assert "on_missing: wait" in msg and "raise wait_max" in msg
    assert time.monotonic() - t >= 1.5


def test_a_wait_ends_when_the_stop_event_is_set():
    name = _name("stopped")
    opener = Opener(Pipeline(config_from_dict(_waiting_cfg(name))))
    time.sleep(1.2)
    assert opener.thread.is_alive(), f"open() did not wait: {opener.error!r}"
    opener.stop.set()
    opener.thread.join(3)  # it polls the event every 0.1 s
    assert not opener.thread.is_alive(), "the wait did not end on the stop event"
    assert isinstance(opener.error, StoppedWaitingError)
    assert str(opener.error).startswith(f"stopped while waiting for LSL stream [name='{name}']")
    assert opener.notes  # timeout 0.5 s: at least one progress line came before


def _cyton(**kw) -> BrainFlowSource:
    cfg = BrainFlowSourceConfig(
        kind="brainflow",
        board="CYTON_BOARD",
        streams=[BrainFlowStreamConfig(role="eeg")],
        params={"serial_port": "/dev/no-such-port-physio-live"},
        **kw,
    )
    cfg.validate("test")
    return BrainFlowSource(cfg)


def test_brainflow_board_that_does_not_start_fails_or_waits():
    with pytest.raises(SourceError, match=r"could not start .*\(or set on_missing: wait\)"):
        _cyton().open()
    notes: list[str] = []
    src = _cyton(on_missing="wait", wait_max=1.0, retry=0.3)
    with pytest.raises(SourceError, match=r"did not start after waiting 1 s .*raise wait_max"):
        src.open_waiting(on_wait=notes.append)
    assert len(notes) >= 2 and notes[0].startswith("waiting for BrainFlow board Cyton (0 s so far")
    # and a stop event ends the wait
    stop = threading.Event()
    stop.set()
    with pytest.raises(StoppedWaitingError, match="stopped while waiting for BrainFlow board"):
        _cyton(on_missing="wait", retry=0.3).open_waiting(stop)


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ({"wait_max": 5}, "wait_max: only used with on_missing: wait"),
        ({"on_missing": "wait", "wait_max": 0}, "wait_max: must be > 0 seconds"),
        ({"on_missing": "later"}, "on_missing: expected one of 'fail', 'wait'"),
        ({"timestamps": "board"}, "timestamps: expected one of 'lsl', 'device'"),
        ({"role": "markers", "timestamps": "device"}, "timestamps: device needs a regular"),
    ],
)
def test_bad_policy_values_are_config_errors(src, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"sources": [{"kind": "lsl", "role": "eeg", "name": "X"} | src]})


def test_brainflow_bad_retry_is_a_config_error():
    raw = {"kind": "brainflow", "streams": [{"role": "eeg"}], "on_missing": "wait", "retry": 0}
    with pytest.raises(ConfigError, match="retry: must be > 0 seconds"):
        config_from_dict({"sources": [raw]})
