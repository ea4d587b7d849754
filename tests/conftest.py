"""Shared fixtures. LSL discovery is held to this machine before anything imports pylsl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
os.environ["LSLAPICFG"] = str(TESTS / "lsl_api.cfg")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

DATA = Path(os.environ.get("PHYSIO_LIVE_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real recordings in ``../shared/data`` (skip when absent; CI always has them)."""
    if not DATA.is_dir():
        pytest.skip(f"shared recordings not found at {DATA}; set PHYSIO_LIVE_DATA")
    return DATA


class OutletProcess:
    """Real LSL outlets in a separate process (``tests/lsl_outlets.py``)."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "lsl_outlets.py"), json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("READY"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"outlet process failed to start: {line!r} {err}")
        self.t0 = float(line.split()[1])

    def event_times(self, until: float) -> list[float]:
        """LSL times of the planted common events (see lsl_outlets.py)."""
        period = self.spec.get("event_period", 0.0)
        if not period:
            return []
        first = self.t0 + self.spec.get("event_offset", 1.0)
        out, t = [], first
        while t <= until:
            out.append(t)
            t += period
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def lsl_outlets():
    """Factory: ``lsl_outlets(streams=[...], event_period=...)`` starts outlets in a subprocess.

    Every stream gets a unique name (suffix) and channel 0 carries the sample index.
    """
    procs: list[OutletProcess] = []

    def start(streams: list[dict], unique: bool = True, **kw) -> OutletProcess:
        tag = uuid.uuid4().hex[:8]
        for s in streams:
            if unique:
                s["name"] = f"{s['name']}-{tag}"
            s.setdefault("source_id", f"{s['name']}-sid")
        spec = {"streams": streams, **kw}
        p = OutletProcess(spec)
        procs.append(p)
        time.sleep(0.2)
        return p

    yield start
    for p in procs:
        p.stop()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where CUDA is present (CI has none)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
