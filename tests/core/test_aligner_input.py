"""A stage fed by ``Pipeline.on_aligner_input`` sees every raw sample once, in order, and all the
samples of a window's span before that window reaches the window listeners (what the app's
annotation stage relies on instead of reading the pipeline's buffers back)."""

from __future__ import annotations

import numpy as np

from physio_live.core import Chunk, Pipeline, Window, config_from_dict, open_recording


def test_stage_sees_each_raw_sample_once_and_a_windows_span_before_the_window(data_dir):
    rec = open_recording(data_dir / "eeg_ecg_eegmat/Subject00_1.edf").select(0.0, 20.0)
    cfg = config_from_dict(
        {
            "sources": [{"kind": "lsl", "role": "eeg", "name": "unused"}],
            "aligner": {"window": 4.0, "hop": 1.0},
        }
    )
    pipe = Pipeline(cfg, sources=[])
    pipe.prepare(rec.infos)
    signals = [s for s in rec.streams if s.info.role in ("eeg", "ecg")]
    assert len(signals) == 2
    seen: dict[str, list[Chunk]] = {s.info.key: [] for s in signals}
    complete: list[bool] = []

    def stage(chunk: Chunk) -> None:
        if chunk.info.key in seen:
            seen[chunk.info.key].append(chunk)

    def listener(w: Window) -> None:
        t0 = w.t_end - w.n_samples / w.rate
        for s in signals:  # the stage already holds every recorded sample of the span
            got = np.concatenate([c.timestamps for c in seen[s.info.key]])
            want = s.timestamps[(s.timestamps > t0) & (s.timestamps <= w.t_end)]
            complete.append(np.isin(want, got).all() and len(want) > 0)

    pipe.on_aligner_input(stage)
    pipe.on_window(listener)
    rng = np.random.default_rng()
    for chunk in rec.chunks(float(rng.uniform(0.02, 0.5))):
        pipe.ingest(chunk)
        if rng.random() < 0.5:  # the aligner thread may take several chunks at once
            pipe.step()
    pipe.step()
    assert len(complete) >= 2 * 10 and all(complete)
    for s in signals:  # each sample once, in order, as recorded
        chunks = seen[s.info.key]
        np.testing.assert_array_equal(np.concatenate([c.timestamps for c in chunks]), s.timestamps)
        np.testing.assert_array_equal(np.concatenate([c.data for c in chunks]), s.data)
    assert not pipe.errors
