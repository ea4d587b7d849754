"""Real LSL outlets for the tests, run as a separate process.

Usage: ``python lsl_outlets.py '<json spec>'``. The spec lists streams (name, type, n_ch, srate,
source_id, chunk [s], unit) and optionally ``event_period`` / ``event_offset`` (s). Each sample is
stamped ``t0 + i / srate`` on the LSL clock; channel 0 is the sample index ``i``; channel 1 holds an
impulse of ``event_amp`` uV on the sample nearest each common event time
``t0 + event_offset + e * event_period`` (the same LSL time in every stream); the other channels are
sines of different frequencies. A stream with ``burst`` [s] is pushed in chunks of random length,
1 sample to ``burst`` seconds (``seed`` fixes the draws); its stamps stay exact. A stream may
simulate a device that stamps with its own clock: its sample ``i`` (true time ``T = t0 + i /
srate``, when it is pushed) is stamped ``T + clock_offset + drift_ppm * 1e-6 * (T - t0) + noise``
(``jitter_ms``: Gaussian noise, standard deviation in ms), plus ``reset_jump`` [s] from
``reset_at`` [s after t0] on (a clock reset). Its data, events included, stay at true time. Prints
``READY <t0>`` once the outlets exist, then pushes in real time until ``duration`` (default 600 s)
or until terminated.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LSLAPICFG", str(Path(__file__).with_name("lsl_api.cfg")))

import numpy as np
import pylsl


def make_outlet(s: dict) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(
        s["name"], s["type"], s["n_ch"], s["srate"], pylsl.cf_float32, s["source_id"]
    )
    chans = info.desc().append_child("channels")
    for c in range(s["n_ch"]):
        ch = chans.append_child("channel")
        ch.append_child_value("label", "index" if c == 0 else f"{s['type']}{c}")
        ch.append_child_value("unit", s.get("unit", "microvolts"))
        ch.append_child_value("type", s["type"])
    return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)


def block(s: dict, i0: int, i1: int, t0: float, events: dict) -> np.ndarray:
    n = i1 - i0
    idx = np.arange(i0, i1)
    t = idx / s["srate"]
    out = np.zeros((n, s["n_ch"]), np.float32)
    out[:, 0] = idx
    for c in range(2, s["n_ch"]):
        out[:, c] = 20.0 * np.sin(2 * math.pi * (3 + c) * t)
    if s["n_ch"] > 1:
        hits = events[s["name"]]
        sel = hits[(hits >= i0) & (hits < i1)]
        out[sel - i0, 1] = events["amp"]
    return out


def device_stamps(s: dict, idx: np.ndarray, t0: float, rng: np.random.Generator) -> np.ndarray:
    """Stamps of samples ``idx``: the true LSL time, or a simulated device clock (see above)."""
    rel = idx / s["srate"]
    stamps = t0 + rel + s.get("clock_offset", 0.0) + s.get("drift_ppm", 0.0) * 1e-6 * rel
    if s.get("jitter_ms"):
        stamps = stamps + rng.normal(0.0, s["jitter_ms"] * 1e-3, len(idx))
    if "reset_at" in s:
        stamps = stamps + np.where(rel >= s["reset_at"], s.get("reset_jump", 0.0), 0.0)
    return stamps


def main() -> None:
    spec = json.loads(sys.argv[1])
    streams = spec["streams"]
    outlets = [make_outlet(s) for s in streams]
    duration = float(spec.get("duration", 600.0))
    t0 = pylsl.local_clock() + 0.05
    period = float(spec.get("event_period", 0.0))
    events: dict = {"amp": float(spec.get("event_amp", 1000.0))}
    for s in streams:
        if period:
            times = t0 + spec.get("event_offset", 1.0) + period * np.arange(int(duration / period))
            events[s["name"]] = np.round((times - t0) * s["srate"]).astype(np.int64)
        else:
            events[s["name"]] = np.array([], np.int64)
    print(f"READY {t0!r}", flush=True)
    sent = [0] * len(streams)
    # burst [s]: push chunks whose lengths are drawn at random from 1 sample .. burst seconds
    rng = np.random.default_rng(spec.get("seed"))
    burst = [int(s.get("burst", 0) * s["srate"]) for s in streams]
    held = [int(rng.integers(1, b + 1)) if b else 1 for b in burst]
    jitter_rng = np.random.default_rng(spec.get("seed"))
    while True:
        now = pylsl.local_clock()
        if now - t0 > duration:
            break
        for k, (s, outlet) in enumerate(zip(streams, outlets, strict=True)):
            due = int((now - t0) * s["srate"]) + 1
            if due <= sent[k]:
                continue
            if burst[k]:
                if due - sent[k] < held[k]:
                    continue
                due, held[k] = sent[k] + held[k], int(rng.integers(1, burst[k] + 1))
            data = block(s, sent[k], due, t0, events)
            stamps = device_stamps(s, np.arange(sent[k], due), t0, jitter_rng).tolist()
            outlet.push_chunk(data, stamps)
            sent[k] = due
        time.sleep(float(spec.get("push_interval", 0.02)))


if __name__ == "__main__":
    main()
