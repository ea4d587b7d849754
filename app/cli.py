"""``physio-live``: the application entry point.

``physio-live --stream`` runs the pipeline headless on a config (default: the built-in demo) and
prints every window as it is cut plus a status line per second. The dashboard (no ``--stream``) and
the inference worker are built on top of this by later work; until then they say so and exit 2.
Errors a user can fix are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="physio-live",
        description="Live EEG + ECG from LSL and BrainFlow on one clock, cut into model windows.",
    )
    p.add_argument("--stream", action="store_true", help="run headless (no dashboard)")
    p.add_argument(
        "--config",
        "-c",
        default=None,
        help="YAML config file or built-in config name (default: demo)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set aligner.hop=0.25 (repeatable)",
    )
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--quiet", action="store_true", help="no per-window lines, status only")
    return p


def _fmt_window(w) -> str:
    parts = [f"window {w.index:5d}  t_end={w.t_end:.3f}"]
    if w.eeg is not None:
        parts.append(
            f"eeg {w.eeg.shape[0]}x{w.eeg.shape[1]} rms={float((w.eeg**2).mean() ** 0.5):.3f}"
        )
    if w.ecg is not None:
        parts.append(
            f"ecg {w.ecg.shape[0]}x{w.ecg.shape[1]} rms={float((w.ecg**2).mean() ** 0.5):.3f}"
        )
    parts.append(f"quality={w.quality.summary()}")
    if w.markers:
        parts.append(f"markers={len(w.markers)}")
    return "  ".join(parts)


def run_stream(args: argparse.Namespace) -> int:
    from physio_live.core import Pipeline, load_config

    cfg = load_config(args.config, args.overrides)
    pipe = Pipeline(cfg)
    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    if not args.quiet:
        pipe.on_window(lambda w: print(_fmt_window(w), flush=True))
    pipe.open()
    names = ", ".join(
        f"{s.name} ({s.role}, {s.n_channels} ch @ {s.nominal_srate:g} Hz)" for s in pipe.streams
    )
    print(f"physio-live: streaming from {names}; config {cfg.path}", flush=True)
    pipe.start()
    t_start = time.monotonic()
    next_status = t_start + 1.0
    last_err = 0
    try:
        while not stop.is_set():
            if args.duration is not None and time.monotonic() - t_start >= args.duration:
                break
            stop.wait(0.1)
            if time.monotonic() >= next_status:
                next_status += 1.0
                rates = "  ".join(
                    f"{st.info.name}: {st.effective_rate:.1f}/{st.info.nominal_srate:g} Hz"
                    for st in pipe.stats.values()
                )
                print(f"status  {rates}  windows={pipe.windows_out}", flush=True)
                for msg in pipe.errors[last_err:]:
                    print(f"physio-live: warning: {msg}", file=sys.stderr, flush=True)
                last_err = len(pipe.errors)
    finally:
        pipe.stop()
    total = sum(st.samples for st in pipe.stats.values())
    lost = sum(st.lost_in_buffer for st in pipe.stats.values())
    print(
        f"summary  {time.monotonic() - t_start:.1f} s  samples={total}  lost={lost}  "
        f"windows={pipe.windows_out}",
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from physio_live.core import PhysioLiveError

    try:
        if args.stream:
            return run_stream(args)
        print(
            "physio-live: the dashboard is not yet implemented; use --stream for the headless run",
            file=sys.stderr,
        )
        return 2
    except PhysioLiveError as exc:
        print(f"physio-live: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
