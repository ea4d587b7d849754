"""Ingest benchmark: real LSL outlets -> our sources + buffers + aligner, vs mne-lsl's StreamLSL.

EEG (default 64 ch @ 1000 Hz) and ECG (12 leads @ 500 Hz) are pushed by real LSL outlets in a
separate process (``tests/lsl_outlets.py``, channel 0 = sample index). In the same run, for the same
streams, this process first runs our pipeline (LSL inlets with clocksync|dejitter|monotonize, ring
buffers, causal band-pass + notch, resampling to 200 Hz, 4 s / 0.5 s windows) and then mne-lsl's
``StreamLSL`` (same post-processing, a causal band-pass on acquisition, its own ring buffer).
The figure compared is CPU seconds of this process per second of signal (all threads).

    python benchmarks/ingest.py                     # 60 s each
    python benchmarks/ingest.py --seconds 30 --eeg-channels 256

Prints one JSON line, then a short table.
"""

from __future__ import annotations

import argparse
import json
import time

from _outlets import start_outlets  # sets LSLAPICFG before pylsl is imported


def outlets(eeg_ch: int, eeg_rate: float, ecg_ch: int, ecg_rate: float, seconds: float):
    return start_outlets(
        [
            {"name": "bench-EEG", "type": "EEG", "n_ch": eeg_ch, "srate": eeg_rate},
            {"name": "bench-ECG", "type": "ECG", "n_ch": ecg_ch, "srate": ecg_rate,
             "unit": "millivolts"},
        ],
        seconds,
    )  # fmt: skip


def run_ours(spec: dict, seconds: float) -> dict:
    from physio_live.core import Pipeline, config_from_dict

    eeg, ecg = spec["streams"]
    cfg = config_from_dict(
        {
            "sources": [
                {"kind": "lsl", "role": "eeg", "name": eeg["name"], "channels": eeg["n_ch"]},
                {"kind": "lsl", "role": "ecg", "name": ecg["name"], "channels": ecg["n_ch"]},
            ],
            "buffer_seconds": 30,
        }
    )
    expected: dict[str, float | None] = {}
    gaps = {"lost": 0, "dup": 0}

    def check(chunk) -> None:  # sample-index continuity of every chunk (cheap: ends only)
        idx = chunk.data[:, 0]
        prev = expected.get(chunk.info.name)
        if prev is not None:
            if idx[0] > prev:
                gaps["lost"] += int(idx[0] - prev)
            elif idx[0] < prev:
                gaps["dup"] += int(prev - idx[0])
        if idx[-1] - idx[0] != len(idx) - 1:
            gaps["lost"] += int(idx[-1] - idx[0] - (len(idx) - 1))
        expected[chunk.info.name] = float(idx[-1]) + 1

    pipe = Pipeline(cfg)
    pipe.on_chunk(check)
    pipe.open()
    time.sleep(1.0)  # let the inlets settle (connection, first clock sync)
    pipe.start()
    c0, w0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    c1, w1 = time.process_time(), time.monotonic()
    pipe.stop()
    samples = {st.info.name: st.samples for st in pipe.stats.values()}
    lost_buf = sum(st.lost_in_buffer for st in pipe.stats.values())
    return {
        "cpu_s_per_s": (c1 - c0) / (w1 - w0),
        "samples": samples,
        "lost": gaps["lost"] + lost_buf,
        "duplicated": gaps["dup"],
        "windows": pipe.windows_out,
        "errors": pipe.errors,
    }


def run_mne_lsl(spec: dict, seconds: float, acquisition_delay: float) -> dict:
    import mne
    from mne_lsl.stream import StreamLSL

    mne.set_log_level("ERROR")
    streams = []
    for s, band in zip(spec["streams"], ((0.3, 75.0), (0.5, 45.0)), strict=True):
        st = StreamLSL(bufsize=30, name=s["name"]).connect(
            acquisition_delay=acquisition_delay,
            processing_flags=["clocksync", "dejitter", "monotize"],
            timeout=10,
        )
        st.filter(band[0], band[1], iir_params={"order": 4, "ftype": "butter", "output": "sos"})
        streams.append(st)
    time.sleep(1.0)
    c0, w0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    c1, w1 = time.process_time(), time.monotonic()
    n = [int(st.n_new_samples) for st in streams]
    for st in streams:
        st.disconnect()
    return {"cpu_s_per_s": (c1 - c0) / (w1 - w0), "new_samples": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--eeg-channels", type=int, default=64)
    ap.add_argument("--eeg-rate", type=float, default=1000.0)
    ap.add_argument("--ecg-channels", type=int, default=12)
    ap.add_argument("--ecg-rate", type=float, default=500.0)
    ap.add_argument(
        "--mne-delay",
        type=float,
        default=0.02,
        help="mne-lsl acquisition_delay (s); ours reads whenever data arrives",
    )
    ap.add_argument("--skip-mne", action="store_true")
    args = ap.parse_args()

    total = 3 * args.seconds + 30
    proc, spec = outlets(args.eeg_channels, args.eeg_rate, args.ecg_channels, args.ecg_rate, total)
    try:
        ours = run_ours(spec, args.seconds)
        mne_matched = mne_default = None
        if not args.skip_mne:
            mne_matched = run_mne_lsl(spec, args.seconds, args.mne_delay)
            mne_default = run_mne_lsl(spec, args.seconds, 0.001)
    finally:
        proc.terminate()
        proc.wait(10)
    result = {
        "benchmark": "ingest",
        "seconds": args.seconds,
        "eeg": f"{args.eeg_channels}ch@{args.eeg_rate:g}Hz",
        "ecg": f"{args.ecg_channels}ch@{args.ecg_rate:g}Hz",
        "ours_lost": ours["lost"],
        "ours_duplicated": ours["duplicated"],
        "ours_windows": ours["windows"],
        "ours_samples": ours["samples"],
        "ours_cpu_s_per_s": round(ours["cpu_s_per_s"], 4),
        "mne_lsl_cpu_s_per_s": None
        if mne_matched is None
        else round(mne_matched["cpu_s_per_s"], 4),
        "mne_lsl_delay_s": args.mne_delay,
        "mne_lsl_default_delay_cpu_s_per_s": None
        if mne_default is None
        else round(mne_default["cpu_s_per_s"], 4),
        "ratio_ours_over_mne_lsl": None
        if mne_matched is None
        else round(ours["cpu_s_per_s"] / mne_matched["cpu_s_per_s"], 3),
        "ours_errors": ours["errors"],
    }
    print(json.dumps(result))
    print()
    print(f"{'pipeline':44s} {'CPU s / s signal':>16s}")
    print(f"{'ours (inlets+buffers+filters+200 Hz+windows)':44s} {ours['cpu_s_per_s']:16.4f}")
    if mne_matched is not None and mne_default is not None:
        print(
            f"{f'mne-lsl StreamLSL + filter, delay {args.mne_delay:g} s':44s} "
            f"{mne_matched['cpu_s_per_s']:16.4f}"
        )
        print(
            f"{'mne-lsl StreamLSL + filter, delay 0.001 s':44s} {mne_default['cpu_s_per_s']:16.4f}"
        )
    print(
        f"samples lost (ours): {ours['lost']}, duplicated: {ours['duplicated']}, "
        f"windows: {ours['windows']}"
    )


if __name__ == "__main__":
    main()
