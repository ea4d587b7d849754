"""Child process of the kill -9 test: records real-time Chunks until it is killed.

Usage: ``python xdf_writer_child.py PATH SEED``. Prints ``READY <path> <t0>`` once recording, then
hands the Recorder every sample whose timestamp has passed on the LSL clock, in chunks of random
size, until killed (or 30 s, so an orphan never lingers). The samples are a pure function of the
seed and ``t0`` (see :func:`expected`), so the test can check what pyxdf reads back.
"""

from __future__ import annotations

import sys
import time

import numpy as np

EEG_RATE = 500.0
EEG_CHANNELS = 8
MARKER_PERIOD = 0.25
MAX_SECONDS = 30.0


def expected(seed: int, t0: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every sample the child will ever write: stream name -> (data, timestamps)."""
    rng = np.random.default_rng(seed)
    n = int(MAX_SECONDS * EEG_RATE)
    eeg = rng.standard_normal((n, EEG_CHANNELS), dtype=np.float32) * 50
    jitter = rng.uniform(-0.2, 0.2, n)
    eeg_ts = t0 + (np.arange(n) + jitter) / EEG_RATE
    m = int(MAX_SECONDS / MARKER_PERIOD)
    marks = np.array([[f"mark-{i}-{rng.integers(1_000_000)}-ß✓"] for i in range(m)], dtype=object)
    mark_ts = t0 + 0.1 + np.arange(m) * MARKER_PERIOD
    return {"EEG": (eeg, eeg_ts), "Markers": (marks, mark_ts)}


def infos():
    from physio_live.core import StreamInfo

    return {
        "EEG": StreamInfo(
            "EEG",
            "EEG",
            "eeg",
            tuple(f"ch{i}" for i in range(EEG_CHANNELS)),
            ("microvolts",) * EEG_CHANNELS,
            EEG_RATE,
            "child-eeg",
        ),
        "Markers": StreamInfo(
            "Markers", "Markers", "markers", ("marker",), ("",), 0.0, "child-mk", "string"
        ),
    }


def main() -> None:
    import pylsl

    from physio_live.core import Chunk
    from physio_live.core._recorder import Recorder

    path, seed = sys.argv[1], int(sys.argv[2])
    t0 = pylsl.local_clock()
    streams = expected(seed, t0)
    inf = infos()
    rec = Recorder(path)
    rec.start()
    rec.add_streams(inf.values())
    print(f"READY {rec.path} {t0!r}", flush=True)
    rng = np.random.default_rng(seed + 1)
    done = dict.fromkeys(streams, 0)
    while pylsl.local_clock() - t0 < MAX_SECONDS:
        now = pylsl.local_clock()
        for name, (data, ts) in streams.items():
            due = int(np.searchsorted(ts, now, side="right"))
            if due > done[name]:
                sl = slice(done[name], due)
                rec.write(Chunk(inf[name], data[sl], ts[sl]))
                done[name] = due
        time.sleep(float(rng.uniform(0.002, 0.04)))
    rec.close()


if __name__ == "__main__":
    main()
