"""The trainer's progress bar (tqdm) shows the count, the unit and the free-form fields."""

from __future__ import annotations

import io

import numpy as np

from physio_live.trainer._progress import Progress, format_seconds


def test_progress_counts_from_start_and_shows_extra_fields():
    rng = np.random.default_rng()
    total, start = int(rng.integers(20, 200)), int(rng.integers(0, 10))
    buf = io.StringIO()
    bar = Progress(total, "pretrain", "steps", start=start, stream=buf, min_interval=0)
    loss = float(rng.random())
    for _ in range(total - start):
        bar.update(1, extra=f"loss {loss:.3f}")
    assert bar.done == total
    bar.close()
    last = buf.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("pretrain:") and f"{total}/{total}" in last
    assert "steps/s" in last and f"loss {loss:.3f}" in last


def test_disabled_progress_writes_nothing():
    buf = io.StringIO()
    bar = Progress(10, "preprocess", "records", stream=buf, enabled=False)
    bar.update(10, extra="x")
    bar.close()
    assert buf.getvalue() == ""


def test_format_seconds():
    assert format_seconds(3725.0) == "1:02:05"
    assert format_seconds(65.4) == "01:05"
