"""``physio-live``: the application entry point.

``physio-live`` opens the desktop dashboard; ``physio-live --stream`` runs the same pipeline
headless on a config (default: the built-in demo): sources -> aligner -> inference worker -> XDF
recording + LSL outlet of estimates, with one status line per second and a summary at the end.
Ctrl-C and SIGTERM close cleanly (file footers written, exit code 0). ``--replay PATH`` replays a
recording through the same path. ``physio-live models info|pull`` inspects and fetches
checkpoints. Errors a user can fix are printed as one line, without a traceback, exit code 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from physio_live.app._format import fmt_bytes, fmt_message, fmt_ms

if TYPE_CHECKING:
    from physio_live.app._session import SessionStatus
    from physio_live.core import Config, Estimate, Recording, Window

__all__ = ["main"]

_PRINT_LOCK = threading.Lock()


def _say(line: str, err: bool = False) -> None:
    """One whole line per call, even when the worker, aligner and main threads print at once."""
    stream = sys.stderr if err else sys.stdout
    with _PRINT_LOCK:
        stream.write(line + "\n")
        stream.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="physio-live",
        description="Live EEG + ECG from LSL and BrainFlow on one clock -> fused encoder -> "
        "estimates of the checkpoint's targets (P(mental arithmetic) for the shipped eegmat "
        "model; valence / arousal / dominance for DREAMER-style models).",
        epilog=(
            "Subcommands: 'physio-live models list', 'physio-live models info NAME|PATH', "
            "'physio-live models pull cbramod'."
        ),
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
    p.add_argument("--device", default=None, help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="fused model checkpoint: a shipped name (physio-live models list) or a .safetensors",
    )
    p.add_argument("--record-dir", default=None, help="folder for the XDF recording")
    p.add_argument("--no-record", action="store_true", help="do not record")
    p.add_argument("--windows", action="store_true", help="print every window as it is cut")
    p.add_argument("--replay", metavar="PATH", help="replay a recording (XDF, EDF/BDF, WFDB)")
    p.add_argument(
        "--speed", default="1", help="replay speed: 1 = real time, 10 = 10x, max = no pacing"
    )
    p.add_argument("--start", type=float, default=None, help="replay from S seconds in")
    p.add_argument("--out", default=None, help="folder for the replay's estimates CSV")
    p.add_argument("--export-windows", metavar="OUT.npz", help="save every aligned window")
    p.add_argument("--estimates", action="store_true", help="print every estimate")
    return p


def _fmt_rate(st: tuple[float, float]) -> str:
    return f"{st[0]:.0f}/{st[1]:g}Hz" if st[1] > 0 else f"{st[0]:.1f}/s"


def _status_line(st: SessionStatus, latest: Estimate | None = None) -> str:
    """One status line; ``latest`` (the newest Estimate) adds its value per target."""
    rates = " ".join(f"{name}={_fmt_rate(r)}" for name, r in st.rates.items())
    rec = f"rec={fmt_bytes(st.recording_bytes)}" if st.recording else "rec=off"
    now = ""
    if latest is not None:
        now = " | " + (
            "withheld"
            if latest.withheld
            else " ".join(
                f"{t}={p:.2f}" for t, p in zip(latest.targets, latest.probabilities, strict=True)
            )
        )
        if not latest.withheld and "calibrating" in latest.reason:
            now += " (calibrating)"
    return (
        f"[{st.elapsed:6.1f}s] {rates} | win/s={st.windows_per_s:.1f} est/s="
        f"{st.estimates_per_s:.1f} | latency p50={fmt_ms(st.latency_p50)} "
        f"p99={fmt_ms(st.latency_p99)} | dropped={st.dropped} | {rec}{now}"
    )


class _Latest:
    """The newest estimate (set from the worker thread, read by the status line)."""

    def __init__(self) -> None:
        self.estimate: Estimate | None = None

    def __call__(self, est: Estimate) -> None:
        self.estimate = est


def _fmt_window(w: Window) -> str:
    parts = [f"window {w.index:5d} t_end={w.t_end:.3f}"]
    if w.eeg is not None:
        parts.append(f"eeg {w.eeg.shape[0]}x{w.eeg.shape[1]}")
    if w.ecg is not None:
        parts.append(f"ecg {w.ecg.shape[0]}x{w.ecg.shape[1]}")
    parts.append(f"quality={w.quality.summary()}")
    if w.markers:
        parts.append(f"markers={[m for _, m in w.markers]}")
    return "  ".join(parts)


def _fmt_estimate(e: Estimate) -> str:
    probs = " ".join(f"{t}={p:.3f}" for t, p in zip(e.targets, e.probabilities, strict=True))
    flag = " UNTRAINED" if e.untrained else ""
    hr = e.readouts.get("hr_bpm", float("nan"))
    extra = f" hr={hr:.0f}bpm" if hr == hr else ""
    if e.withheld:
        probs = f"WITHHELD ({e.reason})"
    elif e.reason:
        extra += f" notes: {e.reason}"
    return f"estimate t_end={e.t_end:.3f} latency={e.latency * 1000:.1f}ms {probs}{extra}{flag}"


def _load_cfg(args: argparse.Namespace) -> Config:
    from physio_live.core import load_config

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"model.device={args.device}")
    if args.checkpoint:
        overrides.append(f"model.checkpoint={args.checkpoint}")
    if args.record_dir:
        overrides.append(f"recording.folder={args.record_dir}")
    if args.no_record:
        overrides.append("recording.enabled=false")
    return load_config(args.config, overrides)


def _install_stop_signals() -> threading.Event:
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    return stop


def _parse_speed(text: str) -> float | None:
    from physio_live.core import ConfigError

    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if speed <= 0:
        raise ConfigError(f"--speed {text!r}: give a positive factor (1 = real time) or 'max'")
    return speed


def _check_replay_span(rec: Recording, cfg: Config, args: argparse.Namespace) -> None:
    """Refuse a replay that cannot give one window: windows are cut only where every EEG/ECG
    stream has data, so the common span must hold one window."""
    from physio_live.core import SourceError

    spans = [
        (float(s.timestamps[0]), float(s.timestamps[-1]))
        for s in rec.streams
        if s.info.role in ("eeg", "ecg") and len(s.timestamps)
    ]
    common = min(b for _, b in spans) - max(a for a, _ in spans) if spans else 0.0
    if common < cfg.aligner.window:
        part = " (the part chosen by --start/--duration)" if args.start or args.duration else ""
        raise SourceError(
            f"{rec.path}: only {max(common, 0.0):.1f} s of EEG/ECG signal{part}, less than one "
            f"{cfg.aligner.window:g}-s window, so there is nothing to estimate; replay a longer "
            "recording or part"
        )


def run_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from physio_live.app._replay import replay_session
    from physio_live.app._sinks import EstimateCSV, WindowExporter
    from physio_live.core import open_recording

    cfg = _load_cfg(args)
    speed = _parse_speed(args.speed)
    rec = open_recording(args.replay, cfg.replay.roles).select(args.start, args.duration)
    for w in rec.warnings:
        print(f"physio-live: warning: {w}", file=sys.stderr, flush=True)
    _check_replay_span(rec, cfg, args)
    if args.export_windows:  # fail now, not after the whole replay
        Path(args.export_windows).expanduser().parent.mkdir(parents=True, exist_ok=True)
    src = Path(args.replay)
    out_dir = Path(args.out) if args.out else src.parent
    csv_path = out_dir / f"{src.stem}.estimates.csv"
    stop = _install_stop_signals()
    # opened, not started: the CSV, exporter and printers attach first
    session = replay_session(cfg, rec, speed, record=bool(args.record_dir), autostart=False)
    early = session.messages()  # e.g. channel-name warnings: say them now
    for msg in early:
        print(fmt_message(msg), file=sys.stderr, flush=True)
    exporter = WindowExporter(session.cfg) if args.export_windows else None
    writer = EstimateCSV(csv_path, tuple(session.model.config.targets))
    try:
        names = ", ".join(
            f"{s.name} ({s.role}, {s.n_channels} ch @ {s.nominal_srate:g} Hz)" for s in rec.infos
        )
        span = rec.t_last - rec.t_first
        print(f"physio-live: replaying {src} ({span:.1f} s): {names}", flush=True)
        if rec.skipped:
            print(f"physio-live: not replayed (no EEG/ECG role): {', '.join(rec.skipped)}")
        print(
            f"physio-live: model {session.model.model_id}; speed "
            f"{'max' if speed is None else f'{speed:g}x'}; estimates to {csv_path}",
            flush=True,
        )
        if session.model.untrained:
            from physio_live.models import UNTRAINED_WARNING

            print(f"physio-live: WARNING: {UNTRAINED_WARNING}", file=sys.stderr, flush=True)
        session.on_estimate(writer.write)
        latest = _Latest()
        session.on_estimate(latest)
        if exporter is not None:
            session.pipeline.on_window(exporter.add)
        if args.windows:
            session.pipeline.on_window(lambda w: _say(_fmt_window(w)))
        if args.estimates:
            session.on_estimate(lambda e: _say(_fmt_estimate(e)))
        session.start()
        next_status = time.monotonic() + 1.0
        while not stop.is_set() and not session.finished.is_set():
            session.finished.wait(min(0.2, max(0.0, next_status - time.monotonic())))
            if time.monotonic() >= next_status:
                next_status += 1.0
                _say(_status_line(session.status(), latest.estimate))
    finally:
        session.close()
        writer.close()
    st = session.status()
    print(
        f"summary: replayed {span:.1f} s of signal in {st.elapsed:.1f} s "
        f"({span / max(st.elapsed, 1e-9):.1f}x), {st.windows} windows, {writer.rows} estimates "
        f"-> {csv_path}",
        flush=True,
    )
    if exporter is not None:
        path = exporter.save(args.export_windows)
        print(f"physio-live: {len(exporter.windows)} windows exported to {path}", flush=True)
    for msg in st.errors[len(early) :]:
        print(fmt_message(msg), file=sys.stderr, flush=True)
    return 0


def run_stream(args: argparse.Namespace) -> int:
    from physio_live.app._session import Session

    cfg = _load_cfg(args)
    stop = _install_stop_signals()
    session = Session(cfg)
    from physio_live.core import StoppedWaitingError

    try:  # a source with on_missing: wait reports each attempt; Ctrl-C ends the wait cleanly
        session.open(stop, on_wait=lambda msg: _say(f"physio-live: {msg}", err=True))
    except StoppedWaitingError as exc:
        print(f"physio-live: {exc}", file=sys.stderr, flush=True)
        return 0
    said: set[str] = set()  # each warning is printed once
    try:
        pipe, model = session.pipeline, session.model
        names = ", ".join(
            f"{s.name} ({s.role}, {s.n_channels} ch @ {s.nominal_srate:g} Hz)" for s in pipe.streams
        )
        print(f"physio-live: config {cfg.path}", flush=True)
        print(f"physio-live: streams: {names}", flush=True)
        print(
            f"physio-live: model {model.model_id} on {session.worker.device} "
            f"(estimates: P({', '.join(model.config.targets)}))"
            + (f"; recording to {session.recorder.path}" if session.recorder else "")
            + (f"; estimates on LSL outlet {cfg.outlet.name!r}" if session.outlet else ""),
            flush=True,
        )
        if model.untrained:
            from physio_live.models import UNTRAINED_WARNING

            print(f"physio-live: WARNING: {UNTRAINED_WARNING}", file=sys.stderr, flush=True)
        if args.windows:
            pipe.on_window(lambda w: _say(_fmt_window(w)))
        if args.estimates:
            session.on_estimate(lambda e: _say(_fmt_estimate(e)))
        latest = _Latest()
        session.on_estimate(latest)
        session.start()
        t_start = time.monotonic()
        next_status = t_start + 1.0
        while not stop.is_set():
            if args.duration is not None and time.monotonic() - t_start >= args.duration:
                break
            stop.wait(min(0.1, max(0.0, next_status - time.monotonic())))
            if time.monotonic() >= next_status:
                next_status += 1.0
                st = session.status()
                _say(_status_line(st, latest.estimate))
                for msg in st.errors:
                    if msg not in said:
                        said.add(msg)
                        print(fmt_message(msg), file=sys.stderr, flush=True)
    finally:
        session.close()
    st = session.status()
    rec = session.recording_status  # the recording closed by session.close()
    total = sum(s.samples for s in session.pipeline.stats.values())
    print(
        f"summary: {st.elapsed:.1f} s, {total} samples, {st.lost_samples} lost, "
        f"{st.windows} windows, {st.estimates} estimates, {st.dropped} dropped, "
        f"latency p50={fmt_ms(st.latency_p50)} p99={fmt_ms(st.latency_p99)}"
        + (f", recording {rec.path} ({fmt_bytes(rec.bytes_written)})" if rec else ""),
        flush=True,
    )
    late = list(st.errors)  # and what went wrong while closing
    if rec is not None and rec.error:
        late.append(f"recording: {rec.error}")
    for msg in late:
        if msg not in said:
            said.add(msg)
            print(fmt_message(msg), file=sys.stderr, flush=True)
    return 0


def run_gui(args: argparse.Namespace) -> int:
    """The desktop dashboard on the same config, sources, worker and recorder."""
    try:
        from physio_live.app._dashboard import run_dashboard
    except ImportError as exc:
        from physio_live.core import PhysioLiveError

        raise PhysioLiveError(
            f"the dashboard needs the gui extra ({exc}); pip install 'physio-live[gui]', "
            "or run headless with --stream"
        ) from None
    cfg = _load_cfg(args)
    replay = (args.replay, _parse_speed(args.speed) or 8.0) if args.replay else None
    return run_dashboard(cfg, duration=args.duration, replay=replay)


def run_models(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="physio-live models", description="Inspect and fetch models.")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the shipped checkpoints: name, kind, targets, size, test metrics")
    info = sub.add_parser(
        "info", help="architecture, parameters, channels, targets, provenance, test metrics"
    )
    info.add_argument("path", help="a shipped checkpoint name (see 'models list') or a file")
    pull = sub.add_parser("pull", help="download official weights and convert them to our format")
    pull.add_argument("name", choices=["cbramod"])
    pull.add_argument(
        "--out", default="cbramod-base.safetensors", help="where to write our checkpoint"
    )
    pull.add_argument("--cache-dir", default=None, help="Hugging Face cache folder")
    pull.add_argument(
        "--source", "--from", default=None, help="a local pretrained_weights.pth to convert"
    )
    args = p.parse_args(argv)
    from physio_live import models

    if args.cmd == "list":
        shipped = models.shipped_checkpoints()
        if not shipped:
            print("physio-live: no shipped checkpoints are installed")
            return 0
        for name, path in shipped.items():
            print(models.checkpoint_summary(name, path))
        return 0
    if args.cmd == "info":
        path = models.resolve_checkpoint(args.path)
        print(models.format_checkpoint_info(models.describe_checkpoint(path)))
        return 0
    out = models.pull_cbramod(args.out, source=args.source, cache_dir=args.cache_dir)
    print(f"physio-live: CBraMod weights converted to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from physio_live.core import PhysioLiveError

    try:
        if argv[:1] == ["models"]:
            return run_models(argv[1:])
        args = _parser().parse_args(argv)
        if args.replay and args.stream:
            return run_replay(args)
        if args.stream:
            return run_stream(args)
        return run_gui(args)
    except PhysioLiveError as exc:
        print(f"physio-live: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file or folder we were told to use (--out, --export-windows ...)
        print(f"physio-live: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _os_error(exc: OSError) -> str:
    """One line for a file-system error, naming the path and what to do."""
    what = exc.strerror or " ".join(str(exc).split())
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{what}; check that the path exists and is writable/readable by you"


if __name__ == "__main__":
    raise SystemExit(main())
