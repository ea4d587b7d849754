"""The console scripts: headless run on the built-in demo, clear one-line errors, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "physio_live.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_stream_demo_prints_windows_and_summary():
    r = _run("--stream", "--duration", "6", "--set", "aligner.window=2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    wins = [ln for ln in lines if ln.startswith("window")]
    assert len(wins) >= 4
    assert "eeg 14x400" in wins[0] and "ecg 2x400" in wins[0]
    assert any(ln.startswith("status") for ln in lines)
    assert lines[-1].startswith("summary") and "lost=0" in lines[-1]
    assert "Traceback" not in r.stderr


def test_sigterm_closes_cleanly():
    p = subprocess.Popen(
        [sys.executable, "-m", "physio_live.app.cli", "--stream", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "summary" in out


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--stream", "--config", "nope.yaml"], "config file not found"),
        (["--stream", "--set", "aligner.hopp=1"], "unknown key; did you mean 'hop'"),
        (["--stream", "--set", "sources.0.board=NOPE"], "not a BrainFlow board name"),
    ],
)
def test_user_errors_are_one_line_exit_1(args, pattern):
    r = _run(*args)
    assert r.returncode == 1
    assert pattern in r.stderr
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("physio-live: error")]) == 1


def test_unbuilt_parts_say_so_with_exit_2():
    r = _run()
    assert r.returncode == 2 and "not yet implemented" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "physio_live.trainer.cli", "pretrain"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not yet implemented" in r.stderr and "Traceback" not in r.stderr
