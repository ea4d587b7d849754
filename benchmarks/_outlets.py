"""Real LSL outlets for the benchmarks, in a separate process (``tests/lsl_outlets.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))

__all__ = ["ROOT", "start_outlets"]


def start_outlets(
    streams: list[dict], duration: float, push_interval: float = 0.02
) -> tuple[subprocess.Popen, dict]:
    """Start outlets for ``streams`` (name, type, n_ch, srate[, unit]); names get a unique tag.

    Returns the process and the spec actually used (with the tagged names).
    """
    tag = uuid.uuid4().hex[:8]
    spec = {
        "streams": [dict(s, name=f"{s['name']}-{tag}") for s in streams],
        "duration": duration,
        "push_interval": push_interval,
    }
    for s in spec["streams"]:
        s.setdefault("source_id", s["name"])
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "lsl_outlets.py"), json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"outlet process failed to start: {line!r}")
    return proc, spec
