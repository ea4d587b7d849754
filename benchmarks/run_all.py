"""Run the performance benchmarks the README cites, one after the other, and write one JSON file.

Each benchmark runs as its own process (``python benchmarks/<name>.py ...``), as a user would
run it; its JSON line is collected as it printed it. The file records the machine (CPU model,
cores, load before the run, Python / torch / NumPy versions, GPU), the date (UTC), the git commit
(and whether the tree had uncommitted changes), each benchmark's exact command, exit status,
wall time and figures.

    python benchmarks/run_all.py                     # encoder, latency, replay, ingest (~25 min)
    python benchmarks/run_all.py --quick             # the same, short (a smoke test, ~3 min)
    python benchmarks/run_all.py --only encoder --quick --out /tmp/encoder.json
    python benchmarks/run_all.py --with encoder_accuracy,soak,finetune

Default output: ``benchmarks/results/latest.json``. Exit status 1 when a benchmark failed (the
others still run and are written). Prints a one-line summary per benchmark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCHEMA = 1

# name -> (full-run arguments, quick-run arguments); "{threads}" is replaced by --threads.
DEFAULT = ("encoder", "latency", "replay", "ingest")
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "encoder": (
        ["--threads", "{threads}", "--repeats", "7"],
        ["--threads", "{threads}", "--repeats", "2", "--quick"],
    ),
    "latency": (
        ["--threads", "{threads}", "--seconds", "60"],
        ["--threads", "{threads}", "--seconds", "8", "--skip-peer"],
    ),
    "replay": (
        ["--threads", "{threads}", "--minutes", "60", "--batched", "16"],
        ["--threads", "{threads}", "--minutes", "1", "--batched", "0"],
    ),
    "ingest": (["--seconds", "60"], ["--seconds", "5", "--skip-mne"]),
    # optional (--with): not performance figures of the live path, or long
    "soak": (["--threads", "{threads}", "--minutes", "30"],
             ["--threads", "{threads}", "--minutes", "1"]),
    "finetune": (["--threads", "{threads}"],
                 ["--threads", "{threads}", "--steps", "1", "--embed", "16"]),
    "encoder_accuracy": (["--draws", "8"], ["--draws", "1", "--windows", "1"]),
    "bf16_cost": (["--threads", "{threads}"], ["--threads", "{threads}", "--hop", "8"]),
    "contention": (["--threads", "{threads}"], ["--threads", "{threads}", "--passes", "5"]),
    "readouts": ([], ["--repeats", "1"]),
    "dashboard": ([], ["--seconds", "5", "--warmup", "3", "--model", "tiny"]),
    "pretrain": ([], ["--steps", "5"]),
    # a GPU's worker (CUDA; its --quick smoke test runs on the CPU)
    "gpu_worker": ([], ["--device", "cpu", "--quick", "--depth", "1", "--modes", "fp32"]),
}  # fmt: skip


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        import numpy
        import torch

        info["torch"] = torch.__version__
        info["numpy"] = numpy.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        from physio_live.models import cpu_linears

        info["cpu_linears"] = cpu_linears()  # the encoder's float32 linears on this CPU
        info["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    except ImportError:  # the benchmarks will say what is missing
        pass
    return info


def git_state() -> dict[str, object]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    # the figures files themselves do not make the code dirty (a re-run overwrites them)
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def json_line(stdout: str) -> dict[str, object] | None:
    """The benchmark's figures: the first line of its output that is a JSON object."""
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def run_one(name: str, args: list[str], timeout: float) -> dict[str, object]:
    cmd = [sys.executable, str(HERE / f"{name}.py"), *args]
    shown = " ".join(["python", f"benchmarks/{name}.py", *args])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = f"timed out after {timeout:g} s"
    took = time.perf_counter() - t0
    result = json_line(out)
    entry: dict[str, object] = {
        "command": shown,
        "returncode": rc,
        "wall_s": round(took, 1),
        "result": result,
    }
    if rc != 0 or result is None:
        tail = (err or out).strip().splitlines()[-5:]
        entry["error"] = " | ".join(tail) or "no JSON line in the output"
    return entry


def summary_line(name: str, entry: dict[str, object]) -> str:
    res = entry.get("result")
    if "error" in entry or not isinstance(res, dict):
        return f"{name:10s} FAILED ({entry.get('error')})"
    if name == "encoder":
        cases = res.get("cases", [])
        parts = [
            f"b{c['batch']} {c['channels']}x{c['patches']} {c['speedup']}x"
            for c in cases  # type: ignore[index]
        ]
        return f"{name:10s} ours vs official: " + ", ".join(parts)
    if name == "latency":
        app = res.get("app", {})
        return f"{name:10s} app p50/p99 {app.get('p50_ms')}/{app.get('p99_ms')} ms"  # type: ignore[union-attr]
    if name == "replay":
        runs = res.get("runs", [])
        return f"{name:10s} " + ", ".join(
            f"max_batch {r['max_batch']}{' bf16' if r.get('bf16') else ''}: {r['x_realtime']}x"  # type: ignore[index]
            for r in runs
        )
    if name == "ingest":
        return (
            f"{name:10s} ours {res.get('ours_cpu_s_per_s')} vs mne-lsl "
            f"{res.get('mne_lsl_cpu_s_per_s')} CPU s/s, lost {res.get('ours_lost')}"
        )
    return f"{name:10s} ok ({entry['wall_s']} s)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test, not figures)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each benchmark")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    ap.add_argument(
        "--with",
        dest="extra",
        default="",
        help="also run these (comma-separated): "
        + ",".join(sorted(set(BENCHMARKS) - set(DEFAULT))),
    )
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark")
    args = ap.parse_args(argv)

    names = [n for n in args.only.split(",") if n] or list(DEFAULT)
    names += [n for n in args.extra.split(",") if n and n not in names]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")

    report: dict[str, object] = {
        "schema": SCHEMA,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": machine(),
        "options": {"quick": args.quick, "threads": args.threads},
        "benchmarks": {},
    }
    failed = False
    for name in names:
        full, quick = BENCHMARKS[name]
        bench_args = [
            a.replace("{threads}", str(args.threads)) for a in (quick if args.quick else full)
        ]
        entry = run_one(name, bench_args, args.timeout)
        report["benchmarks"][name] = entry  # type: ignore[index]
        failed |= "error" in entry
        print(summary_line(name, entry), flush=True)
    report["machine"]["load_avg_1m_after"] = (  # type: ignore[index]
        round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
