from __future__ import annotations

import threading

import numpy as np

from physio_live.core import RingBuffer


def test_every_sample_once_in_order_across_wraps():
    rng = np.random.default_rng()
    buf = RingBuffer(capacity=97, n_channels=3)
    storage_id = buf._data.__array_interface__["data"][0]
    seq, got, n_written = 0, [], 0
    for _ in range(200):
        m = int(rng.integers(0, 60))
        idx = np.arange(n_written, n_written + m)
        buf.write(np.repeat(idx[:, None], 3, 1).astype(np.float32), idx / 100.0)
        n_written += m
        data, ts, seq, lost = buf.read_from(seq)
        assert lost == 0
        got.append(data[:, 0])
        np.testing.assert_allclose(ts, data[:, 0] / 100.0)
    allv = np.concatenate(got)
    np.testing.assert_array_equal(allv, np.arange(n_written))
    assert buf._data.__array_interface__["data"][0] == storage_id  # never reallocated


def test_slow_reader_learns_how_many_it_lost():
    buf = RingBuffer(capacity=50, n_channels=1)
    idx = np.arange(120, dtype=np.float32)
    buf.write(idx[:, None], idx.astype(float))
    data, _, nxt, lost = buf.read_from(0)
    assert lost == 70 and nxt == 120
    np.testing.assert_array_equal(data[:, 0], idx[70:])


def test_read_last_and_time_ranges():
    buf = RingBuffer(capacity=64, n_channels=2)
    for k in range(5):  # 5 x 20 samples at 100 Hz -> wraps
        t = (np.arange(20) + 20 * k) / 100.0
        buf.write(np.stack([t, -t], 1).astype(np.float32), t)
    d, t = buf.read_last(10)
    np.testing.assert_allclose(t, np.arange(90, 100) / 100.0)
    d, t = buf.read_range(0.5, 0.6)
    np.testing.assert_allclose(t, np.arange(51, 61) / 100.0)
    np.testing.assert_allclose(d[:, 1], -t, rtol=1e-6)
    d, t = buf.read_seconds(0.1)
    np.testing.assert_allclose(t, np.arange(90, 100) / 100.0)
    d, t = buf.read_range(0.0, 0.2)  # older than what is held
    assert len(t) == 0


def test_concurrent_writer_and_reader_lose_nothing():
    buf = RingBuffer(capacity=4096, n_channels=4)
    total = 200_000
    got = []

    def writer():
        i = 0
        while i < total:
            m = min(37, total - i)
            idx = np.arange(i, i + m)
            buf.write(np.repeat(idx[:, None], 4, 1).astype(np.float32), idx.astype(float))
            i += m

    t = threading.Thread(target=writer)
    t.start()
    seq = 0
    while seq < total:
        data, _, seq, lost = buf.read_from(seq)
        got.append((data[:, 0], lost))
    t.join()
    lost_total = sum(lost for _, lost in got)
    vals = np.concatenate([d for d, _ in got])
    assert len(vals) + lost_total == total
    assert np.all(np.diff(vals) >= 1)  # never duplicated, never out of order
