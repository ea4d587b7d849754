"""The BrainFlow synthetic board through the same Source API and pipeline."""

from __future__ import annotations

import time

import numpy as np
import pytest

from physio_live.core import (
    BrainFlowSource,
    BrainFlowSourceConfig,
    BrainFlowStreamConfig,
    ConfigError,
    Pipeline,
    load_config,
)

pytestmark = pytest.mark.slow


def test_synthetic_board_streams_on_the_lsl_clock():
    import pylsl

    cfg = BrainFlowSourceConfig(
        kind="brainflow",
        streams=[
            BrainFlowStreamConfig(role="eeg"),
            BrainFlowStreamConfig(role="ecg", rows=[15, 16], labels=["ECG1", "ECG2"], unit="uV"),
        ],
    )
    with BrainFlowSource(cfg) as src:
        eeg_info, ecg_info = src.streams
        assert eeg_info.n_channels == 16 and eeg_info.nominal_srate == 250.0
        assert eeg_info.channel_labels[:3] == ("Fz", "C3", "Cz")  # from the board description
        assert ecg_info.channel_labels == ("ECG1", "ECG2")
        chunks = []
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            chunks.extend(src.read(0.1))
        now = pylsl.local_clock()
    eeg = [c for c in chunks if c.info is eeg_info]
    ecg = [c for c in chunks if c.info is ecg_info]
    n = sum(len(c) for c in eeg)
    assert n == sum(len(c) for c in ecg)
    assert 400 < n < 800  # ~250 Hz for ~2.5 s
    ts = np.concatenate([c.timestamps for c in eeg])
    assert np.all(np.diff(ts) > 0)
    assert abs(ts[-1] - now) < 0.5  # on the LSL clock, recent
    # dejittered: sample spacing close to 1/250 s
    assert np.median(np.diff(ts)) == pytest.approx(1 / 250, rel=0.05)
    np.testing.assert_array_equal(
        np.concatenate([c.data for c in ecg])[:, 0],
        np.concatenate([c.data for c in eeg])[:, 14],  # row 15 is EEG channel 15
    )


def test_demo_config_cuts_windows():
    cfg = load_config("brainflow_synthetic", ["aligner.window=1", "aligner.hop=0.5"])
    windows = []
    pipe = Pipeline(cfg)
    pipe.on_window(windows.append)
    with pipe:
        time.sleep(3.5)
    assert len(windows) >= 3
    for w in windows:
        assert w.eeg.shape == (14, 200) and w.ecg.shape == (2, 200)
        assert np.isfinite(w.eeg).all()
    assert pipe.errors == []


def test_unknown_board_and_params_are_config_errors():
    with pytest.raises(ConfigError, match="not a BrainFlow board name"):
        BrainFlowSource(BrainFlowSourceConfig(kind="brainflow", streams=[], board="NOPE_BOARD"))
    src = BrainFlowSource(
        BrainFlowSourceConfig(
            kind="brainflow",
            streams=[BrainFlowStreamConfig(role="eeg")],
            params={"serial_prot": "/dev/ttyUSB0"},
        )
    )
    with pytest.raises(ConfigError, match="serial_prot: unknown BrainFlowInputParams field"):
        src.open()
